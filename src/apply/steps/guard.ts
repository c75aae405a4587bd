import { addressFamily } from '../../core/address.js';
import { guardFile, renderGuard } from '../../plan/guard.js';
import type { HostPlan } from '../../plan/types.js';
import { type Ctx, failed, runStep, step } from '../context.js';
import type { HostOutcome } from '../outcome.js';
import { writeFiles } from './files.js';

/** Loads, enables or removes a host's guard, as planned: before the IKE daemon is touched. */
export function guardScript(plan: HostPlan, fleet: string): string {
  const g = plan.guard!;
  const lines = ['set -e'];
  if (g.enableUnit) lines.push('systemctl daemon-reload', 'systemctl enable --quiet provision-guard.service');
  if (g.load) lines.push(`nft -c -f ${guardFile(fleet)}`, `nft -f ${guardFile(fleet)}`);
  if (g.remove) lines.push(`nft delete table inet ${g.table} 2>/dev/null || true`);
  return `${lines.join('\n')}\n`;
}

/**
 * Loads the guard before the IKE daemons are touched. `without`: joining peers whose pair did
 * not land on both ends (it was undone); the file is written again without them first, so
 * that no host drops traffic of a pair that has no conns.
 */
export async function applyGuard(
  ctx: Ctx,
  plan: HostPlan,
  fleet: string,
  without: readonly string[] = [],
): Promise<{ ok: true; did: string } | { ok: false; outcome: HostOutcome }> {
  const g = plan.guard!;
  const members = g.members.filter((a) => !without.includes(a));
  if (without.length && g.load) {
    const w = await writeFiles(ctx, plan.host, step('guard'), {
      puts: [{ path: guardFile(fleet), mode: '0600', content: renderGuard(fleet, { peers: members, ssh: g.ssh, sshPort: g.sshPort, sshTo: g.sshTo }) }],
      deletes: [],
      includes: [],
    });
    if (!w.ok) return w;
  }
  const r = await runStep(ctx, plan.host, step('guard'), guardScript(plan, fleet));
  if (!r.ok) return r;
  if (r.code !== 0) {
    return {
      ok: false,
      outcome: failed(
        'guard',
        `loading the guard (nftables table ${g.table}) failed (exit ${r.code})`,
        'Check that the kernel has nf_tables and nft_xfrm (modprobe nft_xfrm), or set `guard: off` for this host; see docs/security.md.',
        { exitCode: r.code, output: r.stderr },
      ),
    };
  }
  if (g.remove) return { ok: true, did: 'guard removed' };
  if (!g.load) return { ok: true, did: 'guard unit enabled' };
  const joined = g.joins.map((j) => j.address).filter((a) => !without.includes(a));
  const notes = [joined.length ? `${joined.join(', ')} joined` : '', g.leaves.length ? `${g.leaves.join(', ')} left` : ''].filter(Boolean);
  return { ok: true, did: `guard loaded (${members.length} peer${members.length === 1 ? '' : 's'}${notes.length ? `; ${notes.join('; ')}` : ''})` };
}

/** Adds peers to a loaded guard table, element by element, so its counters are kept. */
export function joinScript(table: string, addresses: readonly string[]): string {
  const add = (family: 4 | 6): string[] => {
    const of = addresses.filter((a) => addressFamily(a) === family);
    return of.length ? [`nft add element inet ${table} peers${family} { ${of.join(', ')} }`] : [];
  };
  return `${['set -e', ...add(4), ...add(6)].join('\n')}\n`;
}

/**
 * Peers that carry the tool's SSH join once their pair has verified: the file gets them (for
 * the next boot) and the loaded table too, element by element, so its counters are kept.
 */
export async function joinGuard(
  ctx: Ctx,
  plan: HostPlan,
  fleet: string,
  addresses: string[],
  without: readonly string[] = [],
): Promise<{ ok: true } | { ok: false; outcome: HostOutcome }> {
  const g = plan.guard!;
  const members = [...new Set([...g.members.filter((a) => !without.includes(a)), ...addresses])];
  const w = await writeFiles(ctx, plan.host, step('guard-join', 'guard: join'), {
    puts: [{ path: guardFile(fleet), mode: '0600', content: renderGuard(fleet, { peers: members, ssh: g.ssh, sshPort: g.sshPort, sshTo: g.sshTo }) }],
    deletes: [],
    includes: [],
  });
  if (!w.ok) return w;
  const r = await runStep(ctx, plan.host, step('guard-join', 'guard: join'), joinScript(g.table, addresses));
  if (!r.ok) return r;
  if (r.code !== 0)
    return {
      ok: false,
      outcome: failed(
        'guard: join',
        `adding ${addresses.join(', ')} to the guard failed (exit ${r.code})`,
        'The file has them: `systemctl reload provision-guard` on the host loads it.',
        { exitCode: r.code, output: r.stderr },
      ),
    };
  return { ok: true };
}

/**
 * The kernel policies that keep the tool's SSH between two peers outside IPsec: added (and
 * old ones removed) once their file is on the host, before any IKE daemon is touched.
 */
export function sshPathScript(plan: HostPlan): string {
  const p = plan.sshPath!;
  const lines = ['set -e'];
  if (p.reloadUnits) lines.push('systemctl daemon-reload');
  // A policy to remove may be gone already (a daemon stop flushes them): -force goes on.
  if (p.remove.length) lines.push(`ip -force -batch - <<'EOF' || true`, ...p.remove, 'EOF');
  if (p.add.length) lines.push(`ip -batch - <<'EOF'`, ...p.add, 'EOF');
  return `${lines.join('\n')}\n`;
}

export async function applySshPath(ctx: Ctx, plan: HostPlan): Promise<{ ok: true; did: string } | { ok: false; outcome: HostOutcome }> {
  const r = await runStep(ctx, plan.host, step('ssh-path', 'ssh path'), sshPathScript(plan));
  if (!r.ok) return r;
  if (r.code !== 0) {
    return {
      ok: false,
      outcome: failed(
        'ssh path',
        `adding the kernel policies that keep SSH with a peer outside IPsec failed (exit ${r.code})`,
        'Run `ip -batch /etc/provision/ssh-*.xfrm` on the host to see why; the IKE daemon was not touched.',
        { exitCode: r.code, output: r.stderr },
      ),
    };
  }
  const p = plan.sshPath!;
  return {
    ok: true,
    did: p.add.length
      ? `SSH with a peer kept outside IPsec (${p.add.length / 2} path${p.add.length === 2 ? '' : 's'})`
      : p.remove.length
        ? 'SSH path policies removed'
        : 'IKE daemon drop-in reloaded',
  };
}
