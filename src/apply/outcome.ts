import type { Changeset } from '../plan/types.js';
import type { DirectionVerdict, WireCount } from '../verify/esp.js';

/** Why a step failed, as data: the step, the command's exit code and the tail of its output (execa's model). */
export interface StepFailure {
  step: string;
  error: string;
  hint: string;
  exitCode?: number | null;
  /** The last lines the command printed, control characters escaped. */
  tail?: string;
}

/** How one host ended. One host failing never stops the others. */
export type HostOutcome =
  | { status: 'unchanged' }
  | { status: 'changed'; did: string[] }
  | ({ status: 'failed'; did?: string[] } & StepFailure)
  | { status: 'unreachable'; error: string; hint: string }
  | { status: 'refused'; error: string; hint: string }
  /** provision apply: the host changed since the plan was made; nothing was applied to it. */
  | { status: 'stale'; error: string; hint: string }
  | { status: 'planned' }
  /** Ctrl-C: steps under way finished (each is atomic), nothing further was started. */
  | { status: 'interrupted'; did: string[] };

export interface DirectionResult {
  from: string;
  to: string;
  verdict: DirectionVerdict;
  counts: WireCount;
}

export type PairOutcome = {
  name: string;
  initiator: string;
  responder: string;
} & (
  | { status: 'verified'; directions: DirectionResult[]; keyProof?: 'unproven'; keyProofReason?: string }
  | { status: 'failed'; reason: string; directions: DirectionResult[] }
  /** The change broke a pair that worked: its previous files are back; `restored` says how it went. */
  | { status: 'rolled-back'; reason: string; restored: string; directions: DirectionResult[] }
  | { status: 'skipped'; reason: string }
  | { status: 'unverified'; reason: string; keyProof?: 'unproven'; keyProofReason?: string }
);

export interface RunStats {
  hosts: number;
  connections: number;
  commands: number;
  wallMs: number;
  /** The most SSH sessions open at one time (bounded by --concurrency). */
  peakConnections?: number;
}

export interface RunResult {
  dryRun: boolean;
  /** The plan was shown and not confirmed (RunOptions.confirm): nothing was changed. */
  declined?: true;
  interrupted: boolean;
  hosts: Map<string, HostOutcome>;
  pairs: PairOutcome[];
  changeset?: Changeset;
  warnings: string[];
  stats: RunStats;
}

/** Events the executor reports while it runs; it prints nothing itself. */
export interface Hooks {
  onStep?(host: string, step: string): void;
  onHostDone?(host: string, outcome: HostOutcome): void;
  onPairDone?(pair: PairOutcome): void;
  onNote?(message: string): void;
}

export const FAILED_STATUSES: ReadonlySet<HostOutcome['status']> = new Set(['failed', 'unreachable', 'refused', 'stale']);
