import { BACKENDS } from '../../backends/index.js';
import { pairFile } from '../../core/paths.js';
import type { HostPlan } from '../../plan/types.js';
import type { Facts } from '../../remote/facts.js';
import { type Ctx, runStep, step } from '../context.js';
import { rollBackSet, writeFiles } from './files.js';
import { reloadScript } from './service.js';

/**
 * Puts one pair's previous files back on one host, from the copies the run's write kept
 * there (no key comes from the controller), and makes the daemon take them: secrets
 * reread, the conn replaced with its old version, or taken down where it is new. A failure
 * is returned as words; the caller decides whose failure it is.
 */
export async function rollBackPair(
  ctx: Ctx,
  host: string,
  plan: HostPlan,
  facts: Facts,
  pair: string,
  daemonRuns: boolean,
): Promise<{ ok: true } | { ok: false; error: string }> {
  const set = rollBackSet(plan, ctx.keep, (f) => f.pair === pair);
  if (set.deletes.length + (set.restores?.length ?? 0) === 0) return { ok: true };
  const w = await writeFiles(ctx, host, step('roll-back-files', `roll back ${pair}`), set, {
    backend: BACKENDS[plan.backend.id],
    version: plan.backend.version,
  });
  if (!w.ok)
    return { ok: false, error: `restoring the files of ${pair} on ${host} failed: ${w.outcome.status === 'failed' ? w.outcome.error : w.outcome.status}` };
  if (!daemonRuns) return { ok: true };
  const conf = pairFile(pair, 'conf');
  const confChanged = plan.files.some((f) => f.path === conf && f.action !== 'noop');
  const existed = facts.files.get(conf)?.content !== undefined;
  const load = plan.conns.find((c) => c.name === pair) ?? plan.reload.find((c) => c.name === pair);
  const script = reloadScript(
    {
      backend: plan.backend,
      unload: confChanged && !existed ? [pair] : [],
      reload: confChanged && existed && load ? [load] : [],
    },
    true,
  );
  const r = await runStep(ctx, host, step('roll-back-reload', `roll back ${pair}: reload`), script);
  if (!r.ok) return { ok: false, error: `${host} ${r.outcome.status} while putting ${pair} back` };
  if (r.code !== 0) return { ok: false, error: `reloading the previous files of ${pair} on ${host} failed (exit ${r.code})` };
  return { ok: true };
}
