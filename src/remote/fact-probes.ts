import { BACKENDS } from '../backends/index.js';
import { normalizeAddress } from '../core/address.js';
import { HEADER_CASE_PATTERNS, ownerOf } from '../core/ownership.js';
import { CONF_DIR, INCLUDE_MARK, INCLUDES, includePattern, MANAGED_GLOBS, RUN_DIR, STAGING_MARK } from '../core/paths.js';
import type { Facts, FoundFile, LoadedGuard, Probe, Sections } from './fact-types.js';
import { keyMacs, MASK_SECRETS, maskSecrets, parseKeys } from './secrets.js';

/** Packages whose presence the planner needs to know: every backend's, and nftables for the guard. */
export const PACKAGES = [...new Set([...Object.values(BACKENDS).flatMap((b) => b.packages), 'nftables'])];

/** A staging folder older than this belongs to no write under way (a write takes seconds). */
const STALE_MINUTES = 30;

/** The facts script saw a file change between its stat and its read. */
export class FactsRaceError extends Error {}

const first = (s: Sections, name: string): string | undefined => s.get(name)?.[0];
const lines = (s: Sections, name: string): readonly string[] => s.get(name) ?? [];
const probe = <K extends keyof Facts>(p: Probe<K>): Probe<K> => p;

const includeCheck = INCLUDES.map(({ path, line }) => {
  const pattern = includePattern(line);
  // "ours" when the line follows provision's marker: teardown may take it out again.
  const ours = `awk -v m='${INCLUDE_MARK}' -v l='${line}' 'p == m && $0 == l {f = 1} {p = $0} END {exit !f}' ${path} 2>/dev/null && echo 'ours ${path}'`;
  return `if grep -qE '${pattern}' ${path} 2>/dev/null; then echo 'present ${path}'; ${ours}; else echo 'missing ${path}'; fi`;
}).join('\n');

const includesIn = (s: Sections, kind: 'missing' | 'ours') =>
  lines(s, 'includes')
    .filter((l) => l.startsWith(`${kind} `))
    .map((l) => INCLUDES.find((i) => i.path === l.slice(kind.length + 1)))
    .filter((i) => i !== undefined);

/**
 * What the facts script reads, in its order: one section each, read-only (a dry run runs
 * exactly this). A file's content is read only when its first line is one of provision's
 * headers, and every key in it is masked before it leaves the host.
 */
export const PROBES = [
  probe({
    name: 'os',
    script: () => `( . /etc/os-release 2>/dev/null; echo "\${ID:-unknown} \${VERSION_ID:-}" )`,
    parse: (s) => ({ os: (first(s, 'os') ?? 'unknown').trim() }),
    offline: () => ({ os: 'unknown' }),
    digest: (f) => f.os,
  }),
  probe({
    name: 'init',
    script: () => 'if [ -d /run/systemd/system ]; then echo systemd; else echo sysv; fi',
    parse: (s) => ({ init: first(s, 'init') === 'systemd' ? 'systemd' : 'sysv' }),
    offline: () => ({ init: 'systemd' }),
    digest: (f) => f.init,
  }),
  probe({
    name: 'installed',
    // apt-cache is the slowest command here (and rebuilds its cache after an apt clean): only
    // while an IPsec package or nftables is still to be installed.
    script: () => `installed=$(dpkg-query -W -f='\${Package} \${db:Status-Abbrev} \${Version}\\n' ${PACKAGES.join(' ')} 2>/dev/null)
printf '%s\\n' "$installed"
echo '@@candidates'
case "$installed" in *'nftables ii '*) n=1 ;; *) n=0 ;; esac
case "$installed" in
  *"libreswan ii "*|*"strongswan-starter ii "*|*"openswan ii "*) [ $n = 1 ] || apt-cache policy nftables 2>/dev/null | awk '/^[^ ]/{p=$1; sub(":$","",p)} /Candidate:/{print p" "$2}' ;;
  *) apt-cache policy ${PACKAGES.join(' ')} 2>/dev/null | awk '/^[^ ]/{p=$1; sub(":$","",p)} /Candidate:/{print p" "$2}' ;;
esac`,
    parse: (s) => {
      const installed = new Map<string, string>();
      for (const l of lines(s, 'installed')) {
        // db:Status-Abbrev is three characters, "ii " when installed.
        const [pkg, status, version] = l.trim().split(/\s+/);
        if (pkg && status === 'ii' && version) installed.set(pkg, version);
      }
      const candidates = new Map<string, string>();
      for (const l of lines(s, 'candidates')) {
        const [pkg, version] = l.split(' ');
        if (pkg && version && version !== '(none)') candidates.set(pkg, version);
      }
      return { installed, candidates };
    },
    offline: () => ({ installed: new Map(), candidates: new Map() }),
    digest: (f) => [...f.installed].sort(),
  }),
  probe({
    name: 'lists',
    script: () => "ls /var/lib/apt/lists/ 2>/dev/null | grep -c '_Packages'",
    parse: (s) => ({ hasPackageLists: Number(first(s, 'lists') ?? '0') > 0 }),
    offline: () => ({ hasPackageLists: false }),
    digest: (f) => f.hasPackageLists,
  }),
  probe({
    name: 'version',
    script: () => 'ipsec --version 2>/dev/null | head -n 3',
    parse: (s) => {
      const ipsecVersion = parseIpsecVersion(lines(s, 'version').join('\n'));
      return ipsecVersion ? { ipsecVersion } : {};
    },
    offline: () => ({}),
    digest: (f) => f.ipsecVersion ?? null,
  }),
  probe({
    name: 'running',
    script: () => `if [ -d /run/systemd/system ]; then systemctl is-active ipsec 2>/dev/null
elif [ -x /etc/init.d/ipsec ]; then /etc/init.d/ipsec status >/dev/null 2>&1 && echo active || echo inactive
else echo inactive; fi`,
    parse: (s) => ({ running: first(s, 'running') === 'active' }),
    offline: () => ({ running: false }),
    digest: (f) => f.running,
  }),
  probe({
    name: 'includes',
    script: () => includeCheck,
    parse: (s) => ({ missingIncludes: includesIn(s, 'missing'), ourIncludes: includesIn(s, 'ours') }),
    offline: () => ({ missingIncludes: [...INCLUDES], ourIncludes: [] }),
    digest: (f) => f.missingIncludes.map((i) => i.path),
  }),
  probe({
    name: 'conns',
    // ipsec.conf and every file it includes (a few levels deep), then each conn they define.
    script: () => `files=''; todo=/etc/ipsec.conf; i=0
while [ -n "$todo" ] && [ $i -lt 5 ]; do
  new=''
  for f in $todo; do [ -f "$f" ] || continue; case " $files " in *" $f "*) ;; *) files="$files $f"; new="$new $f" ;; esac; done
  [ -n "$new" ] || break
  todo=$(awk '/^[ \\t]*include[ \\t]/{print $2}' $new)
  i=$((i+1))
done
[ -z "$files" ] || awk '/^conn[ \\t]/ && $2 !~ /^%/ {print $2" "FILENAME}' $files`,
    parse: (s) => ({
      conns: lines(s, 'conns')
        .map((l) => /^(\S+) (.+)$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => ({ name: m[1]!, file: m[2]! })),
    }),
    offline: () => ({ conns: [] }),
    digest: (f) => f.conns,
  }),
  probe({
    name: 'sas',
    // Addresses only: the lines of `ip xfrm state` that follow hold keys and are never printed.
    script: () => `ip xfrm state 2>/dev/null | awk '/^src /{s=$2; d=$4} /^[[:space:]]+proto esp spi /{if ($4 != "0x00000000") print s" "d}' | sort -u`,
    parse: (s) => ({ sas: new Set(lines(s, 'sas').map((l) => l.trim().split(' ').map(normalizeAddress).join(' '))) }),
    offline: () => ({ sas: new Set() }),
  }),
  probe({
    name: 'stale',
    script:
      () => `find ${CONF_DIR} /etc -maxdepth 1 -type d -name '.provision-backup.*' -mmin +${STALE_MINUTES} -exec test -f '{}/${STAGING_MARK}' \\; -print 2>/dev/null
find ${RUN_DIR} -maxdepth 1 -type d -name 'undo.*' -mmin +${STALE_MINUTES} -exec test -f '{}/${STAGING_MARK}' \\; -print 2>/dev/null`,
    parse: (s) => ({
      staleStaging: lines(s, 'stale')
        .map((l) => l.trim())
        .filter((l) => /\/\.provision-backup\.[A-Za-z0-9]+$/.test(l) || new RegExp(`^${RUN_DIR}/undo\\.[0-9a-f]+$`).test(l)),
    }),
    offline: () => ({ staleStaging: [] }),
  }),
  probe({
    name: 'ssh',
    // Through sudo the variable is gone: it is in the environment of the login shell above.
    script: () => `c=\${SSH_CONNECTION:-}
p=$PPID; i=0
while [ -z "$c" ] && [ "$p" -gt 1 ] 2>/dev/null && [ $i -lt 8 ]; do
  c=$(tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p'); p=$(cut -d' ' -f4 /proc/$p/stat 2>/dev/null); i=$((i+1))
done
echo "$c"`,
    parse: (s) => {
      const m = /^(\S+) (\d+) \S+ (\d+)$/.exec(first(s, 'ssh') ?? '');
      return m ? { sshClient: { address: normalizeAddress(m[1]!), port: Number(m[2]), serverPort: Number(m[3]) } } : {};
    },
    offline: () => ({}),
  }),
  probe({
    name: 'nft',
    script: () => `if command -v nft >/dev/null 2>&1; then
  for t in $(nft list tables 2>/dev/null | awk '$2 == "inet" && $3 ~ /^provision_/ {print $3}'); do echo "@table $t"; nft list table inet "$t" 2>/dev/null; done
fi`,
    parse: (s) => ({ guards: parseGuards(lines(s, 'nft')) }),
    offline: () => ({ guards: new Map() }),
  }),
  probe({
    name: 'unit',
    script: () => 'systemctl is-enabled provision-guard 2>/dev/null',
    parse: (s) => ({ guardUnitEnabled: first(s, 'unit') === 'enabled' }),
    offline: () => ({ guardUnitEnabled: false }),
  }),
  probe({
    name: 'files',
    // Per host, not per file: one stat, one cat, one base64; first lines are read by the shell
    // itself. The files with a header of ours stay in "$@" (each argument is shifted out once
    // looked at); their content leaves masked, and each key only as a MAC of the challenge.
    script: (challenge) => `set --
for f in ${MANAGED_GLOBS.join(' ')}; do [ -f "$f" ] && set -- "$@" "$f"; done
[ $# -eq 0 ] || stat -L -c '%a %s %n' -- "$@"
echo '@@managed'
for f do
  shift
  first=''; IFS= read -r first <"$f" 2>/dev/null
  case "$first" in ${HEADER_CASE_PATTERNS}) echo "$f"; set -- "$@" "$f" ;; esac
done
echo '@@content'
[ $# -eq 0 ] || cat -- "$@" | ${MASK_SECRETS} | base64 -w0
echo
echo '@@keys'
${keyMacs(challenge)}`,
    parse: (s) => ({ files: readFiles(s), keys: parseKeys(lines(s, 'keys')) }),
    offline: () => ({ files: new Map(), keys: new Map() }),
    digest: (f) => [...f.files.values()].map((x) => [x.path, x.mode, x.owner, x.content?.replace(/(:\s*PSK\s+)\S+/g, '$1<key>') ?? null]).sort(),
  }),
];

/**
 * Files from their stat lines ("mode size path"); those with a header of ours get their
 * content, cut in order from the one base64 dump by their sizes, and an owner from the
 * whole first line.
 */
function readFiles(s: Sections): Map<string, FoundFile> {
  const files = new Map<string, FoundFile>();
  const sizes = new Map<string, number>();
  for (const l of lines(s, 'files')) {
    const m = /^(\d+) (\d+) (.+)$/.exec(l);
    if (!m) continue;
    files.set(m[3]!, { path: m[3]!, mode: m[1]!, owner: { kind: 'operator' } });
    sizes.set(m[3]!, Number(m[2]));
  }
  const dump = Buffer.from(lines(s, 'content').join(''), 'base64');
  let at = 0;
  for (const path of lines(s, 'managed')) {
    const f = files.get(path);
    const size = sizes.get(path);
    if (!f || size === undefined) continue;
    // Masked on the host; masked again here, so a key never reaches the plan whatever the host sent.
    const content = maskSecrets(dump.subarray(at, at + size).toString('utf8'));
    at += size;
    f.owner = ownerOf(content.split('\n', 1)[0] ?? '');
    // The shell's pattern is looser than the header: what it let through is not kept.
    if (f.owner.kind !== 'operator') f.content = content;
  }
  if (at !== dump.length) throw new FactsRaceError('a file under /etc/ipsec.d changed while it was read');
  return files;
}

/** Upstream version from `ipsec --version` of libreswan, openswan or strongSwan. */
export function parseIpsecVersion(text: string): string | undefined {
  const m = /(?:Libreswan|Openswan|strongSwan)\s+U?v?(\d+(?:\.\d+)*)/i.exec(text);
  return m?.[1];
}

/** `nft list table` output of each guard table: its peer sets' elements and its drop counters. */
export function parseGuards(lines: readonly string[]): Map<string, LoadedGuard> {
  const out = new Map<string, LoadedGuard>();
  const tables: [string, string[]][] = [];
  for (const line of lines) {
    const t = /^@table (\S+)$/.exec(line);
    if (t) tables.push([t[1]!, []]);
    else tables.at(-1)?.[1].push(line);
  }
  for (const [name, body] of tables) {
    const text = body.join(' ').replace(/\s+/g, ' ');
    const peers = [...text.matchAll(/set peers[46] \{[^{}]*?(?:elements = \{([^}]*)\})?[^{}]*\}/g)].flatMap((m) =>
      (m[1] ?? '')
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean)
        .map(normalizeAddress),
    );
    const dropped = (chain: string): number => {
      const m = new RegExp(`chain ${chain} \\{(.*?)(?:chain |$)`).exec(text);
      return [...(m?.[1] ?? '').matchAll(/counter packets (\d+) bytes \d+ drop/g)].reduce((n, c) => n + Number(c[1]), 0);
    };
    out.set(name, { peers, droppedOut: dropped('output'), droppedIn: dropped('input') });
  }
  return out;
}
