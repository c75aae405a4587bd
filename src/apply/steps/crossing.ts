import { BACKENDS } from '../../backends/index.js';
import { negotiating, parseStates, strayStates, type PlutoState } from '../../backends/pluto-states.js';
import type { HostPlan, PairPlan } from '../../plan/types.js';
import { runStep, STEP_TIMEOUT, type Ctx } from '../context.js';

/** Seconds to wait for negotiations still under way on either end (a slow end answers late). */
export const SETTLE_SEC = 10;

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * After a break-before-make re-authentication of a pair whose ends can list their states
 * (libreswan): once neither end is negotiating, each end deletes the SAs its peer does not
 * hold, which crossed negotiations leave (see pluto-states.ts). Returns what it did, by host;
 * a host it cannot reach is left to the verification.
 */
export async function settleCrossed(ctx: Ctx, p: PairPlan, planOf: (h: string) => HostPlan): Promise<Map<string, string>> {
  const ends = [p.initiator, p.responder] as const;
  const cmds = ends.map((h) => BACKENDS[planOf(h).backend.id].commands({ version: planOf(h).backend.version }));
  const did = new Map<string, string>();
  if (!cmds.every((c) => c.states && c.dropStates)) return did;
  const deadline = Date.now() + SETTLE_SEC * 1000;
  let seen: PlutoState[][];
  for (;;) {
    const runs = await Promise.all(ends.map((h, i) => runStep(ctx, h, `settle ${p.name}`, cmds[i]!.states!(p.name), STEP_TIMEOUT.facts)));
    if (!runs.every((r) => r.ok)) return did;
    seen = runs.map((r) => parseStates(r.ok ? r.stdout : '', p.name));
    if (!seen.some(negotiating) || Date.now() > deadline) break;
    await pause(1000);
  }
  await Promise.all(ends.map(async (h, i) => {
    const peer = ends[1 - i]!;
    const stray = strayStates(seen[i]!, seen[1 - i]!);
    if (!stray.serials.length) return;
    const r = await runStep(ctx, h, `settle ${p.name}`, cmds[i]!.dropStates!(stray), STEP_TIMEOUT.facts);
    if (r.ok) did.set(h, `${p.name}: removed SAs that ${peer} does not hold, left by crossed negotiations (states #${stray.serials.join(', #')})`);
  }));
  return did;
}
