import type { PairPlan } from '../../plan/types.js';
import { alive, type Ctx, interrupted, phase, step } from '../context.js';
import type { PairOutcome } from '../outcome.js';
import { dropStrays } from '../steps/crossing.js';
import { rollBackPair } from '../steps/roll-back.js';
import { reauth } from '../steps/service.js';
import { verifyPairs } from '../steps/verify.js';
import { ends, type Phase, planOf, type RunState } from './state.js';

/** Verifies every pair whose two hosts are fine, and rolls back a changed pair that worked before and broke. */
export const verifyPhase: Phase = {
  name: 'verify',
  async run(ctx, s) {
    const toCheck = s.pairs.filter((p) => !s.outcomes.has(p.name) && alive(ctx, p.initiator) && alive(ctx, p.responder));
    const address = (h: string): string => s.inv.hosts.get(h)!.address;
    const verified = s.opts.verify
      ? await verifyPairs(
          ctx,
          s.inv.pairs.filter((x) => toCheck.some((p) => p.name === x.name) && !s.proofFailed.has(x.name)),
          address,
        )
      : new Map<string, PairOutcome>();
    const failures: [PairPlan, string][] = [];
    for (const p of toCheck) {
      const proof = s.proofFailed.get(p.name);
      const o: PairOutcome = proof
        ? { ...ends(p), status: 'failed', reason: proof, directions: [] }
        : s.opts.verify
          ? (verified.get(p.name) ?? { ...ends(p), status: 'failed', reason: 'not verified (interrupted)', directions: [] })
          : { ...ends(p), status: 'unverified', reason: '--no-verify' };
      // A refused key took the pair down: it gets its old key back even under --no-verify.
      if (o.status === 'failed' && p.changed && p.upBefore && !interrupted(ctx)) failures.push([p, o.reason]);
      else if (s.unproven.has(p.name) && (o.status === 'verified' || o.status === 'unverified'))
        s.outcomes.set(p.name, { ...o, keyProof: 'unproven', keyProofReason: s.unproven.get(p.name)! });
      else s.outcomes.set(p.name, o);
    }
    await rollBackPairs(ctx, s, failures, address);
    for (const p of toCheck) if (s.outcomes.get(p.name)?.status !== 'unverified') ctx.hooks.onPairDone?.(s.outcomes.get(p.name)!);
  },
};

/**
 * Puts the pairs' previous files back on both ends, makes the daemons take them, brings each
 * pair up with them and verifies it again.
 */
async function rollBackPairs(ctx: Ctx, s: RunState, failures: [PairPlan, string][], address: (h: string) => string): Promise<void> {
  if (!failures.length) return;
  const back: [PairPlan, string][] = [];
  await phase(ctx, failures, async ([p, why]) => {
    for (const h of [p.initiator, p.responder]) {
      const r = await rollBackPair(ctx, h, planOf(s, h), ctx.states.get(h)!.facts!, p.name, true);
      if (!r.ok) return void s.outcomes.set(p.name, { ...ends(p), status: 'failed', reason: `${why}; rolling back failed: ${r.error}`, directions: [] });
    }
    // A pair whose SAs were never replaced (keys compared, or a make-before-break end that kept
    // them) runs on as it was; the others come up with the old key.
    const by = p.reauthBy ?? p.initiator;
    const up =
      p.proof === 'keys compared' ? { ok: true as const } : await reauth(ctx, by, planOf(s, by), p.name, step('roll-back-up', `roll back ${p.name}: bring up`));
    if (!up.ok) {
      const reason = `${why}; rolling back failed: the previous files are back but the pair did not come up with them: ${up.reason}`;
      return void s.outcomes.set(p.name, { ...ends(p), status: 'failed', reason, directions: [] });
    }
    if (p.proof !== 'keys compared') for (const [h, what] of await dropStrays(ctx, p, (h) => planOf(s, h))) ctx.states.get(h)!.did.push(what);
    back.push([p, why]);
  });
  const after = await verifyPairs(
    ctx,
    back.map(([p]) => p),
    address,
  );
  for (const [p, why] of back) {
    const a = after.get(p.name);
    s.outcomes.set(p.name, {
      ...ends(p),
      status: 'rolled-back',
      reason: why,
      restored:
        a?.status === 'verified'
          ? 'the previous files are back and the pair is ESP-verified with them'
          : `the previous files are back, but the pair does not verify with them either: ${a?.status === 'failed' ? a.reason : 'not verified'}`,
      directions: a && (a.status === 'verified' || a.status === 'failed') ? a.directions : [],
    });
  }
}
