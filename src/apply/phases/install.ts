import { alive, fail, failed, phase } from '../context.js';
import { install } from '../steps/install.js';
import { did, type Phase, setChangeset } from './state.js';

/** Installs where packages are missing; what got installed is read again and planned for. */
export const installPhase: Phase = {
  name: 'install',
  async run(ctx, s) {
    const installed = new Set<string>();
    await phase(
      ctx,
      s.cs.hosts.filter((h) => h.install && alive(ctx, h.host)),
      async (h) => {
        const r = await install(ctx, h.host, h.install!);
        if (!r.ok) return fail(ctx, h.host, r.outcome);
        did(ctx, h.host, `installed ${r.packages}`);
        installed.add(h.host);
      },
    );
    if (installed.size) setChangeset(s, await s.opts.afterInstall(installed));
    for (const h of s.cs.hosts) {
      if (h.status === 'blocked' && alive(ctx, h.host)) fail(ctx, h.host, failed('plan', h.problems.map((p) => p.problem).join('; '), h.problems[0]!.hint));
    }
  },
};
