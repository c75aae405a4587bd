import type { Facts } from '../remote/facts.js';
import { pskOf, saUp } from '../remote/facts.js';
import { confContent, confPath, pairFile, pairOfFile, secretsContent, secretsPath, type HostPlan, type Plan } from '../plan/plan.js';
import { newPsk, redacted, type KeyState, type RandomBytes } from '../psk.js';
import type { Changeset, ConnReload, FileChange, HostChange, PairChange } from './changeset.js';

export interface HostProblem {
  host: string;
  problem: string;
  hint: string;
}

export interface DiffInput {
  plan: Plan;
  facts: ReadonlyMap<string, Facts>;
  /** Hosts whose package is installed by this run (from resolveBackend). */
  installs: ReadonlyMap<string, { package: string; aptUpdate: boolean }>;
  random: RandomBytes;
  /** Delete managed files of pairs no longer planned (false: --no-prune keeps them). */
  prune: boolean;
  /** Conn names of pairs whose key is replaced although both peers agree (--rotate-psk). */
  rotate?: ReadonlySet<string>;
}

/**
 * Desired state against facts: what to write, where, and which service action follows.
 * Pure but for `random`, which makes the keys of new or repaired pairs. The hosts hold the
 * keys: a pair keeps its key while both peers have the same one.
 */
export function diff(input: DiffInput): { changeset: Changeset; problems: HostProblem[] } {
  const { plan, facts } = input;
  const problems: HostProblem[] = [];

  // Keys first: a pair's key depends on both peers' secrets files.
  const keys = new Map<string, { psk: string; state: KeyState }>();
  const pairs = new Map<string, PairChange>();
  const addressOf = new Map(plan.hosts.map((hp) => [hp.host.name, hp.host.address]));
  for (const pair of plan.pairs) {
    const fi = facts.get(pair.initiator);
    const fr = facts.get(pair.responder);
    if (!fi || !fr) continue;
    const path = pairFile(pair.name, 'secrets');
    const a = pskOf(fi.files.get(path)?.content);
    const b = pskOf(fr.files.get(path)?.content);
    let state: KeyState;
    let psk: string;
    const upBefore = saUp(fi, addressOf.get(pair.initiator)!, addressOf.get(pair.responder)!);
    let notRotated: string | undefined;
    if (a && a === b && input.rotate?.has(pair.name)) {
      // Only a pair that works is rotated: its old SA is what keeps traffic flowing, and
      // what a failed proof falls back to.
      if (upBefore) {
        state = 'rotated';
        psk = newPsk(input.random);
      } else {
        state = 'unchanged';
        psk = a;
        notRotated = `not rotated: ${pair.initiator} holds no ESP SAs with ${pair.responder}, so the pair is down`;
      }
    } else if (a && a === b) {
      state = 'unchanged';
      psk = a;
    } else {
      state = a || b ? 'repaired' : 'new';
      psk = newPsk(input.random);
    }
    keys.set(pair.name, { psk, state });
    pairs.set(pair.name, {
      name: pair.name, initiator: pair.initiator, responder: pair.responder, key: state, changed: false, upBefore,
      ...(notRotated ? { notRotated } : {}),
    });
  }

  const hosts: HostChange[] = [];
  const retired = new Map<string, string[]>();
  for (const hp of plan.hosts) {
    const f = facts.get(hp.host.name);
    if (!f) continue;
    const files: FileChange[] = [];
    const reload: ConnReload[] = [];
    const bringUp: string[] = [];
    const reauth: string[] = [];
    let secretsChanged = false;
    const conns: ConnReload[] = [];
    let blocked = false;
    const planned = new Set(hp.conns.flatMap((c) => [confPath(c), secretsPath(c)]));
    for (const c of hp.conns) {
      const key = keys.get(c.pair.name);
      if (!key) continue;
      const conf = confContent(hp, c);
      const wanted = [
        { path: confPath(c), mode: '0644' as const, secret: false, after: conf, shown: conf },
        {
          path: secretsPath(c), mode: '0600' as const, secret: true,
          after: secretsContent(hp, c, key.psk),
          shown: secretsContent(hp, c, key.state === 'unchanged' ? redacted('current') : redacted(key.state)),
        },
      ];
      let confChanged = false;
      let keyChanged = false;
      for (const w of wanted) {
        const found = f.files.get(w.path);
        if (found && !found.managed) {
          problems.push({
            host: hp.host.name,
            problem: `${w.path} exists and was not written by provision`,
            hint: `Rename the pair with \`name:\` in the inventory, or move the operator's file away if it is obsolete.`,
          });
          blocked = true;
          continue;
        }
        const action = !found ? 'create' : found.content !== w.after || found.mode !== w.mode.slice(1) ? 'update' : 'noop';
        // A secrets file rewritten with the same key (its mode fixed, say) is reread, no more.
        if (action !== 'noop' && w.secret) {
          secretsChanged = true;
          if (key.state !== 'unchanged') keyChanged = true;
        } else if (action !== 'noop') confChanged = true;
        files.push({
          path: w.path, mode: w.mode, action, pair: c.pair.name, secret: w.secret, after: w.after, shown: w.shown,
          ...(found?.content !== undefined ? { before: found.content } : {}),
          ...(w.secret ? { keyState: key.state } : {}),
        });
      }
      const auto = c.role === 'initiator' ? 'start' : c.pair.responderMode;
      conns.push({ name: c.pair.name, auto });
      // A changed conn is replaced (its SAs go with it) and brought up again. A changed key
      // alone keeps the SAs: both peers reread secrets, then the initiator re-authenticates.
      if (confChanged) {
        reload.push({ name: c.pair.name, auto });
        if (c.role === 'initiator') bringUp.push(c.pair.name);
      } else if (keyChanged && c.role === 'initiator') {
        reauth.push(c.pair.name);
      }
      if (confChanged || keyChanged) {
        const pc = pairs.get(c.pair.name);
        if (pc) pc.changed = true;
      }
    }
    if (blocked) continue;
    // Retire: managed files (ours, by their header) of pairs that are no longer planned.
    // An operator's own files are never managed, so never deleted.
    const unload: string[] = [];
    if (input.prune) {
      for (const found of f.files.values()) {
        if (!found.managed || planned.has(found.path)) continue;
        const of = pairOfFile(found.path);
        if (!of) continue;
        const secret = of.kind === 'secrets';
        files.push({
          path: found.path, mode: secret ? '0600' : '0644', action: 'delete', pair: of.name, secret,
          after: '', shown: '', ...(found.content !== undefined ? { before: found.content } : {}),
        });
        if (!secret) unload.push(of.name);
        const r = retired.get(of.name) ?? [];
        if (!r.includes(hp.host.name)) r.push(hp.host.name);
        retired.set(of.name, r);
      }
    }
    const install = input.installs.get(hp.host.name);
    // A host without pairs needs no include lines (and may have no ipsec at all).
    const includes = hp.conns.length ? f.missingIncludes : [];
    const change: HostChange = {
      host: hp.host.name,
      address: hp.host.address,
      backend: { id: hp.backend.id, package: hp.backend.package, version: hp.resolved.version, assumed: hp.resolved.assumed },
      ...(install ? { install } : {}),
      files,
      includes,
      ...serviceFor(hp, f, Boolean(install), includes.length > 0, reload.length > 0 || unload.length > 0 || secretsChanged),
      reload,
      bringUp,
      reauth,
      conns,
      unload,
    };
    hosts.push(change);
  }
  return {
    changeset: { version: 1, hosts, pairs: [...pairs.values()], retired: [...retired].map(([name, hs]) => ({ name, hosts: hs })) },
    problems,
  };
}

function serviceFor(hp: HostPlan, f: Facts, installing: boolean, includes: boolean, changed: boolean): Pick<HostChange, 'service' | 'serviceReason'> {
  if (hp.conns.length === 0) {
    return changed && f.running
      ? { service: 'reload', serviceReason: 'retired conns are taken down' }
      : { service: 'none', serviceReason: 'no pairs on this host' };
  }
  if (installing) return { service: 'restart', serviceReason: `${hp.backend.package} is installed by this run` };
  if (includes) return { service: 'restart', serviceReason: 'include lines were added' };
  if (!f.running) return { service: 'restart', serviceReason: 'ipsec is not running' };
  if (changed) return { service: 'reload', serviceReason: 'only what changed; other tunnels stay up' };
  return { service: 'none', serviceReason: 'nothing changed' };
}
