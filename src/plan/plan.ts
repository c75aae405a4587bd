import { BACKENDS, type Backend, type ConnSpec } from '../backends/index.js';
import type { BackendId, HostSpec, Inventory } from '../inventory/types.js';
import type { PlannedPair } from '../inventory/types.js';

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

/** Which backend and version a host has, or is assumed to have when it cannot be asked. */
export interface Resolved {
  backend: BackendId;
  version: string;
  /** True when nothing was asked of the host: an offline plan's assumption. */
  assumed: boolean;
}
export type Resolver = (host: HostSpec) => Resolved;

/**
 * One pair as one host takes part in it. Kept small (a million of these for a 1,000-host
 * mesh): paths and contents are derived on demand by the functions below.
 */
export interface HostConn {
  pair: PlannedPair;
  role: 'initiator' | 'responder';
  peer: HostSpec;
}

export interface HostPlan {
  host: HostSpec;
  backend: Backend;
  resolved: Resolved;
  conns: HostConn[];
  includes: readonly IncludeLine[];
}

export interface Plan {
  pairs: PlannedPair[];
  hosts: HostPlan[];
  warnings: string[];
}

export const CONF_DIR = '/etc/ipsec.d';

/** Offline: an explicit backend at its usual version; `auto` shown as Debian 12's libreswan. */
export const offlineResolver: Resolver = (host) => {
  const backend: BackendId = host.backend === 'auto' ? 'libreswan' : host.backend;
  return { backend, version: BACKENDS[backend].assumedVersion, assumed: true };
};

/** The desired state of every host. Pure: same inventory and resolver, same plan. */
export function plan(inv: Inventory, resolve: Resolver): Plan {
  const pairs = inv.pairs;
  const hostPlans = new Map<string, HostPlan>();
  for (const host of inv.hosts.values()) {
    const resolved = resolve(host);
    hostPlans.set(host.name, { host, backend: BACKENDS[resolved.backend], resolved, conns: [], includes: INCLUDES });
  }
  const warnings: string[] = [];
  for (const pair of pairs) {
    const l = hostPlans.get(pair.left)!;
    const r = hostPlans.get(pair.right)!;
    if ((l.resolved.backend === 'openswan') !== (r.resolved.backend === 'openswan')) {
      const other = l.resolved.backend === 'openswan' ? r.resolved.backend : l.resolved.backend;
      warnings.push(`pair ${pair.name}: openswan speaks IKEv1 and ${other} here speaks IKEv2 only; the pair will not come up. Use the same backend on both hosts.`);
    }
    const leftRole = pair.initiator === pair.left ? 'initiator' : 'responder';
    l.conns.push({ pair, role: leftRole, peer: r.host });
    r.conns.push({ pair, role: leftRole === 'initiator' ? 'responder' : 'initiator', peer: l.host });
  }
  return { pairs, hosts: [...hostPlans.values()], warnings };
}

/** Where a pair's files live on its hosts, by conn name; and back, from a path to a conn. */
export const pairFile = (name: string, kind: 'conf' | 'secrets'): string => `${CONF_DIR}/${name}.${kind}`;
export function pairOfFile(path: string): { name: string; kind: 'conf' | 'secrets' } | undefined {
  const m = /^(.+)\.(conf|secrets)$/.exec(path.startsWith(`${CONF_DIR}/`) ? path.slice(CONF_DIR.length + 1) : '');
  return m && !m[1]!.includes('/') ? { name: m[1]!, kind: m[2] as 'conf' | 'secrets' } : undefined;
}
export const confPath = (c: HostConn): string => pairFile(c.pair.name, 'conf');
export const secretsPath = (c: HostConn): string => pairFile(c.pair.name, 'secrets');

export function connSpec(hp: HostPlan, c: HostConn): ConnSpec {
  const local = hp.host.address;
  const isLeft = c.pair.left === hp.host.name;
  return {
    name: c.pair.name,
    left: isLeft ? local : c.peer.address,
    right: isLeft ? c.peer.address : local,
    local,
    peer: c.peer.address,
    role: c.role,
    auto: c.role === 'initiator' ? 'start' : c.pair.responderMode,
    describe: `Pair ${c.pair.left}/${c.pair.right}; ${c.pair.initiator} initiates.`,
  };
}

export function confContent(hp: HostPlan, c: HostConn): string {
  return hp.backend.renderConn(connSpec(hp, c), { version: hp.resolved.version });
}

export function secretsContent(hp: HostPlan, c: HostConn, psk: string): string {
  return hp.backend.renderSecret(connSpec(hp, c), psk);
}
