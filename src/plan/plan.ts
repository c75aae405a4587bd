import { BACKENDS, type Backend, type ConnSpec } from '../backends/index.js';
import type { BackendId, HostSpec, Inventory } from '../inventory/types.js';
import { expandPairs, type PlannedPair } from './pairs.js';

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

export interface HostConn {
  pair: PlannedPair;
  spec: ConnSpec;
  confPath: string;
  /** Full content of the conn file. The secrets file's content needs the key: see secretsContent. */
  conf: string;
  secretsPath: string;
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
  const pairs = expandPairs(inv);
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
      warnings.push(`pair ${pair.name}: openswan speaks IKEv1 and ${l.resolved.backend === 'openswan' ? r.resolved.backend : l.resolved.backend} here speaks IKEv2 only; the pair will not come up. Use the same backend on both hosts.`);
    }
    for (const [hp, peer] of [[l, r], [r, l]] as const) {
      const role = hp.host.name === pair.initiator ? 'initiator' : 'responder';
      const spec: ConnSpec = {
        name: pair.name,
        left: l.host.address,
        right: r.host.address,
        local: hp.host.address,
        peer: peer.host.address,
        role,
        auto: role === 'initiator' ? 'start' : pair.responderMode,
        describe: `Pair ${pair.left}/${pair.right}; ${pair.initiator} initiates.`,
      };
      hp.conns.push({
        pair,
        spec,
        confPath: `${CONF_DIR}/${pair.name}.conf`,
        conf: hp.backend.renderConn(spec, { version: hp.resolved.version }),
        secretsPath: `${CONF_DIR}/${pair.name}.secrets`,
      });
    }
  }
  return { pairs, hosts: [...hostPlans.values()], warnings };
}

export function secretsContent(hp: HostPlan, conn: HostConn, psk: string): string {
  return hp.backend.renderSecret(conn.spec, psk);
}
