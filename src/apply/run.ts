import pLimit from 'p-limit';
import type { HostSpec, Inventory } from '../inventory/types.js';
import { plan as makePlan, offlineResolver, type Plan, type Resolved } from '../plan/plan.js';
import type { PlannedPair } from '../plan/pairs.js';
import type { RandomBytes } from '../psk.js';
import { ConnectError, HostKeyError, tail } from '../remote/errors.js';
import { FACTS_SCRIPT, parseFacts, type Facts } from '../remote/facts.js';
import type { Session } from '../remote/session.js';
import { judge, parseVerify, settleScript, verifyScript } from '../verify/esp.js';
import type { HostChange } from './changeset.js';
import { diff } from './diff.js';
import type { DirectionResult, HostOutcome, Hooks, PairOutcome, RunResult } from './outcome.js';
import { resolveBackend } from './resolve.js';
import { bringUpScript, reloadScript, restartScript, WRITE_EXIT, writeScript } from './scripts.js';
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
  connect(host: HostSpec): Promise<Session>;
  hooks?: Hooks;
  now?: () => number;
}

/** Seconds each kind of step may take on a host before it counts as failed. */
export const STEP_TIMEOUT = { facts: 60, install: 900, write: 120, service: 120, verify: 90 } as const;

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
  const paired = new Set([...inv.pairs.flatMap((p) => p.hosts), ...inv.meshes.flatMap((m) => m.hosts)]);
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
    } catch {
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
  const { changeset, problems } = diff({ plan: p, facts: factsOf, installs, random: opts.random, prune: opts.prune ?? true });
  for (const pr of problems) {
    const s = states.get(pr.host)!;
    if (!s.outcome) fail(s, new StepFailure('plan', pr.problem, pr.hint), 'plan');
  }
  const changeOf = new Map(changeset.hosts.map((h) => [h.host, h]));

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
      const r = await exec(s, 'restart ipsec', restartScript(s.facts!.init, backend.afterRestart(change.conns)), STEP_TIMEOUT.service);
      if (r.code !== 0) throw new StepFailure('restart ipsec', `ipsec did not start: ${tail(r.stderr, 4)}`, 'See docs/troubleshooting.md for the daemon messages; `journalctl -u ipsec` on the host.');
      s.did.push(`ipsec restarted (${change.serviceReason})`);
    } else {
      const r = await exec(s, 'reload conns', reloadScript(change, backend), STEP_TIMEOUT.service);
      const names = [...change.reload.map((c) => c.name), ...change.unload].join(', ');
      if (r.code !== 0) throw new StepFailure('reload conns', `reloading ${names} failed: ${tail(r.stderr)}`, 'See docs/troubleshooting.md; `ipsec status` on the host.');
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

  // Verify every pair whose two hosts are fine: both ends capture while pinging each other.
  const toVerify = p.pairs.filter((pair) => pairHostsOk(pair));
  if (interrupted()) return finish();
  if (!opts.verify) {
    for (const pair of toVerify) {
      pairOutcomes.set(pair.name, { name: pair.name, initiator: pair.initiator, responder: pair.responder, status: 'unverified', reason: '--no-verify' });
    }
  } else {
    await Promise.all(toVerify.map((pair) => limit(async () => {
      const o = await verifyPair(pair, states, exec);
      pairOutcomes.set(pair.name, o);
      hooks.onPairDone?.(o);
    })));
  }
  return finish();
}

function hasWrites(change: HostChange): boolean {
  return change.includes.length > 0 || change.files.some((f) => f.action !== 'noop');
}

type Exec = (s: HostState, step: string, script: string, timeoutSec: number) => Promise<{ code: number | null; stdout: string; stderr: string }>;

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
