import type { DirectionResult } from '../apply/outcome.js';
import { normalizeAddress } from '../core/address.js';
import { pairFile } from '../core/paths.js';
import type { Inventory } from '../inventory/types.js';
import { ageRotation, keyAge } from '../plan/keys.js';
import type { Changeset } from '../plan/types.js';
import { createdOf } from '../plan/types.js';
import type { Facts } from '../remote/facts.js';
import { saUp } from '../remote/facts.js';
import { bypasses, describePolicy, type XfrmPolicy } from './policies.js';
import type { DaemonSa } from './script.js';

/** What one host told `provision status`, or why it could not be read. */
export type HostReading =
  | { ok: true; facts: Facts; daemon: Map<string, DaemonSa>; policies: XfrmPolicy[] }
  | { ok: false; status: 'unreachable' | 'refused' | 'failed'; error: string };

/**
 * `up`: ESP SAs both ways on both ends, and nothing lets the pair's traffic pass in clear.
 * `exposed`: the SAs are there, but some of the traffic can go or come in clear (`exposures`).
 * Otherwise a word for what is wrong.
 */
export type PairHealth = 'up' | 'exposed' | 'down' | 'half-up' | 'not-configured' | 'unknown';

export interface PairStatus {
  name: string;
  hosts: [string, string];
  initiator: string;
  responder: string;
  status: PairHealth;
  /** Do both ends hold the same key (compared by MACs of a fresh challenge, never the keys). */
  keys: 'agree' | 'disagree' | 'missing' | 'unknown';
  /** Seconds since the key was made, where its hosts recorded it. */
  keyAgeSec?: number;
  /** The key is older than the inventory's rotation.maxAge (or its age unknown): a plain run rotates it. */
  keyPastMaxAge?: true;
  /** Files on either end that differ from what the inventory plans. */
  drift: string[];
  /** Why traffic of the pair can leave or arrive in clear, per end; empty when nothing was found. */
  exposures: string[];
  /** Each end's daemon view of the pair's Child SA. */
  ends: { host: string; sas: boolean; ageSec?: number; bytesIn?: number; bytesOut?: number }[];
  /** With --verify: the proof on the wire. */
  wire?: { verdict: 'verified' | 'failed'; reason?: string; directions: DirectionResult[] };
  /** In words, what to do. */
  next?: string;
}

export interface HostStatus {
  name: string;
  readable: boolean;
  error?: string;
  /** Files that differ from the plan (other than keys, counted on their pairs). */
  drift: string[];
  guard?: { table: string; loaded: boolean; peers: number; droppedOut: number; droppedIn: number };
}

const NEXT: Record<PairHealth, string> = {
  up: '',
  exposed: 'traffic of this pair can pass in clear (see above): `provision status --verify` watches the wire; a run of provision reloads the guard and conns.',
  down: 'neither end holds SAs: is the IKE daemon running on both (`systemctl status ipsec`)? A run of provision repairs what it can.',
  'half-up': 'the ends disagree about their SAs: a restart on one end, or keys out of step; `provision` re-run verifies and repairs it.',
  'not-configured': 'the pair is in the inventory but its files are missing on a host: run provision.',
  unknown: 'a host of the pair could not be read: see its error.',
};

/** The health of every pair and host, from what each host told. Pure. */
export function assess(inv: Inventory, readings: ReadonlyMap<string, HostReading>, plan: Changeset, at: number): { pairs: PairStatus[]; hosts: HostStatus[] } {
  const guards = new Map(plan.hosts.map((h) => [h.host, h.guard]));
  const drift = new Map(
    plan.hosts.map((h) => [
      h.host,
      h.files
        .filter((f) => f.action !== 'noop' && !(f.kind === 'secrets' && f.keyState !== 'unchanged'))
        .map((f) => `${f.path} (${f.action === 'create' ? 'missing' : f.action === 'delete' ? 'retired, still there' : 'differs'})`),
    ]),
  );
  const hosts: HostStatus[] = [...readings].map(([name, r]) => {
    if (!r.ok) return { name, readable: false, error: r.error, drift: [] };
    const g = guards.get(name);
    const loaded = g ? r.facts.guards.get(g.table) : undefined;
    const guardDrift = g && !g.remove && !loaded ? [`guard table ${g.table} not loaded`] : [];
    return {
      name,
      readable: true,
      drift: [...(drift.get(name) ?? []), ...guardDrift],
      ...(g && !g.remove
        ? {
            guard: {
              table: g.table,
              loaded: Boolean(loaded),
              peers: loaded?.peers.length ?? 0,
              droppedOut: loaded?.droppedOut ?? 0,
              droppedIn: loaded?.droppedIn ?? 0,
            },
          }
        : {}),
    };
  });
  const pairs = inv.pairs
    .filter((p) => readings.has(p.initiator) || readings.has(p.responder))
    .map((p): PairStatus => {
      const ends = [p.initiator, p.responder] as const;
      const addr = (h: string) => normalizeAddress(inv.hosts.get(h)!.address);
      const base = { name: p.name, hosts: [p.left, p.right] as [string, string], initiator: p.initiator, responder: p.responder };
      const rs = ends.map((h) => readings.get(h));
      if (rs.some((r) => !r?.ok)) return { ...base, status: 'unknown', keys: 'unknown', drift: [], exposures: [], ends: [], next: NEXT.unknown };
      const [ri, rr] = rs as Extract<HostReading, { ok: true }>[];
      const path = pairFile(p.name, 'secrets');
      const macs = [ri!.facts.keys.get(path)?.mac, rr!.facts.keys.get(path)?.mac];
      const keys = macs.some((m) => !m) ? 'missing' : macs[0] === macs[1] ? 'agree' : 'disagree';
      const configured = [ri!, rr!].every((r) => r.facts.files.has(pairFile(p.name, 'conf')));
      const up = ends.map((h, i) => saUp([ri!, rr!][i]!.facts, addr(h), addr(ends[1 - i]!)));
      const exposures = ends.flatMap((h, i) =>
        exposed([ri!, rr!][i]!, h, p.name, addr(h), addr(ends[1 - i]!), p.guard && inv.hosts.get(h)!.guard ? guards.get(h)?.table : undefined),
      );
      const status: PairHealth = !configured
        ? 'not-configured'
        : up.every(Boolean)
          ? exposures.length
            ? 'exposed'
            : 'up'
          : up.some(Boolean)
            ? 'half-up'
            : 'down';
      const ageSec = keyAge(
        [ri!, rr!].map((r) => createdOf(r.facts.files.get(path)?.content)),
        at,
      );
      const past = keys === 'agree' && inv.rotation ? ageRotation(ageSec, inv.rotation) : undefined;
      const pairDrift = ends.flatMap((h) => (drift.get(h) ?? []).filter((d) => d.includes(`/${p.name}.`)).map((d) => `${h}: ${d}`));
      const next =
        status !== 'up'
          ? NEXT[status]
          : keys === 'disagree'
            ? 'the two ends hold different keys: the next authentication fails; a run of provision repairs it.'
            : pairDrift.length
              ? 'files differ from the inventory: a run of provision puts them back.'
              : past
                ? `the key is ${past}: a run of provision rotates it.`
                : undefined;
      return {
        ...base,
        status,
        keys,
        ...(ageSec !== undefined ? { keyAgeSec: ageSec } : {}),
        ...(past ? { keyPastMaxAge: true as const } : {}),
        drift: pairDrift,
        exposures,
        ends: ends.map((h, i) => ({ host: h, sas: up[i]!, ...[ri!, rr!][i]!.daemon.get(p.name) })),
        ...(next ? { next } : {}),
      };
    });
  return { pairs, hosts };
}

/**
 * What on one end lets the pair's traffic pass in clear while its SAs are up: an outbound SA
 * that carried nothing while the inbound one carried traffic (the end's packets to its peer
 * went some other way), a passthrough policy that outranks the pair's own, and a guarded
 * pair whose peer is missing from the end's guard.
 */
function exposed(r: Extract<HostReading, { ok: true }>, host: string, pair: string, local: string, peer: string, guardTable: string | undefined): string[] {
  const out: string[] = [];
  const sa = r.daemon.get(pair);
  if (sa?.bytesOut === 0 && (sa.bytesIn ?? 0) > 0)
    out.push(`${host}: its outbound SA carried 0 bytes while its inbound one carried ${sa.bytesIn}: its traffic to ${peer} goes outside IPsec`);
  for (const p of bypasses(r.policies, local, peer)) out.push(`${host}: a passthrough policy outranks the pair's own: ${describePolicy(p)}`);
  if (guardTable) {
    const g = r.facts.guards.get(guardTable);
    if (!g) out.push(`${host}: guard table ${guardTable} is not loaded`);
    else if (!g.peers.map(normalizeAddress).includes(peer))
      out.push(`${host}: ${peer} is not in guard table ${guardTable}: nothing drops clear traffic to or from it`);
  }
  return out;
}
