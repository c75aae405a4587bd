import type { Backend, ConnSpec, Target } from '../backends/index.js';
import { headerLine } from '../core/ownership.js';
import { pairFile } from '../core/paths.js';
import type { HostSpec, Inventory, PlannedPair } from '../inventory/types.js';
import { CREATED_SLOT, KEY_SLOT } from './types.js';

/** One pair as one host takes part in it. */
export interface HostConn {
  pair: PlannedPair;
  role: 'initiator' | 'responder';
  peer: HostSpec;
}

/** The pairs of each host, in inventory order. */
export function connsByHost(inv: Inventory): Map<string, HostConn[]> {
  const out = new Map<string, HostConn[]>([...inv.hosts.keys()].map((h) => [h, []]));
  for (const pair of inv.pairs) {
    const l = inv.hosts.get(pair.left)!;
    const r = inv.hosts.get(pair.right)!;
    const leftRole = pair.initiator === pair.left ? 'initiator' : 'responder';
    out.get(pair.left)!.push({ pair, role: leftRole, peer: r });
    out.get(pair.right)!.push({ pair, role: leftRole === 'initiator' ? 'responder' : 'initiator', peer: l });
  }
  return out;
}

function connSpec(host: HostSpec, c: HostConn): ConnSpec {
  const local = host.address;
  const isLeft = c.pair.left === host.name;
  return {
    name: c.pair.name,
    left: isLeft ? local : c.peer.address,
    right: isLeft ? c.peer.address : local,
    local,
    peer: c.peer.address,
    role: c.role,
    auto: c.role === 'initiator' ? 'start' : c.pair.responderMode,
  };
}

function header(fleet: string, c: HostConn): string {
  return `${headerLine(fleet)}\n# Pair ${c.pair.left}/${c.pair.right}; ${c.pair.initiator} initiates.\n`;
}

interface DesiredFile {
  path: string;
  mode: '0644' | '0600';
  kind: 'conf' | 'secrets';
  pair: string;
  /** With KEY_SLOT where the key goes, for secrets files. */
  content: string;
}

/** The two files a host holds for one pair: its conn and its secrets line. */
export function pairFiles(fleet: string, host: HostSpec, c: HostConn, backend: Backend, target: Target): DesiredFile[] {
  const spec = connSpec(host, c);
  return [
    { path: pairFile(c.pair.name, 'conf'), mode: '0644', kind: 'conf', pair: c.pair.name, content: header(fleet, c) + backend.renderConn(spec, target) },
    {
      path: pairFile(c.pair.name, 'secrets'),
      mode: '0600',
      kind: 'secrets',
      pair: c.pair.name,
      content: `${header(fleet, c)}# Key created ${CREATED_SLOT}.\n${backend.renderSecret(spec, KEY_SLOT)}`,
    },
  ];
}
