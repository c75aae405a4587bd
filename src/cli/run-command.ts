import type { RunResult } from '../apply/outcome.js';
import { run } from '../apply/run.js';
import { changes } from '../plan/changes.js';
import { planChanges } from '../plan/plan.js';
import { savePlan } from '../plan/saved.js';
import type { Changeset } from '../plan/types.js';
import { offlineFacts } from '../remote/facts.js';
import { type Detail, renderPlan } from '../report/plan-text.js';
import { type Io, jsonView, textView, type View, wantsColor } from '../report/view.js';
import { EXIT, type RunArgs } from './args.js';
import { toolVersion, UsageError } from './flags.js';
import { type Deps, onHosts, random, verbosity } from './live.js';
import { writePrivateFile } from './private-file.js';
import { loadScope } from './scope.js';

/** `provision --inventory FILE`: plan (offline or from the hosts), or apply and verify. */
export async function runCommand(args: RunArgs, io: Io, deps: Deps): Promise<number> {
  const dryRun = args.dryRun;
  if (args.offline && !dryRun) throw new UsageError('--offline plans without contacting any host, so it needs --dry-run');
  if (args.offline && args.rotatePsk !== undefined) {
    throw new UsageError('--rotate-psk works from the keys on the hosts, which --offline does not read; drop --offline to see the rotation plan');
  }
  if (args.out !== undefined && (!dryRun || args.offline))
    throw new UsageError('--out saves the plan of a dry run that read the hosts: use it with --dry-run, without --offline');
  if (args.detailedExitcode && !dryRun) throw new UsageError('--detailed-exitcode is for dry runs: add --dry-run');
  const scope = await loadScope(args);
  const { inventory, limit, rotate, inScope } = scope;
  if (args.summary && args.detail !== undefined) throw new UsageError('--summary is --detail hosts: give one of the two');
  const detail: Detail | undefined = args.detail ?? (args.summary ? 'hosts' : undefined);
  const view = args.json ? jsonView(io) : textView(io, inScope.length, detail, wantsColor(args.color, io.stdout), verbosity(args));
  const planOpts = { prune: args.prune, retireLegacy: args.retireLegacy, tool: toolVersion(), ...(limit ? { limit } : {}) };
  if (args.offline) {
    const cs = planChanges(inventory, new Map(inScope.map((h) => [h.name, offlineFacts()])), { mode: 'offline', ...planOpts });
    view.plan(cs);
    return args.detailedExitcode && cs.hosts.some(changes) ? EXIT.changesPending : EXIT.ok;
  }
  if (limit)
    view.hooks.onNote?.(
      `--limit: acting on ${inScope.length} of ${inventory.hosts.size} hosts; pairs with ${[...inventory.hosts.keys()].filter((h) => !limit.has(h)).join(', ')} are skipped`,
    );
  const keyAgesAt = Date.now();
  const result: RunResult = await onHosts(view.hooks, { inventory, hosts: inScope, deps, args, jumps: scope.jumps }, ({ signal, connect }) =>
    run(inventory, {
      signal,
      connect,
      dryRun,
      verify: args.verify,
      prune: planOpts.prune,
      retireLegacy: planOpts.retireLegacy,
      concurrency: args.concurrency,
      random,
      tool: toolVersion(),
      hooks: view.hooks,
      keyAgesAt,
      ...(limit ? { limit } : {}),
      ...(args.rotateMode ? { rotateMode: args.rotateMode } : {}),
      ...(rotate ? { rotate } : {}),
      ...(!dryRun && !args.yes && !args.json && deps.ask ? { confirm: confirmer(io, view, deps.ask) } : {}),
    }),
  );
  if (result.declined) {
    io.stderr.write('Not applied: nothing was changed.\n');
    return EXIT.ok;
  }
  if (!dryRun) {
    view.result(result);
    return exitCode(result);
  }
  view.plan(result.changeset!, result);
  if (args.out !== undefined) {
    await writePrivateFile(
      args.out,
      savePlan(result.changeset!, scope.text, {
        prune: planOpts.prune,
        retireLegacy: planOpts.retireLegacy,
        keyAgesAt,
        ...(limit ? { limit: [...limit] } : {}),
        ...(args.rotateMode ? { rotateMode: args.rotateMode } : {}),
        ...(rotate ? { rotate: [...rotate] } : {}),
      }),
    );
    io.stderr.write(`plan saved to ${args.out}: \`provision apply ${args.out}\` applies it to the hosts that have not changed since\n`);
  }
  const code = exitCode(result);
  return code === EXIT.ok && args.detailedExitcode && result.changeset!.hosts.some(changes) ? EXIT.changesPending : code;
}

export function exitCode(r: RunResult): number {
  const outcomes = [...r.hosts.values()];
  if (r.interrupted) return EXIT.interrupted;
  if (outcomes.some((o) => o.status === 'refused')) return EXIT.hostKey;
  if (outcomes.some((o) => o.status === 'stale')) return EXIT.stale;
  if (outcomes.some((o) => o.status === 'failed' || o.status === 'unreachable')) return EXIT.failed;
  if (r.pairs.some((p) => p.status === 'failed' || p.status === 'rolled-back')) return EXIT.failed;
  return EXIT.ok;
}

/**
 * On a terminal: the plan, a line per host, then a question; only "y" or "yes" applies it.
 * The plan shown is the one applied (the hosts are not read again).
 */
function confirmer(io: Io, view: View, ask: NonNullable<Deps['ask']>): (cs: Changeset) => Promise<boolean> {
  return async (cs) => {
    view.hooks.pause?.();
    io.stderr.write(`\n${renderPlan(cs, { detail: cs.hosts.length > 50 ? 'summary' : 'hosts', asking: true })}`);
    const answer = await ask(`Apply this plan to ${cs.hosts.filter(changes).length} host(s)? [y/N] (--yes skips this question) `);
    view.hooks.resume?.();
    return /^\s*(y|yes)\s*$/i.test(answer);
  };
}
