import { pairOfFile } from '../core/paths.js';
import { redactFound } from '../core/redact.js';
import { planGuard } from './guard-plan.js';
import { type HostInput, inRun } from './host-input.js';
import { planPairs } from './host-pairs.js';
import { service, withNft } from './host-service.js';
import { planSharedFiles } from './host-shared.js';
import { planSshPath } from './ssh-path.js';
import type { HostPlan } from './types.js';

type Body = Omit<HostPlan, 'host' | 'address' | 'ssh' | 'status' | 'problems' | 'backend' | 'facts'>;

/**
 * What one host needs, against what it has: files to create, update or delete, include
 * lines, and the service action that follows. Problems (a file of someone else where ours
 * goes, a conn name the operator already uses) block the host: nothing is done there.
 */
export function planHost(input: HostInput): { body: Body; problems: { problem: string; hint: string }[] } {
  const { facts: f, backend, fleet } = input;
  const { files, problems, reload, bringUp, reauth, conns, secretsChanged, planned } = planPairs(input);

  // Retire: our files (by their header) of pairs no longer planned; files from before fleets
  // only when asked. An operator's file, or another fleet's, is never touched.
  const unload: string[] = [];
  const legacy: string[] = [];
  for (const found of f.files.values()) {
    if (planned.has(found.path)) continue;
    const of = pairOfFile(found.path);
    if (!of) continue;
    const ours = found.owner.kind === 'fleet' && found.owner.fleet === fleet;
    if (input.teardown) {
      if (!input.teardown.has(of.name) || !(ours || found.owner.kind === 'legacy')) continue;
    } else if (found.owner.kind === 'legacy' && !input.retireLegacy) {
      legacy.push(found.path);
      continue;
    }
    if (!input.prune || !(ours || found.owner.kind === 'legacy')) continue;
    files.push({
      path: found.path,
      mode: of.kind === 'secrets' ? '0600' : '0644',
      action: 'delete',
      pair: of.name,
      kind: of.kind,
      content: '',
      ...(found.content !== undefined ? { before: of.kind === 'secrets' ? redactFound(found.content) : found.content } : {}),
    });
    if (of.kind === 'conf') unload.push(of.name);
  }

  const g = planGuard({ fleet, host: input.host, conns: input.conns, facts: f, inRun: input.keys, ...(input.sshPairs ? { sshPairs: input.sshPairs } : {}) });
  files.push(...g.files);
  const sp = planSshPath({
    fleet,
    local: input.host.address,
    conns: input.conns,
    inRun: input.keys,
    facts: f,
    ...(input.sshPairs ? { sshPairs: input.sshPairs } : {}),
  });
  files.push(...sp.files);
  // Whether a pair file of any fleet stays on the host once this plan's deletions are done.
  const bypass = backend.ipv6Bypass;
  const gone = new Set(files.filter((x) => x.action === 'delete').map((x) => x.path));
  const pairFilesLeft = [...f.files.values()].some((x) => x.path !== bypass?.path && pairOfFile(x.path) && !gone.has(x.path));
  const shared = planSharedFiles(input, pairFilesLeft);
  files.push(...shared.files);
  problems.push(...shared.problems);
  reload.push(...shared.reload);
  unload.push(...shared.unload);
  const install = withNft(input.install, g.needsNft, f);

  // A host without pairs needs no include lines (and may have no ipsec at all).
  const includes = inRun(input).length && !input.teardown ? f.missingIncludes : [];
  const dropIncludes = input.teardown && !pairFilesLeft ? f.ourIncludes : [];
  const changed =
    reload.length > 0 || unload.length > 0 || secretsChanged || files.some((x) => x.kind === 'daemon' && x.action !== 'noop' && x.action !== 'delete');
  return {
    body: {
      ...(install ? { install } : {}),
      ...(g.guard ? { guard: g.guard } : {}),
      ...(sp.plan ? { sshPath: sp.plan } : {}),
      files,
      includes,
      ...(dropIncludes.length ? { dropIncludes } : {}),
      ...service(input, includes.length > 0, changed),
      reload,
      bringUp,
      reauth,
      conns,
      unload,
      legacy,
      staleStaging: f.staleStaging,
    },
    problems,
  };
}
