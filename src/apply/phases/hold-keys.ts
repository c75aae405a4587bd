import { alive } from '../context.js';
import { reload } from '../steps/service.js';
import { did, type Phase, planOf } from './state.js';

/** After Ctrl-C between the write and the daemons: the new keys are on disk on both ends of their pairs; the daemons must hold them too. */
export const holdKeysPhase: Phase = {
  name: 'reread new keys',
  when: 'interrupted',
  async run(ctx, s) {
    const rereads = [...s.wrote].filter(
      (h) =>
        alive(ctx, h) &&
        ctx.states.get(h)!.facts!.running &&
        planOf(s, h).files.some((f) => f.kind === 'secrets' && f.action !== 'noop' && !s.rolledBack.has(f.pair ?? '')),
    );
    await Promise.all(
      rereads.map(async (h) => {
        const r = await reload(ctx, h, { ...planOf(s, h), reload: [], unload: [] }, true);
        if (r.ok) for (const x of r.did) did(ctx, h, x);
      }),
    );
  },
};
