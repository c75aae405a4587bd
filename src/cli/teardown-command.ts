import { run } from '../apply/run.js';
import { type Io, jsonView, textView, wantsColor } from '../report/view.js';
import type { TeardownArgs } from './args.js';
import { toolVersion } from './flags.js';
import { type Deps, onHosts, random, verbosity } from './live.js';
import { exitCode } from './run-command.js';
import { loadScope } from './scope.js';

/**
 * `provision teardown`: every pair of the inventory (or, with --limit, every pair of the
 * named hosts, on their peers too: a decommissioned host's peers lose its pairs) is taken
 * down and its files removed; the guard leaves with its last peer; include lines provision
 * added go once nothing of provision is left on a host. An operator's conns and another
 * fleet's are never touched.
 */
export async function teardownCommand(args: TeardownArgs, io: Io, deps: Deps): Promise<number> {
  const scope = await loadScope(args);
  const { inventory, limit } = scope;
  const torn = new Set(inventory.pairs.filter((p) => !limit || limit.has(p.initiator) || limit.has(p.responder)).map((p) => p.name));
  const reached = new Set([
    ...(limit ?? inventory.hosts.keys()),
    ...inventory.pairs.filter((p) => torn.has(p.name)).flatMap((p) => [p.initiator, p.responder]),
  ]);
  const hosts = [...inventory.hosts.values()].filter((h) => reached.has(h.name));
  const view = args.json ? jsonView(io) : textView(io, hosts.length, undefined, wantsColor(args.color, io.stdout), verbosity(args));
  view.hooks.onNote?.(
    `teardown: ${torn.size} pair${torn.size === 1 ? '' : 's'} of fleet ${inventory.fleet} on ${hosts.length} host${hosts.length === 1 ? '' : 's'}`,
  );
  const result = await onHosts(view.hooks, { inventory, hosts, deps, args, jumps: scope.jumps }, ({ signal, connect }) =>
    run(inventory, {
      signal,
      connect,
      dryRun: args.dryRun,
      verify: false,
      prune: true,
      teardown: torn,
      limit: reached,
      concurrency: args.concurrency,
      random,
      tool: toolVersion(),
      hooks: view.hooks,
    }),
  );
  if (args.dryRun) view.plan(result.changeset!, result);
  else view.result(result);
  return exitCode(result);
}
