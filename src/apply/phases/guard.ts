import { alive, fail, phase } from '../context.js';
import { applyGuard, applySshPath, joinGuard } from '../steps/guard.js';
import { did, type Phase } from './state.js';

/** The tool's SSH with a peer passes outside IPsec before any IKE daemon is touched. */
export const sshPathPhase: Phase = {
  name: 'ssh path',
  async run(ctx, s) {
    await phase(
      ctx,
      s.cs.hosts.filter((h) => alive(ctx, h.host) && h.sshPath),
      async (h) => {
        const r = await applySshPath(ctx, h);
        if (!r.ok) return fail(ctx, h.host, r.outcome);
        did(ctx, h.host, r.did);
      },
    );
  },
};

/**
 * The guard is in place, new peers included, before any IKE daemon is touched: neither a
 * restart nor a first negotiation can leak. A peer whose pair did not land stays out.
 */
export const guardPhase: Phase = {
  name: 'guard',
  async run(ctx, s) {
    const pairs = new Map(s.pairs.map((p) => [p.name, p]));
    for (const h of s.cs.hosts) {
      const out = (h.guard?.joins ?? []).filter((j) => {
        const p = pairs.get(j.pair);
        return !p || s.rolledBack.has(j.pair) || !alive(ctx, p.initiator) || !alive(ctx, p.responder);
      });
      s.leftOut.set(
        h.host,
        out.map((j) => j.address),
      );
    }
    await phase(
      ctx,
      s.cs.hosts.filter((h) => alive(ctx, h.host) && h.guard && (h.guard.load || h.guard.remove || h.guard.enableUnit)),
      async (h) => {
        const r = await applyGuard(ctx, h, s.cs.inventory.fleet, s.leftOut.get(h.host));
        if (!r.ok) return fail(ctx, h.host, r.outcome);
        did(ctx, h.host, r.did);
      },
    );
  },
};

/** Peers that carry the tool's SSH join the guard once their pair verified (on both ends). */
export const joinGuardPhase: Phase = {
  name: 'guard: join',
  async run(ctx, s) {
    await phase(
      ctx,
      s.cs.hosts.filter((h) => alive(ctx, h.host) && h.guard?.joinsVerified.length),
      async (h) => {
        const joining = h.guard!.joinsVerified.filter((j) => s.outcomes.get(j.pair)?.status === 'verified').map((j) => j.address);
        if (!joining.length) return;
        const r = await joinGuard(ctx, h, s.cs.inventory.fleet, joining, s.leftOut.get(h.host));
        if (!r.ok) return fail(ctx, h.host, r.outcome);
        did(ctx, h.host, `guard: ${joining.join(', ')} joined (verified; SSH runs between the two)`);
      },
    );
  },
};
