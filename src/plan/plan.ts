import { BACKENDS } from '../backends/index.js';
import { normalizeAddress } from '../core/address.js';
import { pairFile } from '../core/paths.js';
import type { HostSpec, Inventory } from '../inventory/types.js';
import { digest, type Facts, pskOf, saUp } from '../remote/facts.js';
import { connsByHost, type HostConn } from './desired.js';
import { planHost } from './host.js';
import { ageRotation, decideKey, type KeyDecision, type KeyRead, keyAge, keyBits } from './keys.js';
import { type Resolution, resolveBackend } from './resolve.js';
import { chooseMode, type End, type ModeChoice, prober, type RotateMode } from './rotate-mode.js';
import type { SshPath } from './ssh-path.js';
import { type Changeset, createdOf, type HostPlan, type KeyState, type PairPlan } from './types.js';

export interface PlanOptions {
  mode: 'offline' | 'live';
  /** Host names to act on (resolved from --limit); undefined means all. */
  limit?: ReadonlySet<string>;
  /** Conn names of pairs to give a new key (--rotate-psk). */
  rotate?: ReadonlySet<string>;
  /** Delete our files of pairs no longer in the inventory (false: --no-prune). */
  prune: boolean;
  /** Also delete files from before fleets that this inventory does not plan (--retire-legacy). */
  retireLegacy: boolean;
  /** The version of provision, recorded in the changeset. */
  tool: string;
  /** provision teardown: these pairs (conn names) are taken down and their files removed; nothing else is written. */
  teardown?: ReadonlySet<string>;
  /**
   * How a rotated key is proved (--rotate-mode): `reauth` authenticates a new IKE SA with it,
   * from a make-before-break end (strongSwan) when the pair has one; `reread` loads it on both
   * ends, compares the two ends' keys by MAC and probes it where an end can, keeping the SAs.
   * Unset: per pair, `reread` where a probe proves the key, `reauth` elsewhere (rotate-mode.ts).
   */
  rotateMode?: RotateMode;
  /** Now, in ms since the epoch: key ages are counted from it (live plans; the planner reads no clock). */
  now?: number;
}

/**
 * The changeset: from the inventory and the facts of every host read, what the run will
 * do. Pure: no I/O, no clock, no randomness (keys are drawn when they are written).
 * Hosts without facts are not touched (outside --limit, or unreachable); their pairs are
 * skipped, and so are those of a host something blocks.
 */
export function planChanges(full: Inventory, facts: ReadonlyMap<string, Facts>, opts: PlanOptions): Changeset {
  // Teardown plans the inventory without the pairs that go: their files are then retired.
  const inv = opts.teardown ? { ...full, pairs: full.pairs.filter((p) => !opts.teardown!.has(p.name)) } : full;
  const byHost = connsByHost(inv);
  const resolutions = new Map<string, Resolution>();
  for (const [name, f] of facts) resolutions.set(name, resolveBackend(inv.hosts.get(name)!, f));
  const usable = (h: string): boolean => facts.has(h) && (resolutions.get(h)?.ok === true || byHost.get(h)!.length === 0);

  // Keys of every pair whose two ends were read.
  const decisions = new Map<string, KeyDecision & { upBefore: boolean; ageSec?: number; rotateWhy?: string }>();
  for (const pair of opts.teardown ? [] : inv.pairs) {
    const fi = facts.get(pair.initiator);
    const fr = facts.get(pair.responder);
    if (!fi || !fr || !usable(pair.initiator) || !usable(pair.responder)) continue;
    const path = pairFile(pair.name, 'secrets');
    const keyOf = (f: Facts): KeyRead | undefined => {
      const masked = pskOf(f.files.get(path)?.content);
      const mac = f.keys.get(path)?.mac;
      return masked && mac ? { mac, bits: keyBits(masked) } : undefined;
    };
    const [a, b] = [keyOf(fi), keyOf(fr)];
    const upBefore = saUp(fi, normalizeAddress(inv.hosts.get(pair.initiator)!.address), normalizeAddress(inv.hosts.get(pair.responder)!.address));
    const ageSec =
      opts.now === undefined
        ? undefined
        : keyAge(
            [fi, fr].map((f) => createdOf(f.files.get(path)?.content)),
            opts.now,
          );
    // A pair that is down is repaired and verified as it is; its age rotates it on a run that finds it up.
    const rotateWhy =
      inv.rotation && opts.now !== undefined && a && b && upBefore && !opts.rotate?.has(pair.name) ? ageRotation(ageSec, inv.rotation) : undefined;
    const d = decideKey(a, b, { rotate: Boolean(opts.rotate?.has(pair.name) || rotateWhy), upBefore, initiator: pair.initiator, responder: pair.responder });
    decisions.set(pair.name, {
      ...d,
      upBefore,
      ...(ageSec !== undefined ? { ageSec } : {}),
      ...(rotateWhy && d.state === 'rotated' ? { rotateWhy } : {}),
    });
  }

  // How each rotated key is proved: hosts plan a re-authentication only for `reauth`.
  const modes = new Map<string, ModeChoice & { ends: [End, End] }>();
  for (const pair of inv.pairs) {
    if (decisions.get(pair.name)?.state !== 'rotated') continue;
    const ends = endsOf(pair, resolutions);
    if (ends) modes.set(pair.name, { ...chooseMode(ends, opts.rotateMode), ends });
  }
  const rereadPairs = new Set([...modes].filter(([, m]) => m.mode === 'reread').map(([n]) => n));

  // Hosts: once with every pair read, to find the blocked ones; then without their pairs.
  const keysOf = (exclude: ReadonlySet<string>): Map<string, KeyState> =>
    new Map(
      inv.pairs
        .filter((p) => decisions.has(p.name) && !exclude.has(p.initiator) && !exclude.has(p.responder))
        .map((p) => [p.name, decisions.get(p.name)!.state]),
    );
  const paths = sshPaths(inv, facts);
  const planAll = (keys: ReadonlyMap<string, KeyState>): Map<string, HostPlan> =>
    new Map(
      [...inv.hosts.values()].map((h) => [
        h.name,
        hostPlan(inv, h, byHost.get(h.name)!, facts.get(h.name), resolutions.get(h.name), keys, opts, rereadPairs, paths.get(h.name)),
      ]),
    );
  const first = planAll(keysOf(new Set()));
  const blocked = new Set([...first.values()].filter((h) => h.status === 'blocked').map((h) => h.host));
  const hosts = blocked.size ? planAll(keysOf(blocked)) : first;
  for (const b of blocked) hosts.set(b, first.get(b)!);

  const pairs: PairPlan[] = inv.pairs.map((pair) => {
    const d = decisions.get(pair.name);
    const skipped = skipReason([pair.initiator, pair.responder], hosts, opts);
    const changed = [pair.initiator, pair.responder].some((h) =>
      hosts.get(h)!.files.some((f) => f.pair === pair.name && f.action !== 'noop' && (f.kind === 'secrets' ? f.keyState !== 'unchanged' : true)),
    );
    return {
      name: pair.name,
      hosts: [pair.left, pair.right],
      initiator: pair.initiator,
      responder: pair.responder,
      responderMode: pair.responderMode,
      key: skipped ? 'unchanged' : (d?.state ?? 'unchanged'),
      agreement: d?.agreement ?? 'missing',
      changed: !skipped && changed,
      upBefore: d?.upBefore ?? false,
      ...(d?.notRotated && !skipped ? { notRotated: d.notRotated } : {}),
      ...(d?.ageSec !== undefined ? { keyAgeSec: d.ageSec } : {}),
      ...(d?.rotateWhy && !skipped ? { rotateWhy: d.rotateWhy } : {}),
      ...(modes.has(pair.name) && !skipped ? { rotateMode: modes.get(pair.name)!.mode, rotateModeWhy: modes.get(pair.name)!.why } : {}),
      ...(skipped ? { skipped } : {}),
    };
  });
  // A key proved by a new IKE SA is proved from a make-before-break end when the pair has one
  // (IKEv2 lets either end start it): no packet is lost there.
  for (const p of pairs) {
    const [i, r] = [hosts.get(p.initiator)!, hosts.get(p.responder)!];
    if (!i.reauth.includes(p.name)) continue;
    p.reauthBy = p.initiator;
    // Not from an end that restarts: its SAs are gone by then, and the re-authentication runs
    // only where the daemon was reloaded, so the pair would wait for dead-peer detection.
    if (!BACKENDS[i.backend.id].makeBeforeBreak && BACKENDS[r.backend.id].makeBeforeBreak && r.status === 'planned' && r.service === 'reload') {
      i.reauth = i.reauth.filter((n) => n !== p.name);
      r.reauth = [...r.reauth, p.name];
      p.reauthBy = p.responder;
    }
  }
  for (const p of pairs) if (p.key === 'rotated' && !p.reauthBy && p.rotateMode === 'reread') p.proof = 'keys compared';
  // A reread key is also authenticated now where one end can probe and its peer answers the
  // probe without giving up its running IKE SA: nothing is replaced, so nothing is lost.
  for (const p of pairs) {
    if (p.proof !== 'keys compared') continue;
    const ends = modes.get(p.name)?.ends;
    const by = ends && prober(ends);
    if (by && 'by' in by && hosts.get(by.by)!.status === 'planned') {
      p.probeBy = by.by;
      if (modes.get(p.name)!.chosen && BACKENDS[hosts.get(by.by)!.backend.id].makeBeforeBreak) p.reauthIfNoProbe = true;
    }
  }
  const retired = new Map<string, string[]>();
  for (const h of hosts.values())
    for (const f of h.files) if (f.action === 'delete' && f.pair) retired.set(f.pair, [...new Set([...(retired.get(f.pair) ?? []), h.host])]);

  return {
    version: 2,
    tool: opts.tool,
    mode: opts.mode,
    inventory: { file: inv.file, fleet: inv.fleet, ...(inv.fleetFromFile ? { fleetFromFile: true as const } : {}) },
    hosts: [...hosts.values()],
    pairs,
    retired: [...retired].map(([name, hs]) => ({ name, hosts: hs })),
    warnings: warnings(inv, hosts),
  };
}

/**
 * Pairs that carry the tool's own SSH: a host reached from its peer (the controller or the
 * jump host is one). By pair name, on both ends; read from the facts (the address each
 * host's SSH session comes from).
 */
function sshPaths(inv: Inventory, facts: ReadonlyMap<string, Facts>): Map<string, Map<string, SshPath>> {
  const out = new Map<string, Map<string, SshPath>>();
  const add = (h: string, pair: string, path: SshPath): void => void out.set(h, (out.get(h) ?? new Map()).set(pair, path));
  for (const p of inv.pairs) {
    for (const [h, peer] of [
      [p.initiator, p.responder],
      [p.responder, p.initiator],
    ] as const) {
      const client = facts.get(h)?.sshClient;
      if (client && client.address === normalizeAddress(inv.hosts.get(peer)!.address)) {
        add(h, p.name, { side: 'server', port: client.serverPort });
        add(peer, p.name, { side: 'client', port: client.serverPort });
      }
    }
  }
  return out;
}

function hostPlan(
  inv: Inventory,
  host: HostSpec,
  conns: HostConn[],
  facts: Facts | undefined,
  res: Resolution | undefined,
  keys: ReadonlyMap<string, KeyState>,
  opts: PlanOptions,
  rereadPairs: ReadonlySet<string>,
  sshPairs?: ReadonlyMap<string, SshPath>,
): HostPlan {
  const assumedBackend = BACKENDS[host.backend === 'auto' ? 'libreswan' : host.backend];
  const base = {
    host: host.name,
    address: host.address,
    ssh: host.ssh,
    problems: [] as HostPlan['problems'],
    backend: { id: assumedBackend.id, package: assumedBackend.package, version: assumedBackend.assumedVersion, assumed: true },
  };
  const empty = {
    files: [],
    includes: [],
    service: 'none' as const,
    serviceReason: 'not read',
    reload: [],
    bringUp: [],
    reauth: [],
    conns: [],
    unload: [],
    legacy: [],
    staleStaging: [],
  };
  if (!facts) return { ...base, status: 'unread', ...empty };
  if (res && !res.ok && conns.length > 0) {
    return { ...base, status: 'blocked', problems: [{ problem: res.problem, hint: res.hint }], ...empty, serviceReason: 'blocked', facts: digest(facts) };
  }
  const r = res?.ok ? res : { backend: assumedBackend, version: assumedBackend.assumedVersion, assumed: true, install: undefined };
  const { body, problems } = planHost({
    fleet: inv.fleet,
    ...(inv.fleetFromFile ? { fleetFromFile: true as const } : {}),
    host,
    conns,
    backend: r.backend,
    version: r.version,
    assumed: r.assumed,
    // A host in no pair of this run gets nothing installed: its backend only takes retired conns down.
    ...(r.install && conns.some((c) => keys.has(c.pair.name)) ? { install: r.install } : {}),
    facts,
    keys,
    prune: opts.prune,
    retireLegacy: opts.retireLegacy,
    ...(opts.teardown ? { teardown: opts.teardown } : {}),
    rereadPairs,
    ...(sshPairs ? { sshPairs } : {}),
  });
  const backend = { id: r.backend.id, package: r.backend.package, version: r.version, assumed: r.assumed };
  if (problems.length) return { ...base, backend, status: 'blocked', problems, ...empty, serviceReason: 'blocked', facts: digest(facts) };
  return { ...base, backend, status: 'planned', ...body, ...(opts.mode === 'live' ? { facts: digest(facts) } : {}) };
}

function skipReason(ends: string[], hosts: ReadonlyMap<string, HostPlan>, opts: PlanOptions): string | undefined {
  for (const h of ends) {
    if (opts.limit && !opts.limit.has(h)) return `${h} is outside --limit`;
    const p = hosts.get(h)!;
    if (p.status === 'blocked') return `${h} is blocked: ${p.problems[0]!.problem}`;
    if (p.status === 'unread') return `${h} was not read`;
  }
  return undefined;
}

function warnings(inv: Inventory, hosts: ReadonlyMap<string, HostPlan>): string[] {
  const out: string[] = [];
  for (const pair of inv.pairs) {
    const [l, r] = [hosts.get(pair.left)!, hosts.get(pair.right)!].map((h) => BACKENDS[h.backend.id]);
    if (l!.speaks !== r!.speaks) {
      const [v1, v2] = l!.speaks === 'ikev1' ? [l!, r!] : [r!, l!];
      out.push(
        `pair ${pair.name}: ${v1.package} speaks IKEv1 and ${v2.package} here speaks IKEv2 only; the pair will not come up. Use the same backend on both hosts.`,
      );
    }
  }
  return out;
}

/** A pair's two ends, where both resolved to a backend. */
function endsOf(pair: Inventory['pairs'][number], resolutions: ReadonlyMap<string, Resolution>): [End, End] | undefined {
  const end = (host: string, role: End['role']): End | undefined => {
    const r = resolutions.get(host);
    return r?.ok ? { host, backend: r.backend, version: r.version, role } : undefined;
  };
  const [i, r] = [end(pair.initiator, 'initiator'), end(pair.responder, 'responder')];
  return i && r ? [i, r] : undefined;
}
