import type { ConnLoad } from '../backends/index.js';
import type { HostInput } from './host-input.js';
import { inRun } from './host-input.js';
import type { FileChange } from './types.js';

/**
 * The files the fleets on a host share: the backend's daemon-wide settings and its IPv6
 * neighbour-discovery passthrough. Written while the host has pairs in the run; deleted by a
 * teardown that leaves no pair file (`pairFilesLeft`, of any fleet). A file of the operator's
 * where one goes is a problem.
 */
export function planSharedFiles(
  input: HostInput,
  pairFilesLeft: boolean,
): { files: FileChange[]; problems: { problem: string; hint: string }[]; reload: ConnLoad[]; unload: string[] } {
  const { facts: f, backend } = input;
  const files: FileChange[] = [];
  const problems: { problem: string; hint: string }[] = [];
  const reload: ConnLoad[] = [];
  const unload: string[] = [];
  // The backend's daemon-wide settings (strongSwan's make-before-break), shared by the fleets.
  const settings = backend.settings;
  if (settings && inRun(input).length && !input.teardown) {
    const found = f.files.get(settings.path);
    if (found && found.owner.kind !== 'shared') {
      problems.push({
        problem: `${settings.path} exists and was not written by provision`,
        hint: 'Move it away (provision keeps its daemon settings there), then re-run.',
      });
    } else {
      const action = !found ? 'create' : found.content === settings.content && found.mode === '644' ? 'noop' : 'update';
      files.push({
        path: settings.path,
        mode: '0644',
        action,
        kind: 'daemon',
        content: settings.content,
        ...(found?.content !== undefined ? { before: found.content } : {}),
      });
    }
  }
  // The daemon settings go with the last pair of any fleet. The running daemon keeps them
  // until its next start, so their removal restarts nothing (it would drop operator conns).
  const settingsFound = settings ? f.files.get(settings.path) : undefined;
  if (settings && settingsFound?.owner.kind === 'shared' && input.teardown && !pairFilesLeft) {
    files.push({ path: settings.path, mode: '0644', action: 'delete', kind: 'daemon', content: '', before: settingsFound.content ?? '' });
  }
  // strongSwan's neighbour-discovery passthrough, wherever the host has an IPv6 pair. Shared by
  // the fleets: kept once written (it passes ND only), deleted when teardown leaves no pair.
  const bypass = backend.ipv6Bypass;
  if (bypass) {
    const found = f.files.get(bypass.path);
    const v6 = input.conns.some((c) => c.peer.address.includes(':'));
    if (found && found.owner.kind !== 'shared') {
      if (v6)
        problems.push({
          problem: `${bypass.path} exists and was not written by provision`,
          hint: 'Move it away (provision keeps its IPv6 neighbour-discovery passthrough there), then re-run.',
        });
    } else if (v6 && !input.teardown) {
      const action = !found ? 'create' : found.content === bypass.content && found.mode === '644' ? 'noop' : 'update';
      files.push({
        path: bypass.path,
        mode: '0644',
        action,
        kind: 'conf',
        content: bypass.content,
        ...(found?.content !== undefined ? { before: found.content } : {}),
      });
      if (action !== 'noop') reload.push(...bypass.conns.map((name) => ({ name, auto: 'route' as const })));
    } else if (found && input.teardown && !pairFilesLeft) {
      files.push({ path: bypass.path, mode: '0644', action: 'delete', kind: 'conf', content: '', before: found.content ?? '' });
      unload.push(...bypass.conns);
    }
  }
  return { files, problems, reload, unload };
}
