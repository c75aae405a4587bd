import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import yargs from 'yargs';
import { run } from './apply/run.js';
import type { RunResult } from './apply/outcome.js';
import { checkBooleanForms, checkSingles, positiveSeconds, toolVersion, UsageError, wholeAtLeastOne } from './cli/flags.js';
import { parseRotate, resolveLimit } from './cli/scope.js';
import { InventoryError, formatProblem } from './inventory/errors.js';
import { loadInventory, MAX_INVENTORY_BYTES } from './inventory/load.js';
import type { Inventory } from './inventory/types.js';
import { offlineFacts, planChanges } from './plan/plan.js';
import { KnownHostsStore } from './remote/known-hosts-store.js';
import { passphrasesFor } from './remote/passphrase.js';
import { connect, expandHome, JumpCache, parseJump } from './remote/session.js';
import { jsonView, textView, type Io, type View } from './report/view.js';

export { UsageError } from './cli/flags.js';
export { parseRotate } from './cli/scope.js';
export type { Io } from './report/view.js';

/** Exit codes, as documented in the README. */
export const EXIT = { ok: 0, failed: 1, badInput: 2, hostKey: 3, interrupted: 130 } as const;

/** What the CLI reaches the outside world through; tests pass their own. */
export interface Deps {
  connect: typeof connect;
}

const BOOLEANS = ['dry-run', 'offline', 'json', 'prune', 'verify', 'accept-new-host-keys', 'retire-legacy', 'summary', 'help', 'version'] as const;
const SINGLES = ['inventory', 'concurrency', 'connect-timeout'] as const;

function parser() {
  return yargs()
    .scriptName('provision')
    .usage('$0 --inventory FILE [options]\n\nSecure traffic between the hosts of an inventory with IPsec transport mode.')
    .option('inventory', { alias: 'i', type: 'string', demandOption: true, requiresArg: true, describe: 'the YAML inventory of hosts, pairs and meshes' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'show what would change, change nothing' })
    .option('offline', { type: 'boolean', default: false, describe: 'with --dry-run: plan without contacting any host' })
    .option('json', { type: 'boolean', default: false, describe: 'print the plan or result as JSON on stdout (docs/provision.schema.json)' })
    .option('summary', { type: 'boolean', default: false, describe: 'counts per host and per action, no file bodies' })
    .option('prune', { type: 'boolean', default: true, describe: 'remove the files of pairs no longer in the inventory (--no-prune keeps them)' })
    .option('retire-legacy', { type: 'boolean', default: false, describe: 'also remove files written before fleets (no identity) that this inventory does not plan' })
    .option('verify', { type: 'boolean', default: true, describe: 'prove each pair with ping and tcpdump (--no-verify skips it)' })
    .option('limit', { type: 'string', array: true, requiresArg: true, describe: 'act only on these hosts: names, groups or globs (comma-separated or repeated)' })
    .option('rotate-psk', { type: 'string', array: true, describe: 'give pairs a new key: all in scope, or the named ones (conn name or "a,b"; repeatable)' })
    .option('concurrency', { type: 'number', default: 16, requiresArg: true, describe: 'hosts worked on, and SSH connections open, at once' })
    .option('accept-new-host-keys', { type: 'boolean', default: false, describe: 'record the keys of hosts not yet in known_hosts (a changed key is still refused)' })
    .option('connect-timeout', { type: 'number', default: 15, requiresArg: true, describe: 'seconds to wait for an SSH connection' })
    .strict()
    .version(toolVersion())
    .help()
    .alias('h', 'help')
    .exitProcess(false);
}

type Args = ReturnType<ReturnType<typeof parser>['parseSync']>;

export async function main(argv: string[], io: Io = process, deps: Deps = { connect }): Promise<number> {
  let args: Args;
  try {
    checkBooleanForms(argv, BOOLEANS);
    const parsed = await new Promise<{ args: Args; output: string }>((resolve, reject) => {
      parser().parse(argv, {}, (err, a, output) => (err ? reject(new UsageError(err.message)) : resolve({ args: a as Args, output })));
    });
    if (parsed.args.help || parsed.args.version) {
      io.stdout.write(parsed.output.endsWith('\n') ? parsed.output : `${parsed.output}\n`);
      return EXIT.ok;
    }
    args = parsed.args;
    checkSingles(args, SINGLES);
    positiveSeconds('connect-timeout', args.connectTimeout);
    wholeAtLeastOne('concurrency', args.concurrency);
    if (args.offline && !args.dryRun) throw new UsageError('--offline plans without contacting any host, so it needs --dry-run');
    if (args.offline && args.rotatePsk !== undefined) {
      throw new UsageError('--rotate-psk works from the keys on the hosts, which --offline does not read; drop --offline to see the rotation plan');
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`error: ${err.message}\nRun 'provision --help' for the options.\n`);
    return EXIT.badInput;
  }

  const file = args.inventory;
  try {
    const inventory = loadInventory(await readInventoryText(file), file);
    const limit = resolveLimit(args.limit, inventory);
    const rotate = args.rotatePsk === undefined ? undefined : parseRotate(args.rotatePsk, inventory, limit);
    const inScope = [...inventory.hosts.keys()].filter((h) => !limit || limit.has(h));
    const view = args.json ? jsonView(io) : textView(io, inScope.length, args.summary ? 'summary' : undefined);
    const planOpts = { prune: args.prune, retireLegacy: args.retireLegacy, tool: toolVersion(), ...(limit ? { limit } : {}) };
    if (args.offline) {
      view.plan(planChanges(inventory, new Map(inScope.map((h) => [h, offlineFacts()])), { mode: 'offline', ...planOpts }));
      return EXIT.ok;
    }
    const result = await live(inventory, view, deps, {
      dryRun: args.dryRun, verify: args.verify, concurrency: args.concurrency, acceptNewHostKeys: args.acceptNewHostKeys,
      connectTimeoutSec: args.connectTimeout, prune: args.prune, retireLegacy: args.retireLegacy,
      ...(limit ? { limit } : {}), ...(rotate ? { rotate } : {}),
    });
    if (args.dryRun) view.plan(result.changeset!, result);
    else view.result(result);
    return exitCode(result);
  } catch (err) {
    if (err instanceof InventoryError) {
      const n = err.problems.length;
      io.stderr.write(`error: ${file} has ${n} problem${n === 1 ? '' : 's'}; nothing was done.\n`);
      for (const p of err.problems) io.stderr.write(formatProblem(p) + '\n');
      return EXIT.badInput;
    }
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${err.message}\n`);
      return EXIT.badInput;
    }
    throw err;
  }
}

interface LiveFlags {
  dryRun: boolean;
  verify: boolean;
  prune: boolean;
  retireLegacy: boolean;
  limit?: Set<string>;
  rotate?: Set<string>;
  concurrency: number;
  acceptNewHostKeys: boolean;
  connectTimeoutSec: number;
}

async function live(inv: Inventory, view: View, deps: Deps, flags: LiveFlags): Promise<RunResult> {
  const inScope = [...inv.hosts.values()].filter((h) => !flags.limit || flags.limit.has(h.name));
  const passphrases = await passphrasesFor(inScope.map((h) => h.ssh.identityFile).filter((f): f is string => Boolean(f)).map(expandHome));
  const progress = view.hooks;
  if (flags.limit) {
    const outside = [...inv.hosts.keys()].filter((h) => !flags.limit!.has(h));
    progress.onNote?.(`--limit: acting on ${inScope.length} of ${inv.hosts.size} hosts; pairs with ${outside.join(', ')} are skipped`);
  }
  // First Ctrl-C: finish the steps under way (atomic), start nothing new, report. Second: quit.
  const abort = new AbortController();
  const onSigint = (): void => {
    if (abort.signal.aborted) process.exit(EXIT.interrupted);
    abort.abort();
    progress.onNote?.('Ctrl-C: finishing the steps under way, then stopping (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSigint);
  const knownHosts = new KnownHostsStore();
  const jumps = new JumpCache();
  try {
    return await run(inv, {
      signal: abort.signal,
      dryRun: flags.dryRun,
      verify: flags.verify,
      prune: flags.prune,
      retireLegacy: flags.retireLegacy,
      ...(flags.rotate ? { rotate: flags.rotate } : {}),
      concurrency: flags.concurrency,
      ...(flags.limit ? { limit: flags.limit } : {}),
      random: randomBytes,
      tool: toolVersion(),
      connect: (h) => deps.connect(h.name, h.ssh, {
        acceptNewHostKeys: flags.acceptNewHostKeys,
        connectTimeoutSec: flags.connectTimeoutSec,
        commandTimeoutSec: 120,
        passphrases,
        knownHosts,
        jumps,
        resolveJump: (jump) => inv.hosts.get(jump)?.ssh ?? parseJump(jump, h.ssh),
      }),
      hooks: progress,
    });
  } finally {
    process.off('SIGINT', onSigint);
    progress.stop();
  }
}

export function exitCode(r: RunResult): number {
  const outcomes = [...r.hosts.values()];
  if (r.interrupted) return EXIT.interrupted;
  if (outcomes.some((o) => o.status === 'refused')) return EXIT.hostKey;
  if (outcomes.some((o) => o.status === 'failed' || o.status === 'unreachable')) return EXIT.failed;
  if (r.pairs.some((p) => p.status === 'failed' || p.status === 'rolled-back')) return EXIT.failed;
  return EXIT.ok;
}

/**
 * The inventory's bytes, read no further than the size limit: `--inventory /dev/zero` or a
 * huge file stops at the limit instead of eating memory.
 */
async function readInventoryText(file: string): Promise<string> {
  let buf: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const chunk = Buffer.alloc(64 * 1024);
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
        if (bytesRead === 0) break;
        chunks.push(chunk.subarray(0, bytesRead));
        total += bytesRead;
        if (total > MAX_INVENTORY_BYTES) {
          throw new InventoryError([{ file, line: 1, column: 1, message: `the file is over ${MAX_INVENTORY_BYTES / 1048576} MiB; an inventory is at most that`,
            hint: 'Check this is the inventory you meant; split a fleet that large into several inventories.' }]);
        }
      }
      buf = Buffer.concat(chunks);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof InventoryError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new UsageError(`cannot read the inventory ${file}: ${why}`);
  }
  // Decoding marks bad bytes with U+FFFD; the loader reports where the first one is.
  return new TextDecoder('utf-8', { fatal: false }).decode(buf);
}
