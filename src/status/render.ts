import { printable } from '../core/text.js';
import type { HostStatus, PairStatus } from './assess.js';

export interface StatusReport {
  fleet: string;
  tool: string;
  /** When the hosts were read (ms since the epoch). */
  at: number;
  pairs: PairStatus[];
  hosts: HostStatus[];
}

export function healthy(p: PairStatus): boolean {
  return p.status === 'up' && p.keys === 'agree' && !p.keyPastMaxAge && p.drift.length === 0 && (!p.wire || p.wire.verdict === 'verified');
}

function ago(sec?: number): string {
  if (sec === undefined) return '';
  return sec < 120 ? `${sec} s` : sec < 7200 ? `${Math.round(sec / 60)} min` : sec < 172800 ? `${Math.round(sec / 3600)} h` : `${Math.round(sec / 86400)} d`;
}

function bytes(n?: number): string {
  return n === undefined ? '?' : n < 10_000 ? `${n} B` : n < 10_000_000 ? `${Math.round(n / 1024)} KiB` : `${Math.round(n / 1048576)} MiB`;
}

/** For people: a line per pair (health, keys, SA age and bytes each way), then hosts with problems or a guard. */
export function renderStatusText(r: StatusReport): string {
  const out: string[] = [];
  const rows = r.pairs.map((p) => {
    const words = [p.status.toUpperCase() === 'UP' ? 'up' : p.status.toUpperCase(), `keys ${p.keys}`];
    if (p.keyAgeSec !== undefined || p.keyPastMaxAge)
      words.push(`key ${p.keyAgeSec !== undefined ? ago(p.keyAgeSec) : 'age unknown'}${p.keyPastMaxAge ? ' PAST rotation.maxAge' : ''}`);
    if (p.wire) words.push(p.wire.verdict === 'verified' ? 'ESP verified' : `WIRE: ${printable(p.wire.reason ?? 'failed')}`);
    const ends = p.ends
      .map(
        (e) =>
          `${e.host}: ${e.sas ? `SA ${ago(e.ageSec) || 'up'}${e.bytesIn !== undefined ? `, in ${bytes(e.bytesIn)} out ${bytes(e.bytesOut)}` : ''}` : 'no SA'}`,
      )
      .join('; ');
    return [p.name, words.join(', '), ends];
  });
  const w0 = Math.max(4, ...rows.map((x) => x[0]!.length));
  const w1 = Math.max(6, ...rows.map((x) => x[1]!.length));
  out.push(`Status of fleet ${r.fleet}: ${r.pairs.filter(healthy).length} of ${r.pairs.length} pairs healthy (${new Date(r.at).toISOString()})`);
  for (const row of rows) out.push(`  ${row[0]!.padEnd(w0)}  ${row[1]!.padEnd(w1)}  ${row[2]}`.trimEnd());
  for (const p of r.pairs.filter((x) => !healthy(x))) {
    for (const e of p.exposures) out.push(`  ${p.name}: EXPOSED: ${printable(e)}`);
    out.push(`  ${p.name}: ${p.drift.length ? `drift: ${p.drift.join('; ')}. ` : ''}next: ${p.next ?? 'see above'}`);
  }
  const notable = r.hosts.filter((h) => !h.readable || h.drift.length || h.guard);
  if (notable.length) out.push('Hosts');
  for (const h of notable) {
    if (!h.readable) {
      out.push(`  ${h.name}  UNREADABLE: ${printable(h.error ?? '')}`);
      continue;
    }
    const g = h.guard
      ? h.guard.loaded
        ? `guard on (${h.guard.peers} peer${h.guard.peers === 1 ? '' : 's'}), dropped ${h.guard.droppedOut} out, ${h.guard.droppedIn} in`
        : 'guard NOT LOADED'
      : '';
    out.push(`  ${h.name}  ${[g, h.drift.length ? `drift: ${h.drift.join('; ')}` : ''].filter(Boolean).join('; ')}`);
  }
  return `${out.join('\n')}\n`;
}

export function statusToJson(r: StatusReport): object {
  return {
    version: 2,
    kind: 'status',
    tool: r.tool,
    fleet: r.fleet,
    at: new Date(r.at).toISOString(),
    healthy: r.pairs.every(healthy) && r.hosts.every((h) => h.readable),
    pairs: r.pairs,
    hosts: r.hosts,
  };
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** The Prometheus text exposition format, for node_exporter's textfile collector. Metric names in docs/monitoring.md. */
export function renderPrometheus(r: StatusReport): string {
  const out: string[] = [];
  const metric = (name: string, help: string, type: 'gauge' | 'counter', rows: [Record<string, string>, number][]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of rows)
      out.push(
        `${name}{${Object.entries({ fleet: r.fleet, ...labels })
          .map(([k, v]) => `${k}="${esc(v)}"`)
          .join(',')}} ${value}`,
      );
  };
  const pl = (p: PairStatus) => ({ pair: p.name, initiator: p.initiator, responder: p.responder });
  metric(
    'provision_pair_up',
    '1 when ESP SAs exist both ways on both ends of the pair and nothing lets its traffic pass in clear.',
    'gauge',
    r.pairs.map((p) => [pl(p), p.status === 'up' ? 1 : 0]),
  );
  metric(
    'provision_pair_exposed',
    '1 when the SAs are up but traffic of the pair can pass in clear (status explains why).',
    'gauge',
    r.pairs.map((p) => [pl(p), p.status === 'exposed' ? 1 : 0]),
  );
  metric(
    'provision_pair_keys_agree',
    '1 when both ends hold the same key (compared without the key leaving either host).',
    'gauge',
    r.pairs.map((p) => [pl(p), p.keys === 'agree' ? 1 : 0]),
  );
  metric(
    'provision_pair_key_age_seconds',
    "Seconds since the pair's key was made (where its hosts recorded it).",
    'gauge',
    r.pairs.filter((p) => p.keyAgeSec !== undefined).map((p) => [pl(p), p.keyAgeSec!]),
  );
  metric(
    'provision_pair_key_past_max_age',
    "1 when the pair's key is older than the inventory's rotation.maxAge, or its age unknown under one: a plain run rotates it.",
    'gauge',
    r.pairs.map((p) => [pl(p), p.keyPastMaxAge ? 1 : 0]),
  );
  metric(
    'provision_pair_drift_files',
    'Files of the pair that differ from what the inventory plans.',
    'gauge',
    r.pairs.map((p) => [pl(p), p.drift.length]),
  );
  if (r.pairs.some((p) => p.wire))
    metric(
      'provision_pair_verified',
      '1 when --verify saw ESP both ways and no clear text.',
      'gauge',
      r.pairs.filter((p) => p.wire).map((p) => [pl(p), p.wire!.verdict === 'verified' ? 1 : 0]),
    );
  const ends = r.pairs.flatMap((p) => p.ends.map((e) => [p, e] as const));
  metric(
    'provision_sa_age_seconds',
    "Age of the pair's current Child SA on this host (since its last rekey).",
    'gauge',
    ends.filter(([, e]) => e.ageSec !== undefined).map(([p, e]) => [{ pair: p.name, host: e.host }, e.ageSec!]),
  );
  metric(
    'provision_sa_bytes',
    "Bytes through the pair's current Child SA on this host, by direction.",
    'gauge',
    ends
      .filter(([, e]) => e.bytesIn !== undefined)
      .flatMap(([p, e]) => [
        [{ pair: p.name, host: e.host, direction: 'in' }, e.bytesIn!] as [Record<string, string>, number],
        [{ pair: p.name, host: e.host, direction: 'out' }, e.bytesOut ?? 0] as [Record<string, string>, number],
      ]),
  );
  metric(
    'provision_host_readable',
    '1 when the host answered over SSH and its state could be read.',
    'gauge',
    r.hosts.map((h) => [{ host: h.name }, h.readable ? 1 : 0]),
  );
  metric(
    'provision_host_drift_files',
    'Files on the host that differ from what the inventory plans.',
    'gauge',
    r.hosts.map((h) => [{ host: h.name }, h.drift.length]),
  );
  const guards = r.hosts.filter((h) => h.guard);
  metric(
    'provision_guard_loaded',
    '1 when the fail-closed guard table is loaded.',
    'gauge',
    guards.map((h) => [{ host: h.name }, h.guard!.loaded ? 1 : 0]),
  );
  metric(
    'provision_guard_peers',
    'Peers in the guard.',
    'gauge',
    guards.map((h) => [{ host: h.name }, h.guard!.peers]),
  );
  metric(
    'provision_guard_dropped_packets_total',
    'Packets the guard dropped since it was loaded (they would have gone or come in clear text).',
    'counter',
    guards.flatMap((h) => [
      [{ host: h.name, direction: 'out' }, h.guard!.droppedOut] as [Record<string, string>, number],
      [{ host: h.name, direction: 'in' }, h.guard!.droppedIn] as [Record<string, string>, number],
    ]),
  );
  out.push(
    '# HELP provision_status_timestamp_seconds When provision status read the hosts.',
    '# TYPE provision_status_timestamp_seconds gauge',
    `provision_status_timestamp_seconds{fleet="${esc(r.fleet)}"} ${Math.round(r.at / 1000)}`,
  );
  return `${out.join('\n')}\n`;
}
