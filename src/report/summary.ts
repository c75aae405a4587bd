import type { HostOutcome, PairOutcome, RunResult } from '../apply/outcome.js';
import { printable } from '../core/text.js';

function hostLine(outcome: HostOutcome): [string, string] {
  switch (outcome.status) {
    case 'unchanged':
      return ['unchanged', ''];
    case 'planned':
      return ['planned', ''];
    case 'interrupted':
      return ['INTERRUPTED', outcome.did.length ? `done before Ctrl-C: ${outcome.did.join('; ')}` : 'nothing was changed'];
    case 'changed':
      return ['changed', outcome.did.join('; ')];
    case 'failed':
      return [
        'FAILED',
        `${outcome.step}: ${printable(outcome.error)}${outcome.tail ? `\n    output${outcome.exitCode !== undefined && outcome.exitCode !== null ? ` (exit ${outcome.exitCode})` : ''}: ${outcome.tail}` : ''}\n    next: ${outcome.hint}`,
      ];
    case 'unreachable':
      return ['UNREACHABLE', `${printable(outcome.error)}\n    next: ${outcome.hint}`];
    case 'refused':
      return ['REFUSED', `${printable(outcome.error)}\n    next: ${outcome.hint}`];
    case 'stale':
      return ['STALE PLAN', `${printable(outcome.error)}\n    next: ${outcome.hint}`];
  }
}

function pairLine(p: PairOutcome): [string, string] {
  const counts =
    'directions' in p
      ? p.directions
          .map((d) => `${d.from}: esp out ${d.counts.espOut} in ${d.counts.espIn}, clear out ${d.counts.clearOut}, ping ${d.counts.replies}/${d.counts.sent}`)
          .join('; ')
      : '';
  switch (p.status) {
    case 'verified':
      return p.keyProof
        ? [
            'ESP verified, key unproven',
            `${counts}\n    the new key is on both ends but its probe could not run (${printable(p.keyProofReason ?? '')}); the next authentication uses it`,
          ]
        : ['ESP verified', counts];
    case 'failed':
      return ['FAILED', `${printable(p.reason)}${counts ? `\n    seen: ${counts}` : ''}`];
    case 'rolled-back':
      return [
        'ROLLED BACK',
        `${printable(p.reason)}\n    then: ${printable(p.restored)}${counts ? ` (${counts})` : ''}\n    next: fix the cause (docs/rotation.md), then re-run`,
      ];
    case 'skipped':
      return ['skipped', printable(p.reason)];
    case 'unverified':
      return [
        p.keyProof ? 'not verified, key unproven' : 'not verified',
        `${printable(p.reason)}${p.keyProof ? `; the new key's probe could not run (${printable(p.keyProofReason ?? '')})` : ''}`,
      ];
  }
}

function table(rows: [string, string, string][]): string {
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`.trimEnd()).join('\n');
}

/** The end-of-run summary for a person: hosts, then pairs, then what to do next. */
export function renderSummary(r: RunResult): string {
  const out: string[] = [];
  const hostRows = [...r.hosts].map(([name, o]) => [name, ...hostLine(o)] as [string, string, string]);
  if (hostRows.length) {
    out.push('Hosts');
    out.push(table(hostRows));
  }
  // Pairs left unverified on purpose say nothing one by one: a mesh of 64 hosts has 2016;
  // beyond 20 pairs, the verified ones are counted, and only the others named.
  const unverified = r.pairs.filter((p): p is Extract<PairOutcome, { status: 'unverified' }> => p.status === 'unverified');
  const fold = r.pairs.length > 20;
  const verified = r.pairs.filter((p) => p.status === 'verified');
  const pairRows = r.pairs
    .filter((p) => p.status !== 'unverified' && !(fold && p.status === 'verified'))
    .map((p) => [p.name, ...pairLine(p)] as [string, string, string]);
  if (fold && verified.length) pairRows.unshift([`${verified.length} pairs`, 'ESP verified', '(each in --json)']);
  if (unverified.length === 1) pairRows.push([unverified[0]!.name, ...pairLine(unverified[0]!)]);
  if (unverified.length > 1) pairRows.push([`${unverified.length} pairs`, 'not verified', unverified[0]!.reason]);
  if (pairRows.length) {
    out.push('Pairs');
    out.push(table(pairRows));
  }
  out.push(resultLine(r));
  return `${out.join('\n')}\n`;
}

/** The last line of a run: what changed, what failed, how many pairs were proved. */
export function resultLine(r: RunResult): string {
  const failedHosts = [...r.hosts.values()].filter((o) => ['failed', 'unreachable', 'refused', 'stale'].includes(o.status)).length;
  const failedPairs = r.pairs.filter((p) => p.status === 'failed' || p.status === 'rolled-back').length;
  const verified = r.pairs.filter((p) => p.status === 'verified').length;
  const changed = [...r.hosts.values()].filter((o) => o.status === 'changed').length;
  const secs = (r.stats.wallMs / 1000).toFixed(1);
  if (r.interrupted) {
    return 'Interrupted by Ctrl-C: the steps under way finished (every file write is atomic; a key change is on both ends of a pair or neither); nothing else was started. Re-run to converge.';
  }
  if (r.dryRun)
    return `Dry run: ${r.hosts.size} hosts looked at in ${secs} s; nothing was changed.${failedHosts ? ` ${failedHosts} host(s) could not be planned.` : ''}`;
  return `${changed} changed, ${r.hosts.size - changed - failedHosts} unchanged, ${failedHosts} failed; ${verified} of ${r.pairs.length} pairs ESP-verified${failedPairs ? `, ${failedPairs} failed` : ''} (${secs} s).`;
}
