import { basename, dirname } from 'node:path';
import { CONF_DIR, INCLUDE_MARK, type IncludeLine, includePattern, privateDir, RUN_DIR, STAGING_MARK } from '../core/paths.js';
import { quote } from '../core/shell.js';
import { GUARD_DIR } from '../plan/guard.js';

/** Exit codes of the write script that mean something to the executor. */
export const WRITE_EXIT = { shortRead: 20, noCurrentKey: 21, noPrevious: 22, checkFailed: 30 } as const;

/**
 * Stands in, in a put's content, for the key the host's file holds now: the host puts it in
 * as it writes, so a kept key never travels.
 */
export const CURRENT_KEY = '@@provision-current-key@@';

export interface Put {
  path: string;
  mode: '0644' | '0600';
  /** The bytes written; may hold a new key: it goes over stdin, never into the script. */
  content: string;
}

/** A file put back as it was before this run's write, from the host's own copy (WriteSet.keep). */
export interface Restore {
  path: string;
  /** The copy the write kept, in the keep folder. */
  from: string;
}

/** Everything one host's write changes, atomically as a whole. */
export interface WriteSet {
  puts: Put[];
  deletes: string[];
  includes: IncludeLine[];
  /** Staging folders a killed write left behind (from the facts): removed first. */
  stale?: string[];
  /** Include lines provision added that go (with their marker): teardown, nothing of provision left. */
  dropIncludes?: IncludeLine[];
  /**
   * A root-only folder where the files this write replaces or deletes are kept (keptCopy),
   * so that the run can put them back without their content, keys included, ever leaving
   * the host. The run removes it at its end.
   */
  keep?: string;
  /** Files put back from a keep folder. */
  restores?: Restore[];
}

/** Where a write that keeps the files it replaces keeps `path`: one flat folder, '/' as '%'. */
export function keptCopy(keep: string, path: string): string {
  return `${keep}/${path.replaceAll('/', '%')}`;
}

/**
 * One script writes every changed file of a host, reading their contents from stdin in
 * order (keys never appear on a command line). The new contents go to a private folder in
 * each target folder (mktemp -d, so 0700; umask 077 makes each file 0600 until its mode is
 * set); once every byte has arrived they are flushed to disk (so that a power cut cannot
 * leave an empty secrets file), get their modes and owner and are renamed over the old
 * ones, so a reader sees the old file or the new one, never half of one. Include lines are
 * appended to a copy of the operator's file, renamed over it the same way. Then the backend
 * checks the whole config; if it refuses, every file is put back as it was. However the
 * script ends (refused, killed by its time limit, a dropped connection), the staging folders
 * go: they hold new keys. Commands are per folder, not per file (one copy, one chmod per
 * mode, one mv): a first run writes a file per pair and peer.
 */
export function writeScript(set: WriteSet, checkConfig?: string): { script: string; stdin: string } {
  // A staging folder in every folder written to, the include lines' too: edits are staged there.
  const restores = set.restores ?? [];
  const dirs = [
    ...new Set([
      ...set.puts.map((p) => dirname(p.path)),
      ...set.deletes.map(dirname),
      ...restores.map((r) => dirname(r.path)),
      ...set.includes.map((i) => dirname(i.path)),
      ...(set.dropIncludes ?? []).map((i) => dirname(i.path)),
    ]),
  ];
  if (dirs.length === 0) dirs.push(CONF_DIR);
  const idx = (path: string): number => dirs.indexOf(dirname(path));
  const total = set.puts.reduce((n, f) => n + Buffer.byteLength(f.content), 0);
  const modes = [...new Set(set.puts.map((f) => f.mode))];
  const lines: string[] = [
    'set -eu',
    'umask 077',
    // Runs of other fleets may edit the same include files at once: one at a time, before any change.
    ...(set.includes.length || set.dropIncludes?.length
      ? [
          privateDir(RUN_DIR),
          `exec 8>${RUN_DIR}/includes.lock; flock -w 60 8 || { echo "another provision run held ${RUN_DIR}/includes.lock for 60 s; nothing was written" >&2; exit 2; }`,
        ]
      : []),
    // Only a folder that carries our marker, and is no link, is ever removed.
    ...(set.stale ?? []).map((d) => `[ -d ${quote(d)} ] && [ ! -L ${quote(d)} ] && [ -f ${quote(`${d}/${STAGING_MARK}`)} ] && rm -rf -- ${quote(d)} || true`),
    ...dirs.map((d, i) => `D${i}=${quote(d)}; mkdir -p "$D${i}"`),
    // Hidden, so the include glob (*.conf, *.secrets) never picks a staging folder up.
    ...dirs.map(
      (_, i) =>
        `S${i}=$(mktemp -d "$D${i}/.provision-backup.XXXXXX") && mkdir "$S${i}/old" "$S${i}/kept" ${modes.map((m) => `"$S${i}/${m}"`).join(' ')} && ` +
        `echo 'staging of a provision write: its next run removes this folder if it is left' > "$S${i}/${STAGING_MARK}"`,
    ),
    'bak=$S0',
    // provision's own folder goes once its last file has (teardown); rmdir leaves a non-empty one.
    `trap 'rm -rf ${dirs.map((_, i) => `"$S${i}"`).join(' ')} "\${tmp:-}"${set.deletes.some((p) => dirname(p) === GUARD_DIR) ? `; rmdir ${GUARD_DIR} 2>/dev/null || true` : ''}' EXIT`,
    "trap 'exit 143' HUP INT TERM",
    ': > "$bak/.saved"; : > "$bak/.created"; : > "$bak/.existing"; : > "$bak/.deleted"; n=0',
    'restore() {',
    '  while read -r b f; do mv -f "$b" "$f"; done < "$bak/.saved"',
    '  while read -r f; do rm -f "$f"; done < "$bak/.created"',
    '}',
  ];
  // The script is one argument of `sh -c`, which Linux caps at 128 KiB: each file is named
  // once, by a call that remembers what is there now and stages the new content.
  if (set.puts.length || set.deletes.length || restores.length) {
    lines.push(
      'save() { eval "d=\\$D$1 s=\\$S$1"; if [ -e "$d/$2" ]; then echo "$1 $2" >> "$bak/.existing"; echo "$s/old/$2 $d/$2" >> "$bak/.saved"; else echo "$d/$2" >> "$bak/.created"; fi; }',
      'p() { save "$3" "$4"; head -c "$2" > "$s/$1/$4"; }',
      'x() { save "$1" "$2"; eval "d=\\$D$1"; echo "$d/$2" >> "$bak/.deleted"; }',
    );
    lines.push(...set.puts.map((f) => `p ${f.mode} ${Buffer.byteLength(f.content)} ${idx(f.path)} ${quote(basename(f.path))}`));
    lines.push(...set.deletes.map((p) => `x ${idx(p)} ${quote(basename(p))}`));
    if (set.puts.length) {
      const staged = dirs.map((_, i) => `"$S${i}"/0*/*`).join(' ');
      lines.push(
        `if [ "$(cat ${staged} 2>/dev/null | wc -c)" -ne ${total} ]; then echo "short read: the connection dropped while the files were sent" >&2; exit ${WRITE_EXIT.shortRead}; fi`,
      );
    }
    const keeping = set.puts.filter((f) => f.content.includes(CURRENT_KEY));
    if (keeping.length) {
      // The key the host's file holds now goes where CURRENT_KEY stands: it is read here, on the host.
      lines.push(
        'k() {',
        '  eval "d=\\$D$2 s=\\$S$2"',
        `  awk -v slot=${quote(CURRENT_KEY)} 'FILENAME == ARGV[1] { if (k == "" && match($0, /:[ \\t]*PSK[ \\t]+/)) k = substr($0, RSTART + RLENGTH); next }` +
          ` k == "" { exit 3 } { i = index($0, slot); if (i) $0 = substr($0, 1, i - 1) k substr($0, i + length(slot)); print }' "$d/$3" "$s/$1/$3" > "$s/$1/.key" ||` +
          ` { echo "$d/$3 no longer holds a key: it changed since it was read; re-run" >&2; exit ${WRITE_EXIT.noCurrentKey}; }`,
        '  mv -f "$s/$1/.key" "$s/$1/$3"',
        '}',
        ...keeping.map((f) => `k ${f.mode} ${idx(f.path)} ${quote(basename(f.path))}`),
      );
    }
    if (restores.length) {
      lines.push(
        'r() { save "$1" "$2"; eval "s=\\$S$1"; [ -f "$3" ] && [ ! -L "$3" ] || { echo "the previous version of $2 is gone from $3" >&2; exit ' +
          WRITE_EXIT.noPrevious +
          '; }; cp -p -- "$3" "$s/kept/$2"; }',
        ...restores.map((r) => `r ${idx(r.path)} ${quote(basename(r.path))} ${quote(r.from)}`),
      );
    }
    // The old files, one copy per folder (names one per line; -d keeps any character in one argument).
    lines.push(...dirs.map((_, i) => `sed -n 's/^${i} //p' "$bak/.existing" | (cd "$D${i}" && xargs -r -d '\\n' cp -p -t "$S${i}/old" --)`));
    if (set.keep) {
      // Kept where only root can read, for the run to put back; the run removes the folder at its end.
      lines.push(
        privateDir(quote(dirname(set.keep))),
        `K=${quote(set.keep)}; { [ -d "$K" ] && [ ! -L "$K" ]; } || mkdir -m 0700 "$K"; : > "$K/${STAGING_MARK}"`,
      );
      lines.push(
        ...dirs.map((d, i) => `for f in "$S${i}/old"/*; do [ ! -e "$f" ] || cp -p -- "$f" "$K"/${quote(`${d.replaceAll('/', '%')}%`)}"\${f##*/}"; done`),
      );
    }
    if (set.puts.length) {
      lines.push(
        ...dirs.flatMap((d, i) =>
          modes
            .filter((m) => set.puts.some((f) => f.mode === m && dirname(f.path) === d))
            .map((m) => `chmod ${m} -- "$S${i}/${m}"/*; chown 0:0 -- "$S${i}/${m}"/*; sync -- "$S${i}/${m}"/*; mv -f -t "$D${i}" -- "$S${i}/${m}"/*`),
        ),
      );
    }
    // Restored copies keep their own mode and owner (cp -p).
    lines.push(...[...new Set(restores.map((r) => idx(r.path)))].map((i) => `sync -- "$S${i}/kept"/*; mv -f -t "$D${i}" -- "$S${i}/kept"/*`));
    lines.push('xargs -r -d \'\\n\' rm -f -- < "$bak/.deleted"');
  }
  if (set.includes.length) {
    lines.push(
      'addline() {',
      // Another fleet's run may have added it since the facts were read.
      '  if [ -e "$1" ] && grep -qE -- "$5" "$1"; then return 0; fi',
      '  n=$((n+1))',
      '  if [ -e "$1" ]; then cp -p "$1" "$bak/inc$n"; echo "$bak/inc$n $1" >> "$bak/.saved"; else echo "$1" >> "$bak/.created"; fi',
      '  tmp=$(mktemp "$4/edit.XXXXXX")',
      '  if [ -e "$1" ]; then cat "$1" > "$tmp"; chmod --reference="$1" "$tmp"; chown --reference="$1" "$tmp"; else chmod "$2" "$tmp"; fi',
      '  if [ -s "$tmp" ] && [ -n "$(tail -c 1 "$tmp")" ]; then echo >> "$tmp"; fi',
      `  printf '%s\\n%s\\n' ${quote(INCLUDE_MARK)} "$3" >> "$tmp"`,
      '  sync -- "$tmp"',
      '  mv -f "$tmp" "$1"; tmp=',
      '}',
    );
    for (const inc of set.includes) {
      const mode = inc.path.endsWith('.secrets') ? '0600' : '0644';
      lines.push(`addline ${quote(inc.path)} ${mode} ${quote(inc.line)} "$S${idx(inc.path)}" ${quote(includePattern(inc.line))}`);
    }
  }
  if (set.dropIncludes?.length) {
    lines.push(
      'dropline() {',
      '  n=$((n+1)); cp -p "$1" "$bak/inc$n"; echo "$bak/inc$n $1" >> "$bak/.saved"',
      '  tmp=$(mktemp "$4/edit.XXXXXX"); chmod --reference="$1" "$tmp"; chown --reference="$1" "$tmp"',
      '  awk -v m="$2" -v l="$3" \'$0 == m {held = $0; next} held != "" && $0 == l {held = ""; next} held != "" {print held; held = ""} {print} END {if (held != "") print held}\' "$1" > "$tmp"',
      '  sync -- "$tmp"; mv -f "$tmp" "$1"; tmp=',
      '}',
      ...set.dropIncludes.map(
        (inc) => `[ ! -e ${quote(inc.path)} ] || dropline ${quote(inc.path)} ${quote(INCLUDE_MARK)} ${quote(inc.line)} "$S${idx(inc.path)}"`,
      ),
    );
  }
  lines.push(...dirs.map((_, i) => `sync -- "$D${i}"`));
  if (checkConfig) {
    lines.push(`if ! out=$( { ${checkConfig}; } 2>&1 ); then restore; printf '%s\\n' "$out" >&2; exit ${WRITE_EXIT.checkFailed}; fi`);
  }
  return { script: `${lines.join('\n')}\n`, stdin: set.puts.map((f) => f.content).join('') };
}

/** Restart ipsec (systemd or SysV), wait until the daemon answers, then the backend's after-restart step. */
export function restartScript(init: 'systemd' | 'sysv', after = ''): string {
  const restart = init === 'systemd' ? 'systemctl enable --quiet ipsec >/dev/null 2>&1 || true\nsystemctl restart ipsec' : 'service ipsec restart >/dev/null';
  const why = init === 'systemd' ? 'systemctl status ipsec --no-pager -n 15 >&2 || true' : 'tail -n 15 /var/log/syslog >&2 2>/dev/null || true';
  // pluto under UML took up to 30 s to answer after a restart; 90 s leaves room for a busy host.
  return (
    `set -u\n${restart} || { ${why}; exit 1; }\n` +
    'i=0; until ipsec status >/dev/null 2>&1; do i=$((i+1)); if [ $i -ge 180 ]; then echo "ipsec did not answer 90 s after the restart" >&2; ' +
    why +
    '; exit 1; fi; sleep 0.5; done\n' +
    (after ? `${after}\n` : '')
  );
}
