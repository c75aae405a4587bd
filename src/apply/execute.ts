import { BACKENDS } from '../backends/index.js';
import type { RandomBytes } from '../core/psk.js';
import { quote } from '../core/shell.js';
import type { Inventory } from '../inventory/types.js';
import { drawKeys } from '../plan/keys.js';
import type { Changeset, HostPlan, PairPlan } from '../plan/types.js';
import { alive, type Ctx, fail, failed, interrupted, phase, runStep, STEP_TIMEOUT } from './context.js';
import type { PairOutcome } from './outcome.js';
import { settleCrossed } from './steps/crossing.js';
import { describeWrite, undoSet, writeFiles, writeSet } from './steps/files.js';
import { applyGuard, applySshPath, joinGuard } from './steps/guard.js';
import { install } from './steps/install.js';
import { compareKeys, probeKey } from './steps/keys.js';
import { bringUp, reauth, reload, restart } from './steps/service.js';
import { undoPair } from './steps/undo.js';
import { verifyPairs } from './steps/verify.js';

export interface ExecuteOptions {
  verify: boolean;
  random: RandomBytes;
  /** Facts again for the hosts that installed, and the plan made anew from them (an explicit step). */
  afterInstall(hosts: ReadonlySet<string>): Promise<Changeset>;
}

/**
 * Applies a changeset, phase by phase; a phase is a barrier, so both peers of a pair hold
 * their new files before either side loads them. A host that fails drops out; the rest go
 * on. A key change lands on both ends of a pair or on neither: where one end failed, the
 * other gets its previous files back (and rereads them), even after Ctrl-C.
 */
export async function execute(ctx: Ctx, inv: Inventory, first: Changeset, opts: ExecuteOptions): Promise<Map<string, PairOutcome>> {
  const kept = new Set<string>();
  try {
    return await applySteps(ctx, inv, first, opts, kept);
  } finally {
    // The copies of what the write replaced (old keys among them) go with the run, even after
    // Ctrl-C; where this fails, the next run's write removes them.
    await Promise.all([...kept].map((h) => runStep(ctx, h, 'remove kept copies', `rm -rf -- ${quote(ctx.keep)}`, STEP_TIMEOUT.facts).catch(() => undefined)));
  }
}

async function applySteps(ctx: Ctx, inv: Inventory, first: Changeset, opts: ExecuteOptions, kept: Set<string>): Promise<Map<string, PairOutcome>> {
  let cs = first;
  const outcomes = new Map<string, PairOutcome>();
  const planOf = (h: string): HostPlan => cs.hosts.find((x) => x.host === h)!;
  const did = (h: string, what: string): void => void (what && ctx.states.get(h)!.did.push(what));

  // Install where packages are missing; what got installed is read again and planned for.
  const installing = cs.hosts.filter((h) => h.install && alive(ctx, h.host));
  const installed = new Set<string>();
  await phase(ctx, installing, async (h) => {
    const r = await install(ctx, h.host, h.install!);
    if (!r.ok) return fail(ctx, h.host, r.outcome);
    did(h.host, `installed ${r.packages}`);
    installed.add(h.host);
  });
  if (installed.size) cs = await opts.afterInstall(installed);
  for (const h of cs.hosts)
    if (h.status === 'blocked' && alive(ctx, h.host)) fail(ctx, h.host, failed('plan', h.problems.map((p) => p.problem).join('; '), h.problems[0]!.hint));

  const pairs = cs.pairs.filter((p) => !p.skipped);
  const keys = drawKeys(pairs, opts.random);
  for (const p of pairs)
    if (p.notRotated)
      outcomes.set(p.name, { name: p.name, initiator: p.initiator, responder: p.responder, status: 'failed', reason: p.notRotated, directions: [] });

  // Write every changed file, then check the config; a refused config is put back.
  const wrote = new Set<string>();
  const writing = cs.hosts.filter(
    (h) =>
      h.status === 'planned' &&
      alive(ctx, h.host) &&
      (h.includes.length || h.dropIncludes?.length || h.staleStaging.length || h.files.some((f) => f.action !== 'noop')),
  );
  await phase(ctx, writing, async (h) => {
    const set = writeSet(h, keys, { keep: ctx.keep });
    if (set.keep) kept.add(h.host);
    const r = await writeFiles(ctx, h.host, 'write', set, { backend: BACKENDS[h.backend.id], version: h.backend.version });
    if (!r.ok) return fail(ctx, h.host, r.outcome);
    wrote.add(h.host);
    did(h.host, describeWrite(set));
  });
  const touches = (h: string, p: PairPlan): boolean => planOf(h).files.some((f) => f.pair === p.name && f.action !== 'noop');
  const landed = (h: string, p: PairPlan): boolean => !touches(h, p) || wrote.has(h);

  /** Pairs whose change reached one end only: put back where it landed. */
  const undone = new Set<string>();
  const settleKeys = async (daemonsLoaded: boolean): Promise<void> => {
    for (const p of pairs) {
      if (undone.has(p.name) || !p.changed) continue;
      const ends = [p.initiator, p.responder];
      const broken = ends.find((h) => !alive(ctx, h) || !landed(h, p));
      if (!broken) continue;
      undone.add(p.name);
      const o = ctx.states.get(broken)!.outcome;
      const why =
        o && o.status !== 'unchanged' && o.status !== 'changed' && o.status !== 'planned' && o.status !== 'interrupted'
          ? `${broken} ${o.status === 'failed' ? `failed at ${o.step}` : o.status}`
          : `${broken} was not written (interrupted)`;
      const restored: string[] = [];
      const problems: string[] = [];
      for (const h of ends.filter((x) => touches(x, p) && wrote.has(x))) {
        const r = await undoPair(ctx, h, planOf(h), ctx.states.get(h)!.facts!, p.name, daemonsLoaded && alive(ctx, h));
        if (r.ok) restored.push(h);
        else problems.push(r.error);
      }
      const back = restored.length ? `; ${restored.join(' and ')} ${restored.length > 1 ? 'have' : 'has'} the previous files back` : '';
      outcomes.set(
        p.name,
        problems.length
          ? {
              name: p.name,
              initiator: p.initiator,
              responder: p.responder,
              status: 'failed',
              reason: `not changed: ${why}${back}; ${problems.join('; ')}`,
              directions: [],
            }
          : { name: p.name, initiator: p.initiator, responder: p.responder, status: 'skipped', reason: `not changed: ${why}${back}` },
      );
    }
  };
  await settleKeys(false);
  const keep = (names: readonly string[]): string[] => names.filter((n) => !undone.has(n));

  if (interrupted(ctx)) {
    // The new keys are on disk on both ends of their pairs; the daemons must hold them too.
    await Promise.all(
      [...wrote]
        .filter(
          (h) =>
            alive(ctx, h) &&
            ctx.states.get(h)!.facts!.running &&
            planOf(h).files.some((f) => f.kind === 'secrets' && f.action !== 'noop' && !undone.has(f.pair ?? '')),
        )
        .map(async (h) => {
          const r = await reload(ctx, h, { ...planOf(h), reload: [], unload: [] }, true);
          if (r.ok) for (const x of r.did) did(h, x);
        }),
    );
    return outcomes;
  }

  // The tool's SSH with a peer passes outside IPsec before any IKE daemon is touched.
  await phase(
    ctx,
    cs.hosts.filter((h) => alive(ctx, h.host) && h.sshPath),
    async (h) => {
      const r = await applySshPath(ctx, h);
      if (!r.ok) return fail(ctx, h.host, r.outcome);
      did(h.host, r.did);
    },
  );

  // The guard is in place, new peers included, before any IKE daemon is touched: neither a
  // restart nor a first negotiation can leak. A peer whose pair did not land stays out.
  const landedPair = new Map(pairs.map((p) => [p.name, p]));
  const stayOut = (h: HostPlan): string[] =>
    (h.guard?.joins ?? [])
      .filter((j) => {
        const p = landedPair.get(j.pair);
        return !p || undone.has(j.pair) || !alive(ctx, p.initiator) || !alive(ctx, p.responder);
      })
      .map((j) => j.address);
  const leftOut = new Map(cs.hosts.map((h) => [h.host, stayOut(h)]));
  await phase(
    ctx,
    cs.hosts.filter((h) => alive(ctx, h.host) && h.guard && (h.guard.load || h.guard.remove || h.guard.enableUnit)),
    async (h) => {
      const r = await applyGuard(ctx, h, cs.inventory.fleet, leftOut.get(h.host));
      if (!r.ok) return fail(ctx, h.host, r.outcome);
      did(h.host, r.did);
    },
  );

  // Restart where the package is new, includes changed or ipsec is down; else reload what changed.
  await phase(
    ctx,
    cs.hosts.filter((h) => alive(ctx, h.host) && h.service !== 'none'),
    async (h) => {
      const facts = ctx.states.get(h.host)!.facts!;
      if (h.service === 'reload') {
        const r = await reload(
          ctx,
          h.host,
          { ...h, reload: h.reload.filter((c) => !undone.has(c.name)) },
          h.files.some((f) => f.kind === 'secrets' && f.action !== 'noop'),
        );
        if (!r.ok) return fail(ctx, h.host, r.outcome);
        for (const x of r.did) did(h.host, x);
        return;
      }
      const conns = h.conns.filter((c) => !undone.has(c.name));
      const r = await restart(ctx, h.host, h, facts.init, conns);
      if (r.ok) return did(h.host, `ipsec restarted (${h.serviceReason})`);
      if (!r.refused || !wrote.has(h.host) || !facts.running) return fail(ctx, h.host, r.outcome);
      // It ran before this change: put the previous files back and start it again.
      const daemon = r.outcome.status === 'failed' ? (r.outcome.tail ?? '') : '';
      const w = await writeFiles(
        ctx,
        h.host,
        'roll back files',
        undoSet(h, ctx.keep, () => true),
        { backend: BACKENDS[h.backend.id], version: h.backend.version },
      );
      const again = w.ok ? await restart(ctx, h.host, h, facts.init, h.conns, 'restart ipsec (previous files)') : undefined;
      wrote.delete(h.host);
      fail(
        ctx,
        h.host,
        again?.ok
          ? failed(
              'restart ipsec',
              `ipsec did not start with the new files, so the previous files are back and ipsec runs again: ${daemon}`,
              'Nothing changed on this host. Read the daemon message above (docs/troubleshooting.md), fix the cause, then re-run.',
            )
          : failed(
              'restart ipsec',
              `ipsec did not start with the new files, and rolling back ${w.ok ? 'did not start it either' : 'failed'}: ${daemon}`,
              'ipsec is DOWN on this host: `journalctl -u ipsec -n 50` there; see docs/troubleshooting.md.',
            ),
      );
    },
  );
  await settleKeys(true);

  // Every daemon has loaded its pairs now (a barrier): initiators bring up the pairs they
  // reloaded and, where the daemon restarted, those not up yet (a daemon starts its own conns
  // as it comes up, possibly before its peer knew them), so no first negotiation is left
  // retrying against a peer that did not have the conn.
  const upNow = (h: HostPlan): string[] => keep(h.service === 'restart' ? h.conns.filter((c) => c.auto === 'start').map((c) => c.name) : h.bringUp);
  await phase(
    ctx,
    cs.hosts.filter((h) => alive(ctx, h.host) && (h.service === 'reload' || h.service === 'restart') && upNow(h).length),
    async (h) => {
      const r = await bringUp(ctx, h.host, h, upNow(h), h.service === 'restart');
      if (!r.ok) fail(ctx, h.host, r.outcome);
    },
  );

  // A new key alone (rotated or repaired): one end proves it with a new IKE SA (a strongSwan
  // end when there is one: make-before-break), or, --rotate-mode reread, both ends' keys are compared.
  const proofFailed = new Map<string, string>();
  const live = (p: PairPlan): boolean => !undone.has(p.name) && alive(ctx, p.initiator) && alive(ctx, p.responder);
  await phase(
    ctx,
    pairs.filter((p) => live(p) && p.reauthBy && planOf(p.reauthBy).service === 'reload' && planOf(p.reauthBy).reauth.includes(p.name)),
    async (p) => {
      const by = p.reauthBy!;
      const peer = by === p.initiator ? p.responder : p.initiator;
      const r = await reauth(ctx, by, planOf(by), p.name);
      if (r.ok) {
        did(by, `re-authenticated ${p.name} with its new key${BACKENDS[planOf(by).backend.id].makeBeforeBreak ? ' (make-before-break)' : ''}`);
        for (const [h, what] of await settleCrossed(ctx, p, planOf)) did(h, what);
      } else proofFailed.set(p.name, `the new key did not authenticate with ${peer}: ${r.reason.replace(/^the new key did not authenticate: /, '')}`);
    },
  );
  const compared = pairs.filter((p) => live(p) && p.proof === 'keys compared');
  if (compared.length) for (const [name, why] of await compareKeys(ctx, compared)) proofFailed.set(name, why);
  // One probe at a time on a host: each reloads the host's swanctl conns.
  const probing = new Map<string, PairPlan[]>();
  // Rotated keys whose probe could not run: both ends hold them, nothing has authenticated with them.
  const unproven = new Map<string, string>();
  for (const p of compared) if (p.probeBy && !proofFailed.has(p.name)) probing.set(p.probeBy, [...(probing.get(p.probeBy) ?? []), p]);
  await phase(ctx, [...probing], async ([by, ps]) => {
    for (const p of ps) {
      const peer = by === p.initiator ? p.responder : p.initiator;
      const r = await probeKey(ctx, by, planOf(by), p.name, inv.hosts.get(by)!.address, inv.hosts.get(peer)!.address);
      if (r.ok) did(by, `authenticated the new key of ${p.name} with a probe IKE SA; its SAs kept`);
      else if (r.refused) proofFailed.set(p.name, `the new key did not authenticate with ${peer}: ${r.reason}`);
      else {
        unproven.set(p.name, r.reason);
        did(by, `could not probe the new key of ${p.name} (${r.reason}); both ends hold it, and the next authentication uses it`);
      }
    }
  });
  if (interrupted(ctx)) return outcomes;

  // Verify every pair whose two hosts are fine, and roll back a pair that worked and broke.
  const toCheck = pairs.filter((p) => !outcomes.has(p.name) && alive(ctx, p.initiator) && alive(ctx, p.responder));
  const base = (p: PairPlan) => ({ name: p.name, initiator: p.initiator, responder: p.responder });
  const address = (h: string): string => inv.hosts.get(h)!.address;
  const verified = opts.verify
    ? await verifyPairs(
        ctx,
        inv.pairs.filter((x) => toCheck.some((p) => p.name === x.name) && !proofFailed.has(x.name)),
        address,
      )
    : new Map<string, PairOutcome>();
  const failures: [PairPlan, string][] = [];
  for (const p of toCheck) {
    const proof = proofFailed.get(p.name);
    const o: PairOutcome = proof
      ? { ...base(p), status: 'failed', reason: proof, directions: [] }
      : opts.verify
        ? (verified.get(p.name) ?? { ...base(p), status: 'failed', reason: 'not verified (interrupted)', directions: [] })
        : { ...base(p), status: 'unverified', reason: '--no-verify' };
    // A refused key took the pair down: it gets its old key back even under --no-verify.
    if (o.status === 'failed' && p.changed && p.upBefore && !interrupted(ctx)) failures.push([p, o.reason]);
    else if (unproven.has(p.name) && (o.status === 'verified' || o.status === 'unverified'))
      outcomes.set(p.name, { ...o, keyProof: 'unproven', keyProofReason: unproven.get(p.name)! });
    else outcomes.set(p.name, o);
  }
  await rollBack(ctx, failures, planOf, outcomes, address);
  for (const p of toCheck) if (outcomes.get(p.name)?.status !== 'unverified') ctx.hooks.onPairDone?.(outcomes.get(p.name)!);

  // Peers that carry the tool's SSH join the guard once their pair verified (on both ends).
  await phase(
    ctx,
    cs.hosts.filter((h) => alive(ctx, h.host) && h.guard?.joinsVerified.length),
    async (h) => {
      const joining = h.guard!.joinsVerified.filter((j) => outcomes.get(j.pair)?.status === 'verified').map((j) => j.address);
      if (!joining.length) return;
      const r = await joinGuard(ctx, h, cs.inventory.fleet, joining, leftOut.get(h.host));
      if (!r.ok) return fail(ctx, h.host, r.outcome);
      did(h.host, `guard: ${joining.join(', ')} joined (verified; SSH runs between the two)`);
    },
  );

  return outcomes;
}

/**
 * Puts the pairs' previous files back on both ends, makes the daemons take them, brings each
 * pair up with them and verifies it again.
 */
async function rollBack(
  ctx: Ctx,
  failures: [PairPlan, string][],
  planOf: (h: string) => HostPlan,
  outcomes: Map<string, PairOutcome>,
  address: (h: string) => string,
): Promise<void> {
  if (!failures.length) return;
  const back: [PairPlan, string][] = [];
  await phase(ctx, failures, async ([p, why]) => {
    const base = { name: p.name, initiator: p.initiator, responder: p.responder };
    for (const h of [p.initiator, p.responder]) {
      const r = await undoPair(ctx, h, planOf(h), ctx.states.get(h)!.facts!, p.name, true);
      if (!r.ok) return void outcomes.set(p.name, { ...base, status: 'failed', reason: `${why}; rolling back failed: ${r.error}`, directions: [] });
    }
    // A pair whose SAs were never replaced (keys compared, or a make-before-break end that kept
    // them) runs on as it was; the others come up with the old key.
    const by = p.reauthBy ?? p.initiator;
    const up = p.proof === 'keys compared' ? { ok: true as const } : await reauth(ctx, by, planOf(by), p.name, `roll back ${p.name}: bring up`);
    if (!up.ok)
      return void outcomes.set(p.name, {
        ...base,
        status: 'failed',
        reason: `${why}; rolling back failed: the previous files are back but the pair did not come up with them: ${up.reason}`,
        directions: [],
      });
    if (p.proof !== 'keys compared') for (const [h, what] of await settleCrossed(ctx, p, planOf)) ctx.states.get(h)!.did.push(what);
    back.push([p, why]);
  });
  const after = await verifyPairs(
    ctx,
    back.map(([p]) => p),
    address,
  );
  for (const [p, why] of back) {
    const a = after.get(p.name);
    outcomes.set(p.name, {
      name: p.name,
      initiator: p.initiator,
      responder: p.responder,
      status: 'rolled-back',
      reason: why,
      restored:
        a?.status === 'verified'
          ? 'the previous files are back and the pair is ESP-verified with them'
          : `the previous files are back, but the pair does not verify with them either: ${a?.status === 'failed' ? a.reason : 'not verified'}`,
      directions: a && (a.status === 'verified' || a.status === 'failed') ? a.directions : [],
    });
  }
}
