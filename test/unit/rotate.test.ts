import { type RunOptions, run } from '../../src/apply/run.js';
import { exitCode, parseRotate, UsageError } from '../../src/cli.js';
import { loadInventory } from '../../src/inventory/load.js';
import { toJson } from '../../src/report/json.js';
import { renderPlan } from '../../src/report/plan-text.js';
import { renderSummary } from '../../src/report/summary.js';
import { convergedFacts } from '../helpers/converged.js';
import { type Call, type FakeFile, fakeFleet, type Responder } from '../helpers/fake-session.js';

// Rotation, repair, all-or-nothing key changes and roll back, against fake sessions: which
// steps run, in which order, and what is reported. The lab e2e proves it on the wire.

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
const key = (r: (n: number) => Uint8Array) => `0s${Buffer.from(r(32)).toString('base64')}`;

/** Facts as the hosts would report them after a first run with OLD keys, SAs up between every pair. */
const converged = (saUp = true, edit: (host: string, files: FakeFile[]) => void = () => undefined): Promise<Map<string, string>> =>
  convergedFacts(inv, { random: OLD, saUp, edit });

async function rotate(facts: Map<string, string>, respond?: Responder, extra: Partial<RunOptions> = {}) {
  const fake = fakeFleet(inv, { facts: (h) => facts.get(h), ...(respond ? { respond } : {}) });
  const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: NEW, connect: fake.connect, rotate: new Set(['a--b']), ...extra });
  return { result, sent: fake.sent, steps: fake.steps };
}

/** Whether a command puts `file` of /etc/ipsec.d back from the copy the run's write kept on the host. */
function restoresKept(call: Call, file: string): boolean {
  const f = file.replace(/\./g, '\\.');
  return new RegExp(`\\nr \\d+ ${f} /run/provision/undo\\.[0-9a-f]+/%etc%ipsec\\.d%${f}\\n`).test(call.script.replace(/'/g, ''));
}

/** The controller never sends a key it did not draw: not in a script, not over stdin. */
function neverSent(sent: readonly Call[], k: string): void {
  expect(sent.filter((s) => s.script.includes(k) || (s.stdin ?? '').includes(k)).map((s) => `${s.host}: ${s.step}`)).toEqual([]);
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

  test('a working pair: new secrets on both ends, reread (no conn replaced), the initiator re-authenticates, then ESP is verified', async () => {
    const { result, sent } = await rotate(await converged());
    expect(exitCode(result)).toBe(0);
    expect(result.changeset!.pairs.map((p) => [p.name, p.key])).toEqual([
      ['a--b', 'rotated'],
      ['a--c', 'unchanged'],
    ]);
    const writes = sent.filter((s) => s.stdin);
    expect(writes.map((w) => w.host).sort()).toEqual(['a', 'b']);
    for (const w of writes) {
      expect(w.stdin).toContain(key(NEW));
      expect(w.stdin).not.toContain('conn ');
    }
    expect(sent.some((s) => /--replace/.test(s.script) || s.step === 'restart ipsec')).toBe(false);
    const order = sent.filter((s) => s.step !== 'facts').map((s) => `${s.host}:${s.step}`);
    // Both peers hold and have read the new key before the initiator uses it.
    const reauth = order.indexOf('a:re-authenticate a--b');
    expect(reauth).toBeGreaterThan(order.indexOf('a:reload conns'));
    expect(reauth).toBeGreaterThan(order.indexOf('b:reload conns'));
    expect(sent.find((s) => s.host === 'b' && s.step === 'reload conns')!.script).toMatch(/ipsec auto --rereadsecrets/);
    expect(order.filter((o) => o.includes('re-authenticate'))).toEqual(['a:re-authenticate a--b']);
    expect(result.pairs.find((p) => p.name === 'a--b')!.status).toBe('verified');
    expect(result.hosts.get('a')).toMatchObject({ did: expect.arrayContaining(['re-authenticated a--b with its new key']) });
  });

  test('a pair that is down is not rotated: it keeps its key and fails, saying why', async () => {
    const { result, sent } = await rotate(await converged(false));
    expect(sent.some((s) => s.stdin)).toBe(false);
    expect(result.pairs.find((x) => x.name === 'a--b')).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/not rotated: a holds no ESP SAs with b/),
    });
    expect(exitCode(result)).toBe(1);
  });

  test('the new key refused: the old secrets go back on both ends, the pair comes up with them, ROLLED BACK, exit 1', async () => {
    let reauths = 0;
    const { result, sent, steps } = await rotate(await converged(), (c) =>
      c.host === 'a' && /re-authenticate|bring up/.test(c.step) && reauths++ === 0
        ? { code: 1, stderr: 'IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED' }
        : undefined,
    );
    const writes = sent.filter((s) => s.stdin);
    // New key to both, then the old secrets back on both, from the copies the write kept there.
    expect(
      writes
        .filter((w) => w.stdin!.includes(key(NEW)))
        .map((w) => w.host)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(
      sent
        .filter((s) => s.step === 'roll back a--b' && restoresKept(s, 'a--b.secrets'))
        .map((s) => s.host)
        .sort(),
    ).toEqual(['a', 'b']);
    neverSent(sent, key(OLD));
    expect(steps('a').at(-1)).toBe('remove kept copies');
    const p = result.pairs.find((x) => x.name === 'a--b')!;
    expect(p).toMatchObject({
      status: 'rolled-back',
      reason: expect.stringMatching(/did not authenticate with b: .*AUTHENTICATION_FAILED/),
      restored: expect.stringMatching(/ESP-verified/),
    });
    expect(exitCode(result)).toBe(1);
    const text = renderSummary(result);
    expect(text).toMatch(/a--b\s+ROLLED BACK/);
    for (const out of [text, JSON.stringify(toJson(result.changeset!, result))]) {
      expect(out).not.toContain(key(NEW));
      expect(out).not.toContain(key(OLD));
    }
  });

  test('--no-verify: a refused key is still rolled back, since the re-authentication took the pair down', async () => {
    let reauths = 0;
    const { result } = await rotate(
      await converged(),
      (c) => (c.host === 'a' && /re-authenticate|bring up/.test(c.step) && reauths++ === 0 ? { code: 1, stderr: 'AUTHENTICATION_FAILED' } : undefined),
      { verify: false },
    );
    expect(result.pairs.map((p) => [p.name, p.status])).toEqual([
      ['a--b', 'rolled-back'],
      ['a--c', 'unverified'],
    ]);
    expect(reauths).toBe(2);
  });

  test('a rotated pair that stops verifying is rolled back too', async () => {
    let verifies = 0;
    const { result } = await rotate(await converged(), (c) =>
      c.host === 'b' && c.step.startsWith('verify') && verifies++ === 0
        ? { stdout: '@@ping 10.0.0.1\n5 packets transmitted, 0 received\n@@capture\n@@tcpdump\n' }
        : undefined,
    );
    expect(result.pairs.find((x) => x.name === 'a--b')!.status).toBe('rolled-back');
  });

  test('the dry run says rotate, which host re-authenticates, and shows no key', async () => {
    const facts = await converged();
    const fake = fakeFleet(inv, { facts: (h) => facts.get(h) });
    const result = await run(inv, { dryRun: true, verify: true, concurrency: 4, random: NEW, connect: fake.connect, rotate: new Set(['a--b']) });
    const text = renderPlan(result.changeset!);
    expect(text).toMatch(/a--b\.secrets {2}\(update, 0600, key rotated\)/);
    expect(text).toMatch(/then: reread secrets; re-authenticate a--b/);
    expect(text).toMatch(
      /a--b: rotate by reauth \(default: no probe, libreswan cannot start one \(an IKE SA without a Child SA\)\): new key on both peers, a re-authenticates/,
    );
    expect(text).not.toContain(key(NEW));
    expect(text).not.toContain(key(OLD));
    expect(fake.steps().every((s) => s === 'facts')).toBe(true);
  });
});

describe('a key change is all or nothing', () => {
  test('one end fails to write: the other gets its previous secrets back, the pair is not changed, and says why', async () => {
    const { result, sent, steps } = await rotate(await converged(), (c) =>
      c.host === 'b' && c.step === 'write' ? { code: 1, stderr: 'No space left on device' } : undefined,
    );
    expect(result.hosts.get('b')).toMatchObject({ status: 'failed', step: 'write' });
    expect(steps('a')).toContain('roll back a--b');
    const back = sent.find((s) => s.host === 'a' && s.step === 'roll back a--b')!;
    expect(restoresKept(back, 'a--b.secrets')).toBe(true);
    expect(back.stdin ?? '').not.toContain(key(NEW));
    neverSent(sent, key(OLD));
    expect(steps('a')).not.toContain('re-authenticate a--b');
    expect(result.pairs.find((p) => p.name === 'a--b')).toMatchObject({
      status: 'skipped',
      reason: 'not changed: b failed at write; a has the previous files back',
    });
    expect(result.pairs.find((p) => p.name === 'a--c')!.status).toBe('verified');
  });

  test('one end fails to reread: both ends get the previous secrets back, and reread them where they can', async () => {
    const { result, sent } = await rotate(await converged(), (c) =>
      c.host === 'b' && c.step === 'reload conns' ? { code: 1, stderr: 'whack: Pluto is not running' } : undefined,
    );
    expect(result.hosts.get('b')).toMatchObject({ status: 'failed', step: 'reload conns' });
    const backA = sent.filter((s) => s.host === 'a' && s.step.startsWith('roll back a--b'));
    expect(backA.map((s) => s.step)).toEqual(['roll back a--b', 'roll back a--b: reload']);
    expect(restoresKept(backA[0]!, 'a--b.secrets')).toBe(true);
    expect(backA[1]!.script).toMatch(/--rereadsecrets/);
    expect(restoresKept(sent.find((s) => s.host === 'b' && s.step === 'roll back a--b')!, 'a--b.secrets')).toBe(true);
    neverSent(sent, key(OLD));
    expect(result.pairs.find((p) => p.name === 'a--b')).toMatchObject({
      status: 'skipped',
      reason: 'not changed: b failed at reload conns; a and b have the previous files back',
    });
  });
});

describe('repair', () => {
  test('peers that disagree get a new key without a conn replaced; the initiator re-authenticates', async () => {
    const facts = await converged(true, (host, files) => {
      const f = files.find((x) => x.path === '/etc/ipsec.d/a--b.secrets');
      if (host === 'b' && f) f.content = f.content!.replace(key(OLD), '0sc3RhbGUgc3RhbGUgc3RhbGUgc3RhbGUgc3RhbGUgc3Q=');
    });
    const { result, sent } = await rotate(facts, undefined, { rotate: new Set() });
    expect(result.changeset!.pairs.find((p) => p.name === 'a--b')).toMatchObject({ key: 'repaired', agreement: 'disagree' });
    expect(sent.some((s) => /--replace/.test(s.script))).toBe(false);
    expect(sent.some((s) => s.host === 'a' && s.step === 're-authenticate a--b')).toBe(true);
    expect(exitCode(result)).toBe(0);
  });

  test('a weak key both ends agree on is replaced, and said to be weak', async () => {
    const facts = await converged(true, (_host, files) => {
      const f = files.find((x) => x.path === '/etc/ipsec.d/a--c.secrets');
      if (f) f.content = f.content!.replace(key(OLD), '"secret"');
    });
    const { result } = await rotate(facts, undefined, { rotate: new Set() });
    expect(result.changeset!.pairs.find((p) => p.name === 'a--c')).toMatchObject({ key: 'repaired', agreement: 'weak' });
    expect(renderPlan(result.changeset!)).toMatch(/a--c: a weak key \(under 256 bits\): repaired with a new key/);
    expect(result.pairs.find((p) => p.name === 'a--c')!.status).toBe('verified');
  });
});

describe('roll back when ipsec will not start', () => {
  test('the previous files go back and ipsec is started again; the host fails with what happened', async () => {
    const facts = await converged();
    // a's include line is missing: the change needs a restart, which fails once.
    facts.set('a', facts.get('a')!.replace('present /etc/ipsec.conf', 'missing /etc/ipsec.conf'));
    let restarts = 0;
    const { result, sent } = await rotate(facts, (c) =>
      c.host === 'a' && c.step.startsWith('restart ipsec') && restarts++ === 0
        ? { code: 1, stderr: 'ipsec.service: Failed with result exit-code.' }
        : undefined,
    );
    expect(result.hosts.get('a')).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/did not start with the new files, so the previous files are back and ipsec runs again/),
    });
    expect(restarts).toBe(2);
    const undo = sent.filter((s) => s.host === 'a' && s.step === 'roll back files').at(-1)!;
    expect(restoresKept(undo, 'a--b.secrets')).toBe(true);
    expect(undo.stdin ?? '').not.toContain(key(NEW));
    // b got the new key for a--b, which never landed on a: it has its previous key back.
    expect(restoresKept(sent.find((s) => s.host === 'b' && s.step === 'roll back a--b')!, 'a--b.secrets')).toBe(true);
    neverSent(sent, key(OLD));
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
    expect(b.files.filter((f) => f.action !== 'noop').map((f) => [f.path, f.mode, f.keyState, f.why])).toEqual([
      ['/etc/ipsec.d/a--b.secrets', '0600', 'unchanged', 'mode 0644 → 0600'],
    ]);
    expect(sent.find((s) => s.host === 'b' && s.step === 'reload conns')!.script).toMatch(/--rereadsecrets/);
    expect(sent.some((s) => /re-authenticate/.test(s.step) || /--replace/.test(s.script))).toBe(false);
    expect(exitCode(result)).toBe(0);
  });
});
