import { BACKENDS } from '../../backends/index.js';
import { negotiating, type PlutoState, parseStates, type Strays, strayStates } from '../../backends/pluto-states.js';
import type { HostPlan, PairPlan } from '../../plan/types.js';
import { type Ctx, runStep, step } from '../context.js';

/** Seconds to wait for negotiations still under way on either end (a slow end answers late). */
const STRAY_WAIT_SEC = 10;

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What dropStrays does with two ends' listings: delete each end's strays, or leave everything. */
type StrayDecision = { drop: [Strays, Strays] } | { leave: string };

/**
 * Deletes only on evidence: both listings read, no negotiation under way on either end, and
 * each end holding an established Child SA of the pair (an empty listing would make every SA
 * of the other end look stray).
 */
export function strayDecision(seen: readonly (readonly PlutoState[] | undefined)[], stillNegotiating: boolean): StrayDecision {
  const [a, b] = seen;
  if (!a || !b) return { leave: 'the states of one end could not be read' };
  if (stillNegotiating) return { leave: `a negotiation was still under way after ${STRAY_WAIT_SEC} s` };
  const holds = (s: readonly PlutoState[]): boolean => s.some((x) => x.kind === 'child' && x.established);
  if (!holds(a) || !holds(b)) return { leave: 'one end holds no Child SA of the pair' };
  return { drop: [strayStates(a, b), strayStates(b, a)] };
}

/**
 * After a break-before-make re-authentication of a pair whose ends can list their states
 * (libreswan): once neither end is negotiating, each end deletes the SAs its peer does not
 * hold, which crossed negotiations leave (see pluto-states.ts). Returns what it did, by host;
 * when it cannot be sure (strayDecision), it deletes nothing and the initiator's line says why.
 */
export async function dropStrays(ctx: Ctx, p: PairPlan, planOf: (h: string) => HostPlan): Promise<Map<string, string>> {
  const ends = [p.initiator, p.responder] as const;
  const cmds = ends.map((h) => BACKENDS[planOf(h).backend.id].commands({ version: planOf(h).backend.version }));
  const did = new Map<string, string>();
  if (!cmds.every((c) => c.states && c.dropStates)) return did;
  const deadline = Date.now() + STRAY_WAIT_SEC * 1000;
  let seen: (PlutoState[] | undefined)[];
  let busy: boolean;
  for (;;) {
    const runs = await Promise.all(ends.map((h, i) => runStep(ctx, h, step('drop-strays', `drop stray SAs of ${p.name}`), cmds[i]!.states!(p.name))));
    seen = runs.map((r) => (r.ok ? parseStates(r.stdout, p.name) : undefined));
    busy = seen.some((s) => s !== undefined && negotiating(s));
    if (seen.includes(undefined) || !busy || Date.now() > deadline) break;
    await pause(1000);
  }
  const decision = strayDecision(seen, busy);
  if ('leave' in decision) {
    did.set(p.initiator, `${p.name}: no SA deleted after the re-authentication (${decision.leave}); the verification decides`);
    return did;
  }
  await Promise.all(
    ends.map(async (h, i) => {
      const peer = ends[1 - i]!;
      const stray = decision.drop[i]!;
      if (!stray.serials.length) return;
      const r = await runStep(ctx, h, step('drop-strays', `drop stray SAs of ${p.name}`), cmds[i]!.dropStates!(stray));
      if (r.ok) did.set(h, `${p.name}: removed SAs that ${peer} does not hold, left by crossed negotiations (states #${stray.serials.join(', #')})`);
    }),
  );
  return did;
}
