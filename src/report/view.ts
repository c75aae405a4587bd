import type { Hooks, RunResult } from '../apply/outcome.js';
import type { Changeset } from '../plan/types.js';
import { toJson } from './json.js';
import { type Detail, renderPlan } from './plan-text.js';
import { progressHooks, type Verbosity } from './progress.js';
import { renderSummary } from './summary.js';

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * How a run speaks: progress while it runs (stderr), then the plan (dry runs) or the
 * result (stdout). One interface, a human and a JSON implementation.
 */
export interface View {
  hooks: Hooks & { stop(): void; pause?(): void; resume?(): void };
  /** The plan of a dry run, offline or live. */
  plan(cs: Changeset, result?: RunResult): void;
  /** What a run did. */
  result(r: RunResult): void;
}

/**
 * Colour for a person at a terminal: `--color`/`--no-color` decide; else stdout is a
 * terminal, NO_COLOR (no-color.org) is unset and TERM is not dumb.
 */
export function wantsColor(flag: boolean | undefined, stdout: NodeJS.WritableStream, env: NodeJS.ProcessEnv = process.env): boolean {
  if (flag !== undefined) return flag;
  return (stdout as Partial<NodeJS.WriteStream>).isTTY === true && !env.NO_COLOR && env.TERM !== 'dumb';
}

export function textView(io: Io, total: number, detail?: Detail, color = false, level: Verbosity = 'normal'): View {
  return {
    hooks: progressHooks(io.stderr, total, level),
    plan: (cs, result) => {
      io.stdout.write(renderPlan(cs, { ...(detail ? { detail } : {}), color }));
      for (const w of result?.warnings ?? []) if (!cs.warnings.includes(w)) io.stdout.write(`warning: ${w}\n`);
      if (result) io.stdout.write(renderSummary(result));
    },
    result: (r) => io.stdout.write(renderSummary(r)),
  };
}

/** JSON on stdout at the end (docs/provision.schema.json); progress as one JSON object per line on stderr. */
export function jsonView(io: Io): View {
  const event = (e: object): void => void io.stderr.write(`${JSON.stringify(e)}\n`);
  return {
    hooks: {
      onStep: (host, step) => event({ event: 'step', host, step }),
      onHostDone: (host, outcome) => event({ event: 'host', host, ...outcome }),
      onPairDone: (pair) => event({ event: 'pair', ...pair }),
      onNote: (message) => event({ event: 'note', message }),
      stop: () => undefined,
    },
    plan: (cs, result) => io.stdout.write(`${JSON.stringify(toJson(cs, result), null, 2)}\n`),
    result: (r) => io.stdout.write(`${JSON.stringify(toJson(r.changeset!, r), null, 2)}\n`),
  };
}
