import type { Ctx } from '../../src/apply/context.js';
import { PHASES, runPhases } from '../../src/apply/execute.js';
import { guardPhase, joinGuardPhase } from '../../src/apply/phases/guard.js';
import { rollBackHalfDone } from '../../src/apply/phases/half-done.js';
import { installPhase } from '../../src/apply/phases/install.js';
import { provePhase } from '../../src/apply/phases/prove.js';
import { bringUpPhase, servicePhase } from '../../src/apply/phases/service.js';
import { type ExecuteOptions, newState, type Phase } from '../../src/apply/phases/state.js';
import { verifyPhase } from '../../src/apply/phases/verify.js';
import { keysPhase, writePhase } from '../../src/apply/phases/write.js';
import { NO_CANDIDATE } from '../../src/apply/steps/install.js';
import { loadInventory } from '../../src/inventory/load.js';
import { type PlanOptions, planChanges } from '../../src/plan/plan.js';
import { parseFacts } from '../../src/remote/facts.js';
import { SessionPool } from '../../src/remote/pool.js';
import { convergedFacts } from '../helpers/converged.js';
import { type Call, FRESH_FACTS, fakeFleet, READY_FACTS, type Responder } from '../helpers/fake-session.js';

// Each phase of the executor on its own: a state record in, fake sessions that answer by a
// step's id, the state and the commands sent checked after. run.test.ts and rotate.test.ts
// drive the whole pipeline; the lab e2e proves it on real servers.

const inv = loadInventory(
  `hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  c: {address: 10.0.0.3}
pairs:
  - [a, b]
  - [a, c]
`,
  'inv.yaml',
);
const OLD = (n: number) => new Uint8Array(n).fill(1);
const NEW = (n: number) => new Uint8Array(n).fill(2);

/** The facts text of each host after a first run with OLD keys, SAs up between every pair. */
const converged = (): Promise<Map<string, string>> => convergedFacts(inv, { random: OLD });

/** A context and a state as the executor starts them, from each host's facts text; the fakes answer `respond` first. */
function setup(factsText: (h: string) => string, o: { respond?: Responder; plan?: Partial<PlanOptions>; exec?: Partial<ExecuteOptions> } = {}) {
  const fake = fakeFleet(inv, { facts: factsText, ...(o.respond ? { respond: o.respond } : {}) });
  const abort = new AbortController();
  const ctx: Ctx = {
    pool: new SessionPool(fake.connect, 4),
    hooks: {},
    signal: abort.signal,
    states: new Map(),
    challenge: '0123456789abcdef0123456789abcdef',
    keep: '/run/provision/undo.abcdef',
  };
  const facts = new Map([...inv.hosts.keys()].map((h) => [h, parseFacts(factsText(h))]));
  for (const [h, spec] of inv.hosts) ctx.states.set(h, { spec, facts: facts.get(h)!, did: [] });
  const planOpts: PlanOptions = { mode: 'live', prune: true, retireLegacy: false, tool: 'test', ...o.plan };
  const replanned: string[][] = [];
  const s = newState(inv, planChanges(inv, facts, planOpts), {
    verify: true,
    random: NEW,
    createdAt: '2026-12-03T00:00:00Z',
    afterInstall: async (hosts) => {
      replanned.push([...hosts]);
      for (const h of hosts) facts.set(h, parseFacts(READY_FACTS));
      return planChanges(inv, facts, planOpts);
    },
    ...o.exec,
  });
  const ids = (host: string): string[] => fake.sent.filter((c) => c.host === host).map((c) => c.id);
  return { ctx, s, sent: fake.sent, ids, abort, replanned };
}

const answer =
  (host: string, id: string, r: { code?: number; stdout?: string; stderr?: string }): Responder =>
  (c: Call) =>
    c.host === host && c.id === id ? r : undefined;

describe('the order of the phases', () => {
  test('install, write, SSH path, guard, daemons, bring up, prove, verify, join: each before the next', () => {
    expect(PHASES.map((p) => p.name)).toEqual([
      'install',
      'keys',
      'write',
      'roll back pairs written on one end',
      'reread new keys',
      'ssh path',
      'guard',
      'restart or reload',
      'roll back pairs loaded on one end',
      'bring up',
      'prove new keys',
      'verify',
      'guard: join',
    ]);
  });

  test('after Ctrl-C only the phases that must run then run; the one for Ctrl-C runs only then', async () => {
    const ran: string[] = [];
    const mark = (name: string, when?: Phase['when']): Phase => ({ name, ...(when ? { when } : {}), run: async () => void ran.push(name) });
    const { ctx, s, abort } = setup(() => READY_FACTS);
    const phases = [mark('first'), mark('always', 'always'), mark('only after Ctrl-C', 'interrupted')];
    await runPhases(ctx, s, phases);
    expect(ran).toEqual(['first', 'always']);
    ran.length = 0;
    abort.abort();
    await runPhases(ctx, s, phases);
    expect(ran).toEqual(['always', 'only after Ctrl-C']);
  });
});

describe('install', () => {
  test('a host without packages installs, is read again and planned again', async () => {
    const { ctx, s, ids, replanned } = setup((h) => (h === 'c' ? FRESH_FACTS.replace('libreswan (none)', 'libreswan 4.10-2') : READY_FACTS));
    expect(s.plans.get('c')!.install).toBeDefined();
    await installPhase.run(ctx, s);
    expect(ids('c')).toEqual(['install']);
    expect(ids('a')).toEqual([]);
    expect(replanned).toEqual([['c']]);
    expect(s.plans.get('c')!.install).toBeUndefined();
    expect(ctx.states.get('c')!.did).toEqual(['installed libreswan nftables']);
  });

  test('an install apt has no candidate for fails that host only, and nothing is planned again', async () => {
    const { ctx, s, replanned } = setup((h) => (h === 'c' ? FRESH_FACTS : READY_FACTS), {
      respond: answer('c', 'install', { code: NO_CANDIDATE, stderr: 'E: 404' }),
    });
    await installPhase.run(ctx, s);
    expect(ctx.states.get('c')!.outcome).toMatchObject({ status: 'failed', step: 'install (auto)' });
    expect(ctx.states.get('a')!.outcome).toBeUndefined();
    expect(replanned).toEqual([]);
  });
});

describe('write', () => {
  test('keys are drawn for every pair; each host that changes is written once; a refused config fails that host alone', async () => {
    const { ctx, s, ids } = setup(() => READY_FACTS, { respond: answer('b', 'write', { code: 30, stderr: 'addconn: syntax error' }) });
    await keysPhase.run(ctx, s);
    await writePhase.run(ctx, s);
    expect([...s.keys.keys()].sort()).toEqual(['a--b', 'a--c']);
    expect(['a', 'b', 'c'].map(ids)).toEqual([['write'], ['write'], ['write']]);
    expect([...s.wrote].sort()).toEqual(['a', 'c']);
    expect(ctx.states.get('b')!.outcome).toMatchObject({ status: 'failed', step: 'check config', exitCode: 30 });
  });
});

describe('roll back pairs changed on one end', () => {
  async function halfRotated(daemonsLoaded: boolean) {
    const facts = await converged();
    const t = setup((h) => facts.get(h)!, { plan: { rotate: new Set(['a--b']) }, respond: answer('b', 'write', { code: 1 }) });
    await keysPhase.run(t.ctx, t.s);
    await writePhase.run(t.ctx, t.s);
    await rollBackHalfDone(daemonsLoaded).run(t.ctx, t.s);
    return t;
  }

  test('before the daemons loaded: the end that was written gets its files back, nothing reloads', async () => {
    const { s, ids } = await halfRotated(false);
    expect([...s.rolledBack]).toEqual(['a--b']);
    expect(ids('a')).toEqual(['write', 'roll-back-files']);
    expect(s.outcomes.get('a--b')).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/^not changed: b failed at write; a has the previous files back/),
    });
    expect(s.outcomes.has('a--c')).toBe(false);
  });

  test('once the daemons loaded: the files come back and the daemon rereads them', async () => {
    const { ids } = await halfRotated(true);
    expect(ids('a')).toEqual(['write', 'roll-back-files', 'roll-back-reload']);
  });
});

describe('guard', () => {
  test("a peer whose pair was rolled back stays out of the host's guard", async () => {
    const { ctx, s } = setup(() => READY_FACTS);
    s.rolledBack.add('a--b');
    await guardPhase.run(ctx, s);
    expect(s.leftOut.get('a')).toEqual(['10.0.0.2']);
    expect(s.leftOut.get('c')).toEqual([]);
  });

  test('only peers whose pair verified join', async () => {
    const { ctx, s, sent } = setup(() => READY_FACTS);
    for (const h of s.cs.hosts) if (h.guard) h.guard.joinsVerified = (h.guard.joins ?? []).map((j) => ({ ...j }));
    s.outcomes.set('a--b', { name: 'a--b', initiator: 'a', responder: 'b', status: 'verified', directions: [] });
    s.outcomes.set('a--c', { name: 'a--c', initiator: 'a', responder: 'c', status: 'failed', reason: 'no ESP', directions: [] });
    await joinGuardPhase.run(ctx, s);
    // The guard's file for the next boot, then the verified peer added to the loaded table.
    const joinA = sent.filter((c) => c.host === 'a' && c.id === 'guard-join');
    expect(joinA.length).toBe(2);
    expect(joinA[1]!.script).toContain('nft add element inet provision_inv peers4 { 10.0.0.2 }');
    expect(sent.filter((c) => c.host === 'c' && c.id === 'guard-join')).toEqual([]);
  });
});

describe('restart or reload', () => {
  test('a daemon that will not start with the new files gets the previous files back and starts again; the host fails', async () => {
    // An include line missing: the daemon restarts to read it.
    const facts = READY_FACTS.replace('present /etc/ipsec.secrets', 'missing /etc/ipsec.secrets');
    const { ctx, s, ids } = setup(() => facts, { respond: answer('a', 'restart', { code: 1, stderr: 'pluto: cannot load' }) });
    await keysPhase.run(ctx, s);
    await writePhase.run(ctx, s);
    await servicePhase.run(ctx, s);
    expect(ids('a')).toEqual(['write', 'restart', 'roll-back-files', 'roll-back-restart']);
    expect(s.wrote.has('a')).toBe(false);
    expect(ctx.states.get('a')!.outcome).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/previous files are back and ipsec runs again: .*pluto: cannot load/),
    });
    expect(ids('b')).toEqual(['write', 'restart']);
  });

  test('bring up: the pairs a restarted initiator starts, not those rolled back', async () => {
    const { ctx, s, sent } = setup(() => READY_FACTS);
    s.rolledBack.add('a--c');
    await bringUpPhase.run(ctx, s);
    const up = sent.filter((c) => c.id === 'bring-up');
    expect(up.map((c) => c.host)).toEqual(['a']);
    expect(up[0]!.script).toContain('a--b');
    expect(up[0]!.script).not.toContain('a--c');
  });
});

describe('prove new keys, verify and roll back', () => {
  async function rotated(respond: Responder) {
    const facts = await converged();
    const t = setup((h) => facts.get(h)!, { plan: { rotate: new Set(['a--b']) }, respond });
    for (const p of PHASES.slice(0, PHASES.indexOf(provePhase))) await p.run(t.ctx, t.s);
    return t;
  }

  test('a new key the peer refuses is a failed proof of that pair, not a failed host', async () => {
    const { ctx, s } = await rotated(answer('a', 'reauth', { code: 1, stderr: 'AUTHENTICATION_FAILED' }));
    await provePhase.run(ctx, s);
    expect(s.proofFailed.get('a--b')).toMatch(/the new key did not authenticate with b: AUTHENTICATION_FAILED/);
    expect(ctx.states.get('a')!.outcome).toBeUndefined();
  });

  test('a pair that worked before and whose new key failed is rolled back on both ends, brought up with the old key and verified again', async () => {
    const { ctx, s, sent } = await rotated(answer('a', 'reauth', { code: 1, stderr: 'AUTHENTICATION_FAILED' }));
    await provePhase.run(ctx, s);
    const before = sent.length;
    await verifyPhase.run(ctx, s);
    const after = sent.slice(before).map((c) => `${c.host}:${c.id}`);
    expect(after.filter((x) => x.includes('roll-back')).sort()).toEqual([
      'a:roll-back-files',
      'a:roll-back-reload',
      'a:roll-back-up',
      'b:roll-back-files',
      'b:roll-back-reload',
    ]);
    expect(s.outcomes.get('a--b')).toMatchObject({ status: 'rolled-back', restored: expect.stringMatching(/ESP-verified/) });
    expect(s.outcomes.get('a--c')).toMatchObject({ status: 'verified' });
  });
});
