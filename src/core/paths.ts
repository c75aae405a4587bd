/** Where provision's files live on a host. */
export const CONF_DIR = '/etc/ipsec.d';

/** A line that must be present in a file the operator owns (ipsec.conf, ipsec.secrets). */
export interface IncludeLine {
  path: string;
  line: string;
}

/** Every backend needs both: Debian's libreswan ships them, openswan and strongswan-starter do not. */
export const INCLUDES: readonly IncludeLine[] = [
  { path: '/etc/ipsec.conf', line: 'include /etc/ipsec.d/*.conf' },
  { path: '/etc/ipsec.secrets', line: 'include /etc/ipsec.d/*.secrets' },
];

/** An extended regex (grep -E) that matches an include line however it is spaced. */
export function includePattern(line: string): string {
  return `^[[:space:]]*${line.replace(/\s+/g, '[[:space:]]+').replace(/\*/g, '\\*').replace(/\./g, '\\.')}[[:space:]]*$`;
}

/** The comment provision writes above an include line it adds; `provision teardown` removes both. */
export const INCLUDE_MARK = '# added by provision: provision teardown removes it when nothing of provision is left here';

/** Where a pair's files live on its hosts, by conn name; and back, from a path to a conn. */
export const pairFile = (name: string, kind: 'conf' | 'secrets'): string => `${CONF_DIR}/${name}.${kind}`;

export function pairOfFile(path: string): { name: string; kind: 'conf' | 'secrets' } | undefined {
  const m = /^(.+)\.(conf|secrets)$/.exec(path.startsWith(`${CONF_DIR}/`) ? path.slice(CONF_DIR.length + 1) : '');
  return m && !m[1]!.includes('/') ? { name: m[1]!, kind: m[2] as 'conf' | 'secrets' } : undefined;
}

/** Every file provision may manage on a host, as shell globs: the facts script reads these. */
export const MANAGED_GLOBS: readonly string[] = [
  `${CONF_DIR}/*.conf`,
  `${CONF_DIR}/*.secrets`,
  '/etc/provision/*.nft',
  '/etc/provision/*.xfrm',
  '/etc/systemd/system/ipsec.service.d/provision.conf',
  '/etc/systemd/system/strongswan-starter.service.d/provision.conf',
  '/etc/strongswan.d/provision.conf',
  '/etc/systemd/system/provision-guard.service',
];

/**
 * provision's own folder for locks on a host: made by root, 0700, in /run (which only root
 * can write), so no local user can hold a lock of ours or plant a link in it.
 */
export const RUN_DIR = '/run/provision';

/** The file a write's staging folder carries: only a folder with it is ever removed as ours. */
export const STAGING_MARK = '.provision-staging';
/** Shell that makes `dir` (a plain path), refusing one that is a link or not root's own 0700 folder. */
export function privateDir(dir: string): string {
  return `mkdir -p -m 0700 ${dir} && [ ! -L ${dir} ] && [ "$(stat -c '%u %a' ${dir})" = "0 700" ] || { echo "${dir} is not root's own 0700 folder" >&2; exit 2; }`;
}
export const ENSURE_RUN_DIR = privateDir(RUN_DIR);
