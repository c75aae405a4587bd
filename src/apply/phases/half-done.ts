import { alive, type Ctx } from '../context.js';
import { rollBackPair } from '../steps/roll-back.js';
import { ends, landed, type Phase, planOf, type RunState, touches } from './state.js';

/**
 * A key change lands on both ends of a pair or on neither: where one end failed or was not
 * written, the other gets its previous files back (and, once the daemons loaded them,
 * rereads them), even after Ctrl-C.
 */
export function rollBackHalfDone(daemonsLoaded: boolean): Phase {
  return {
    name: daemonsLoaded ? 'roll back pairs loaded on one end' : 'roll back pairs written on one end',
    when: 'always',
    run: (ctx, s) => rollBackHalf(ctx, s, daemonsLoaded),
  };
}

async function rollBackHalf(ctx: Ctx, s: RunState, daemonsLoaded: boolean): Promise<void> {
  for (const p of s.pairs) {
    if (s.rolledBack.has(p.name) || !p.changed) continue;
    const broken = [p.initiator, p.responder].find((h) => !alive(ctx, h) || !landed(s, h, p));
    if (!broken) continue;
    s.rolledBack.add(p.name);
    const o = ctx.states.get(broken)!.outcome;
    const why =
      o && o.status !== 'unchanged' && o.status !== 'changed' && o.status !== 'planned' && o.status !== 'interrupted'
        ? `${broken} ${o.status === 'failed' ? `failed at ${o.step}` : o.status}`
        : `${broken} was not written (interrupted)`;
    const restored: string[] = [];
    const problems: string[] = [];
    for (const h of [p.initiator, p.responder].filter((x) => touches(s, x, p) && s.wrote.has(x))) {
      const r = await rollBackPair(ctx, h, planOf(s, h), ctx.states.get(h)!.facts!, p.name, daemonsLoaded && alive(ctx, h));
      if (r.ok) restored.push(h);
      else problems.push(r.error);
    }
    const back = restored.length ? `; ${restored.join(' and ')} ${restored.length > 1 ? 'have' : 'has'} the previous files back` : '';
    s.outcomes.set(
      p.name,
      problems.length
        ? { ...ends(p), status: 'failed', reason: `not changed: ${why}${back}; ${problems.join('; ')}`, directions: [] }
        : { ...ends(p), status: 'skipped', reason: `not changed: ${why}${back}` },
    );
  }
}
