import { BACKENDS } from '../../backends/index.js';
import type { PairPlan } from '../../plan/types.js';
import { alive, type Ctx, phase } from '../context.js';
import { dropStrays } from '../steps/crossing.js';
import { compareKeys, probeKey } from '../steps/keys.js';
import { reauth } from '../steps/service.js';
import { did, type Phase, planOf, type RunState } from './state.js';

/**
 * A new key alone (rotated or repaired) is proven: one end re-authenticates with a new IKE SA
 * (a strongSwan end when there is one: make-before-break), or, with `reread`, both ends' keys
 * are compared and one end authenticates them with a probe IKE SA. When the default chose
 * `reread` and the probe cannot run, that end re-authenticates instead.
 */
export const provePhase: Phase = {
  name: 'prove new keys',
  async run(ctx, s) {
    const live = (p: PairPlan): boolean => !s.rolledBack.has(p.name) && alive(ctx, p.initiator) && alive(ctx, p.responder);
    await reauthenticate(
      ctx,
      s,
      s.pairs.filter((p) => live(p) && p.reauthBy && planOf(s, p.reauthBy).service === 'reload' && planOf(s, p.reauthBy).reauth.includes(p.name)),
    );
    const compared = s.pairs.filter((p) => live(p) && p.proof === 'keys compared');
    if (compared.length) for (const [name, why] of await compareKeys(ctx, compared)) s.proofFailed.set(name, why);
    await probe(
      ctx,
      s,
      compared.filter((p) => p.probeBy && !s.proofFailed.has(p.name)),
    );
  },
};

async function reauthenticate(ctx: Ctx, s: RunState, pairs: PairPlan[]): Promise<void> {
  await phase(ctx, pairs, async (p) => {
    const by = p.reauthBy!;
    const peer = by === p.initiator ? p.responder : p.initiator;
    const r = await reauth(ctx, by, planOf(s, by), p.name);
    if (!r.ok) {
      s.proofFailed.set(p.name, `the new key did not authenticate with ${peer}: ${r.reason.replace(/^the new key did not authenticate: /, '')}`);
      return;
    }
    did(ctx, by, `re-authenticated ${p.name} with its new key${BACKENDS[planOf(s, by).backend.id].makeBeforeBreak ? ' (make-before-break)' : ''}`);
    for (const [h, what] of await dropStrays(ctx, p, (h) => planOf(s, h))) did(ctx, h, what);
  });
}

/** One probe at a time on a host: each reloads the host's swanctl conns. */
async function probe(ctx: Ctx, s: RunState, pairs: PairPlan[]): Promise<void> {
  const byHost = new Map<string, PairPlan[]>();
  for (const p of pairs) byHost.set(p.probeBy!, [...(byHost.get(p.probeBy!) ?? []), p]);
  await phase(ctx, [...byHost], async ([by, ps]) => {
    for (const p of ps) {
      const peer = by === p.initiator ? p.responder : p.initiator;
      const r = await probeKey(ctx, by, planOf(s, by), p.name, s.inv.hosts.get(by)!.address, s.inv.hosts.get(peer)!.address);
      if (r.ok) did(ctx, by, `authenticated the new key of ${p.name} with a probe IKE SA; its SAs kept`);
      else if (r.refused) s.proofFailed.set(p.name, `the new key did not authenticate with ${peer}: ${r.reason}`);
      else if (p.reauthIfNoProbe) {
        did(ctx, by, `could not probe the new key of ${p.name} (${r.reason})`);
        await reauthenticate(ctx, s, [{ ...p, reauthBy: by }]);
      } else {
        // Both ends hold the key; nothing has authenticated with it yet.
        s.unproven.set(p.name, r.reason);
        did(ctx, by, `could not probe the new key of ${p.name} (${r.reason}); both ends hold it, and the next authentication uses it`);
      }
    }
  });
}
