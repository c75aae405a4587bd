import { normalizeAddress } from '../core/address.js';
import { HEADER_CASE_PATTERNS, type Owner, ownerOf } from '../core/ownership.js';
import { CONF_DIR, INCLUDE_MARK, INCLUDES, type IncludeLine, MANAGED_GLOBS, RUN_DIR, STAGING_MARK } from '../core/paths.js';
import { type KeyFact, keyMac, MASK_SECRETS, maskSecrets, parseKeys } from './secrets.js';

/** A file provision may manage, as found on the host. Only files with a header of ours are read. */
export interface FoundFile {
  path: string;
  mode: string;
  owner: Owner;
  content?: string;
}

/**
 * What one round trip learns about a host. No key leaves the host: the content of a secrets
 * file comes with its key masked (each character a '*', its 0s/0x prefix and '=' padding
 * kept, so its strength can be judged), and the key itself only as a MAC in `keys`.
 */
export interface Facts {
  os: string;
  init: 'systemd' | 'sysv';
  /** Installed packages of interest and their Debian versions. */
  installed: Map<string, string>;
  /** apt candidates, read while something of interest is missing; empty without package lists. */
  candidates: Map<string, string>;
  hasPackageLists: boolean;
  /** Upstream version from `ipsec --version`, e.g. "4.10"; undefined without ipsec. */
  ipsecVersion?: string;
  running: boolean;
  /** Include lines (from INCLUDES) that are missing. */
  missingIncludes: IncludeLine[];
  /** Include lines provision added (after its marker). */
  ourIncludes: IncludeLine[];
  files: Map<string, FoundFile>;
  /** Every conn the daemon's config defines (ipsec.conf and what it includes), with its file. */
  conns: { name: string; file: string }[];
  /** Established ESP SAs in the kernel, as "src dst" addresses (no SPI, no key). */
  sas: Set<string>;
  /** Staging folders a killed write left behind, and keep folders (WriteSet.keep) of a run that stopped, older than STALE_MINUTES. */
  staleStaging: string[];
  /** The address this SSH connection comes from, as the host sees it (SSH_CONNECTION), and sshd's port. */
  sshClient?: { address: string; port: number; serverPort: number };
  /** provision's nftables tables loaded now (the guard), by table name. */
  guards: Map<string, LoadedGuard>;
  /** Whether the guard's boot unit is enabled. */
  guardUnitEnabled: boolean;
  /** The key of each secrets file of ours, by path, as a MAC of the run's challenge. */
  keys: Map<string, KeyFact>;
}

export interface LoadedGuard {
  peers: string[];
  /** Packets the guard dropped since the table was loaded: leaving for peers, and arriving from them. */
  droppedOut: number;
  droppedIn: number;
}

/** Packages whose presence the planner needs to know. */
export const PACKAGES = ['openswan', 'libreswan', 'strongswan-starter', 'strongswan-charon', 'strongswan-swanctl', 'nftables'] as const;

/** A staging folder older than this belongs to no write under way (a write takes seconds). */
export const STALE_MINUTES = 30;

const includeCheck = INCLUDES.map(({ path, line }) => {
  const pattern = `^[[:space:]]*${line.replace(/\s+/g, '[[:space:]]+').replace(/\*/g, '\\*').replace(/\./g, '\\.')}[[:space:]]*$`;
  // "ours" when the line follows provision's marker: teardown may take it out again.
  const ours = `awk -v m='${INCLUDE_MARK}' -v l='${line}' 'p == m && $0 == l {f = 1} {p = $0} END {exit !f}' ${path} 2>/dev/null && echo 'ours ${path}'`;
  return `if grep -qE '${pattern}' ${path} 2>/dev/null; then echo 'present ${path}'; ${ours}; else echo 'missing ${path}'; fi`;
}).join('\n');

/**
 * One script, one round trip. Read-only: a dry run runs exactly this and nothing else. It
 * reads the content of a file only when its first line is one of provision's headers, and
 * masks every key in it before it leaves; keys are compared by MACs of `challenge`, which
 * must be fresh for each run.
 */
export function factsScript(challenge: string): string {
  return `set +e
export LC_ALL=C
echo '@@os'; ( . /etc/os-release 2>/dev/null; echo "\${ID:-unknown} \${VERSION_ID:-}" )
echo '@@init'; if [ -d /run/systemd/system ]; then echo systemd; else echo sysv; fi
installed=$(dpkg-query -W -f='\${Package} \${db:Status-Abbrev} \${Version}\\n' ${PACKAGES.join(' ')} 2>/dev/null)
echo '@@installed'; printf '%s\\n' "$installed"
# apt-cache is the slowest command here (and rebuilds its cache after an apt clean): only
# while an IPsec package or nftables is still to be installed.
echo '@@candidates'
case "$installed" in *'nftables ii '*) n=1 ;; *) n=0 ;; esac
case "$installed" in
  *"libreswan ii "*|*"strongswan-starter ii "*|*"openswan ii "*) [ $n = 1 ] || apt-cache policy nftables 2>/dev/null | awk '/^[^ ]/{p=$1; sub(":$","",p)} /Candidate:/{print p" "$2}' ;;
  *) apt-cache policy ${PACKAGES.join(' ')} 2>/dev/null | awk '/^[^ ]/{p=$1; sub(":$","",p)} /Candidate:/{print p" "$2}' ;;
esac
echo '@@lists'; ls /var/lib/apt/lists/ 2>/dev/null | grep -c '_Packages'
echo '@@version'; ipsec --version 2>/dev/null | head -n 3
echo '@@running'
if [ -d /run/systemd/system ]; then systemctl is-active ipsec 2>/dev/null
elif [ -x /etc/init.d/ipsec ]; then /etc/init.d/ipsec status >/dev/null 2>&1 && echo active || echo inactive
else echo inactive; fi
echo '@@includes'
${includeCheck}
echo '@@conns'
# ipsec.conf and every file it includes (a few levels deep), then each conn they define.
files=''; todo=/etc/ipsec.conf; i=0
while [ -n "$todo" ] && [ $i -lt 5 ]; do
  new=''
  for f in $todo; do [ -f "$f" ] || continue; case " $files " in *" $f "*) ;; *) files="$files $f"; new="$new $f" ;; esac; done
  [ -n "$new" ] || break
  todo=$(awk '/^[ \\t]*include[ \\t]/{print $2}' $new)
  i=$((i+1))
done
[ -z "$files" ] || awk '/^conn[ \\t]/ && $2 !~ /^%/ {print $2" "FILENAME}' $files
echo '@@sas'
# Addresses only: the lines of \`ip xfrm state\` that follow hold keys and are never printed.
ip xfrm state 2>/dev/null | awk '/^src /{s=$2; d=$4} /^[[:space:]]+proto esp spi /{if ($4 != "0x00000000") print s" "d}' | sort -u
echo '@@stale'
find ${CONF_DIR} /etc -maxdepth 1 -type d -name '.provision-backup.*' -mmin +${STALE_MINUTES} -exec test -f '{}/${STAGING_MARK}' \\; -print 2>/dev/null
find ${RUN_DIR} -maxdepth 1 -type d -name 'undo.*' -mmin +${STALE_MINUTES} -exec test -f '{}/${STAGING_MARK}' \\; -print 2>/dev/null
echo '@@ssh'
c=\${SSH_CONNECTION:-}
# Through sudo the variable is gone: it is in the environment of the login shell above.
p=$PPID; i=0
while [ -z "$c" ] && [ "$p" -gt 1 ] 2>/dev/null && [ $i -lt 8 ]; do
  c=$(tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p'); p=$(cut -d' ' -f4 /proc/$p/stat 2>/dev/null); i=$((i+1))
done
echo "$c"
echo '@@nft'
if command -v nft >/dev/null 2>&1; then
  for t in $(nft list tables 2>/dev/null | awk '$2 == "inet" && $3 ~ /^provision_/ {print $3}'); do echo "@table $t"; nft list table inet "$t" 2>/dev/null; done
fi
echo '@@unit'; systemctl is-enabled provision-guard 2>/dev/null
echo '@@files'
# Per host, not per file: one stat, one cat, one base64; first lines are read by the shell itself.
set --
for f in ${MANAGED_GLOBS.join(' ')}; do [ -f "$f" ] && set -- "$@" "$f"; done
[ $# -eq 0 ] || stat -L -c '%a %s %n' -- "$@"
echo '@@managed'
# Keeps the files with a header of ours in "$@": each original argument is shifted out once looked at.
for f do
  shift
  first=''; IFS= read -r first <"$f" 2>/dev/null
  case "$first" in ${HEADER_CASE_PATTERNS}) echo "$f"; set -- "$@" "$f" ;; esac
done
echo '@@content'
[ $# -eq 0 ] || cat -- "$@" | ${MASK_SECRETS} | base64 -w0
echo
echo '@@keys'
for f do case "$f" in *.secrets) ${keyMac(challenge)} ;; esac; done
echo '@@end'
`;
}

export function sections(stdout: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of stdout.split('\n')) {
    const m = /^@@(\w+)$/.exec(line);
    if (m) {
      current = [];
      out.set(m[1]!, current);
    } else if (current && line.trim()) {
      current.push(line);
    }
  }
  return out;
}

/** The facts script saw a file change between its stat and its read. */
export class FactsRaceError extends Error {}

/**
 * Files from their stat lines ("mode size path"); those with a header of ours get their
 * content, cut in order from the one base64 dump by their sizes, and an owner from the
 * whole first line.
 */
function readFiles(s: Map<string, string[]>): Map<string, FoundFile> {
  const files = new Map<string, FoundFile>();
  const sizes = new Map<string, number>();
  for (const l of s.get('files') ?? []) {
    const m = /^(\d+) (\d+) (.+)$/.exec(l);
    if (!m) continue;
    files.set(m[3]!, { path: m[3]!, mode: m[1]!, owner: { kind: 'operator' } });
    sizes.set(m[3]!, Number(m[2]));
  }
  const dump = Buffer.from((s.get('content') ?? []).join(''), 'base64');
  let at = 0;
  for (const path of s.get('managed') ?? []) {
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

export function parseFacts(stdout: string): Facts {
  const s = sections(stdout);
  if (!s.has('end')) throw new Error('the facts script did not finish');
  const installed = new Map<string, string>();
  for (const l of s.get('installed') ?? []) {
    // db:Status-Abbrev is three characters, "ii " when installed.
    const [pkg, status, version] = l.trim().split(/\s+/);
    if (pkg && status === 'ii' && version) installed.set(pkg, version);
  }
  const candidates = new Map<string, string>();
  for (const l of s.get('candidates') ?? []) {
    const [pkg, version] = l.split(' ');
    if (pkg && version && version !== '(none)') candidates.set(pkg, version);
  }
  const ipsecVersion = parseIpsecVersion((s.get('version') ?? []).join('\n'));
  const ssh = /^(\S+) (\d+) \S+ (\d+)$/.exec((s.get('ssh') ?? [])[0] ?? '');
  return {
    os: (s.get('os') ?? ['unknown'])[0]!.trim(),
    init: (s.get('init') ?? [])[0] === 'systemd' ? 'systemd' : 'sysv',
    installed,
    candidates,
    hasPackageLists: Number((s.get('lists') ?? ['0'])[0]) > 0,
    ...(ipsecVersion ? { ipsecVersion } : {}),
    running: (s.get('running') ?? [])[0] === 'active',
    missingIncludes: (s.get('includes') ?? [])
      .filter((l) => l.startsWith('missing '))
      .map((l) => INCLUDES.find((i) => i.path === l.slice('missing '.length))!)
      .filter(Boolean),
    ourIncludes: (s.get('includes') ?? [])
      .filter((l) => l.startsWith('ours '))
      .map((l) => INCLUDES.find((i) => i.path === l.slice('ours '.length))!)
      .filter(Boolean),
    files: readFiles(s),
    conns: (s.get('conns') ?? [])
      .map((l) => /^(\S+) (.+)$/.exec(l))
      .filter((m): m is RegExpExecArray => Boolean(m))
      .map((m) => ({ name: m[1]!, file: m[2]! })),
    sas: new Set((s.get('sas') ?? []).map((l) => l.trim().split(' ').map(normalizeAddress).join(' '))),
    staleStaging: (s.get('stale') ?? [])
      .map((l) => l.trim())
      .filter((l) => /\/\.provision-backup\.[A-Za-z0-9]+$/.test(l) || new RegExp(`^${RUN_DIR}/undo\\.[0-9a-f]+$`).test(l)),
    ...(ssh ? { sshClient: { address: normalizeAddress(ssh[1]!), port: Number(ssh[2]), serverPort: Number(ssh[3]) } } : {}),
    guards: parseGuards(s.get('nft') ?? []),
    guardUnitEnabled: (s.get('unit') ?? [])[0] === 'enabled',
    keys: parseKeys(s.get('keys') ?? []),
  };
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

/** Whether `a` holds ESP SAs to and from `b`: the pair is up as far as `a` can tell. */
export function saUp(facts: Facts, a: string, b: string): boolean {
  return facts.sas.has(`${a} ${b}`) && facts.sas.has(`${b} ${a}`);
}

/** The (masked) key in a secrets file of ours, if it has exactly one PSK line. */
export function pskOf(content: string | undefined): string | undefined {
  if (!content) return undefined;
  const keys = content
    .split('\n')
    .map((l) => /^\S+\s+\S+\s*:\s*PSK\s+(\S+)\s*$/.exec(l)?.[1])
    .filter(Boolean);
  return keys.length === 1 ? keys[0] : undefined;
}
