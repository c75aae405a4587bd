import { normalizeAddress } from '../../core/address.js';
import { type HostCapture, judge, parseVerify, verifyScript } from '../../verify/esp.js';
import { type Ctx, phase, runStep, step } from '../context.js';
import type { DirectionResult, PairOutcome } from '../outcome.js';

/**
 * Proves pairs on the wire with one command per host, all its peers at once; the verdict of
 * a pair and direction comes from each end's capture. The whole fleet takes about as long
 * as one pair.
 */
export async function verifyPairs(
  ctx: Ctx,
  pairs: readonly { name: string; initiator: string; responder: string }[],
  address: (host: string) => string,
): Promise<Map<string, PairOutcome>> {
  const peersOf = new Map<string, string[]>();
  for (const p of pairs) {
    peersOf.set(p.initiator, [...(peersOf.get(p.initiator) ?? []), p.responder]);
    peersOf.set(p.responder, [...(peersOf.get(p.responder) ?? []), p.initiator]);
  }
  const captures = new Map<string, HostCapture | string>();
  await phase(ctx, [...peersOf], async ([host, peers]) => {
    const r = await runStep(
      ctx,
      host,
      step('verify', `verify ${peers.length} pair${peers.length === 1 ? '' : 's'}: ping + tcpdump`),
      verifyScript(address(host), peers.map(address)),
    );
    if (!r.ok) captures.set(host, 'error' in r.outcome ? r.outcome.error : `${host} ${r.outcome.status}`);
    else captures.set(host, parseVerify(r.stdout, address(host), peers.map(address)));
  });
  const out = new Map<string, PairOutcome>();
  for (const pair of pairs) {
    const base = { name: pair.name, initiator: pair.initiator, responder: pair.responder };
    const ends = [pair.initiator, pair.responder] as const;
    const missing = ends.find((h) => typeof captures.get(h) !== 'object');
    if (missing) {
      const why = captures.get(missing);
      out.set(pair.name, {
        ...base,
        status: 'failed',
        reason: `verification could not run on ${missing}${typeof why === 'string' ? `: ${why}` : ' (interrupted)'}`,
        directions: [],
      });
      continue;
    }
    const directions: DirectionResult[] = ends.map((from, i) => {
      const to = ends[1 - i]!;
      const cap = captures.get(from) as HostCapture;
      const counts = cap.counts.get(normalizeAddress(address(to)))!;
      return { from, to, verdict: judge(counts, cap.tcpdumpError), counts };
    });
    out.set(
      pair.name,
      verdictOf(
        base,
        directions,
        ends.filter((h) => (captures.get(h) as HostCapture).withoutSas.has(normalizeAddress(address(h === pair.initiator ? pair.responder : pair.initiator)))),
      ),
    );
  }
  return out;
}

function verdictOf(base: { name: string; initiator: string; responder: string }, directions: DirectionResult[], withoutSas: string[]): PairOutcome {
  const bad = directions.filter((d) => d.verdict !== 'encrypted');
  if (bad.length === 0) return { ...base, status: 'verified', directions };
  const reason =
    bad
      .map((d) => {
        switch (d.verdict) {
          case 'clear-text':
            return `${d.from} sent ${d.counts.clearOut} probe(s) to ${d.to} in CLEAR TEXT`;
          case 'error':
            return `tcpdump failed on ${d.from}`;
          case 'no-reply':
            return `ESP flows both ways but ${d.from}'s pings to ${d.to} got no reply (0/${d.counts.sent}): SAs out of step`;
          default:
            return `no ESP ${d.counts.espOut === 0 ? `from ${d.from}` : `to ${d.from}`} (out ${d.counts.espOut}, in ${d.counts.espIn})`;
        }
      })
      .join('; ') + (withoutSas.length ? ` (no SAs on ${withoutSas.join(' and ')} after ${25} s)` : '');
  return { ...base, status: 'failed', reason, directions };
}
