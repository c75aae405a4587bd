import { loadInventory } from '../../src/inventory/load.js';
import { run, type RunOptions } from '../../src/apply/run.js';
import { exitCode, parseRotate, UsageError } from '../../src/cli.js';
import { renderChanges } from '../../src/report/changes-text.js';
import { renderSummary, resultToJson } from '../../src/report/summary.js';
import { FACTS_SCRIPT } from '../../src/remote/facts.js';
import { fakeSessions, healthy, READY_FACTS, withFiles, type FakeFile, type Responder } from '../helpers/fake-session.js';

// Rotation, repair and roll back, against fake sessions: which commands are sent, in which
// order, and what is reported. The lab e2e (test/e2e/provision.test.ts) proves it on the wire.

const inv = loadInventory(`hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  c: {address: 10.0.0.3}
pairs:
  - [a, b]
  - [a, c]
`, 'inv.yaml');

const OLD = (n: number) => new Uint8Array(n).fill(1);
const NEW = (n: number) => new Uint8Array(n).fill(2);
const key = (r: (n: number) => Uint8Array) => '0s' + Buffer.from(r(32)).toString('base64');

/** Facts as the hosts would report them after a first run with OLD keys, SAs up between every pair. */
async function converged(saUp = true, edit: (host: string, files: FakeFile[]) => void = () => undefined): Promise<Map<string, string>> {
  const fake = fakeSessions();
  const first = await run(inv, { dryRun: false, verify: false, concurrency: 4, random: OLD, connect: fake.connect });
  const facts = new Map<string, string>();
  const peers: Record<string, string[]> = { a: ['10.0.0.2', '10.0.0.3'], b: ['10.0.0.1'], c: ['10.0.0.1'] };
  const me: Record<string, string> = { a: '10.0.0.1', b: '10.0.0.2', c: '10.0.0.3' };
  for (const h of first.changeset!.hosts) {
    const files: FakeFile[] = h.files.map((f) => ({ path: f.path, mode: f.mode.slice(1), content: f.after }));
    edit(h.host, files);
    const sas = saUp ? peers[h.host]!.flatMap((p) => [`${me[h.host]} ${p}`, `${p} ${me[h.host]}`]).join('\n') + '\n' : '';
    facts.set(h.host, withFiles(READY_FACTS.replace('@@files\n', `@@sas\n${sas}@@files\n`), files));
  }
  return facts;
}

async function rotate(facts: Map<string, string>, respond: Responder = () => undefined, extra: Partial<RunOptions> = {}) {
  const fake = fakeSessions((host, script, stdin, address) =>
    script === FACTS_SCRIPT ? { stdout: facts.get(host)! } : respond(host, script, stdin, address) ?? healthy(host, script, stdin, address));
  const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: NEW, connect: fake.connect, rotate: new Set(['a--b']), ...extra });
  return { result, sent: fake.sent };
}

describe('--rotate-psk', () => {
  test('names: a conn name or "x,y" in either order; none means every pair in scope', () => {
    expect([...parseRotate(['a--b'], inv, undefined)]).toEqual(['a--b']);
    expect([...parseRotate(['b,a', 'a,c'], inv, undefined)]).toEqual(['a--b', 'a--c']);
    expect([...parseRotate([], inv, undefined)]).toEqual(['a--b', 'a--c']);
    expect([...parseRotate([''], inv, new Set(['a', 'b']))]).toEqual(['a--b']);
  });

  test('an unknown pair, or one half outside --limit, is a usage error before any connection', () => {
    expect(() => parseRotate(['b--c'], inv, undefined)).toThrow(UsageError);
    expect(() => parseRotate(['b--c'], inv, undefined)).toThrow(/no pair "b--c".*a--b, a--c/);
    expect(() => parseRotate(['a,c'], inv, new Set(['a', 'b']))).toThrow(/needs both a and c/);
  });

  test('a working pair: new secrets on both ends, secrets reread (no conn replaced), the initiator re-authenticates, then ESP is verified', async () => {
    const { result, sent } = await rotate(await converged());
    expect(exitCode(result)).toBe(0);
    expect(result.changeset!.pairs.map((p) => [p.name, p.key])).toEqual([['a--b', 'rotated'], ['a--c', 'unchanged']]);
    const writes = sent.filter((s) => s.stdin);
    expect(writes.map((w) => w.host).sort()).toEqual(['a', 'b']);
    for (const w of writes) {
      expect(w.stdin).toContain(key(NEW));
      expect(w.stdin).not.toContain('conn ');
    }
    expect(sent.some((s) => /--replace|systemctl restart/.test(s.script))).toBe(false);
    const order = sent.filter((s) => s.script !== FACTS_SCRIPT).map((s) => `${s.host}:${s.script.includes('--rereadsecrets') ? 'reread' : s.script.includes('auto --up') ? 'reauth' : s.stdin ? 'write' : s.script.includes('tcpdump') ? 'verify' : 'other'}`);
    // Both peers hold and have read the new key before the initiator uses it.
    const reauth = order.indexOf('a:reauth');
    expect(reauth).toBeGreaterThan(order.indexOf('a:reread'));
    expect(reauth).toBeGreaterThan(order.indexOf('b:reread'));
    expect(order.filter((o) => o.endsWith('reauth'))).toEqual(['a:reauth']);
    expect(result.pairs.find((p) => p.name === 'a--b')!.status).toBe('verified');
    const a = result.hosts.get('a')!;
    expect(a.status === 'changed' && a.did).toContain('re-authenticated a--b with its new key');
  });

  test('a pair that is down is not rotated: it keeps its key and fails, saying why', async () => {
    const { result, sent } = await rotate(await converged(false));
    expect(sent.some((s) => s.stdin)).toBe(false);
    const p = result.pairs.find((x) => x.name === 'a--b')!;
    expect(p.status).toBe('failed');
    expect(p.status === 'failed' && p.reason).toMatch(/not rotated: a holds no ESP SAs with b/);
    expect(exitCode(result)).toBe(1);
  });

  test('the new key refused: the old secrets go back on both ends, the pair comes up with them, ROLLED BACK, exit 1', async () => {
    let reauths = 0;
    const { result, sent } = await rotate(await converged(), (host, script) => {
      if (host === 'a' && /auto --up/.test(script) && reauths++ === 0) return { code: 1, stderr: 'IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED' };
      return undefined;
    });
    const writes = sent.filter((s) => s.stdin);
    // New key to both, then the old key back to both.
    expect(writes.filter((w) => w.stdin!.includes(key(NEW))).map((w) => w.host).sort()).toEqual(['a', 'b']);
    expect(writes.filter((w) => w.stdin!.includes(key(OLD))).map((w) => w.host).sort()).toEqual(['a', 'b']);
    const last = Math.max(...writes.map((w) => sent.indexOf(w)));
    expect(writes.filter((w) => sent.indexOf(w) === last)[0]!.stdin).toContain(key(OLD));
    const p = result.pairs.find((x) => x.name === 'a--b')!;
    expect(p.status).toBe('rolled-back');
    expect(p.status === 'rolled-back' && p.reason).toMatch(/did not authenticate with b: .*AUTHENTICATION_FAILED/);
    expect(p.status === 'rolled-back' && p.restored).toMatch(/ESP-verified/);
    expect(exitCode(result)).toBe(1);
    const text = renderSummary(result);
    expect(text).toMatch(/a--b\s+ROLLED BACK/);
    for (const out of [text, JSON.stringify(resultToJson(result))]) {
      expect(out).not.toContain(key(NEW));
      expect(out).not.toContain(key(OLD));
    }
  });

  test('--no-verify: a refused key is still rolled back, since the re-authentication took the pair down', async () => {
    let reauths = 0;
    const { result } = await rotate(await converged(), (host, script) =>
      host === 'a' && /auto --up/.test(script) && reauths++ === 0 ? { code: 1, stderr: 'AUTHENTICATION_FAILED' } : undefined, { verify: false });
    expect(result.pairs.map((p) => [p.name, p.status])).toEqual([['a--b', 'rolled-back'], ['a--c', 'unverified']]);
    expect(reauths).toBe(2);
  });

  test('a rotated pair that stops verifying is rolled back too', async () => {
    let verifies = 0;
    const { result } = await rotate(await converged(), (host, script) =>
      host === 'b' && /tcpdump/.test(script) && verifies++ === 0 ? { stdout: '@@ping\n5 packets transmitted, 0 received\n@@capture\n@@tcpdump\n' } : undefined);
    expect(result.pairs.find((x) => x.name === 'a--b')!.status).toBe('rolled-back');
  });

  test('the dry run says rotate, which host re-authenticates, and shows no key', async () => {
    const facts = await converged();
    const fake = fakeSessions((host, script) => (script === FACTS_SCRIPT ? { stdout: facts.get(host)! } : undefined));
    const result = await run(inv, { dryRun: true, verify: true, concurrency: 4, random: NEW, connect: fake.connect, rotate: new Set(['a--b']) });
    const text = renderChanges(result.changeset!);
    expect(text).toMatch(/a--b\.secrets {2}\(update, 0600, key rotated\)/);
    expect(text).toMatch(/then: reread secrets; re-authenticate a--b/);
    expect(text).toMatch(/a--b: rotate: new key on both peers, a re-authenticates/);
    expect(text).not.toContain(key(NEW));
    expect(text).not.toContain(key(OLD));
    expect(fake.sent.every((s) => s.script === FACTS_SCRIPT)).toBe(true);
  });
});

describe('repair', () => {
  test('peers that disagree get a new key without a conn replaced; the initiator re-authenticates', async () => {
    // b's secrets file holds another key.
    const facts = await converged(true, (host, files) => {
      const f = files.find((x) => x.path === '/etc/ipsec.d/a--b.secrets');
      if (host === 'b' && f) f.content = f.content!.replace(key(OLD), '0sSTALESTALE');
    });
    const { result, sent } = await rotate(facts, undefined, { rotate: new Set() });
    expect(result.changeset!.pairs.find((p) => p.name === 'a--b')!.key).toBe('repaired');
    expect(sent.some((s) => /--replace/.test(s.script))).toBe(false);
    expect(sent.some((s) => s.host === 'a' && /auto --up 'a--b'|auto --up a--b/.test(s.script))).toBe(true);
    expect(exitCode(result)).toBe(0);
  });
});

describe('roll back when ipsec will not start', () => {
  test('the previous files go back and ipsec is started again; the host fails with what happened', async () => {
    const facts = await converged();
    // a's include line is missing: the change needs a restart, which fails once.
    facts.set('a', facts.get('a')!.replace('present /etc/ipsec.conf', 'missing /etc/ipsec.conf'));
    let restarts = 0;
    const fake = fakeSessions((host, script, stdin, address) => {
      if (script === FACTS_SCRIPT) return { stdout: facts.get(host)! };
      if (host === 'a' && /systemctl restart ipsec/.test(script) && restarts++ === 0) return { code: 1, stderr: 'ipsec.service: Failed with result exit-code.' };
      return healthy(host, script, stdin, address);
    });
    const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: NEW, connect: fake.connect, rotate: new Set(['a--b']) });
    const a = result.hosts.get('a')!;
    expect(a.status).toBe('failed');
    expect(a.status === 'failed' && a.error).toMatch(/did not start with the new files, so the previous files are back and ipsec runs again/);
    expect(restarts).toBe(2);
    const undo = fake.sent.filter((s) => s.host === 'a' && s.stdin).at(-1)!;
    expect(undo.stdin).toContain(key(OLD));
    expect(undo.stdin).not.toContain(key(NEW));
  });
});

describe('a secrets file with the right key but the wrong mode', () => {
  test('is rewritten 0600 and reread, and the pair is not re-authenticated', async () => {
    const facts = await converged(true, (host, files) => {
      const f = files.find((x) => x.path === '/etc/ipsec.d/a--b.secrets');
      if (host === 'b' && f) f.mode = '644';
    });
    const { result, sent } = await rotate(facts, undefined, { rotate: new Set() });
    const b = result.changeset!.hosts.find((h) => h.host === 'b')!;
    expect(b.files.filter((f) => f.action !== 'noop').map((f) => [f.path, f.mode, f.keyState])).toEqual([['/etc/ipsec.d/a--b.secrets', '0600', 'unchanged']]);
    expect(sent.some((s) => s.host === 'b' && /--rereadsecrets/.test(s.script))).toBe(true);
    expect(sent.some((s) => /auto --up|--replace/.test(s.script))).toBe(false);
    expect(exitCode(result)).toBe(0);
  });
});
