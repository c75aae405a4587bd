import type { RandomBytes } from '../../core/psk.js';
import type { Inventory } from '../../inventory/types.js';
import type { Changeset, HostPlan, PairPlan } from '../../plan/types.js';
import type { Ctx } from '../context.js';
import type { PairOutcome } from '../outcome.js';

export interface ExecuteOptions {
  verify: boolean;
  random: RandomBytes;
  /** The creation time new keys get (UTC, to the second), recorded beside them on both hosts. */
  createdAt: string;
  /** Facts again for the hosts that installed, and the plan made anew from them (an explicit step). */
  afterInstall(hosts: ReadonlySet<string>): Promise<Changeset>;
}

/** What the phases of one run hand on to each other: each phase reads it and adds to it. */
export interface RunState {
  readonly inv: Inventory;
  readonly opts: ExecuteOptions;
  /** The changeset; planned again after an install. */
  cs: Changeset;
  plans: Map<string, HostPlan>;
  /** The pairs the run works on (not skipped), and their new keys, drawn after the last plan. */
  pairs: PairPlan[];
  keys: ReadonlyMap<string, string>;
  /** Hosts whose write landed. */
  wrote: Set<string>;
  /** Hosts that keep copies of the files their write replaced, in the run's keep folder. */
  kept: Set<string>;
  /** Pairs whose change reached one end only: rolled back where it landed. */
  rolledBack: Set<string>;
  /** By host: the peers its guard leaves out, since their pair did not land. */
  leftOut: Map<string, string[]>;
  /** Pairs whose new key a peer refused, and why. */
  proofFailed: Map<string, string>;
  /** Pairs whose new key both ends hold but no probe could authenticate, and why. */
  unproven: Map<string, string>;
  outcomes: Map<string, PairOutcome>;
}

/** One phase of a run. A phase is a barrier: it ends on every host before the next begins. */
export interface Phase {
  name: string;
  run(ctx: Ctx, s: RunState): Promise<void>;
  /** After Ctrl-C a phase is skipped, unless it must run then too ('always') or only then. */
  when?: 'always' | 'interrupted';
}

export function newState(inv: Inventory, cs: Changeset, opts: ExecuteOptions): RunState {
  const s: RunState = {
    inv,
    opts,
    cs,
    plans: new Map(),
    pairs: [],
    keys: new Map(),
    wrote: new Set(),
    kept: new Set(),
    rolledBack: new Set(),
    leftOut: new Map(),
    proofFailed: new Map(),
    unproven: new Map(),
    outcomes: new Map(),
  };
  setChangeset(s, cs);
  return s;
}

export function setChangeset(s: RunState, cs: Changeset): void {
  s.cs = cs;
  s.plans = new Map(cs.hosts.map((h) => [h.host, h]));
  s.pairs = cs.pairs.filter((p) => !p.skipped);
}

export const planOf = (s: RunState, host: string): HostPlan => s.plans.get(host)!;

/** Records what a host did, for its outcome. */
export function did(ctx: Ctx, host: string, what: string): void {
  if (what) ctx.states.get(host)!.did.push(what);
}

/** Whether this run changes a file of the pair on the host. */
export const touches = (s: RunState, host: string, p: PairPlan): boolean => planOf(s, host).files.some((f) => f.pair === p.name && f.action !== 'noop');

/** Whether the pair's change is on the host: nothing to write there, or its write landed. */
export const landed = (s: RunState, host: string, p: PairPlan): boolean => !touches(s, host, p) || s.wrote.has(host);

export const ends = (p: PairPlan) => ({ name: p.name, initiator: p.initiator, responder: p.responder });
