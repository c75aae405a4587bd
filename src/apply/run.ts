import { RUN_DIR } from '../core/paths.js';
import type { RandomBytes } from '../core/psk.js';
import type { HostSpec, Inventory } from '../inventory/types.js';
import { changes } from '../plan/changes.js';
import { type PlanOptions, planChanges } from '../plan/plan.js';
import { hostDrift, type SavedPlan } from '../plan/saved.js';
import type { Changeset } from '../plan/types.js';
import { type Facts, FactsRaceError, factsScript, parseFacts } from '../remote/facts.js';
import { SessionPool } from '../remote/pool.js';
import type { Session } from '../remote/session.js';
import { alive, type Ctx, fail, failed, interrupted, phase, runStep, step } from './context.js';
import { execute } from './execute.js';
import type { Hooks, PairOutcome, RunResult } from './outcome.js';

export interface RunOptions {
  dryRun: boolean;
  verify: boolean;
  /** Hosts worked on, and SSH connections open, at once. */
  concurrency: number;
  /** Host names to act on; undefined means all. */
  limit?: ReadonlySet<string>;
  /** Conn names of pairs to give a new key (--rotate-psk). */
  rotate?: ReadonlySet<string>;
  /** Delete our files of pairs no longer in the inventory (default true; --no-prune). */
  prune?: boolean;
  /** Delete files from before fleets that this inventory does not plan (--retire-legacy). */
  retireLegacy?: boolean;
  random: RandomBytes;
  /** Aborted on Ctrl-C: no new step starts; the ones under way finish. */
  signal?: AbortSignal;
  connect(host: HostSpec): Promise<Session>;
  hooks?: Hooks;
  now?: () => number;
  /** The time key ages are counted from (ms); default: the run's start. `provision apply` passes its plan's. */
  keyAgesAt?: number;
  /** provision's version, recorded in the changeset. */
  tool?: string;
  /** A plan saved by --dry-run --out: applied only to hosts whose plan comes out the same now. */
  saved?: SavedPlan;
  /** provision teardown: these pairs go (conn names); nothing is written for the others. */
  teardown?: ReadonlySet<string>;
  /** How a rotated key is proved (docs/rotation.md). */
  rotateMode?: 'reauth' | 'reread';
  /**
   * Asked with the plan before anything is changed (a person at a terminal): false leaves
   * every host as it is, as a dry run would. Not asked when the plan changes nothing.
   */
  confirm?: (cs: Changeset) => Promise<boolean>;
}

/** Reads one host's facts: one command. */
async function gather(ctx: Ctx, host: string): Promise<Facts | undefined> {
  const r = await runStep(ctx, host, step('facts'), factsScript(ctx.challenge));
  if (!r.ok) return void fail(ctx, host, r.outcome);
  try {
    return parseFacts(r.stdout);
  } catch (err) {
    if (err instanceof FactsRaceError)
      return void fail(ctx, host, failed('facts', err.message, 'Something else is editing /etc/ipsec.d: let it finish, then re-run.'));
    return void fail(
      ctx,
      host,
      failed('facts', "could not read the host's state", 'Check the login shell is sh-compatible and coreutils are installed.', {
        exitCode: r.code,
        output: r.stderr,
      }),
    );
  }
}

/**
 * One run: facts from every host (one command each), the changeset planned from them, and
 * unless it is a dry run, the changeset applied (execute.ts). Sessions are pooled: at most
 * `concurrency` are open at once.
 */
export async function run(inv: Inventory, opts: RunOptions): Promise<RunResult> {
  const now = opts.now ?? Date.now;
  const started = now();
  const hooks = opts.hooks ?? {};
  const pool = new SessionPool(opts.connect, opts.concurrency);
  const hex = (n: number): string => Buffer.from(opts.random(n)).toString('hex');
  const ctx: Ctx = { pool, hooks, ...(opts.signal ? { signal: opts.signal } : {}), states: new Map(), challenge: hex(16), keep: `${RUN_DIR}/undo.${hex(6)}` };
  for (const spec of inv.hosts.values()) {
    if (!opts.limit || opts.limit.has(spec.name)) ctx.states.set(spec.name, { spec, did: [] });
  }
  const planOpts: PlanOptions = {
    mode: 'live',
    prune: opts.prune ?? true,
    retireLegacy: opts.retireLegacy ?? false,
    tool: opts.tool ?? 'dev',
    ...(opts.limit ? { limit: opts.limit } : {}),
    ...(opts.rotate ? { rotate: opts.rotate } : {}),
    ...(opts.teardown ? { teardown: opts.teardown } : {}),
    ...(opts.rotateMode ? { rotateMode: opts.rotateMode } : {}),
    now: opts.keyAgesAt ?? started,
  };
  const factsOf = (): Map<string, Facts> => new Map([...ctx.states].filter(([h, s]) => s.facts && alive(ctx, h)).map(([h, s]) => [h, s.facts!]));

  await phase(ctx, [...ctx.states.keys()], async (h) => {
    const f = await gather(ctx, h);
    if (f) ctx.states.get(h)!.facts = f;
  });
  let cs = planChanges(inv, factsOf(), planOpts);
  if (opts.saved) cs = refuseChanged(ctx, cs, opts.saved, () => planChanges(inv, factsOf(), planOpts));
  let pairs = new Map<string, PairOutcome>();
  if (!opts.dryRun && !interrupted(ctx) && opts.confirm && cs.hosts.some(changes) && !(await opts.confirm(cs))) {
    return { ...(await finish(ctx, inv, cs, pairs, { ...opts, dryRun: true }, started, now())), declined: true };
  }
  if (!opts.dryRun && !interrupted(ctx)) {
    pairs = await execute(ctx, inv, cs, {
      verify: opts.verify,
      random: opts.random,
      createdAt: new Date(now()).toISOString().replace(/\.\d+Z$/, 'Z'),
      afterInstall: async (hosts) => {
        await phase(ctx, [...hosts], async (h) => {
          const f = await gather(ctx, h);
          if (f) ctx.states.get(h)!.facts = f;
        });
        cs = planChanges(inv, factsOf(), planOpts);
        return cs;
      },
    });
  } else {
    for (const h of cs.hosts)
      if (h.status === 'blocked' && alive(ctx, h.host)) fail(ctx, h.host, failed('plan', h.problems.map((p) => p.problem).join('; '), h.problems[0]!.hint));
  }
  return finish(ctx, inv, cs, pairs, opts, started, now());
}

/**
 * `provision apply`: hosts whose plan now differs from the one saved (their facts changed,
 * or their pairs' keys), and hosts the saved changeset does not list, are refused, and the plan is made again without them, so that
 * their peers leave their pairs alone too.
 */
function refuseChanged(ctx: Ctx, cs: Changeset, saved: SavedPlan, replan: () => Changeset): Changeset {
  let refused = 0;
  // A host the saved changeset does not list was never reviewed (its inventory text was edited).
  const listed = new Set(saved.changeset.hosts.map((h) => h.host));
  for (const h of cs.hosts) {
    if (listed.has(h.host) || !ctx.states.has(h.host) || !alive(ctx, h.host)) continue;
    refused++;
    fail(ctx, h.host, {
      status: 'stale',
      error: 'not in the saved plan: its inventory names a host the plan never showed',
      hint: 'Nothing was applied to it. Make a new plan (--dry-run --out), review it, then apply that.',
    });
  }
  for (const h of saved.changeset.hosts) {
    if (!ctx.states.has(h.host) || !alive(ctx, h.host)) continue;
    const drift = hostDrift(
      h,
      cs.hosts.find((x) => x.host === h.host),
      saved.changeset.pairs,
      cs.pairs,
    );
    if (!drift.length) continue;
    refused++;
    fail(ctx, h.host, {
      status: 'stale',
      error: `changed since the plan was made: ${drift.join('; ')}`,
      hint: 'Nothing was applied to it. Make a new plan (--dry-run --out), review it, then apply that.',
    });
  }
  return refused ? replan() : cs;
}

async function finish(
  ctx: Ctx,
  inv: Inventory,
  cs: Changeset,
  pairs: Map<string, PairOutcome>,
  opts: RunOptions,
  started: number,
  ended: number,
): Promise<RunResult> {
  const commands = ctx.pool.commands;
  await ctx.pool.closeAll();
  for (const p of cs.pairs) {
    if (pairs.has(p.name)) continue;
    const down = [p.initiator, p.responder].find((h) => !ctx.states.has(h) || !alive(ctx, h));
    const reason = p.skipped ?? (down ? `${down} ${ctx.states.get(down)?.outcome?.status ?? 'is outside --limit'}` : opts.dryRun ? 'dry run' : 'interrupted');
    if (p.skipped || down || !opts.dryRun) pairs.set(p.name, { name: p.name, initiator: p.initiator, responder: p.responder, status: 'skipped', reason });
  }
  for (const s of ctx.states.values()) {
    if (s.outcome) continue;
    s.outcome = interrupted(ctx)
      ? { status: 'interrupted', did: s.did }
      : opts.dryRun
        ? { status: 'planned' }
        : s.did.length
          ? { status: 'changed', did: s.did }
          : { status: 'unchanged' };
    ctx.hooks.onHostDone?.(s.spec.name, s.outcome);
  }
  return {
    dryRun: opts.dryRun,
    interrupted: interrupted(ctx),
    hosts: new Map([...inv.hosts.keys()].filter((h) => ctx.states.has(h)).map((h) => [h, ctx.states.get(h)!.outcome!])),
    pairs: cs.pairs.map((p) => pairs.get(p.name)).filter((x): x is PairOutcome => Boolean(x)),
    changeset: cs,
    warnings: cs.warnings,
    stats: { hosts: ctx.states.size, connections: ctx.pool.opened, commands, wallMs: ended - started, peakConnections: ctx.pool.peak },
  };
}
