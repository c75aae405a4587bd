import type { HostPlan } from './types.js';

/** Whether a run would change anything on the host (for --detailed-exitcode, the counts, and asking first). */
export function changes(h: HostPlan): boolean {
  return (
    h.status === 'planned' &&
    (Boolean(h.install) ||
      h.includes.length > 0 ||
      Boolean(h.dropIncludes?.length) ||
      h.service !== 'none' ||
      h.files.some((f) => f.action !== 'noop') ||
      h.staleStaging.length > 0 ||
      Boolean(h.sshPath) ||
      Boolean(h.guard && (h.guard.load || h.guard.remove || h.guard.enableUnit || h.guard.joins.length || h.guard.joinsVerified.length)))
  );
}
