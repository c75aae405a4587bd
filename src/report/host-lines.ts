import { printable, some } from '../core/text.js';
import type { HostPlan } from '../plan/types.js';
import { counts } from './plan-counts.js';

/** What the host's IKE daemon does after the files are written, and why. */
export function serviceLine(h: HostPlan): string {
  if (h.service === 'restart') return `restart ipsec (${h.serviceReason})`;
  if (h.service === 'none') return `no restart (${h.serviceReason})`;
  return `${[
    h.unload.length ? `take down ${h.unload.join(', ')}` : '',
    h.files.some((f) => f.kind === 'secrets' && f.action !== 'noop' && f.action !== 'delete') ? 'reread secrets' : '',
    h.reload.length ? `reload ${h.reload.map((r) => r.name).join(', ')}` : '',
    h.reauth.length ? `re-authenticate ${h.reauth.join(', ')} (new IKE SA with the new key)` : '',
  ]
    .filter(Boolean)
    .join('; ')} (${h.serviceReason})`;
}

/** The guard's change in a few words, for a line per host: counts, not addresses. */
function guardCount(h: HostPlan): string {
  const g = h.guard!;
  if (g.remove) return 'remove';
  const joining = g.joins.length + g.joinsVerified.length;
  const change = [joining ? `${joining} join` : '', g.leaves.length ? `${g.leaves.length} leave` : ''].filter(Boolean).join(', ');
  return `${g.load ? 'load' : 'as it is'} (${g.members.length + g.joinsVerified.length} peer${g.members.length + g.joinsVerified.length === 1 ? '' : 's'}${change ? `; ${change}` : ''})`;
}

/** What happens to the host's guard: for the plan and the per-host lines. */
export function guardLine(h: HostPlan): string {
  const g = h.guard!;
  if (g.remove) return `remove table inet ${g.table}${g.leaves.length ? ` (had ${g.leaves.join(', ')})` : ''}`;
  const parts = [
    g.load ? loadLine(g) : `table inet ${g.table} as it is (${g.members.length} peer${g.members.length === 1 ? '' : 's'})`,
    g.leaves.length ? `${some(g.leaves)} leave${g.leaves.length === 1 ? 's' : ''} (pair retired)` : '',
    g.joinsVerified.length
      ? `${some(g.joinsVerified.map((j) => j.address))} join${g.joinsVerified.length === 1 ? 's' : ''} once verified (the tool's SSH runs between the two)`
      : '',
    g.ssh.length ? `SSH from ${g.ssh.join(', ')} stays open` : '',
    g.sshTo.length ? `SSH to ${g.sshTo.map((t) => `${t.address} port ${t.port}`).join(', ')} stays open` : '',
    g.dropped && (g.dropped.out || g.dropped.in) ? `dropped so far: ${g.dropped.out} out, ${g.dropped.in} in` : '',
  ];
  return parts.filter(Boolean).join('; ');
}

/** The kernel policies that keep the tool's SSH with a peer outside IPsec, as they change. */
export function sshPathLine(h: HostPlan): string {
  const p = h.sshPath!;
  const n = p.add.length / 2;
  return [
    n
      ? `kernel policies pass the tool's SSH with ${n === 1 ? 'its peer' : `${n} peers`} outside IPsec, so the pair being down cannot cut it (${p.add
          .filter((l) => / dir out /.test(l))
          .map((l) => /dst (\S+)\/\d+ /.exec(l)![1])
          .join(', ')})`
      : '',
    p.remove.length ? `${p.remove.length} such polic${p.remove.length === 1 ? 'y' : 'ies'} removed` : '',
    p.reloadUnits ? "systemd reloads the IKE daemon's drop-in" : '',
  ]
    .filter(Boolean)
    .join('; ');
}

function loadLine(g: NonNullable<HostPlan['guard']>): string {
  const joining = g.joins.map((j) => j.address);
  const kept = g.members.filter((a) => !joining.includes(a));
  const join = joining.length
    ? `${some(joining)} join${joining.length === 1 ? 's' : ''} before the daemons load ${joining.length === 1 ? 'its pair' : 'their pairs'}`
    : '';
  return [`load table inet ${g.table}${kept.length ? ` with ${some(kept)}` : joining.length ? '' : ' with no peer'}`, join].filter(Boolean).join('; ');
}

/** The packages the host gets, and whether apt-get update runs first. */
export function installLine(h: HostPlan): string {
  const i = h.install!;
  const what = i.choose ? `${i.packages.join(' ')} (auto: the first apt offers of ${i.choose.map((c) => c.packages[0]).join(', ')})` : i.packages.join(' ');
  return `install ${what}${i.aptUpdate ? ', after apt-get update (apt offers no candidate yet)' : ''}`;
}

/** A host on one line, for `--detail hosts`: install, file counts, service action, guard. */
export function hostLine(h: HostPlan): string {
  if (h.status === 'unread') return `  ${h.host}  not read`;
  if (h.status === 'blocked') return `  ${h.host}  BLOCKED: ${printable(h.problems[0]!.problem)}`;
  const c = counts(h);
  const files = c.create + c.update + c.delete ? `+${c.create} ~${c.update} -${c.delete}` : 'no file changes';
  return `  ${h.host}  ${h.install ? `install ${h.install.packages.join(' ')}; ` : ''}${files}; ${serviceLine(h)}${h.guard ? `; guard: ${guardCount(h)}` : ''}${h.sshPath ? '; ssh path' : ''}`;
}
