import type { Backend, ConnLoad } from '../backends/index.js';
import { normalizeAddress } from '../core/address.js';
import { ownerWord } from '../core/ownership.js';
import { pairOfFile } from '../core/paths.js';
import { redactFound } from '../core/redact.js';
import type { HostSpec } from '../inventory/types.js';
import type { Facts } from '../remote/facts.js';
import { pskOf } from '../remote/facts.js';
import { type HostConn, pairFiles } from './desired.js';
import { planGuard } from './guard-plan.js';
import { planSshPath, type SshPath } from './ssh-path.js';
import { type FileChange, type HostPlan, type Install, KEY_SLOT, type KeyState, type ServiceAction } from './types.js';

export interface HostInput {
  /** The inventory sets no `fleet:` (the fleet is its file's name). */
  fleetFromFile?: true;
  fleet: string;
  host: HostSpec;
  conns: HostConn[];
  backend: Backend;
  version: string;
  assumed: boolean;
  install?: Install;
  facts: Facts;
  /** Key decisions of the pairs that run this time, by conn name; pairs absent here are left as they are. */
  keys: ReadonlyMap<string, KeyState>;
  prune: boolean;
  retireLegacy: boolean;
  /** provision teardown: retire only these pairs' files (ours or from before fleets), and take out our include lines when nothing is left. */
  teardown?: ReadonlySet<string>;
  /** `--rotate-mode reread`: a rotated key is reread on both ends, not proved by a new authentication. */
  rereadRotations?: boolean;
  /** Pairs whose two ends the tool's SSH runs between (a host reached from its peer), with this end's side of it. */
  sshPairs?: ReadonlyMap<string, SshPath>;
}

type Body = Omit<HostPlan, 'host' | 'address' | 'ssh' | 'status' | 'problems' | 'backend' | 'facts'>;

/**
 * What one host needs, against what it has: files to create, update or delete, include
 * lines, and the service action that follows. Problems (a file of someone else where ours
 * goes, a conn name the operator already uses) block the host: nothing is done there.
 */
export function planHost(input: HostInput): { body: Body; problems: { problem: string; hint: string }[] } {
  const { facts: f, backend, fleet } = input;
  const problems: { problem: string; hint: string }[] = [];
  const files: FileChange[] = [];
  const reload: ConnLoad[] = [];
  const bringUp: string[] = [];
  const reauth: string[] = [];
  const conns: ConnLoad[] = [];
  let secretsChanged = false;
  const planned = new Set<string>();

  for (const c of input.conns) {
    const desired = pairFiles(fleet, input.host, c, backend, { version: input.version });
    for (const d of desired) planned.add(d.path);
    const name = c.pair.name;
    const auto = c.role === 'initiator' ? 'start' : c.pair.responderMode;
    const key = input.keys.get(name);
    if (key === undefined) {
      // Not in this run (its peer is outside --limit, say): left as it is.
      if (f.files.has(desired[0]!.path)) conns.push({ name, auto });
      continue;
    }
    conns.push({ name, auto });
    for (const other of f.conns.filter((x) => x.name === name && x.file !== desired[0]!.path)) {
      problems.push({
        problem: `conn ${name} is already defined in ${other.file}`,
        hint: `Give the pair another name with \`name:\` in the inventory, or rename the operator's conn in ${other.file}.`,
      });
    }
    const twin = pairedElsewhere(f, fleet, c.peer.address, desired[0]!.path);
    if (twin) {
      // Two conns for one pair of addresses fight over the same kernel policy, and the two
      // secrets lines for it hold different keys: one of them would silently lose.
      problems.push({
        problem: `${input.host.name} and ${c.peer.name} (${c.peer.address}) are already paired by fleet ${twin.fleet} in ${twin.path}`,
        hint: `Two addresses are paired by one inventory: drop the pair from this one, or from ${twin.fleet}'s (and run that).`,
      });
      continue;
    }
    let confChanged = false;
    let keyChanged = false;
    for (const d of desired) {
      const found = f.files.get(d.path);
      if (found && found.owner.kind === 'operator') {
        problems.push({
          problem: `${d.path} exists and was not written by provision`,
          hint: "Rename the pair with `name:` in the inventory, or move the operator's file away if it is obsolete.",
        });
        continue;
      }
      if (found?.owner.kind === 'fleet' && found.owner.fleet !== fleet) {
        problems.push({
          problem: `${d.path} belongs to ${ownerWord(found.owner)}, another inventory`,
          hint: input.fleetFromFile
            ? `This inventory sets no \`fleet:\`, so its fleet is its file's name, ${fleet}. If it is fleet ${found.owner.fleet}'s inventory under a new name, add \`fleet: ${found.owner.fleet}\` at its top; if not, a pair is managed by one inventory: remove it from one of the two.`
            : `A pair is managed by one inventory: remove it from ${found.owner.fleet}'s inventory (and run that) or from this one.`,
        });
        continue;
      }
      // What the file would hold with the key it keeps, compared as the host sent it: masked.
      const kept = d.kind === 'secrets' && key === 'unchanged' ? pskOf(found?.content) : undefined;
      const wanted = kept ? d.content.replace(KEY_SLOT, kept) : d.content;
      const sameContent = found?.content === wanted;
      const action = !found
        ? 'create'
        : key !== 'unchanged' && d.kind === 'secrets'
          ? 'update'
          : !sameContent || found.mode !== d.mode.slice(1)
            ? 'update'
            : 'noop';
      const why =
        found?.owner.kind === 'legacy'
          ? 'adopted: written by provision before fleets'
          : action === 'update' && sameContent
            ? `mode 0${found!.mode} → ${d.mode}`
            : undefined;
      if (action !== 'noop' && d.kind === 'secrets') {
        secretsChanged = true;
        if (key !== 'unchanged') keyChanged = true;
      } else if (action !== 'noop' && (!found?.content || meaningful(found.content) !== meaningful(wanted))) {
        // A conn whose comments alone change (a header adopted from before fleets) is
        // rewritten, not replaced: replacing would take its SAs down.
        confChanged = true;
      }
      files.push({
        path: d.path,
        mode: d.mode,
        action,
        pair: name,
        kind: d.kind,
        content: d.content,
        ...(found?.content !== undefined ? { before: d.kind === 'secrets' ? redactFound(found.content) : found.content } : {}),
        ...(d.kind === 'secrets' ? { keyState: key } : {}),
        ...(why ? { why } : {}),
      });
    }
    // A changed conn is replaced (its SAs go with it) and brought up again. A changed key
    // alone keeps the SAs: both peers reread secrets, then the initiator re-authenticates.
    if (confChanged) {
      reload.push({ name, auto });
      if (c.role === 'initiator') bringUp.push(name);
    } else if (keyChanged && c.role === 'initiator' && !(key === 'rotated' && input.rereadRotations)) {
      reauth.push(name);
    }
  }

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
  const bypass = backend.ipv6Bypass;
  const gone = new Set(files.filter((x) => x.action === 'delete').map((x) => x.path));
  const pairFilesLeft = [...f.files.values()].some((x) => x.path !== bypass?.path && pairOfFile(x.path) && !gone.has(x.path));
  // The daemon settings go with the last pair of any fleet. The running daemon keeps them
  // until its next start, so their removal restarts nothing (it would drop operator conns).
  const settingsFound = settings ? f.files.get(settings.path) : undefined;
  if (settings && settingsFound?.owner.kind === 'shared' && input.teardown && !pairFilesLeft) {
    files.push({ path: settings.path, mode: '0644', action: 'delete', kind: 'daemon', content: '', before: settingsFound.content ?? '' });
  }
  // strongSwan's neighbour-discovery passthrough, wherever the host has an IPv6 pair. Shared by
  // the fleets: kept once written (it passes ND only), deleted when teardown leaves no pair.
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

/** nftables joins the install when the guard needs it and the host lacks it. */
function withNft(install: Install | undefined, needsNft: boolean, f: Facts): Install | undefined {
  if (!needsNft) return install;
  const aptUpdate = !f.candidates.has('nftables');
  if (!install) return { packages: ['nftables'], aptUpdate };
  return {
    ...install,
    packages: [...install.packages, 'nftables'],
    aptUpdate: install.aptUpdate || aptUpdate,
    ...(install.choose ? { choose: install.choose.map((c) => ({ ...c, packages: [...c.packages, 'nftables'] })) } : {}),
  };
}

/** Another fleet's conn file on this host, under another name, whose peer is `address`, if any. */
function pairedElsewhere(f: Facts, fleet: string, address: string, except: string): { path: string; fleet: string } | undefined {
  const want = normalizeAddress(address);
  for (const found of f.files.values()) {
    if (found.path === except || found.owner.kind !== 'fleet' || found.owner.fleet === fleet || pairOfFile(found.path)?.kind !== 'conf' || !found.content)
      continue;
    const ends = [...found.content.matchAll(/^\s*(?:left|right)=(\S+)\s*$/gm)].map((m) => normalizeAddress(m[1]!));
    if (ends.includes(want)) return { path: found.path, fleet: found.owner.fleet };
  }
  return undefined;
}

function meaningful(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('\n');
}

/** The host's pairs that this run works on: the others (a peer outside --limit, not read) are left as they are. */
function inRun(input: HostInput): HostConn[] {
  return input.conns.filter((c) => input.keys.has(c.pair.name));
}

function service(input: HostInput, includes: boolean, changed: boolean): { service: ServiceAction; serviceReason: string } {
  const f = input.facts;
  if (inRun(input).length === 0) {
    return changed && f.running
      ? { service: 'reload', serviceReason: 'retired conns are taken down' }
      : { service: 'none', serviceReason: input.conns.length ? 'none of its pairs is in this run' : 'no pairs on this host' };
  }
  if (input.install?.packages.some((p) => input.backend.packages.includes(p))) {
    return { service: 'restart', serviceReason: `${input.backend.package} is installed by this run` };
  }
  if (includes) return { service: 'restart', serviceReason: 'include lines were added' };
  if (!f.running) return { service: 'restart', serviceReason: 'ipsec is not running' };
  if (changed) return { service: 'reload', serviceReason: 'only what changed; other tunnels stay up' };
  return { service: 'none', serviceReason: 'nothing changed' };
}
