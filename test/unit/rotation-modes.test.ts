import { run, type RunOptions } from '../../src/apply/run.js';
import { loadInventory } from '../../src/inventory/load.js';
import { guardTable, renderGuard } from '../../src/plan/guard.js';
import { KEY_SLOT } from '../../src/plan/types.js';
import { renderPlan } from '../../src/report/plan-text.js';
import { fakeFleet, READY_FACTS, withFiles, withGuard, withSas, type FakeFile, type Responder } from '../helpers/fake-session.js';

// How a rotated key is proved: from the strongSwan end when the pair has one (make-before-
// break), else by the initiator; or, --rotate-mode reread, by comparing the two ends' keys.

const inv = loadInventory(`hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  s: {address: 10.0.0.3, ipsec: {backend: strongswan}}
pairs:
  - [a, b]
  - [a, s]
`, 'inv.yaml');
const OLD = (n: number) => new Uint8Array(n).fill(1);
const NEW = (n: number) => new Uint8Array(n).fill(2);
const key = (r: (n: number) => Uint8Array) => '0s' + Buffer.from(r(32)).toString('base64');
const peers: Record<string, string[]> = { a: ['10.0.0.2', '10.0.0.3'], b: ['10.0.0.1'], s: ['10.0.0.1'] };
const me: Record<string, string> = { a: '10.0.0.1', b: '10.0.0.2', s: '10.0.0.3' };
const SS_FACTS = READY_FACTS.replace('libreswan ii  4.10-2+deb12u1', 'strongswan-starter ii  5.9.8-5+deb12u1\nstrongswan-charon ii  5.9.8-5+deb12u1\nstrongswan-swanctl ii  5.9.8-5+deb12u1').replace('Libreswan 4.10', 'Linux strongSwan U5.9.8/K6.1.0');

async function converged(): Promise<Map<string, string>> {
  const facts = (h: string) => (h === 's' ? SS_FACTS : READY_FACTS);
  const first = await run(inv, { dryRun: false, verify: false, concurrency: 4, random: OLD, connect: fakeFleet(inv, { facts }).connect });
  return new Map(first.changeset!.hosts.map((h) => {
    const files: FakeFile[] = h.files.map((f) => ({ path: f.path, mode: f.mode.slice(1), content: f.kind === 'guard' ? renderGuard('inv', { peers: peers[h.host]!, ssh: [], sshPort: 22 }) : f.content.replace(KEY_SLOT, key(OLD)) }));
    return [h.host, withGuard(withFiles(withSas(facts(h.host), me[h.host]!, peers[h.host]!), files), guardTable('inv'), peers[h.host]!)];
  }));
}

async function rotate(extra: Partial<RunOptions> = {}, respond?: Responder) {
  const facts = await converged();
  const fake = fakeFleet(inv, { facts: (h) => facts.get(h), ...(respond ? { respond } : {}) });
  const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: NEW, connect: fake.connect, rotate: new Set(['a--b', 'a--s']), ...extra });
  return { result, sent: fake.sent, steps: fake.steps };
}

test('strongSwan hosts keep make-before-break on, in a settings file of provision\'s, and swanctl installed', async () => {
  const first = await run(inv, { dryRun: true, verify: false, concurrency: 4, random: OLD, connect: fakeFleet(inv, { facts: () => READY_FACTS.replace(/libreswan ii.*\n/, '') }).connect });
  const s = first.changeset!.hosts.find((h) => h.host === 's')!;
  expect(s.files.find((f) => f.kind === 'daemon')).toMatchObject({ path: '/etc/strongswan.d/provision.conf', action: 'create' });
  expect(s.files.find((f) => f.kind === 'daemon')!.content).toMatch(/charon \{\n {2}make_before_break = yes\n\}/);
  expect(s.install?.packages).toEqual(['strongswan-starter', 'strongswan-charon', 'strongswan-swanctl']);
});

test('a libreswan-strongSwan pair is re-authenticated from the strongSwan end, make-before-break; a libreswan pair by its initiator', async () => {
  const { result, sent } = await rotate();
  expect(result.changeset!.pairs.map((p) => [p.name, p.key, p.reauthBy])).toEqual([['a--b', 'rotated', 'a'], ['a--s', 'rotated', 's']]);
  const reauth = sent.filter((c) => c.step.startsWith('re-authenticate'));
  expect(reauth.map((c) => `${c.host}:${c.step}`).sort()).toEqual(['a:re-authenticate a--b', 's:re-authenticate a--s']);
  expect(reauth.find((c) => c.host === 's')!.script).toMatch(/swanctl --rekey --ike a--s --reauth/);
  expect(reauth.find((c) => c.host === 'a')!.script).toMatch(/ipsec auto --down a--b/);
  expect(result.hosts.get('s')).toMatchObject({ did: expect.arrayContaining(['re-authenticated a--s with its new key (make-before-break)']) });
  expect(renderPlan(result.changeset!)).toMatch(/a--s: rotate: new key on both peers, s re-authenticates make-before-break/);
  expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified']);
});

test('--rotate-mode reread: no new IKE SA; both ends reread and their keys are compared by MAC', async () => {
  const { result, sent, steps } = await rotate({ rotateMode: 'reread' }, (c) => {
    if (c.step !== 'compare keys') return undefined;
    return { stdout: [...c.script.matchAll(/\/etc\/ipsec\.d\/\S+\.secrets/g)].map((m) => `${m[0]} ${'ab'.repeat(16)}\n`).join('') };
  });
  expect(steps().some((s) => s.startsWith('re-authenticate'))).toBe(false);
  expect(sent.filter((c) => c.step === 'compare keys').map((c) => c.host).sort()).toEqual(['a', 'b', 's']);
  expect(sent.filter((c) => c.step === 'compare keys').every((c) => !c.script.includes(key(NEW)))).toBe(true);
  expect(result.changeset!.pairs.map((p) => p.proof)).toEqual(['keys compared', 'keys compared']);
  expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified']);
});

test('--rotate-mode reread: ends that disagree after the reread are put back, without touching the SAs', async () => {
  const { result, steps } = await rotate({ rotateMode: 'reread' }, (c) => {
    if (c.step !== 'compare keys') return undefined;
    return { stdout: [...c.script.matchAll(/\/etc\/ipsec\.d\/\S+\.secrets/g)].map((m) => `${m[0]} ${(c.host === 'b' ? 'cd' : 'ab').repeat(16)}\n`).join('') };
  });
  expect(result.pairs.find((p) => p.name === 'a--b')).toMatchObject({ status: 'rolled-back', reason: 'after the reread, a and b hold different keys for a--b' });
  expect(steps('a')).toContain('put back a--b');
  expect(steps().some((s) => s.startsWith('re-authenticate') || s.includes('bring up'))).toBe(false);
  expect(result.pairs.find((p) => p.name === 'a--s')!.status).toBe('verified');
});
