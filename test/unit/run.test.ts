import { createHash } from 'node:crypto';
import { type RunOptions, run } from '../../src/apply/run.js';
import { NO_CANDIDATE } from '../../src/apply/steps/install.js';
import { exitCode } from '../../src/cli.js';
import { loadInventory } from '../../src/inventory/load.js';
import { planChanges } from '../../src/plan/plan.js';
import { savePlan } from '../../src/plan/saved.js';
import { ConnectError, HostKeyError } from '../../src/remote/errors.js';
import { parseFacts } from '../../src/remote/facts.js';
import { toJson } from '../../src/report/json.js';
import { renderPlan } from '../../src/report/plan-text.js';
import { renderSummary } from '../../src/report/summary.js';
import { convergedFacts } from '../helpers/converged.js';
import { FRESH_FACTS, fakeFleet, READY_FACTS, type Responder, testMac, withFiles } from '../helpers/fake-session.js';

// The executor against fake sessions that answer by step. The lab e2e proves it for real.

const inv = loadInventory(
  `hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  c: {address: 10.0.0.3}
meshes:
  - {name: all, hosts: [a, b, c]}
`,
  'inv.yaml',
);

const fixed = (n: number) => new Uint8Array(n).fill(42);
const KEY = `0s${Buffer.from(fixed(32)).toString('base64')}`;

async function go(
  o: { respond?: Responder; facts?: (h: string) => string | undefined; connectFail?: Record<string, Error> } = {},
  extra: Partial<RunOptions> = {},
) {
  const fake = fakeFleet(inv, o);
  const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: fixed, connect: fake.connect, ...extra });
  return { result, sent: fake.sent, steps: fake.steps };
}

/** The files a host holds after a first run with these keys, its peers in the guard: what a re-run's facts show. */
const converged = (): Promise<Map<string, string>> => convergedFacts(inv, { random: fixed, saUp: false });

describe('the executor, against fake sessions', () => {
  test('daemons that restart: once every one has loaded its pairs, initiators bring up what is not up yet', async () => {
    const stopped = READY_FACTS.replace('@@running\nactive\n', '@@running\ninactive\n');
    const { sent } = await go({ facts: () => stopped });
    const at = (host: string, step: string) => sent.findIndex((c) => c.host === host && c.step === step);
    const lastRestart = Math.max(...['a', 'b', 'c'].map((h) => at(h, 'restart ipsec')));
    expect(lastRestart).toBeGreaterThan(0);
    // a initiates a--b and a--c, b initiates b--c; c initiates nothing.
    for (const [h, conns] of [
      ['a', ['a--b', 'a--c']],
      ['b', ['b--c']],
    ] as const) {
      expect(at(h, 'bring up')).toBeGreaterThan(lastRestart);
      const script = sent[at(h, 'bring up')]!.script;
      for (const n of conns)
        expect(script).toContain(`ipsec whack --showstates 2>/dev/null | grep -qF '"${n}":' || ipsec auto --asynchronous --up ${n} >/dev/null`);
    }
    expect(at('c', 'bring up')).toBe(-1);
  });

  test('from nothing: every host written and reloaded, every pair verified, exit 0', async () => {
    const { result, steps } = await go();
    expect([...result.hosts.values()].map((o) => o.status)).toEqual(['changed', 'changed', 'changed']);
    expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified', 'verified']);
    expect(exitCode(result)).toBe(0);
    // Running ipsec, includes present, only conns changed: a reload, not a restart. The guard,
    // with the new peers in it, is loaded before the daemon is touched.
    expect(steps('a')).toEqual(['facts', 'write', 'guard', 'reload conns', 'bring up', 'verify 2 pairs: ping + tcpdump']);
    expect(steps('c')).toEqual(['facts', 'write', 'guard', 'reload conns', 'verify 2 pairs: ping + tcpdump']);
    expect(result.hosts.get('a')).toMatchObject({ did: expect.arrayContaining(['guard loaded (2 peers; 10.0.0.2, 10.0.0.3 joined)']) });
  });

  test('verification is one command per host, whatever the number of pairs', async () => {
    const { sent } = await go();
    const verify = sent.filter((c) => c.step.startsWith('verify'));
    expect(verify.map((c) => c.host).sort()).toEqual(['a', 'b', 'c']);
  });

  test('--no-verify: the summary says so in one line for all the pairs; --json lists each', async () => {
    const { result } = await go({}, { verify: false });
    const text = renderSummary(result);
    expect(text).toMatch(/^ {2}3 pairs +not verified +--no-verify$/m);
    expect(
      text
        .split('Pairs\n')[1]!
        .split('\n')
        .filter((l) => l.startsWith('  ')),
    ).toHaveLength(1);
    expect((toJson(result.changeset!, result) as { pairs: { name: string; status: string }[] }).pairs.map((p) => [p.name, p.status])).toEqual([
      ['a--b', 'unverified'],
      ['a--c', 'unverified'],
      ['b--c', 'unverified'],
    ]);
  });

  test('keys travel on stdin only, never in a script (a command line)', async () => {
    const { sent } = await go();
    const writes = sent.filter((s) => s.step === 'write');
    expect(writes).toHaveLength(3);
    for (const w of writes) expect(w.stdin).toContain(KEY);
    for (const s of sent) expect(s.script).not.toContain(KEY);
  });

  test('one command per host for facts; writes only after every host has its facts', async () => {
    const { sent } = await go();
    const facts = sent.filter((s) => s.step === 'facts');
    expect(facts.map((s) => s.host).sort()).toEqual(['a', 'b', 'c']);
    expect(sent.findIndex((s) => s.stdin)).toBeGreaterThan(sent.lastIndexOf(facts[facts.length - 1]!));
  });

  test('an unreachable host: the others complete, its pairs are skipped, exit 1', async () => {
    const { result } = await go({ connectFail: { b: new ConnectError('b', 'cannot connect to root@10.0.0.2:22: ECONNREFUSED', 'check sshd') } });
    expect(result.hosts.get('b')).toMatchObject({ status: 'unreachable', error: expect.stringMatching(/ECONNREFUSED/) });
    expect(result.hosts.get('a')!.status).toBe('changed');
    expect(result.pairs.map((p) => [p.name, p.status])).toEqual([
      ['a--b', 'skipped'],
      ['a--c', 'verified'],
      ['b--c', 'skipped'],
    ]);
    expect(exitCode(result)).toBe(1);
  });

  test('a refused host key gives exit 3', async () => {
    const { result } = await go({ connectFail: { c: new HostKeyError('c', 'host key of 10.0.0.3:22 has CHANGED', 'verify it') } });
    expect(result.hosts.get('c')!.status).toBe('refused');
    expect(exitCode(result)).toBe(3);
  });

  test('a refused config is reported against that host with the step, the exit code and the output', async () => {
    const { result } = await go({
      respond: (c) => (c.host === 'a' && c.step === 'write' ? { code: 30, stderr: 'addconn: /etc/ipsec.d/x.conf:3: syntax error' } : undefined),
    });
    expect(result.hosts.get('a')).toMatchObject({ status: 'failed', step: 'check config', exitCode: 30, tail: expect.stringMatching(/syntax error/) });
    expect(result.pairs.find((p) => p.name === 'b--c')!.status).toBe('verified');
    expect(renderSummary(result)).toMatch(
      /a +FAILED +check config: libreswan rejected the new config, so the previous files are back\n +output \(exit 30\): addconn: .*syntax error/,
    );
  });

  test('sudo asking for a password is named as such', async () => {
    const { result } = await go({ respond: (c) => (c.host === 'b' && c.step === 'facts' ? { code: 1, stderr: 'sudo: a password is required' } : undefined) });
    expect(result.hosts.get('b')).toMatchObject({ status: 'failed', error: expect.stringMatching(/sudo wants a password/) });
  });

  test('a step that outlives its limit says the host may be part-way and that a re-run converges', async () => {
    const { result } = await go({ respond: (c) => (c.host === 'a' && c.step === 'reload conns' ? { code: 124, timedOut: true } : undefined) });
    expect(result.hosts.get('a')).toMatchObject({
      status: 'failed',
      step: 'reload conns',
      error: expect.stringMatching(/did not finish within 300 s/),
      hint: expect.stringMatching(/re-run: the run is idempotent/),
    });
  });

  test('a dry run sends only the facts script', async () => {
    const { result, sent } = await go({}, { dryRun: true });
    expect(new Set(sent.map((s) => s.step))).toEqual(new Set(['facts']));
    expect(result.changeset!.hosts.flatMap((h) => h.files.map((f) => `${f.kind} ${f.action}`))).toEqual(
      Array(3).fill(['conf create', 'secrets create', 'conf create', 'secrets create', 'guard create', 'unit create']).flat(),
    );
    expect(renderPlan(result.changeset!)).toMatch(
      /18 files to create, 0 to update, 0 to delete, 6 conns to reload, 3 guards to load or remove on 3 of 3 hosts; 0 hosts unchanged/,
    );
  });

  test('--limit: hosts outside are not contacted; their pairs are skipped, and say why', async () => {
    const { result, sent } = await go({}, { limit: new Set(['a', 'b']) });
    expect(new Set(sent.map((s) => s.host))).toEqual(new Set(['a', 'b']));
    expect(result.pairs.find((p) => p.name === 'a--c')).toMatchObject({ status: 'skipped', reason: 'c is outside --limit' });
    expect(result.pairs.find((p) => p.name === 'a--b')!.status).toBe('verified');
    expect(exitCode(result)).toBe(0);
  });

  test('--limit: a host whose pairs are all out of scope gets nothing: no install, write, restart or guard', async () => {
    const { result, sent } = await go({ facts: () => FRESH_FACTS }, { limit: new Set(['a']) });
    expect(sent.map((s) => `${s.host}:${s.step}`)).toEqual(['a:facts']);
    const a = result.changeset!.hosts.find((h) => h.host === 'a')!;
    expect({ install: a.install, service: a.service, guard: a.guard, files: a.files.filter((f) => f.action !== 'noop').length }).toEqual({
      install: undefined,
      service: 'none',
      guard: undefined,
      files: 0,
    });
    expect(result.hosts.get('a')).toMatchObject({ status: 'unchanged' });
  });

  test('clear text on the wire fails the pair and the run', async () => {
    const { result } = await go({
      respond: (c) =>
        c.host === 'a' && c.step.startsWith('verify')
          ? {
              stdout:
                '@@ping 10.0.0.2\n5 packets transmitted, 5 received\n@@ping 10.0.0.3\n5 packets transmitted, 5 received\n@@capture\n' +
                't eth0 Out IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 1208\n' +
                't eth0 Out IP 10.0.0.1 > 10.0.0.3: ESP(spi=0x1,seq=0x1), length 1244\nt eth0 In IP 10.0.0.3 > 10.0.0.1: ESP(spi=0x2,seq=0x1), length 1244\n@@tcpdump\n',
            }
          : undefined,
    });
    expect(result.pairs.find((p) => p.name === 'a--b')).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/a sent 1 probe\(s\) to b in CLEAR TEXT/),
    });
    expect(result.pairs.find((p) => p.name === 'a--c')!.status).toBe('verified');
    expect(exitCode(result)).toBe(1);
  });

  test('a re-run with matching keys on both peers writes nothing', async () => {
    const facts = await converged();
    const again = await go({ facts: (h) => facts.get(h) });
    expect([...again.result.hosts.values()].map((o) => o.status)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    expect(again.sent.filter((s) => s.stdin)).toEqual([]);
    expect(again.result.changeset!.pairs.map((p) => p.key)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    expect(again.steps('a')).toEqual(['facts', 'verify 2 pairs: ping + tcpdump']);
  });

  test('staging left by a killed write (it may hold a key) is removed even when nothing else changes on the host', async () => {
    const facts = await converged();
    const leftover = '/etc/ipsec.d/.provision-backup.AbC123';
    const again = await go({ facts: (h) => (h === 'b' ? facts.get(h)!.replace('@@stale\n', `@@stale\n${leftover}\n`) : facts.get(h)) });
    expect(again.steps('b')).toEqual(['facts', 'write', 'verify 2 pairs: ping + tcpdump']);
    expect(again.sent.find((x) => x.host === 'b' && x.step === 'write')!.script).toContain(`rm -rf -- ${leftover}`);
    expect(again.result.hosts.get('b')).toMatchObject({ did: ['1 leftover staging folder(s) of an interrupted write removed'] });
    expect(again.steps('a')).toEqual(['facts', 'verify 2 pairs: ping + tcpdump']);
  });

  test('a saved plan holds no key and no hash of one; its facts fingerprint ignores the keys', async () => {
    const facts = await converged();
    const dry = await go({ facts: (h) => facts.get(h) }, { dryRun: true });
    const saved = savePlan(dry.result.changeset!, 'inventory text', { prune: true, retireLegacy: false });
    const body = KEY.replace(/^0s/, '');
    const raw = Buffer.from(body, 'base64');
    for (const form of [
      body,
      raw.toString('hex'),
      createHash('sha256').update(KEY).digest('hex').slice(0, 16),
      createHash('sha256').update(raw).digest('hex').slice(0, 16),
    ]) {
      expect(saved).not.toContain(form);
    }
    const other = `0s${Buffer.alloc(32, 7).toString('base64')}`;
    // The same files with another key in them: the hosts send it only as MACs.
    const swap = (text: string): string =>
      text.replace(/(@@keys\n)((?:\S+ [0-9a-f]{32}\n)*)/, (_m, h: string, body: string) => h + body.replace(/[0-9a-f]{32}/g, testMac(other)));
    expect(swap(facts.get('a')!)).not.toBe(facts.get('a'));
    const rekeyed = await go({ facts: (h) => swap(facts.get(h)!) }, { dryRun: true });
    expect(rekeyed.result.changeset!.hosts.map((h) => h.facts)).toEqual(dry.result.changeset!.hosts.map((h) => h.facts));
  });

  test('--concurrency 1: one SSH connection open at a time, every step still done', async () => {
    const { result } = await go({}, { concurrency: 1 });
    expect(result.stats.peakConnections).toBe(1);
    expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified', 'verified']);
  });
});

describe('installing', () => {
  test('a fresh host: install (updating apt first), then the plan made again from what got installed', async () => {
    let installed = false;
    const { result, steps, sent } = await go({
      facts: (h) => (h === 'c' && !installed ? FRESH_FACTS : undefined),
      respond: (c) => {
        if (c.host !== 'c' || !c.step.startsWith('install')) return undefined;
        installed = true;
        return { stdout: 'installing libreswan\n' };
      },
    });
    expect(steps('c').slice(0, 4)).toEqual(['facts', 'install (auto)', 'facts', 'write']);
    expect(sent.find((s) => s.host === 'c' && s.step.startsWith('install'))!.script).toMatch(/\$apt update/);
    // Installed, running, its includes in place (Debian's libreswan): the new conns are loaded, no second restart.
    expect(result.hosts.get('c')).toMatchObject({
      status: 'changed',
      did: ['installed libreswan', '6 files written', 'guard loaded (2 peers; 10.0.0.1, 10.0.0.2 joined)', 'secrets reread', 'reloaded a--c, b--c'],
    });
    expect(result.changeset!.hosts.find((h) => h.host === 'c')!.backend).toMatchObject({ version: '4.10', assumed: false });
  });

  test('package lists that offer no IPsec package (sources changed since the last update): update, then install', () => {
    const stale = FRESH_FACTS.replace('@@lists\n0', '@@lists\n3');
    const cs = planChanges(
      inv,
      new Map([
        ['a', parseFacts(stale)],
        ['b', parseFacts(READY_FACTS)],
        ['c', parseFacts(READY_FACTS)],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 't' },
    );
    const a = cs.hosts.find((h) => h.host === 'a')!;
    expect(a.status).toBe('planned');
    expect(a.install).toMatchObject({ aptUpdate: true, choose: [{ backend: 'openswan' }, { backend: 'libreswan' }, { backend: 'strongswan' }] });
  });

  test('apt offering nothing, even after an update, fails that host only, naming it', async () => {
    const { result } = await go({
      facts: (h) => (h === 'c' ? FRESH_FACTS : undefined),
      respond: (c) => (c.host === 'c' && c.step.startsWith('install') ? { code: NO_CANDIDATE, stderr: 'E: Failed to fetch http://mirror/ 404' } : undefined),
    });
    expect(result.hosts.get('c')).toMatchObject({
      status: 'failed',
      step: 'install (auto)',
      error: 'apt has no candidate for openswan, libreswan or strongswan-starter, even after apt-get update',
    });
    expect(result.pairs.find((p) => p.name === 'a--b')!.status).toBe('verified');
  });

  test("the dpkg lock held past apt's timeout names the lock and what to do, for that host only", async () => {
    // apt-get's own words after DPkg::Lock::Timeout (recorded on a bookworm lab server).
    const held =
      'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (perl)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?';
    const { result } = await go({
      facts: (h) => (h === 'c' ? FRESH_FACTS : undefined),
      respond: (c) => (c.host === 'c' && c.step.startsWith('install') ? { code: 100, stdout: 'installing libreswan\n', stderr: held } : undefined),
    });
    expect(result.hosts.get('c')).toMatchObject({ status: 'failed', step: 'install (auto)', error: 'another process held the dpkg lock for 120 s' });
    expect((result.hosts.get('c') as { hint?: string }).hint).toMatch(/Wait for the other apt or unattended-upgrades run to finish/);
    expect(result.pairs.find((p) => p.name === 'a--b')!.status).toBe('verified');
  });
});

describe('retiring pairs', () => {
  const fleetHeader = (fleet: string) => `# managed by provision for fleet ${fleet}: edits are overwritten\n`;
  const files = (host: string, header: string) =>
    withFiles(READY_FACTS, [
      { path: `/etc/ipsec.d/gone--${host}.conf`, mode: '644', content: `${header}conn gone--${host}\n    auto=start\n` },
      { path: `/etc/ipsec.d/gone--${host}.secrets`, mode: '600', content: `${header}10.0.0.1 10.0.0.9 : PSK 0sOLDKEYOLDKEY\n` },
      { path: '/etc/ipsec.d/operator-vpn.conf', mode: '644' },
      { path: '/etc/ipsec.d/operator-vpn.secrets', mode: '600' },
    ]);

  test("a pair of this fleet gone from the inventory: its files are deleted and its conn taken down; the operator's are not touched", async () => {
    const { result, sent } = await go({ facts: (h) => files(h, fleetHeader('inv')) });
    const a = result.changeset!.hosts.find((h) => h.host === 'a')!;
    expect(a.files.filter((f) => f.action === 'delete').map((f) => f.path)).toEqual(['/etc/ipsec.d/gone--a.conf', '/etc/ipsec.d/gone--a.secrets']);
    expect(a.unload).toEqual(['gone--a']);
    expect(result.changeset!.retired).toEqual([
      { name: 'gone--a', hosts: ['a'] },
      { name: 'gone--b', hosts: ['b'] },
      { name: 'gone--c', hosts: ['c'] },
    ]);
    const writeA = sent.find((s) => s.host === 'a' && s.step === 'write')!;
    expect(writeA.script).toMatch(/^x 0 gone--a\.conf\nx 0 gone--a\.secrets$/m);
    expect(writeA.script).not.toMatch(/operator-vpn/);
    expect(sent.find((s) => s.host === 'a' && s.step === 'reload conns')!.script).toMatch(/ipsec auto --delete gone--a/);
    expect(result.hosts.get('a')).toMatchObject({ status: 'changed', did: expect.arrayContaining(['retired gone--a']) });
  });

  test("another fleet's files are never retired, and a run with them exits 0", async () => {
    const { result } = await go({ facts: (h) => files(h, fleetHeader('other')) });
    expect(result.changeset!.hosts.flatMap((h) => h.files.filter((f) => f.action === 'delete'))).toEqual([]);
    expect(result.changeset!.retired).toEqual([]);
    expect(exitCode(result)).toBe(0);
  });

  test('--no-prune keeps them', async () => {
    const { result, sent } = await go({ facts: (h) => files(h, fleetHeader('inv')) }, { prune: false });
    expect(result.changeset!.hosts.flatMap((h) => h.files.filter((f) => f.action === 'delete'))).toEqual([]);
    expect(sent.some((s) => /^x /m.test(s.script))).toBe(false);
  });

  test('the dry run names what is retired and never shows the old key', async () => {
    const { result } = await go({ facts: (h) => files(h, fleetHeader('inv')) }, { dryRun: true });
    const text = renderPlan(result.changeset!);
    expect(text).toMatch(/- \/etc\/ipsec\.d\/gone--a\.conf {2}\(delete, 0644\)/);
    expect(text).toMatch(/Retired .*\n {2}gone--a: on a/);
    expect(text).not.toContain('OLDKEY');
    expect(text).toMatch(/take down gone--a/);
  });
});

describe('Ctrl-C', () => {
  test('steps under way finish, nothing new starts, hosts say what was done, exit 130', async () => {
    const abort = new AbortController();
    const fake = fakeFleet(inv, {
      // Ctrl-C arrives while host a is writing (concurrency 1: b and c have not started).
      respond: (c) => {
        if (c.host !== 'a' || c.step !== 'write') return undefined;
        abort.abort();
        return {};
      },
    });
    const result = await run(inv, { dryRun: false, verify: true, concurrency: 1, random: fixed, signal: abort.signal, connect: fake.connect });
    expect(result.interrupted).toBe(true);
    expect(result.hosts.get('b')).toEqual({ status: 'interrupted', did: [] });
    expect(fake.sent.filter((s) => s.host === 'b' && s.stdin)).toEqual([]);
    expect(fake.steps().some((s) => /reload|verify|bring up/.test(s))).toBe(false);
    // a's new keys landed on a alone: both its pairs are put back, so no end holds a key its peer lacks.
    expect(fake.steps('a')).toEqual(['facts', 'write', 'roll back a--b', 'roll back a--c']);
    expect(result.pairs.find((p) => p.name === 'a--b')).toMatchObject({
      status: 'skipped',
      reason: 'not changed: b was not written (interrupted); a has the previous files back',
    });
    expect(exitCode(result)).toBe(130);
  });
});
