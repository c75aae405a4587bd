import pLimit from 'p-limit';
import type { HostSpec, Inventory } from '../inventory/types.js';
import { plan as makePlan, offlineResolver, type Plan, type Resolved } from '../plan/plan.js';
import type { PlannedPair } from '../inventory/types.js';
import type { RandomBytes } from '../psk.js';
import { ConnectError, HostKeyError, tail } from '../remote/errors.js';
import { FACTS_SCRIPT, parseFacts, type Facts } from '../remote/facts.js';
import type { Session } from '../remote/session.js';
import { judge, parseVerify, settleScript, verifyScript } from '../verify/esp.js';
import type { HostChange } from './changeset.js';
import { diff } from './diff.js';
import type { DirectionResult, HostOutcome, Hooks, PairOutcome, RunResult } from './outcome.js';
import { resolveBackend } from './resolve.js';
import { bringUpScript, reloadScript, restartScript, undoChange, WRITE_EXIT, writeScript } from './scripts.js';
import { BACKENDS } from '../backends/index.js';

export interface RunOptions {
  dryRun: boolean;
  verify: boolean;
  concurrency: number;
  /** Host names to act on; undefined means all. */
  limit?: ReadonlySet<string>;
  random: RandomBytes;
  /** Aborted on Ctrl-C: no new step starts; the ones under way finish. */
  signal?: AbortSignal;
  /** Delete managed files of pairs no longer in the inventory (default true; --no-prune). */
  prune?: boolean;
  /** Conn names of pairs to give a new key (--rotate-psk). */
  rotate?: ReadonlySet<string>;
  connect(host: HostSpec): Promise<Session>;
  hooks?: Hooks;
  now?: () => number;
}

/** Seconds each kind of step may take on a host before it counts as failed. */
export const STEP_TIMEOUT = { facts: 60, install: 900, write: 120, service: 120, reauth: 60, verify: 90 } as const;

class StepFailure extends Error {
  constructor(readonly step: string, message: string, readonly hint: string) {
    super(message);
  }
}

interface HostState {
  spec: HostSpec;
  session?: Session;
  facts?: Facts;
  resolved?: Resolved;
  install?: { package: string; aptUpdate: boolean };
  outcome?: HostOutcome;
  did: string[];
}

const failedStatuses = new Set(['failed', 'unreachable', 'refused']);

/**
 * One run: facts from every host, install where needed, then a plan and a changeset from
 * those facts; a dry run stops there. Otherwise write, restart or reload, bring pairs up,
 * and verify ESP on the wire. Phases are barriers, so both peers of a pair hold their
 * secrets before either side (re)loads it. A host that fails drops out; the rest go on.
 */
export async function run(inv: Inventory, opts: RunOptions): Promise<RunResult> {
  const now = opts.now ?? Date.now;
  const started = now();
  const hooks = opts.hooks ?? {};
  const limit = pLimit(Math.max(1, opts.concurrency));
  const states = new Map<string, HostState>();
  for (const spec of inv.hosts.values()) {
    if (!opts.limit || opts.limit.has(spec.name)) states.set(spec.name, { spec, did: [] });
  }
  const paired = new Set(inv.pairs.flatMap((p) => [p.left, p.right]));
  const active = (): HostState[] => [...states.values()].filter((s) => !s.outcome || !failedStatuses.has(s.outcome.status));

  const fail = (s: HostState, err: unknown, step: string): void => {
    let outcome: HostOutcome;
    if (err instanceof HostKeyError) outcome = { status: 'refused', error: err.message, hint: err.hint };
    else if (err instanceof ConnectError) outcome = { status: 'unreachable', error: err.message, hint: err.hint };
    else if (err instanceof StepFailure) outcome = { status: 'failed', step: err.step, error: err.message, hint: err.hint };
    else outcome = { status: 'failed', step, error: (err as Error).message ?? String(err), hint: 'This is a bug in provision if it repeats; please report it with the output.' };
    s.outcome = outcome;
    hooks.onHostDone?.(s.spec.name, outcome);
  };

  /** Runs `fn` for every host still in the game, at most `concurrency` at once. */
  const interrupted = (): boolean => opts.signal?.aborted === true;
  const phase = async (hosts: HostState[], step: string, fn: (s: HostState) => Promise<void>): Promise<void> => {
    await Promise.all(hosts.map((s) => limit(async () => {
      if (interrupted()) return;
      try {
        await fn(s);
      } catch (err) {
        fail(s, err, step);
      }
    })));
  };

  const exec = async (s: HostState, step: string, script: string, timeoutSec: number, stdin?: string) => {
    hooks.onStep?.(s.spec.name, step);
    const r = await s.session!.run(script, { timeoutSec, ...(stdin !== undefined ? { stdin } : {}) });
    if (r.code !== 0 && /sudo: (a password is required|a terminal is required)/.test(r.stderr)) {
      throw new StepFailure(step, `sudo wants a password for ${s.spec.ssh.user}`,
        `Allow ${s.spec.ssh.user} passwordless sudo (NOPASSWD in /etc/sudoers.d/), or connect as root.`);
    }
    if (r.timedOut) throw new StepFailure(step, `${step} did not finish within ${timeoutSec} s`, 'Look at the host: a hung apt, daemon or network; then re-run.');
    return r;
  };

  const gather = async (s: HostState): Promise<void> => {
    const r = await exec(s, 'facts', FACTS_SCRIPT, STEP_TIMEOUT.facts);
    try {
      s.facts = parseFacts(r.stdout);
    } catch (err) {
      if (/changed while/.test((err as Error).message)) throw new StepFailure('facts', (err as Error).message, 'Something else is editing /etc/ipsec.d: let it finish, then re-run.');
      throw new StepFailure('facts', `could not read the host's state: ${tail(r.stderr) || 'no output'}`, 'Check the login shell is sh-compatible and coreutils are installed.');
    }
    const res = resolveBackend(s.spec, s.facts);
    // A host in no pair gets nothing installed; its backend matters only to take down
    // conns of retired pairs, so not knowing it is no failure.
    if (!paired.has(s.spec.name)) {
      if (res.ok) s.resolved = res.resolved;
      return;
    }
    if (!res.ok) throw new StepFailure('facts', res.problem, res.hint);
    s.resolved = res.resolved;
    s.install = res.install ? { package: BACKENDS[res.resolved.backend].package, aptUpdate: res.needsAptUpdate } : undefined;
  };

  // Facts: connect and look, every host at once (bounded by --concurrency).
  await phase([...states.values()], 'connect', async (s) => {
    hooks.onStep?.(s.spec.name, 'connect');
    s.session = await opts.connect(s.spec);
    await gather(s);
  });

  // Install where the package is missing (apt-get update first when apt knows no candidate).
  if (!opts.dryRun) {
    await phase(active().filter((s) => s.install), 'install', async (s) => {
      const pkg = s.install!.package;
      const r = await exec(s, `install ${pkg}`, installScript(pkg), STEP_TIMEOUT.install);
      if (r.code !== 0) throw installFailure(pkg, r.stderr + r.stdout);
      s.did.push(`installed ${pkg}`);
      const installed = s.install;
      await gather(s);
      s.install = installed;
    });
  }

  // Plan and diff on what the hosts have. A host without facts keeps the offline assumption;
  // its pairs are skipped below.
  const resolvedOf = new Map([...states.values()].filter((s) => s.resolved).map((s) => [s.spec.name, s.resolved!]));
  const p: Plan = makePlan(inv, (h) => resolvedOf.get(h.name) ?? offlineResolver(h));
  const ok = new Set(active().filter((s) => s.facts).map((s) => s.spec.name));
  const factsOf = new Map([...states.values()].filter((s) => s.facts && ok.has(s.spec.name)).map((s) => [s.spec.name, s.facts!]));
  const installs = new Map([...states.values()].filter((s) => s.install).map((s) => [s.spec.name, s.install!]));
  const { changeset, problems } = diff({
    plan: p, facts: factsOf, installs, random: opts.random, prune: opts.prune ?? true, ...(opts.rotate ? { rotate: opts.rotate } : {}),
  });
  for (const pr of problems) {
    const s = states.get(pr.host)!;
    if (!s.outcome) fail(s, new StepFailure('plan', pr.problem, pr.hint), 'plan');
  }
  const changeOf = new Map(changeset.hosts.map((h) => [h.host, h]));
  const pairChangeOf = new Map(changeset.pairs.map((pc) => [pc.name, pc]));

  const pairOutcomes = new Map<string, PairOutcome>();
  const skipPair = (pair: PlannedPair, reason: string): void => {
    const o: PairOutcome = { name: pair.name, initiator: pair.initiator, responder: pair.responder, status: 'skipped', reason };
    pairOutcomes.set(pair.name, o);
  };
  const pairHostsOk = (pair: PlannedPair): boolean => {
    for (const h of [pair.initiator, pair.responder]) {
      const s = states.get(h);
      if (!s) {
        skipPair(pair, `${h} is outside --limit`);
        return false;
      }
      if (!s.outcome || !failedStatuses.has(s.outcome.status)) continue;
      skipPair(pair, `${h} ${s.outcome.status}`);
      return false;
    }
    return true;
  };

  const finish = async (): Promise<RunResult> => {
    const sessions = [...states.values()].filter((s) => s.session);
    const commands = sessions.reduce((n, s) => n + s.session!.commands, 0);
    await Promise.all(sessions.map((s) => s.session!.close().catch(() => undefined)));
    for (const pair of p.pairs) if (!pairOutcomes.has(pair.name)) pairHostsOk(pair);
    for (const s of states.values()) {
      if (s.outcome) continue;
      s.outcome = interrupted() ? { status: 'interrupted', did: s.did }
        : opts.dryRun ? { status: 'planned' } : s.did.length ? { status: 'changed', did: s.did } : { status: 'unchanged' };
      hooks.onHostDone?.(s.spec.name, s.outcome);
    }
    return {
      dryRun: opts.dryRun,
      interrupted: interrupted(),
      hosts: new Map([...inv.hosts.keys()].filter((h) => states.has(h)).map((h) => [h, states.get(h)!.outcome!])),
      pairs: p.pairs.map((pair) => pairOutcomes.get(pair.name)).filter((x): x is PairOutcome => Boolean(x)),
      changeset,
      warnings: p.warnings,
      stats: { hosts: states.size, connections: sessions.length, commands, wallMs: now() - started },
    };
  };

  // A rotation that was asked for and cannot be done safely is a failure of that pair.
  for (const pc of changeset.pairs) {
    if (pc.notRotated) pairOutcomes.set(pc.name, { name: pc.name, initiator: pc.initiator, responder: pc.responder, status: 'failed', reason: pc.notRotated, directions: [] });
  }

  if (opts.dryRun) return finish();

  // Write every changed file, then check the config; a refused config is put back.
  await phase(active().filter((s) => changeOf.get(s.spec.name) && hasWrites(changeOf.get(s.spec.name)!)), 'write', async (s) => {
    const change = changeOf.get(s.spec.name)!;
    const { script, stdin } = writeScript(change, BACKENDS[change.backend.id]);
    const r = await exec(s, 'write', script, STEP_TIMEOUT.write, stdin);
    if (r.code === WRITE_EXIT.checkFailed) {
      throw new StepFailure('check config', `${change.backend.package} rejected the new config, the previous files are back: ${tail(r.stderr)}`,
        'Look at the named file and line; this may be an operator conn in /etc/ipsec.d that no longer parses.');
    }
    if (r.code !== 0) throw new StepFailure('write', `writing files failed (exit ${r.code}): ${tail(r.stderr)}`, 'Nothing was left half-written; fix the cause and re-run.');
    const n = change.files.filter((f) => f.action === 'create' || f.action === 'update').length;
    const d = change.files.filter((f) => f.action === 'delete').length;
    const parts = [n ? `${n} file${n === 1 ? '' : 's'} written` : '', d ? `${d} deleted` : '', change.includes.length ? `${change.includes.length} include line(s) added` : ''];
    s.did.push(parts.filter(Boolean).join(', '));
  });

  // Restart where the package is new, includes changed or ipsec is down; else reload what changed.
  await phase(active().filter((s) => ['restart', 'reload'].includes(changeOf.get(s.spec.name)?.service ?? 'none')), 'service', async (s) => {
    const change = changeOf.get(s.spec.name)!;
    const backend = BACKENDS[change.backend.id];
    if (change.service === 'restart') {
      const restart = restartScript(s.facts!.init, backend.afterRestart(change.conns));
      const r = await exec(s, 'restart ipsec', restart, STEP_TIMEOUT.service);
      if (r.code !== 0) {
        const why = tail(r.stderr, 4);
        if (!change.files.some((f) => f.action !== 'noop') || !s.facts!.running) {
          throw new StepFailure('restart ipsec', `ipsec did not start: ${why}`, 'See docs/troubleshooting.md for the daemon messages; `journalctl -u ipsec` on the host.');
        }
        // It ran before this change: put the previous files back and start it again.
        const undo = writeScript(undoChange(change), backend);
        const w = await exec(s, 'roll back files', undo.script, STEP_TIMEOUT.write, undo.stdin);
        const again = w.code === 0 ? await exec(s, 'restart ipsec (previous files)', restart, STEP_TIMEOUT.service) : undefined;
        if (again?.code === 0) {
          throw new StepFailure('restart ipsec', `ipsec did not start with the new files, so the previous files are back and ipsec runs again: ${why}`,
            'Nothing changed on this host. Read the daemon message above (docs/troubleshooting.md), fix the cause, then re-run.');
        }
        throw new StepFailure('restart ipsec', `ipsec did not start with the new files, and rolling back ${w.code === 0 ? 'did not start it either' : 'failed'}: ${why}`,
          'ipsec is DOWN on this host: `journalctl -u ipsec -n 50` there; see docs/troubleshooting.md.');
      }
      s.did.push(`ipsec restarted (${change.serviceReason})`);
    } else {
      const r = await exec(s, 'reload conns', reloadScript(change, backend), STEP_TIMEOUT.service);
      const names = [...change.reload.map((c) => c.name), ...change.unload].join(', ');
      if (r.code !== 0) throw new StepFailure('reload conns', `reloading ${names} failed: ${tail(r.stderr)}`, 'See docs/troubleshooting.md; `ipsec status` on the host.');
      if (change.files.some((f) => f.secret && f.action !== 'noop' && f.action !== 'delete')) s.did.push('secrets reread');
      if (change.reload.length) s.did.push(`reloaded ${change.reload.map((c) => c.name).join(', ')}`);
      if (change.unload.length) s.did.push(`retired ${change.unload.join(', ')}`);
    }
  });

  // Initiators bring up the pairs they reloaded; a restarted daemon starts its auto=start conns itself.
  await phase(active().filter((s) => changeOf.get(s.spec.name)?.service === 'reload' && changeOf.get(s.spec.name)!.bringUp.length), 'bring up', async (s) => {
    const change = changeOf.get(s.spec.name)!;
    const r = await exec(s, 'bring up', bringUpScript(change.bringUp, BACKENDS[change.backend.id]), STEP_TIMEOUT.service);
    if (r.code !== 0) throw new StepFailure('bring up', `starting ${change.bringUp.join(', ')} failed: ${tail(r.stderr + r.stdout)}`, 'Run `ipsec status` on the host; see docs/troubleshooting.md.');
  });

  // A new key alone (rotated or repaired): both peers have reread secrets; the initiator now
  // proves the key with a new IKE SA. A refusal is the pair's failure, not the host's.
  const proofFailed = new Map<string, string>();
  const reauthOf = (pair: PlannedPair): boolean => {
    const c = changeOf.get(pair.initiator);
    return Boolean(c && c.service === 'reload' && c.reauth.includes(pair.name));
  };
  await Promise.all(p.pairs.filter((pair) => reauthOf(pair) && pairHostsOk(pair)).map((pair) => limit(async () => {
    if (interrupted()) return;
    const s = states.get(pair.initiator)!;
    const backend = BACKENDS[changeOf.get(pair.initiator)!.backend.id];
    try {
      const r = await exec(s, `re-authenticate ${pair.name}`, backend.reauth(pair.name), STEP_TIMEOUT.reauth);
      if (r.code !== 0) proofFailed.set(pair.name, `the new key did not authenticate with ${pair.responder}: ${tail(r.stderr)}`);
      else s.did.push(`re-authenticated ${pair.name} with its new key`);
    } catch (err) {
      proofFailed.set(pair.name, (err as Error).message);
    }
  })));

  // Verify every pair whose two hosts are fine: both ends capture while pinging each other.
  const toVerify = p.pairs.filter((pair) => !pairOutcomes.has(pair.name) && pairHostsOk(pair));
  if (interrupted()) return finish();
  const verifyOrProof = async (pair: PlannedPair): Promise<PairOutcome> => {
    const failed = proofFailed.get(pair.name);
    if (failed) return { name: pair.name, initiator: pair.initiator, responder: pair.responder, status: 'failed', reason: failed, directions: [] };
    return verifyPair(pair, states, exec);
  };
  if (!opts.verify) {
    await Promise.all(toVerify.map((pair) => limit(async () => {
      const failed = proofFailed.get(pair.name);
      const base = { name: pair.name, initiator: pair.initiator, responder: pair.responder };
      // A refused key took the pair down: it gets its old key back (and is verified then) even under --no-verify.
      const final: PairOutcome = !failed ? { ...base, status: 'unverified', reason: '--no-verify' }
        : pairChangeOf.get(pair.name)?.upBefore && !interrupted() ? await rollBack(pair, failed)
          : { ...base, status: 'failed', reason: failed, directions: [] };
      pairOutcomes.set(pair.name, final);
      if (failed) hooks.onPairDone?.(final);
    })));
  } else {
    await Promise.all(toVerify.map((pair) => limit(async () => {
      const o = await verifyOrProof(pair);
      // A pair that worked before this run and fails after its change gets its files back.
      const pc = pairChangeOf.get(pair.name);
      const final = o.status === 'failed' && pc?.changed && pc.upBefore && !interrupted() ? await rollBack(pair, o.reason) : o;
      pairOutcomes.set(pair.name, final);
      hooks.onPairDone?.(final);
    })));
  }
  return finish();

  /**
   * Put the pair's previous files back on both ends, make the daemons take them (reread
   * secrets; replace the conn where it changed), bring the pair up with them and verify.
   */
  async function rollBack(pair: PlannedPair, why: string): Promise<PairOutcome> {
    const base = { name: pair.name, initiator: pair.initiator, responder: pair.responder };
    const ends = [states.get(pair.initiator)!, states.get(pair.responder)!];
    try {
      await Promise.all(ends.map(async (s) => {
        const change = changeOf.get(s.spec.name)!;
        const backend = BACKENDS[change.backend.id];
        const undo = undoChange(change, (f) => f.pair === pair.name);
        const { script, stdin } = writeScript(undo, backend);
        const w = await exec(s, `roll back ${pair.name}`, script, STEP_TIMEOUT.write, stdin);
        if (w.code !== 0) throw new Error(`restoring the files on ${s.spec.name} failed: ${tail(w.stderr)}`);
        const reload = change.reload.filter((c) => c.name === pair.name);
        const r = await exec(s, `roll back ${pair.name}: reload`, reloadScript({ unload: [], reload }, backend), STEP_TIMEOUT.service);
        if (r.code !== 0) throw new Error(`reloading the previous files on ${s.spec.name} failed: ${tail(r.stderr)}`);
      }));
      const initiator = ends[0]!;
      const r = await exec(initiator, `roll back ${pair.name}: bring up`, BACKENDS[changeOf.get(pair.initiator)!.backend.id].reauth(pair.name), STEP_TIMEOUT.reauth);
      if (r.code !== 0) throw new Error(`the previous files are back but the pair did not come up with them: ${tail(r.stderr)}`);
    } catch (err) {
      return { ...base, status: 'failed', reason: `${why}; rolling back failed: ${(err as Error).message}`, directions: [] };
    }
    const after = await verifyPair(pair, states, exec);
    return {
      ...base, status: 'rolled-back', reason: why,
      restored: after.status === 'verified' ? 'the previous files are back and the pair is ESP-verified with them' : `the previous files are back, but the pair does not verify with them either: ${after.status === 'failed' ? after.reason : after.status}`,
      directions: after.status === 'verified' || after.status === 'failed' ? after.directions : [],
    };
  }
}

function hasWrites(change: HostChange): boolean {
  return change.includes.length > 0 || change.files.some((f) => f.action !== 'noop');
}

type Exec = (s: HostState, step: string, script: string, timeoutSec: number, stdin?: string) => Promise<{ code: number | null; stdout: string; stderr: string }>;

async function verifyPair(pair: PlannedPair, states: Map<string, HostState>, exec: Exec): Promise<PairOutcome> {
  const base = { name: pair.name, initiator: pair.initiator, responder: pair.responder };
  const ends = [states.get(pair.initiator)!, states.get(pair.responder)!] as const;
  let directions: DirectionResult[];
  try {
    // Both ends settle first: one end can hold its SAs seconds before the other does, and
    // pinging then would only measure that gap.
    await Promise.all(ends.map((s, i) => exec(s, `verify ${pair.name}: wait for SAs`, settleScript(s.spec.address, ends[1 - i]!.spec.address), STEP_TIMEOUT.verify)));
    directions = await Promise.all(ends.map(async (s, i) => {
      const peer = ends[1 - i]!;
      const r = await exec(s, `verify ${pair.name}: ping + tcpdump`, verifyScript(peer.spec.address), STEP_TIMEOUT.verify);
      const counts = parseVerify(r.stdout, s.spec.address, peer.spec.address);
      return { from: s.spec.name, to: peer.spec.name, verdict: judge(counts), counts };
    }));
  } catch (err) {
    return { ...base, status: 'failed', reason: `verification could not run: ${(err as Error).message}`, directions: [] };
  }
  const bad = directions.filter((d) => d.verdict !== 'encrypted');
  if (bad.length === 0) return { ...base, status: 'verified', directions };
  const reason = bad.map((d) => {
    switch (d.verdict) {
      case 'clear-text': return `${d.from} sent ${d.counts.clearOut} clear-text ICMP packet(s) to ${d.to}`;
      case 'error': return `tcpdump failed on ${d.from}`;
      case 'no-reply': return `ESP flows both ways but ${d.from}'s pings to ${d.to} got no reply (0/${d.counts.sent}): SAs out of step`;
      default: return `no ESP ${d.counts.espOut === 0 ? `from ${d.from}` : `to ${d.from}`} (out ${d.counts.espOut}, in ${d.counts.espIn})`;
    }
  }).join('; ');
  return { ...base, status: 'failed', reason, directions };
}

function installScript(pkg: string): string {
  const apt = 'apt-get -q -o DPkg::Lock::Timeout=120';
  return `set -e
export DEBIAN_FRONTEND=noninteractive
if ! LC_ALL=C apt-cache policy ${pkg} 2>/dev/null | grep -q 'Candidate: [0-9]'; then ${apt} update >/dev/null; fi
${apt} -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install -y ${pkg} >/dev/null
`;
}

function installFailure(pkg: string, output: string): StepFailure {
  if (/Could not get lock|dpkg frontend lock|is held by process/.test(output)) {
    return new StepFailure(`install ${pkg}`, `another process held the dpkg lock for 120 s`, 'Wait for the other apt or unattended-upgrades run to finish (`ps aux | grep -E "apt|dpkg"`), then re-run.');
  }
  if (/Unable to locate package|has no installation candidate/.test(output)) {
    return new StepFailure(`install ${pkg}`, `apt has no package ${pkg}`, 'Check /etc/apt/sources.list on the host, or choose another backend.');
  }
  return new StepFailure(`install ${pkg}`, `apt-get install ${pkg} failed: ${tail(output)}`, 'Run `apt-get install ' + pkg + '` on the host to see the whole error; fix apt, then re-run.');
}
