import SSHConfig from 'ssh-config';
import type { HostSpec, Inventory, SshSettings } from '../inventory/types.js';
import { DEFAULT_KNOWN_HOSTS } from '../inventory/load.js';

/**
 * OpenSSH's client config, read with ssh-config (the parser other Node tools use) and
 * applied as ssh itself would for the name the host is reached by: its `ssh.host`, else its
 * inventory name (so a host that `ssh web-1` reaches by alias is reached the same way).
 * Precedence: the inventory's own values (host, group, defaults) win; then the config;
 * then the built-in defaults (the IPsec address, port 22, root, ~/.ssh/known_hosts). Read:
 * HostName, User, Port, IdentityFile, ProxyJump (its first hop), UserKnownHostsFile,
 * StrictHostKeyChecking=accept-new. Pure: the text is read by the caller.
 */
export function applySshConfig(inv: Inventory, text: string): Inventory {
  const config = SSHConfig.parse(text);
  const settings = (name: string, fallbackHost: string, set: Partial<SshSettings>): SshSettings => {
    const c = config.compute(set.host ?? name) as Record<string, string | string[] | undefined>;
    const first = (k: string): string | undefined => {
      const v = c[k];
      return Array.isArray(v) ? v[0] : v;
    };
    const jump = first('ProxyJump')?.split(',')[0]?.trim();
    const port = first('Port');
    const identityFile = set.identityFile ?? first('IdentityFile');
    const j = set.jump ?? (jump && jump.toLowerCase() !== 'none' ? jump : undefined);
    return {
      host: set.host ? first('HostName') ?? set.host : first('HostName') ?? fallbackHost,
      port: set.port ?? (port ? Number(port) : 22),
      user: set.user ?? first('User') ?? 'root',
      knownHostsFile: set.knownHostsFile ?? first('UserKnownHostsFile')?.split(/\s+/)[0] ?? DEFAULT_KNOWN_HOSTS,
      ...(identityFile ? { identityFile } : {}),
      ...(j ? { jump: j } : {}),
      ...(first('StrictHostKeyChecking')?.toLowerCase() === 'accept-new' ? { acceptNew: true } : {}),
    };
  };
  const hosts = new Map<string, HostSpec>([...inv.hosts].map(([name, h]) => [name, { ...h, ssh: settings(name, h.address, h.sshSet) }]));
  return { ...inv, hosts };
}

/** Settings for a jump host that is neither an inventory host: a config alias, or `[user@]host[:port]`. */
export function jumpFromConfig(text: string, jump: string): Partial<SshSettings> | undefined {
  if (/[@:[]/.test(jump)) return undefined;
  const c = SSHConfig.parse(text).compute(jump) as Record<string, string | string[] | undefined>;
  const first = (k: string): string | undefined => (Array.isArray(c[k]) ? (c[k] as string[])[0] : (c[k] as string | undefined));
  if (!first('HostName') && !first('User') && !first('Port')) return undefined;
  return {
    host: first('HostName') ?? jump,
    ...(first('User') ? { user: first('User')! } : {}),
    ...(first('Port') ? { port: Number(first('Port')) } : {}),
    ...(first('IdentityFile') ? { identityFile: first('IdentityFile')! } : {}),
    ...(first('UserKnownHostsFile') ? { knownHostsFile: first('UserKnownHostsFile')!.split(/\s+/)[0]! } : {}),
  };
}
