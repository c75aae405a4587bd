import { changes } from '../plan/changes.js';
import type { Changeset, HostPlan } from '../plan/types.js';

/** A host's files to create, update and delete. */
export function counts(h: HostPlan): Record<'create' | 'update' | 'delete', number> {
  const c = { create: 0, update: 0, delete: 0 };
  for (const f of h.files) if (f.action !== 'noop') c[f.action]++;
  return c;
}

/** "3 files to create, 1 to update, 2 conns to reload on 2 of 5 hosts; 3 hosts unchanged. Nothing was changed." */
export function countLine(cs: Changeset, asking = false): string {
  const t = { create: 0, update: 0, delete: 0 };
  let reloads = 0;
  let restarts = 0;
  let installs = 0;
  let guards = 0;
  for (const h of cs.hosts.filter((x) => x.status === 'planned')) {
    guards += h.guard && (h.guard.load || h.guard.remove) ? 1 : 0;
    const c = counts(h);
    t.create += c.create;
    t.update += c.update;
    t.delete += c.delete;
    reloads += h.service === 'reload' ? h.reload.length + h.unload.length : 0;
    restarts += h.service === 'restart' ? 1 : 0;
    installs += h.install ? 1 : 0;
  }
  const acting = cs.hosts.filter(changes).length;
  const parts = [
    `${t.create} file${t.create === 1 ? '' : 's'} to create`,
    `${t.update} to update`,
    `${t.delete} to delete`,
    installs ? `${installs} install${installs === 1 ? '' : 's'}` : '',
    reloads ? `${reloads} conn${reloads === 1 ? '' : 's'} to reload` : '',
    restarts ? `${restarts} restart${restarts === 1 ? '' : 's'}` : '',
    guards ? `${guards} guard${guards === 1 ? '' : 's'} to load or remove` : '',
  ].filter(Boolean);
  const blocked = cs.hosts.filter((h) => h.status === 'blocked').length;
  const unread = cs.hosts.filter((h) => h.status === 'unread').length;
  const unchanged = cs.hosts.length - acting - blocked - unread;
  return (
    `${parts.join(', ')} on ${acting} of ${cs.hosts.length} hosts; ${unchanged} host${unchanged === 1 ? '' : 's'} unchanged` +
    `${blocked ? `, ${blocked} blocked` : ''}${unread ? `, ${unread} not read` : ''}.${asking ? '' : ' Nothing was changed.'}`
  );
}
