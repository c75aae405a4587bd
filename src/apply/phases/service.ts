import { BACKENDS } from '../../backends/index.js';
import type { HostPlan } from '../../plan/types.js';
import { alive, type Ctx, fail, failed, phase, step } from '../context.js';
import { rollBackSet, writeFiles } from '../steps/files.js';
import { bringUp, reload, restart } from '../steps/service.js';
import { did, type Phase, type RunState } from './state.js';

/** Restarts where the package is new, includes changed or ipsec is down; else reloads what changed. */
export const servicePhase: Phase = {
  name: 'restart or reload',
  async run(ctx, s) {
    await phase(
      ctx,
      s.cs.hosts.filter((h) => alive(ctx, h.host) && h.service !== 'none'),
      (h) => (h.service === 'reload' ? reloadHost(ctx, s, h) : restartHost(ctx, s, h)),
    );
  },
};

async function reloadHost(ctx: Ctx, s: RunState, h: HostPlan): Promise<void> {
  const reread = h.files.some((f) => f.kind === 'secrets' && f.action !== 'noop');
  const r = await reload(ctx, h.host, { ...h, reload: h.reload.filter((c) => !s.rolledBack.has(c.name)) }, reread);
  if (!r.ok) return fail(ctx, h.host, r.outcome);
  for (const x of r.did) did(ctx, h.host, x);
}

async function restartHost(ctx: Ctx, s: RunState, h: HostPlan): Promise<void> {
  const facts = ctx.states.get(h.host)!.facts!;
  const r = await restart(
    ctx,
    h.host,
    h,
    facts.init,
    h.conns.filter((c) => !s.rolledBack.has(c.name)),
  );
  if (r.ok) return did(ctx, h.host, `ipsec restarted (${h.serviceReason})`);
  if (!r.refused || !s.wrote.has(h.host) || !facts.running) return fail(ctx, h.host, r.outcome);
  // It ran before this change: put the previous files back and start it again.
  const daemon = r.outcome.status === 'failed' ? (r.outcome.tail ?? '') : '';
  const w = await writeFiles(
    ctx,
    h.host,
    step('roll-back-files', 'roll back files'),
    rollBackSet(h, ctx.keep, () => true),
    { backend: BACKENDS[h.backend.id], version: h.backend.version },
  );
  const again = w.ok ? await restart(ctx, h.host, h, facts.init, h.conns, step('roll-back-restart', 'restart ipsec (previous files)')) : undefined;
  s.wrote.delete(h.host);
  fail(
    ctx,
    h.host,
    again?.ok
      ? failed(
          'restart ipsec',
          `ipsec did not start with the new files, so the previous files are back and ipsec runs again: ${daemon}`,
          'Nothing changed on this host. Read the daemon message above (docs/troubleshooting.md), fix the cause, then re-run.',
        )
      : failed(
          'restart ipsec',
          `ipsec did not start with the new files, and rolling back ${w.ok ? 'did not start it either' : 'failed'}: ${daemon}`,
          'ipsec is DOWN on this host: `journalctl -u ipsec -n 50` there; see docs/troubleshooting.md.',
        ),
  );
}

/**
 * Every daemon has loaded its pairs now (a barrier): initiators bring up the pairs they
 * reloaded and, where the daemon restarted, those not up yet (a daemon starts its own conns
 * as it comes up, possibly before its peer knew them), so no first negotiation is left
 * retrying against a peer that did not have the conn.
 */
export const bringUpPhase: Phase = {
  name: 'bring up',
  async run(ctx, s) {
    const upNow = (h: HostPlan): string[] =>
      (h.service === 'restart' ? h.conns.filter((c) => c.auto === 'start').map((c) => c.name) : h.bringUp).filter((n) => !s.rolledBack.has(n));
    await phase(
      ctx,
      s.cs.hosts.filter((h) => alive(ctx, h.host) && (h.service === 'reload' || h.service === 'restart') && upNow(h).length),
      async (h) => {
        const r = await bringUp(ctx, h.host, h, upNow(h), h.service === 'restart');
        if (!r.ok) fail(ctx, h.host, r.outcome);
      },
    );
  },
};
