import pLimit from 'p-limit';
import { printable, tail } from '../core/text.js';
import type { HostSpec } from '../inventory/types.js';
import { ConnectError, HostKeyError } from '../remote/errors.js';
import type { Facts } from '../remote/facts.js';
import type { SessionPool } from '../remote/pool.js';
import { FAILED_STATUSES, type Hooks, type HostOutcome } from './outcome.js';

/**
 * Every kind of step sent to a host, with the seconds it may take there. Fakes in tests and
 * traces know a step by its id; its label is what the operator reads. The limits are wide
 * margins over the slowest cases seen on a busy 2-core lab (docs/performance.md): an install
 * also waits up to DPKG_LOCK_WAIT for another apt; a restart of libreswan once took over 120 s;
 * a verification waits for the SAs and warms up before it pings and captures.
 */
const STEPS = {
  facts: 90,
  status: 90,
  install: 900,
  write: 120,
  'ssh-path': 120,
  guard: 120,
  'guard-join': 120,
  restart: 300,
  reload: 300,
  'bring-up': 300,
  reauth: 60,
  probe: 60,
  'compare-keys': 90,
  'drop-strays': 90,
  verify: 150,
  'roll-back-files': 120,
  'roll-back-reload': 300,
  'roll-back-restart': 300,
  'roll-back-up': 60,
  'remove-kept': 90,
} as const satisfies Record<string, number>;
export type StepId = keyof typeof STEPS;

/** One step on one host: what fakes and traces know it by, and what the operator reads. */
export interface Step {
  id: StepId;
  label: string;
}
export const step = (id: StepId, label: string = id): Step => ({ id, label });

/** Seconds apt waits for another process (unattended-upgrades) to release the dpkg lock. */
export const DPKG_LOCK_WAIT = 120;

export interface HostState {
  spec: HostSpec;
  facts?: Facts;
  /** Set once the host failed; it takes no further step. */
  outcome?: HostOutcome;
  did: string[];
}

export interface Ctx {
  pool: SessionPool;
  hooks: Hooks;
  signal?: AbortSignal;
  states: Map<string, HostState>;
  /** Fresh for each run (hex): the facts compare keys by MACs of it, never by the keys. */
  challenge: string;
  /** The run's root-only folder on each host for the files its write replaces (WriteSet.keep). */
  keep: string;
}

type StepRun = { ok: true; code: number | null; stdout: string; stderr: string } | { ok: false; outcome: HostOutcome };

export const interrupted = (ctx: Ctx): boolean => ctx.signal?.aborted === true;

export function alive(ctx: Ctx, host: string): boolean {
  const s = ctx.states.get(host);
  return Boolean(s && (!s.outcome || !FAILED_STATUSES.has(s.outcome.status)));
}

/** A failure of a step, as the host's outcome: what failed, the exit code, the output's tail, what to do. */
export function failed(step: string, error: string, hint: string, extra: { exitCode?: number | null; output?: string } = {}): HostOutcome {
  const t = extra.output !== undefined ? tail(extra.output) : undefined;
  return {
    status: 'failed',
    step,
    error: printable(error),
    hint,
    ...(extra.exitCode !== undefined ? { exitCode: extra.exitCode } : {}),
    ...(t ? { tail: t } : {}),
  };
}

/**
 * Runs one script on a host for a step, on the pool's session (at most --concurrency at
 * once). A lost connection, a refused host key or a step that outlived its limit comes back
 * as the host's outcome; any exit code comes back to the step, which judges it.
 */
export async function runStep(ctx: Ctx, host: string, { id, label: step }: Step, script: string, stdin?: string): Promise<StepRun> {
  const timeoutSec = STEPS[id];
  const s = ctx.states.get(host)!;
  try {
    return await ctx.pool.use(s.spec, async (session) => {
      ctx.hooks.onStep?.(host, step);
      const r = await session.run(script, { timeoutSec, step, id, ...(stdin !== undefined ? { stdin } : {}) });
      if (r.code !== 0 && /sudo: (a password is required|a terminal is required)/.test(r.stderr)) {
        return {
          ok: false,
          outcome: failed(
            step,
            `sudo wants a password for ${s.spec.ssh.user}`,
            `Allow ${s.spec.ssh.user} passwordless sudo (NOPASSWD in /etc/sudoers.d/), or connect as root.`,
          ),
        };
      }
      if (r.timedOut) {
        return {
          ok: false,
          outcome: failed(
            step,
            `${step} did not finish within ${timeoutSec} s, and was stopped there`,
            'The host may be part-way through this step. Look at it (a hung apt, daemon or network), then re-run: the run is idempotent and converges from where this one stopped.',
            { exitCode: r.code, output: r.stderr },
          ),
        };
      }
      if (r.dropped) {
        return {
          ok: false,
          outcome: failed(
            step,
            `${step} printed more than provision keeps (${Math.round((r.dropped.stdout + r.dropped.stderr) / 1048576)} MiB over the limit)`,
            'Something on the host floods the output of this command; run it by hand to see what.',
            { exitCode: r.code },
          ),
        };
      }
      return { ok: true, code: r.code, stdout: r.stdout, stderr: r.stderr };
    });
  } catch (err) {
    if (err instanceof HostKeyError) return { ok: false, outcome: { status: 'refused', error: printable(err.message), hint: err.hint } };
    if (err instanceof ConnectError) return { ok: false, outcome: { status: 'unreachable', error: printable(err.message), hint: err.hint } };
    throw err;
  }
}

/** Records a host's failure once and reports it; the host takes no further step. */
export function fail(ctx: Ctx, host: string, outcome: HostOutcome): void {
  const s = ctx.states.get(host)!;
  if (s.outcome && FAILED_STATUSES.has(s.outcome.status)) return;
  s.outcome = outcome.status === 'failed' && s.did.length ? { ...outcome, did: [...s.did] } : outcome;
  ctx.hooks.onHostDone?.(host, s.outcome);
}

/**
 * Runs `fn` for each item, as many at once as the pool has sessions; an item that has not
 * started when Ctrl-C comes never starts.
 */
export async function phase<T>(ctx: Ctx, items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  const limit = pLimit(ctx.pool.max);
  await Promise.all(
    items.map((item) =>
      limit(async () => {
        if (interrupted(ctx)) return;
        await fn(item);
      }),
    ),
  );
}
