import { quote } from '../core/shell.js';
import type { Inventory } from '../inventory/types.js';
import type { Changeset } from '../plan/types.js';
import { type Ctx, interrupted, runStep, step } from './context.js';
import type { PairOutcome } from './outcome.js';
import { guardPhase, joinGuardPhase, sshPathPhase } from './phases/guard.js';
import { rollBackHalfDone } from './phases/half-done.js';
import { holdKeysPhase } from './phases/hold-keys.js';
import { installPhase } from './phases/install.js';
import { provePhase } from './phases/prove.js';
import { bringUpPhase, servicePhase } from './phases/service.js';
import { type ExecuteOptions, newState, type Phase, type RunState } from './phases/state.js';
import { verifyPhase } from './phases/verify.js';
import { keysPhase, writePhase } from './phases/write.js';

export type { ExecuteOptions } from './phases/state.js';

/**
 * The phases of a run, in their order. Each is a barrier, so both peers of a pair hold their
 * new files before either side loads them. A host that fails drops out; the rest go on.
 */
export const PHASES: readonly Phase[] = [
  installPhase,
  keysPhase,
  writePhase,
  rollBackHalfDone(false),
  holdKeysPhase,
  sshPathPhase,
  guardPhase,
  servicePhase,
  rollBackHalfDone(true),
  bringUpPhase,
  provePhase,
  verifyPhase,
  joinGuardPhase,
];

/** Applies a changeset, phase by phase, and returns each pair's outcome. */
export async function execute(ctx: Ctx, inv: Inventory, first: Changeset, opts: ExecuteOptions): Promise<Map<string, PairOutcome>> {
  const s = newState(inv, first, opts);
  try {
    await runPhases(ctx, s, PHASES);
    return s.outcomes;
  } finally {
    // The copies of what the write replaced (old keys among them) go with the run, even after
    // Ctrl-C; where this fails, the next run's write removes them.
    await Promise.all(
      [...s.kept].map((h) => runStep(ctx, h, step('remove-kept', 'remove kept copies'), `rm -rf -- ${quote(ctx.keep)}`).catch(() => undefined)),
    );
  }
}

/** Runs the phases in order; after Ctrl-C only those that must run then. */
export async function runPhases(ctx: Ctx, s: RunState, phases: readonly Phase[]): Promise<void> {
  for (const p of phases) {
    const stopped = interrupted(ctx);
    if (p.when === 'interrupted' ? !stopped : stopped && p.when !== 'always') continue;
    await p.run(ctx, s);
  }
}
