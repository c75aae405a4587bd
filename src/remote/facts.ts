import { MANAGED_MARK } from '../backends/types.js';
import { CONF_DIR, INCLUDES } from '../plan/plan.js';

/** A file under /etc/ipsec.d as found on the host. Only managed files have their content read. */
export interface FoundFile {
  path: string;
  mode: string;
  managed: boolean;
  content?: string;
}

/** What one round trip learns about a host. PSKs found in secrets files stay in memory. */
export interface Facts {
  os: string;
  init: 'systemd' | 'sysv';
  /** Installed IPsec packages and their Debian versions. */
  installed: Map<string, string>;
  /** apt candidates; empty when apt has no package lists yet. */
  candidates: Map<string, string>;
  hasPackageLists: boolean;
  /** Upstream version from `ipsec --version`, e.g. "4.10"; undefined without ipsec. */
  ipsecVersion?: string;
  running: boolean;
  /** Include lines (from INCLUDES) that are missing, by path. */
  missingIncludes: { path: string; line: string }[];
  files: Map<string, FoundFile>;
  /** Established ESP SAs in the kernel, as "src dst" addresses (no SPI, no key). */
  sas: Set<string>;
}

export const IPSEC_PACKAGES = ['openswan', 'libreswan', 'strongswan-starter'] as const;

const includeCheck = INCLUDES.map(({ path, line }) => {
  const pattern = `^[[:space:]]*${line.replace(/\s+/g, '[[:space:]]+').replace(/\*/g, '\\*').replace(/\./g, '\\.')}[[:space:]]*$`;
  return `if grep -qE '${pattern}' ${path} 2>/dev/null; then echo 'present ${path}'; else echo 'missing ${path}'; fi`;
}).join('\n');

/** One script, one round trip. Read-only: a dry run runs exactly this and nothing else. */
export const FACTS_SCRIPT = `set +e
export LC_ALL=C
echo '@@os'; ( . /etc/os-release 2>/dev/null; echo "\${ID:-unknown} \${VERSION_ID:-}" )
echo '@@init'; if [ -d /run/systemd/system ]; then echo systemd; else echo sysv; fi
installed=$(dpkg-query -W -f='\${Package} \${db:Status-Abbrev} \${Version}\\n' ${IPSEC_PACKAGES.join(' ')} 2>/dev/null)
echo '@@installed'; printf '%s\\n' "$installed"
# Candidates matter only while no IPsec package is installed (see resolveBackend); apt-cache
# is the slowest command here, and rebuilds its cache after an apt clean.
echo '@@candidates'
case "$installed" in *' ii '*) ;; *) apt-cache policy ${IPSEC_PACKAGES.join(' ')} 2>/dev/null | awk '/^[^ ]/{p=$1; sub(":$","",p)} /Candidate:/{print p" "$2}' ;; esac
echo '@@lists'; ls /var/lib/apt/lists/ 2>/dev/null | grep -c '_Packages'
echo '@@version'; ipsec --version 2>/dev/null | head -n 3
echo '@@running'
if [ -d /run/systemd/system ]; then systemctl is-active ipsec 2>/dev/null
elif [ -x /etc/init.d/ipsec ]; then /etc/init.d/ipsec status >/dev/null 2>&1 && echo active || echo inactive
else echo inactive; fi
echo '@@includes'
${includeCheck}
echo '@@sas'
# Addresses only: the lines of \`ip xfrm state\` that follow hold keys and are never printed.
ip xfrm state 2>/dev/null | awk '/^src /{s=$2; d=$4} /^[[:space:]]+proto esp spi /{if ($4 != "0x00000000") print s" "d}' | sort -u
echo '@@files'
# Per host, not per file: one stat, one cat, one base64; first lines are read by the shell itself.
set --
for f in ${CONF_DIR}/*.conf ${CONF_DIR}/*.secrets; do [ -f "$f" ] && set -- "$@" "$f"; done
[ $# -eq 0 ] || stat -L -c '%a %s %n' -- "$@"
echo '@@managed'
# Keeps the managed files in "$@": each original argument is shifted out once it is looked at.
for f do
  shift
  first=''; IFS= read -r first <"$f" 2>/dev/null
  case "$first" in '${MANAGED_MARK}'*) echo "$f"; set -- "$@" "$f" ;; esac
done
echo '@@content'
[ $# -eq 0 ] || cat -- "$@" | base64 -w0
echo
echo '@@end'
`;

function sections(stdout: string): Map<string, string[]> {
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

/**
 * Files from their stat lines ("mode size path"); managed ones get their content, cut in
 * order from the one base64 dump by their sizes.
 */
function readFiles(s: Map<string, string[]>): Map<string, FoundFile> {
  const files = new Map<string, FoundFile>();
  const sizes = new Map<string, number>();
  for (const l of s.get('files') ?? []) {
    const m = /^(\d+) (\d+) (.+)$/.exec(l);
    if (!m) continue;
    files.set(m[3]!, { path: m[3]!, mode: m[1]!, managed: false });
    sizes.set(m[3]!, Number(m[2]));
  }
  const dump = Buffer.from((s.get('content') ?? []).join(''), 'base64');
  let at = 0;
  for (const path of s.get('managed') ?? []) {
    const f = files.get(path);
    const size = sizes.get(path);
    if (!f || size === undefined) continue;
    f.managed = true;
    f.content = dump.subarray(at, at + size).toString('utf8');
    at += size;
  }
  if (at !== dump.length) throw new Error('a file under /etc/ipsec.d changed while it was read');
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
  const files = readFiles(s);
  const ipsecVersion = parseIpsecVersion((s.get('version') ?? []).join('\n'));
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
    files,
    sas: new Set((s.get('sas') ?? []).map((l) => l.trim())),
  };
}

/** Whether `a` holds ESP SAs to and from `b`: the pair is up as far as `a` can tell. */
export function saUp(facts: Facts, a: string, b: string): boolean {
  return facts.sas.has(`${a} ${b}`) && facts.sas.has(`${b} ${a}`);
}

/** The key in a managed secrets file, if it has exactly one PSK line. */
export function pskOf(content: string | undefined): string | undefined {
  if (!content) return undefined;
  const keys = content.split('\n').map((l) => /^\S+\s+\S+\s*:\s*PSK\s+(\S+)\s*$/.exec(l)?.[1]).filter(Boolean);
  return keys.length === 1 ? keys[0] : undefined;
}
