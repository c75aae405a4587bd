import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline/promises';
import type { Hooks } from '../apply/outcome.js';
import type { HostSpec, Inventory, SshSettings } from '../inventory/types.js';
import { KnownHostsStore } from '../remote/known-hosts-store.js';
import { passphrasesFor } from '../remote/passphrase.js';
import { type connect, expandHome, JumpCache, parseJump, type Session } from '../remote/session.js';
import type { Verbosity } from '../report/progress.js';
import { type ConnectArgs, EXIT } from './args.js';
import { UsageError } from './flags.js';
import { openTrace, traced } from './trace.js';

/** What the CLI reaches the outside world through; tests pass their own. */
export interface Deps {
  connect: typeof connect;
  /** Asks a person a question and returns the line they typed; absent without a terminal. */
  ask?: (question: string) => Promise<string>;
}

/** `ask` on the terminal, when stdin and stderr are one: a run from a script, a pipe or cron is never asked. */
export function terminalAsk(): Deps['ask'] {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  return async (question) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      // Ctrl-C (the terminal hands it to readline, not to the process) or Ctrl-D: no.
      return await new Promise<string>((resolve) => {
        rl.on('SIGINT', () => resolve(''));
        rl.on('close', () => resolve(''));
        rl.question(question).then(resolve, () => resolve(''));
      });
    } finally {
      rl.close();
    }
  };
}

interface ConnectFlags {
  concurrency: number;
  acceptNewHostKeys: boolean;
  connectTimeoutSec: number;
  /** --trace: every command sent and everything the hosts answered go to this file. */
  trace?: string;
}

function connectFlags(args: ConnectArgs): ConnectFlags {
  return {
    concurrency: args.concurrency,
    acceptNewHostKeys: args.acceptNewHostKeys,
    connectTimeoutSec: args.connectTimeout,
    ...(args.trace !== undefined ? { trace: args.trace } : {}),
  };
}

/** How a run connects: one known_hosts store and one jump cache for all hosts; passphrases asked once. */
async function connector(
  inv: Inventory,
  hosts: readonly HostSpec[],
  deps: Deps,
  flags: ConnectFlags,
  configJumps: ReadonlyMap<string, Partial<SshSettings>> = new Map(),
): Promise<(h: HostSpec) => Promise<Session>> {
  const passphrases = await passphrasesFor(
    hosts
      .map((h) => h.ssh.identityFile)
      .filter((f): f is string => Boolean(f))
      .map(expandHome),
  );
  const knownHosts = new KnownHostsStore();
  const jumps = new JumpCache();
  const trace = flags.trace !== undefined ? await openTrace(flags.trace) : undefined;
  const open = (h: HostSpec): Promise<Session> =>
    deps.connect(h.name, h.ssh, {
      acceptNewHostKeys: flags.acceptNewHostKeys || h.ssh.acceptNew === true,
      connectTimeoutSec: flags.connectTimeoutSec,
      commandTimeoutSec: 120,
      passphrases,
      knownHosts,
      jumps,
      resolveJump: (jump) => {
        const fromConfig = configJumps.get(jump);
        return inv.hosts.get(jump)?.ssh ?? (fromConfig ? ({ ...h.ssh, jump: undefined, port: 22, ...fromConfig } as HostSpec['ssh']) : parseJump(jump, h.ssh));
      },
    });
  return trace ? async (h) => traced(await open(h), trace) : open;
}

/** The hosts a command reaches, and how. */
export interface Reach {
  inventory: Inventory;
  hosts: readonly HostSpec[];
  deps: Deps;
  args: ConnectArgs;
  /** Jump hosts that are ssh config aliases (Scope.jumps). */
  jumps: ReadonlyMap<string, Partial<SshSettings>>;
}

/**
 * Runs a command's work on its hosts: connected as the flags say, stopped by Ctrl-C (the
 * first finishes the steps under way and starts nothing new, a second quits), and its
 * progress stopped when the work ends, however it ends.
 */
export async function onHosts<T>(
  hooks: Hooks & { stop(): void },
  reach: Reach,
  work: (w: { signal: AbortSignal; connect: (h: HostSpec) => Promise<Session> }) => Promise<T>,
): Promise<T> {
  const ctrlC = onCtrlC(hooks);
  try {
    const connect = await connector(reach.inventory, reach.hosts, reach.deps, connectFlags(reach.args), reach.jumps);
    return await work({ signal: ctrlC.signal, connect });
  } finally {
    ctrlC.done();
    hooks.stop();
  }
}

function onCtrlC(hooks: Hooks): { signal: AbortSignal; done: () => void } {
  const abort = new AbortController();
  const handler = (): void => {
    if (abort.signal.aborted) process.exit(EXIT.interrupted);
    abort.abort();
    hooks.onNote?.('Ctrl-C: finishing the steps under way, then stopping (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', handler);
  return { signal: abort.signal, done: () => void process.off('SIGINT', handler) };
}

export const random = randomBytes;

/** -q: no progress on stderr (the result and errors still); -v: a line per event, even on a terminal. */
export function verbosity(args: Pick<ConnectArgs, 'quiet' | 'verbose'>): Verbosity {
  if (args.quiet && args.verbose) throw new UsageError('-q (--quiet) and -v (--verbose) say opposite things: give one');
  return args.quiet ? 'quiet' : args.verbose ? 'verbose' : 'normal';
}
