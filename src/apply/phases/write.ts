import { BACKENDS } from '../../backends/index.js';
import { drawKeys } from '../../plan/keys.js';
import { alive, fail, phase, step } from '../context.js';
import { describeWrite, writeFiles, writeSet } from '../steps/files.js';
import { did, ends, type Phase } from './state.js';

/** Draws the new keys of the last plan, and records the rotations it could not plan; after Ctrl-C too. */
export const keysPhase: Phase = {
  name: 'keys',
  when: 'always',
  async run(_ctx, s) {
    s.keys = drawKeys(s.pairs, s.opts.random);
    for (const p of s.pairs) if (p.notRotated) s.outcomes.set(p.name, { ...ends(p), status: 'failed', reason: p.notRotated, directions: [] });
  },
};

/** Writes every changed file and checks the config; a refused config is put back. */
export const writePhase: Phase = {
  name: 'write',
  async run(ctx, s) {
    const writing = s.cs.hosts.filter(
      (h) =>
        h.status === 'planned' &&
        alive(ctx, h.host) &&
        (h.includes.length || h.dropIncludes?.length || h.staleStaging.length || h.files.some((f) => f.action !== 'noop')),
    );
    await phase(ctx, writing, async (h) => {
      const set = writeSet(h, s.keys, { keep: ctx.keep, created: s.opts.createdAt });
      if (set.keep) s.kept.add(h.host);
      const r = await writeFiles(ctx, h.host, step('write'), set, { backend: BACKENDS[h.backend.id], version: h.backend.version });
      if (!r.ok) return fail(ctx, h.host, r.outcome);
      s.wrote.add(h.host);
      did(ctx, h.host, describeWrite(set));
    });
  },
};
