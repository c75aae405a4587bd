import { type RunOptions, run } from '../../src/apply/run.js';
import { loadInventory } from '../../src/inventory/load.js';
import { toJson } from '../../src/report/json.js';
import { renderPlan } from '../../src/report/plan-text.js';
import { renderSummary } from '../../src/report/summary.js';
import { convergedFacts } from '../helpers/converged.js';
import { fakeFleet, READY_FACTS, type Responder } from '../helpers/fake-session.js';

// How a rotated key is proved: from the strongSwan end when the pair has one (make-before-
// break), else by the initiator; or, --rotate-mode reread, by comparing the two ends' keys.

const inv = loadInventory(
  `hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  s: {address: 10.0.0.3, ipsec: {backend: strongswan}}
pairs:
  - [a, b]
  - [a, s]
`,
  'inv.yaml',
);
const OLD = (n: number) => new Uint8Array(n).fill(1);
const NEW = (n: number) => new Uint8Array(n).fill(2);
const key = (r: (n: number) => Uint8Array) => `0s${Buffer.from(r(32)).toString('base64')}`;
const SS_FACTS = READY_FACTS.replace(
  'libreswan ii  4.10-2+deb12u1',
  'strongswan-starter ii  5.9.8-5+deb12u1\nstrongswan-charon ii  5.9.8-5+deb12u1\nstrongswan-swanctl ii  5.9.8-5+deb12u1',
).replace('Libreswan 4.10', 'Linux strongSwan U5.9.8/K6.1.0');

// libreswan 5.2 on a: it answers a key probe as the initiator of a--s (4.x only as responder).
const V5_FACTS = READY_FACTS.replace('libreswan ii  4.10-2+deb12u1', 'libreswan ii  5.2-2').replace('Libreswan 4.10', 'Libreswan 5.2');

const converged = (aFacts = READY_FACTS): Promise<Map<string, string>> =>
  convergedFacts(inv, { random: OLD, base: (h) => (h === 's' ? SS_FACTS : h === 'a' ? aFacts : READY_FACTS) });

async function rotate(extra: Partial<RunOptions> = {}, respond?: Responder, aFacts?: string) {
  const facts = await converged(aFacts);
  const fake = fakeFleet(inv, { facts: (h) => facts.get(h), ...(respond ? { respond } : {}) });
  const result = await run(inv, {
    dryRun: false,
    verify: true,
    concurrency: 4,
    random: NEW,
    connect: fake.connect,
    rotate: new Set(['a--b', 'a--s']),
    ...extra,
  });
  return { result, sent: fake.sent, steps: fake.steps };
}

test("strongSwan hosts keep make-before-break on, in a settings file of provision's, and swanctl installed", async () => {
  const first = await run(inv, {
    dryRun: true,
    verify: false,
    concurrency: 4,
    random: OLD,
    connect: fakeFleet(inv, { facts: () => READY_FACTS.replace(/libreswan ii.*\n/, '') }).connect,
  });
  const s = first.changeset!.hosts.find((h) => h.host === 's')!;
  expect(s.files.find((f) => f.kind === 'daemon')).toMatchObject({ path: '/etc/strongswan.d/provision.conf', action: 'create' });
  expect(s.files.find((f) => f.kind === 'daemon')!.content).toMatch(/charon \{\n {2}make_before_break = yes\n\}/);
  expect(s.install?.packages).toEqual(['strongswan-starter', 'strongswan-charon', 'strongswan-swanctl']);
});

test('a libreswan-strongSwan pair is re-authenticated from the strongSwan end, make-before-break; a libreswan pair by its initiator', async () => {
  const { result, sent } = await rotate();
  expect(result.changeset!.pairs.map((p) => [p.name, p.key, p.reauthBy])).toEqual([
    ['a--b', 'rotated', 'a'],
    ['a--s', 'rotated', 's'],
  ]);
  const reauth = sent.filter((c) => c.step.startsWith('re-authenticate'));
  expect(reauth.map((c) => `${c.host}:${c.step}`).sort()).toEqual(['a:re-authenticate a--b', 's:re-authenticate a--s']);
  expect(reauth.find((c) => c.host === 's')!.script).toMatch(/swanctl --rekey --ike a--s --reauth/);
  expect(reauth.find((c) => c.host === 'a')!.script).toMatch(/ipsec auto --down a--b/);
  expect(result.hosts.get('s')).toMatchObject({ did: expect.arrayContaining(['re-authenticated a--s with its new key (make-before-break)']) });
  expect(renderPlan(result.changeset!)).toMatch(
    /a--s: rotate by reauth \(default: no probe, .*\): new key on both peers, s re-authenticates make-before-break/,
  );
  expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified']);
});

test('--rotate-mode reread: no new IKE SA; both ends reread and their keys are compared by MAC', async () => {
  const { result, sent, steps } = await rotate({ rotateMode: 'reread' }, (c) => {
    if (c.step !== 'compare keys') return undefined;
    return { stdout: [...c.script.matchAll(/\/etc\/ipsec\.d\/\S+\.secrets/g)].map((m) => `${m[0]} ${'ab'.repeat(16)}\n`).join('') };
  });
  expect(steps().some((s) => s.startsWith('re-authenticate'))).toBe(false);
  expect(
    sent
      .filter((c) => c.step === 'compare keys')
      .map((c) => c.host)
      .sort(),
  ).toEqual(['a', 'b', 's']);
  expect(sent.filter((c) => c.step === 'compare keys').every((c) => !c.script.includes(key(NEW)))).toBe(true);
  expect(result.changeset!.pairs.map((p) => p.proof)).toEqual(['keys compared', 'keys compared']);
  expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified']);
});

test('--rotate-mode reread: ends that disagree after the reread are rolled back, without touching the SAs', async () => {
  const { result, steps } = await rotate({ rotateMode: 'reread' }, (c) => {
    if (c.step !== 'compare keys') return undefined;
    return { stdout: [...c.script.matchAll(/\/etc\/ipsec\.d\/\S+\.secrets/g)].map((m) => `${m[0]} ${(c.host === 'b' ? 'cd' : 'ab').repeat(16)}\n`).join('') };
  });
  expect(result.pairs.find((p) => p.name === 'a--b')).toMatchObject({
    status: 'rolled-back',
    reason: 'after the reread, a and b hold different keys for a--b',
  });
  expect(steps('a')).toContain('roll back a--b');
  expect(steps().some((s) => s.startsWith('re-authenticate') || s.includes('bring up'))).toBe(false);
  expect(result.pairs.find((p) => p.name === 'a--s')!.status).toBe('verified');
});

const compareAgree = (c: { step: string; script: string }) =>
  c.step === 'compare keys'
    ? { stdout: [...c.script.matchAll(/\/etc\/ipsec\.d\/\S+\.secrets/g)].map((m) => `${m[0]} ${'ab'.repeat(16)}\n`).join('') }
    : undefined;

test('--rotate-mode reread, a strongSwan end and a peer that answers a probe: the key is also authenticated now, by a probe IKE SA; the SAs are kept', async () => {
  const { result, sent } = await rotate({ rotateMode: 'reread' }, compareAgree, V5_FACTS);
  expect(result.changeset!.pairs.map((p) => [p.name, p.probeBy])).toEqual([
    ['a--b', undefined],
    ['a--s', 's'],
  ]);
  const probes = sent.filter((c) => c.step.startsWith('probe'));
  expect(probes.map((c) => `${c.host}:${c.step}`)).toEqual(['s:probe the new key of a--s']);
  expect(probes[0]!.script).toMatch(/swanctl --initiate --ike provision-probe-a--s/);
  expect(probes[0]!.script).not.toContain(key(NEW));
  expect(result.hosts.get('s')).toMatchObject({ did: expect.arrayContaining(['authenticated the new key of a--s with a probe IKE SA; its SAs kept']) });
  expect(renderPlan(result.changeset!)).toMatch(
    /a--s: rotate by reread \(--rotate-mode reread\): new key on both peers, reread; the two ends' keys are compared, and s authenticates it with a probe IKE SA beside the running one; the pair's SAs are kept/,
  );
  expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified']);
});

test('--rotate-mode reread: a key the probe shows refused (a shadowing secrets line) is rolled back, without touching the SAs', async () => {
  const { result, steps } = await rotate(
    { rotateMode: 'reread' },
    (c) => (c.step.startsWith('probe') ? { code: 1, stderr: '[IKE] received AUTHENTICATION_FAILED notify error\n' } : compareAgree(c)),
    V5_FACTS,
  );
  expect(result.pairs.find((p) => p.name === 'a--s')).toMatchObject({
    status: 'rolled-back',
    reason: 'the new key did not authenticate with a: [IKE] received AUTHENTICATION_FAILED notify error',
  });
  expect(steps('s')).toContain('roll back a--s');
  expect(steps().some((s) => s.startsWith('re-authenticate') || s.includes('bring up'))).toBe(false);
  expect(result.pairs.find((p) => p.name === 'a--b')!.status).toBe('verified');
});

test('--rotate-mode reread: a probe that cannot run leaves the rotation standing (the keys compared equal), and the pair says its key is unproven', async () => {
  const { result } = await rotate(
    { rotateMode: 'reread' },
    (c) => (c.step.startsWith('probe') ? { code: 2, stderr: '[IKE] peer does not support childless IKE_SA initiation\n' } : compareAgree(c)),
    V5_FACTS,
  );
  expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified']);
  expect(result.pairs.map((p) => ('keyProof' in p ? p.keyProof : undefined))).toEqual([undefined, 'unproven']);
  expect(renderSummary(result)).toMatch(
    /a--s +ESP verified, key unproven +.*\n +the new key is on both ends but its probe could not run \(\[IKE\] peer does not support childless IKE_SA initiation\)/,
  );
  expect(JSON.stringify(toJson(result.changeset!, result))).toMatch(
    /"name":"a--s".*"keyProof":"unproven","keyProofReason":"\[IKE\] peer does not support childless IKE_SA initiation"/,
  );
  expect(result.hosts.get('s')).toMatchObject({
    did: expect.arrayContaining([
      'could not probe the new key of a--s ([IKE] peer does not support childless IKE_SA initiation); both ends hold it, and the next authentication uses it',
    ]),
  });
});

test('--rotate-mode reread: no probe where the peer would not keep its SAs as they were (a libreswan 4.x initiator)', async () => {
  const { result, steps } = await rotate({ rotateMode: 'reread' }, compareAgree);
  expect(result.changeset!.pairs.map((p) => p.probeBy)).toEqual([undefined, undefined]);
  expect(steps().some((x) => x.startsWith('probe'))).toBe(false);
  expect(renderPlan(result.changeset!)).toMatch(
    /a--s: rotate by reread \(--rotate-mode reread\): new key on both peers, reread; the two ends' keys are compared \(no new authentication now/,
  );
});

describe('the default mode, per pair', () => {
  test('reread with a probe where an end can probe its peer (strongSwan with libreswan 5.2); reauth where none can (two libreswan ends)', async () => {
    const { result, sent, steps } = await rotate({}, compareAgree, V5_FACTS);
    expect(result.changeset!.pairs.map((p) => [p.name, p.rotateMode, p.rotateModeWhy, p.probeBy, p.reauthBy])).toEqual([
      ['a--b', 'reauth', 'default: no probe, libreswan cannot start one (an IKE SA without a Child SA)', undefined, 'a'],
      ['a--s', 'reread', 'default: s can probe its peer', 's', undefined],
    ]);
    expect(sent.filter((c) => c.step.startsWith('probe')).map((c) => `${c.host}:${c.step}`)).toEqual(['s:probe the new key of a--s']);
    expect(steps().filter((x) => x.startsWith('re-authenticate'))).toEqual(['re-authenticate a--b']);
    const plan = renderPlan(result.changeset!);
    expect(plan).toMatch(/a--s: rotate by reread \(default: s can probe its peer\): new key on both peers, reread; .*s authenticates it with a probe IKE SA/);
    expect(plan).toMatch(/a--b: rotate by reauth \(default: no probe, libreswan cannot start one .*\): new key on both peers, a re-authenticates/);
    expect(JSON.stringify(toJson(result.changeset!, result))).toMatch(
      /"name":"a--s".*"rotateMode":"reread","rotateModeWhy":"default: s can probe its peer","probeBy":"s"/,
    );
    expect(result.pairs.map((p) => [p.status, 'keyProof' in p ? p.keyProof : undefined])).toEqual([
      ['verified', undefined],
      ['verified', undefined],
    ]);
  });

  test('a probe that cannot run: the probing end re-authenticates instead, so the key is still proved now', async () => {
    const { result, steps } = await rotate(
      {},
      (c) => (c.step.startsWith('probe') ? { code: 2, stderr: '[IKE] peer does not support childless IKE_SA initiation\n' } : compareAgree(c)),
      V5_FACTS,
    );
    expect(result.changeset!.pairs.find((p) => p.name === 'a--s')).toMatchObject({ rotateMode: 'reread', probeBy: 's', reauthIfNoProbe: true });
    expect(steps('s').filter((x) => x.startsWith('probe') || x.startsWith('re-authenticate'))).toEqual(['probe the new key of a--s', 're-authenticate a--s']);
    expect(result.hosts.get('s')).toMatchObject({
      did: expect.arrayContaining([
        'could not probe the new key of a--s ([IKE] peer does not support childless IKE_SA initiation)',
        're-authenticated a--s with its new key (make-before-break)',
      ]),
    });
    expect(result.pairs.map((p) => [p.name, p.status, 'keyProof' in p ? p.keyProof : undefined])).toEqual([
      ['a--b', 'verified', undefined],
      ['a--s', 'verified', undefined],
    ]);
  });

  test('a probe that cannot run, then a refused re-authentication: rolled back', async () => {
    const { result, steps } = await rotate(
      {},
      (c) =>
        c.step.startsWith('probe')
          ? { code: 2, stderr: 'swanctl --load-conns failed: the probe was not loaded\n' }
          : c.host === 's' && c.step === 're-authenticate a--s'
            ? { code: 1, stderr: '[IKE] received AUTHENTICATION_FAILED notify error\n' }
            : compareAgree(c),
      V5_FACTS,
    );
    expect(result.pairs.find((p) => p.name === 'a--s')).toMatchObject({
      status: 'rolled-back',
      reason: expect.stringMatching(/^the new key did not authenticate with a: .*AUTHENTICATION_FAILED/),
    });
    expect(steps('s')).toContain('roll back a--s');
  });

  test('reauth where the peer would not keep its SAs under a probe (a libreswan 4.10 initiator), saying why', async () => {
    const { result, steps } = await rotate({}, compareAgree);
    const p = result.changeset!.pairs.find((x) => x.name === 'a--s')!;
    expect(p).toMatchObject({ rotateMode: 'reauth', reauthBy: 's' });
    expect(p.rotateModeWhy).toBe(
      'default: no probe, libreswan 4.10 (a, the initiator): as the initiator, 4.x brings its conn up again when a probe ends, and a packet can be lost',
    );
    expect(steps().some((x) => x.startsWith('probe'))).toBe(false);
  });

  test('--rotate-mode reauth re-authenticates even where a probe could prove the key', async () => {
    const { result, steps } = await rotate({ rotateMode: 'reauth' }, compareAgree, V5_FACTS);
    expect(result.changeset!.pairs.map((p) => [p.rotateMode, p.rotateModeWhy, p.probeBy])).toEqual([
      ['reauth', '--rotate-mode reauth', undefined],
      ['reauth', '--rotate-mode reauth', undefined],
    ]);
    expect(
      steps()
        .filter((x) => x.startsWith('re-authenticate'))
        .sort(),
    ).toEqual(['re-authenticate a--b', 're-authenticate a--s']);
  });
});
