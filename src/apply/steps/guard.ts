import { addressFamily } from '../../core/address.js';
import { guardFile, renderGuard } from '../../plan/guard.js';
import type { HostPlan } from '../../plan/types.js';
import { failed, runStep, STEP_TIMEOUT, type Ctx } from '../context.js';
import type { HostOutcome } from '../outcome.js';
import { writeFiles } from './files.js';

/** Loads, enables or removes a host's guard, as planned: before the IKE daemon is touched. */
export function guardScript(plan: HostPlan, fleet: string): string {
  const g = plan.guard!;
  const lines = ['set -e'];
  if (g.enableUnit) lines.push('systemctl daemon-reload', 'systemctl enable --quiet provision-guard.service');
  if (g.load) lines.push(`nft -c -f ${guardFile(fleet)}`, `nft -f ${guardFile(fleet)}`);
  if (g.remove) lines.push(`nft delete table inet ${g.table} 2>/dev/null || true`);
  return lines.join('\n') + '\n';
}

export async function applyGuard(ctx: Ctx, plan: HostPlan, fleet: string): Promise<{ ok: true; did: string } | { ok: false; outcome: HostOutcome }> {
  const g = plan.guard!;
  const r = await runStep(ctx, plan.host, 'guard', guardScript(plan, fleet), STEP_TIMEOUT.write);
  if (!r.ok) return r;
  if (r.code !== 0) {
    return { ok: false, outcome: failed('guard', `loading the guard (nftables table ${g.table}) failed (exit ${r.code})`,
      'Check that the kernel has nf_tables and nft_xfrm (modprobe nft_xfrm), or set `guard: off` for this host; see docs/security.md.', { exitCode: r.code, output: r.stderr }) };
  }
  const did = g.remove ? 'guard removed' : g.load ? `guard loaded (${g.members.length} peer${g.members.length === 1 ? '' : 's'}${g.leaves.length ? `; ${g.leaves.join(', ')} left` : ''})` : 'guard unit enabled';
  return { ok: true, did };
}

/**
 * Peers whose pairs verified join the guard: its file gets them (for the next boot) and the
 * loaded table too, element by element, so its counters are kept.
 */
export async function joinGuard(ctx: Ctx, plan: HostPlan, fleet: string, addresses: string[]): Promise<{ ok: true } | { ok: false; outcome: HostOutcome }> {
  const g = plan.guard!;
  const members = [...new Set([...g.members, ...addresses])];
  const w = await writeFiles(ctx, plan.host, 'guard: join', {
    puts: [{ path: guardFile(fleet), mode: '0600', content: renderGuard(fleet, { peers: members, ssh: g.ssh, sshPort: g.sshPort }) }], deletes: [], includes: [],
  });
  if (!w.ok) return w;
  const add = (family: 4 | 6): string[] => {
    const of = addresses.filter((a) => addressFamily(a) === family);
    return of.length ? [`nft add element inet ${g.table} peers${family} { ${of.join(', ')} }`] : [];
  };
  const r = await runStep(ctx, plan.host, 'guard: join', ['set -e', ...add(4), ...add(6)].join('\n') + '\n', STEP_TIMEOUT.write);
  if (!r.ok) return r;
  if (r.code !== 0) return { ok: false, outcome: failed('guard: join', `adding ${addresses.join(', ')} to the guard failed (exit ${r.code})`, 'The file has them: `systemctl reload provision-guard` on the host loads it.', { exitCode: r.code, output: r.stderr }) };
  return { ok: true };
}
