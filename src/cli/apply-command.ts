import { run } from '../apply/run.js';
import { readSavedPlan } from '../plan/saved.js';
import { type Io, jsonView, textView, wantsColor } from '../report/view.js';
import type { ApplyArgs } from './args.js';
import { toolVersion, UsageError } from './flags.js';
import { readBoundedText } from './inventory-file.js';
import { type Deps, onHosts, random, verbosity } from './live.js';
import { exitCode } from './run-command.js';
import { loadScope } from './scope.js';

/**
 * `provision apply PLAN.json`: reads the hosts again and applies the saved changeset to
 * every host whose plan comes out the same; a host that changed since is refused (exit 4)
 * and nothing is applied to it, nor to its pairs on their other ends.
 */
export async function applyCommand(args: ApplyArgs, io: Io, deps: Deps): Promise<number> {
  const file = args.plan;
  const saved = readSavedPlan(await readBoundedText(file, 'plan'));
  if (typeof saved === 'string') throw new UsageError(`cannot use ${file} as a plan: ${saved}`);
  const scope = await loadScope(
    {
      ...(args.sshConfig !== undefined ? { sshConfig: args.sshConfig } : {}),
      ...(saved.options.limit ? { limit: saved.options.limit } : {}),
      ...(saved.options.rotate ? { rotatePsk: saved.options.rotate } : {}),
    },
    { text: saved.inventory.text, file: saved.inventory.file },
  );
  const { inventory, limit, rotate, inScope } = scope;
  const view = args.json ? jsonView(io) : textView(io, inScope.length, undefined, wantsColor(args.color, io.stdout), verbosity(args));
  view.hooks.onNote?.(`applying ${file} (made by provision ${saved.tool} from ${saved.inventory.file}, fleet ${saved.inventory.fleet})`);
  const result = await onHosts(view.hooks, { inventory, hosts: inScope, deps, args, jumps: scope.jumps }, ({ signal, connect }) =>
    run(inventory, {
      signal,
      connect,
      dryRun: false,
      verify: args.verify,
      prune: saved.options.prune,
      retireLegacy: saved.options.retireLegacy,
      concurrency: args.concurrency,
      random,
      tool: toolVersion(),
      hooks: view.hooks,
      saved,
      ...(saved.options.keyAgesAt !== undefined ? { keyAgesAt: saved.options.keyAgesAt } : {}),
      ...(limit ? { limit } : {}),
      ...(rotate ? { rotate } : {}),
      ...(saved.options.rotateMode ? { rotateMode: saved.options.rotateMode } : {}),
    }),
  );
  view.result(result);
  return exitCode(result);
}
