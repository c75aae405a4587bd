import { loadInventory } from '../../src/inventory/load.js';
import { run, type RunOptions } from '../../src/apply/run.js';
import { exitCode } from '../../src/cli.js';
import { ConnectError, HostKeyError } from '../../src/remote/errors.js';
import { FACTS_SCRIPT } from '../../src/remote/facts.js';
import { renderSummary, resultToJson } from '../../src/report/summary.js';
import { fakeSessions, healthy, READY_FACTS, withFiles, type Responder } from '../helpers/fake-session.js';

const inv = loadInventory(`hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  c: {address: 10.0.0.3}
meshes:
  - {name: all, hosts: [a, b, c]}
`, 'inv.yaml');

const fixed = (n: number) => new Uint8Array(n).fill(42);
const KEY = '0s' + Buffer.from(fixed(32)).toString('base64');

async function go(respond?: Responder, extra: Partial<RunOptions> = {}, connectFail?: Record<string, Error>) {
  const fake = fakeSessions(respond);
  const result = await run(inv, {
    dryRun: false, verify: true, concurrency: 4, random: fixed,
    connect: async (h) => {
      if (connectFail?.[h.name]) throw connectFail[h.name];
      return fake.connect(h);
    },
    ...extra,
  });
  return { result, sent: fake.sent };
}

describe('the executor, against fake sessions', () => {
  test('from nothing: every host written and reloaded, every pair verified, exit 0', async () => {
    const { result, sent } = await go();
    expect([...result.hosts.values()].map((o) => o.status)).toEqual(['changed', 'changed', 'changed']);
    expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified', 'verified']);
    expect(exitCode(result)).toBe(0);
    // Running ipsec, includes present, only conns changed: a reload, not a restart.
    expect(sent.some((s) => /systemctl restart/.test(s.script))).toBe(false);
    expect(sent.filter((s) => /ipsec auto --replace/.test(s.script))).toHaveLength(3);
  });

  test('--no-verify: the summary says so in one line for all the pairs; --json lists each', async () => {
    const { result } = await go(undefined, { verify: false });
    const text = renderSummary(result);
    expect(text).toMatch(/^ {2}3 pairs +not verified +--no-verify$/m);
    expect(text.split('Pairs\n')[1]!.split('\n').filter((l) => l.startsWith('  '))).toHaveLength(1);
    expect((resultToJson(result) as { pairs: { name: string }[] }).pairs.map((p) => p.name)).toEqual(['a--b', 'a--c', 'b--c']);
  });

  test('keys travel on stdin only, never in a script (a command line)', async () => {
    const { sent } = await go();
    const writes = sent.filter((s) => s.stdin);
    expect(writes).toHaveLength(3);
    for (const w of writes) expect(w.stdin).toContain(KEY);
    for (const s of sent) expect(s.script).not.toContain(KEY);
  });

  test('one round trip per host for facts; writes only after every host has its facts', async () => {
    const { sent } = await go();
    const facts = sent.filter((s) => s.script === FACTS_SCRIPT);
    expect(facts.map((s) => s.host).sort()).toEqual(['a', 'b', 'c']);
    const lastFacts = sent.lastIndexOf(facts[facts.length - 1]!);
    const firstWrite = sent.findIndex((s) => s.stdin);
    expect(firstWrite).toBeGreaterThan(lastFacts);
  });

  test('an unreachable host: the others complete, its pairs are skipped, exit 1', async () => {
    const { result } = await go(undefined, {}, { b: new ConnectError('b', 'cannot connect to root@10.0.0.2:22: ECONNREFUSED', 'check sshd') });
    expect(result.hosts.get('b')).toMatchObject({ status: 'unreachable', error: expect.stringMatching(/ECONNREFUSED/) });
    expect(result.hosts.get('a')!.status).toBe('changed');
    expect(result.pairs.map((p) => [p.name, p.status])).toEqual([['a--b', 'skipped'], ['a--c', 'verified'], ['b--c', 'skipped']]);
    expect(exitCode(result)).toBe(1);
  });

  test('a refused host key gives exit 3', async () => {
    const { result } = await go(undefined, {}, { c: new HostKeyError('c', 'host key of 10.0.0.3:22 has CHANGED', 'verify it') });
    expect(result.hosts.get('c')!.status).toBe('refused');
    expect(exitCode(result)).toBe(3);
  });

  test('a failing write is reported against that host with the step and stderr', async () => {
    const { result } = await go((host, script) =>
      host === 'a' && script.includes('.provision-backup') ? { code: 30, stderr: 'addconn: /etc/ipsec.d/x.conf:3: syntax error' } : undefined);
    expect(result.hosts.get('a')).toMatchObject({ status: 'failed', step: 'check config', error: expect.stringMatching(/syntax error/) });
    expect(result.pairs.find((p) => p.name === 'b--c')!.status).toBe('verified');
  });

  test('sudo asking for a password is named as such', async () => {
    const { result } = await go((host, script) =>
      host === 'b' && script === FACTS_SCRIPT ? { code: 1, stdout: '', stderr: 'sudo: a password is required' } : undefined);
    expect(result.hosts.get('b')).toMatchObject({ status: 'failed', error: expect.stringMatching(/sudo wants a password/) });
  });

  test('a dry run sends only the facts script', async () => {
    const { result, sent } = await go(undefined, { dryRun: true });
    expect(new Set(sent.map((s) => s.script))).toEqual(new Set([FACTS_SCRIPT]));
    expect(result.changeset!.hosts.flatMap((h) => h.files.map((f) => f.action))).toEqual(Array(12).fill('create'));
  });

  test('--limit: hosts outside are not contacted; their pairs are skipped, and say why', async () => {
    const { result, sent } = await go(undefined, { limit: new Set(['a', 'b']) });
    expect(new Set(sent.map((s) => s.host))).toEqual(new Set(['a', 'b']));
    expect(result.pairs.find((p) => p.name === 'a--c')).toMatchObject({ status: 'skipped', reason: 'c is outside --limit' });
    expect(result.pairs.find((p) => p.name === 'a--b')!.status).toBe('verified');
    expect(exitCode(result)).toBe(0);
  });

  test('clear text on the wire fails the pair and the run', async () => {
    const { result } = await go((host, script) => {
      if (host !== 'a' || !/tcpdump .*'host 10\.0\.0\.2 and/.test(script)) return undefined;
      return { stdout: '@@ping\n5 packets transmitted, 5 received\n@@capture\nt eth0 Out IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64\n@@tcpdump\n' };
    });
    expect(result.pairs.find((p) => p.name === 'a--b')).toMatchObject({ status: 'failed', reason: expect.stringMatching(/a sent 1 clear-text ICMP/) });
    expect(exitCode(result)).toBe(1);
  });

  test('a re-run with matching keys on both peers writes nothing', async () => {
    // First run, to learn the files the hosts would hold.
    const first = await go();
    const files = new Map<string, string>();
    for (const h of first.result.changeset!.hosts) {
      files.set(h.host, withFiles(READY_FACTS, h.files.map((f) => ({ path: f.path, mode: f.mode.slice(1), content: f.after }))));
    }
    const again = await go((host, script, stdin, address) => (script === FACTS_SCRIPT ? { stdout: files.get(host)! } : healthy(host, script, stdin, address)));
    expect([...again.result.hosts.values()].map((o) => o.status)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    expect(again.sent.filter((s) => s.stdin)).toEqual([]);
    expect(again.result.changeset!.pairs.map((p) => p.key)).toEqual(['unchanged', 'unchanged', 'unchanged']);
  });
});

describe('retiring pairs', () => {
  const oldPair = (host: string): string => {
    const conf = `# managed by provision: edits are overwritten. Pair ${host}/gone; ${host} initiates.\nconn gone--${host}\n    auto=start\n`;
    const secrets = `# managed by provision: edits are overwritten.\n10.0.0.1 10.0.0.9 : PSK 0sOLDKEYOLDKEY\n`;
    return withFiles(READY_FACTS, [
      { path: `/etc/ipsec.d/gone--${host}.conf`, mode: '644', content: conf },
      { path: `/etc/ipsec.d/gone--${host}.secrets`, mode: '600', content: secrets },
      { path: '/etc/ipsec.d/operator-vpn.conf', mode: '644' },
      { path: '/etc/ipsec.d/operator-vpn.secrets', mode: '600' },
    ]);
  };

  test("a pair gone from the inventory: its managed files are deleted and its conn taken down; the operator's are not touched", async () => {
    const { result, sent } = await go((host, script) => (script === FACTS_SCRIPT ? { stdout: oldPair(host) } : undefined));
    const a = result.changeset!.hosts.find((h) => h.host === 'a')!;
    expect(a.files.filter((f) => f.action === 'delete').map((f) => f.path)).toEqual(['/etc/ipsec.d/gone--a.conf', '/etc/ipsec.d/gone--a.secrets']);
    expect(a.unload).toEqual(['gone--a']);
    expect(result.changeset!.retired).toEqual([{ name: 'gone--a', hosts: ['a'] }, { name: 'gone--b', hosts: ['b'] }, { name: 'gone--c', hosts: ['c'] }]);
    const writeA = sent.find((s) => s.host === 'a' && s.stdin !== undefined)!;
    expect(writeA.script).toMatch(/^d gone--a\.conf\nd gone--a\.secrets$/m);
    expect(writeA.script).not.toMatch(/operator-vpn/);
    expect(sent.find((s) => s.host === 'a' && /ipsec auto --delete gone--a/.test(s.script))).toBeDefined();
    expect(result.hosts.get('a')).toMatchObject({ status: 'changed', did: expect.arrayContaining(['retired gone--a']) });
  });

  test('--no-prune keeps them', async () => {
    const { result, sent } = await go((host, script) => (script === FACTS_SCRIPT ? { stdout: oldPair(host) } : undefined), { prune: false });
    expect(result.changeset!.hosts.flatMap((h) => h.files.filter((f) => f.action === 'delete'))).toEqual([]);
    expect(sent.some((s) => /^d /m.test(s.script))).toBe(false);
  });

  test('the dry run names what is retired and never shows the old key', async () => {
    const { renderChanges } = await import('../../src/report/changes-text.js');
    const { result } = await go((host, script) => (script === FACTS_SCRIPT ? { stdout: oldPair(host) } : undefined), { dryRun: true });
    const text = renderChanges(result.changeset!);
    expect(text).toMatch(/- \/etc\/ipsec\.d\/gone--a\.conf {2}\(delete, 0644\)/);
    expect(text).toMatch(/Retired .*\n {2}gone--a: on a/);
    expect(text).not.toContain('OLDKEY');
    expect(text).toMatch(/take down gone--a/);
  });
});

describe('Ctrl-C', () => {
  test('steps under way finish, nothing new starts, hosts say what was done, exit 130', async () => {
    const abort = new AbortController();
    const fake = fakeSessions((host, script) => {
      // Ctrl-C arrives while host a is writing; b and c may be writing too (concurrency 1 here).
      if (host === 'a' && script.includes('.provision-backup')) abort.abort();
      return undefined;
    });
    const result = await run(inv, { dryRun: false, verify: true, concurrency: 1, random: fixed, signal: abort.signal, connect: fake.connect });
    expect(result.interrupted).toBe(true);
    expect(result.hosts.get('a')).toEqual({ status: 'interrupted', did: ['4 files written'] });
    expect(result.hosts.get('b')).toEqual({ status: 'interrupted', did: [] });
    expect(fake.sent.filter((s) => s.host === 'b' && s.stdin)).toEqual([]);
    expect(fake.sent.some((s) => /ipsec auto --replace|tcpdump/.test(s.script))).toBe(false);
    expect(exitCode(result)).toBe(130);
  });
});
