import { basename, dirname } from 'node:path';
import type { Backend } from '../backends/index.js';
import { CONF_DIR } from '../plan/plan.js';
import { quote } from '../remote/shell.js';
import type { FileChange, HostChange } from './changeset.js';

/** Exit codes of the write script that mean something to the executor. */
export const WRITE_EXIT = { shortRead: 20, checkFailed: 30 } as const;

/**
 * One script writes every changed file of a host, reading their contents from stdin in
 * order (keys never appear on a command line). The new contents go to a private folder
 * next to the files (mktemp -d, so 0700; umask 077 makes each file 0600 until its mode is
 * set); once every byte has arrived they get their modes and owner and are renamed over
 * the old ones, so a reader sees the old file or the new one, never half of one. Include
 * lines are appended to a copy of the operator's file, renamed over it the same way. Then
 * the backend checks the whole config; if it refuses, every file is put back as it was.
 * Commands are per host, not per file (one copy, one chmod per mode, one mv): a first run
 * writes a file per pair and peer.
 */
export function writeScript(change: HostChange, backend: Pick<Backend, 'checkConfig'>, dir = CONF_DIR): { script: string; stdin: string } {
  const files = change.files.filter((f) => f.action !== 'noop');
  for (const f of files) {
    if (dirname(f.path) !== dir) throw new Error(`writeScript: ${f.path} is not in ${dir}`);
  }
  const puts = files.filter((f) => f.action !== 'delete');
  const dels = files.filter((f) => f.action === 'delete');
  const modes = [...new Set(puts.map((f) => f.mode))];
  const total = puts.reduce((n, f) => n + Buffer.byteLength(f.after), 0);
  const lines: string[] = [
    'set -eu',
    'umask 077',
    `mkdir -p ${quote(dir)}`,
    `cd ${quote(dir)}`,
    // Hidden, so the include glob (*.conf, *.secrets) never picks a backup up.
    'bak=$(mktemp -d "$PWD/.provision-backup.XXXXXX")',
    'mkdir "$bak/old"',
    ': > "$bak/.saved"; : > "$bak/.created"; n=0',
    'restore() {',
    '  while read -r b f; do mv -f "$b" "$f"; done < "$bak/.saved"',
    '  while read -r f; do rm -f "$f"; done < "$bak/.created"',
    '  rm -rf "$bak"',
    '}',
  ];
  // The script is one argument of `sh -c`, which Linux caps at 128 KiB: each file is named
  // once, by a call that remembers what is there now and stages the new content; then one
  // copy saves the old files, and chmod, chown, mv and rm each run once, over globs and lists.
  if (files.length) {
    lines.push(
      ': > "$bak/.existing"; : > "$bak/.deleted"',
      'save() { if [ -e "$1" ]; then echo "$1" >> "$bak/.existing"; echo "$bak/old/$1 $PWD/$1" >> "$bak/.saved"; else echo "$PWD/$1" >> "$bak/.created"; fi; }',
      'p() { save "$3"; head -c "$2" > "$bak/$1/$3"; }',
      'd() { save "$1"; echo "$1" >> "$bak/.deleted"; }',
    );
    if (modes.length) lines.push(`for m in ${modes.join(' ')}; do mkdir "$bak/$m"; done`);
    lines.push(...puts.map((f) => `p ${f.mode} ${Buffer.byteLength(f.after)} ${quote(basename(f.path))}`));
    lines.push(...dels.map((f) => `d ${quote(basename(f.path))}`));
    if (puts.length) {
      lines.push(`if [ "$(cat "$bak"/0*/* | wc -c)" -ne ${total} ]; then rm -rf "$bak"; echo "short read: the connection dropped while the files were sent" >&2; exit ${WRITE_EXIT.shortRead}; fi`);
    }
    // A name per line (names are conn names, but -d keeps any character in one argument).
    lines.push("xargs -r -d '\\n' cp -p -t \"$bak/old\" -- < \"$bak/.existing\"");
    if (puts.length) {
      lines.push(
        `for m in ${modes.join(' ')}; do chmod "$m" -- "$bak/$m"/*; done`,
        'chown 0:0 -- "$bak"/0*/*',
        'mv -f -t "$PWD" -- "$bak"/0*/*',
      );
    }
    lines.push("xargs -r -d '\\n' rm -f -- < \"$bak/.deleted\"");
  }
  if (change.includes.length) {
    lines.push(
      'addline() {',
      '  n=$((n+1))',
      '  if [ -e "$1" ]; then cp -p "$1" "$bak/inc$n"; echo "$bak/inc$n $1" >> "$bak/.saved"; else echo "$1" >> "$bak/.created"; fi',
      '  tmp=$(mktemp "$(dirname "$1")/.provision.XXXXXX")',
      '  if [ -e "$1" ]; then cat "$1" > "$tmp"; chmod --reference="$1" "$tmp"; chown --reference="$1" "$tmp"; else chmod "$2" "$tmp"; fi',
      '  if [ -s "$tmp" ] && [ -n "$(tail -c 1 "$tmp")" ]; then echo >> "$tmp"; fi',
      '  printf \'%s\\n\' "$3" >> "$tmp"',
      '  mv -f "$tmp" "$1"',
      '}',
    );
    for (const inc of change.includes) {
      const mode = inc.path.endsWith('.secrets') ? '0600' : '0644';
      lines.push(`addline ${quote(inc.path)} ${mode} ${quote(inc.line)}`);
    }
  }
  if (backend.checkConfig) {
    lines.push(`if ! out=$( { ${backend.checkConfig}; } 2>&1 ); then restore; printf '%s\\n' "$out" >&2; exit ${WRITE_EXIT.checkFailed}; fi`);
  }
  lines.push('rm -rf "$bak"');
  return { script: lines.join('\n') + '\n', stdin: puts.map((f) => f.after).join('') };
}

/** Restart ipsec (systemd or SysV), wait until the daemon answers, then the backend's after-restart step. */
export function restartScript(init: 'systemd' | 'sysv', after = ''): string {
  const restart = init === 'systemd'
    ? 'systemctl enable --quiet ipsec >/dev/null 2>&1 || true\nsystemctl restart ipsec'
    : 'service ipsec restart >/dev/null';
  const why = init === 'systemd' ? 'systemctl status ipsec --no-pager -n 15 >&2 || true' : 'tail -n 15 /var/log/syslog >&2 2>/dev/null || true';
  return `set -u\n${restart} || { ${why}; exit 1; }\n` +
    'i=0; until ipsec status >/dev/null 2>&1; do i=$((i+1)); if [ $i -ge 40 ]; then echo "ipsec did not answer 20 s after the restart" >&2; ' + why + '; exit 1; fi; sleep 0.5; done\n' +
    (after ? `${after}\n` : '');
}

/** Reload only what changed: retired conns down, secrets, then each changed conn; other tunnels stay up. */
export function reloadScript(change: Pick<HostChange, 'unload' | 'reload'>, backend: Backend): string {
  const unload = change.unload.length ? `${backend.unloadConns(change.unload)}\n` : '';
  const reload = change.reload.length ? `${backend.reloadConns(change.reload)}\n` : '';
  return `set -e\n${unload}${backend.rereadSecrets} >/dev/null\n${reload}`;
}

/**
 * The files of a change as they were before it: what was updated or deleted gets its old
 * content back, what was created goes. For `writeScript`, which does it atomically.
 */
export function undoChange(change: HostChange, only?: (f: FileChange) => boolean): HostChange {
  const files: FileChange[] = change.files
    .filter((f) => f.action !== 'noop' && (!only || only(f)))
    .map((f) => (f.before === undefined
      ? { ...f, action: 'delete' as const, after: '', shown: '' }
      : { ...f, action: f.action === 'delete' ? 'create' as const : 'update' as const, after: f.before, shown: '' }));
  return { ...change, files, includes: [] };
}

export function bringUpScript(names: readonly string[], backend: Backend): string {
  return names.map((n) => backend.up(n)).join('\n') + '\n';
}
