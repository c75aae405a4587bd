import { type RunOptions, run } from '../../src/apply/run.js';
import { InventoryError } from '../../src/inventory/errors.js';
import { loadInventory } from '../../src/inventory/load.js';
import { CREATED_SLOT, createdOf } from '../../src/plan/types.js';
import { renderPlan } from '../../src/report/plan-text.js';
import { convergedFacts } from '../helpers/converged.js';
import { fakeFleet } from '../helpers/fake-session.js';

// Rotation by age: each key's creation time is kept beside it on both hosts (a comment line
// of its secrets file: not secret), and `rotation.maxAge` makes a plain run rotate the pairs
// whose key is older, with the default mode.

const yaml = (policy: string) => `hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  c: {address: 10.0.0.3}
pairs:
  - [a, b]
  - [a, c]
${policy}`;
const DAY = 86_400_000;
const T0 = Date.parse('2026-09-01T00:00:00Z');
const OLD = (n: number) => new Uint8Array(n).fill(1);
const NEW = (n: number) => new Uint8Array(n).fill(2);
const key = (r: (n: number) => Uint8Array) => `0s${Buffer.from(r(32)).toString('base64')}`;

/** Facts after a first run at `created` (a--c's files: at `createdAc`, or without the line when null), SAs up. */
function converged(created: string, createdAc: string | null = created): Promise<Map<string, string>> {
  return convergedFacts(loadInventory(yaml(''), 'inv.yaml'), {
    random: OLD,
    edit: (_host, files) => {
      for (const f of files) {
        const at = f.path.includes('a--c') ? createdAc : created;
        f.content = f.content?.replace(/^# Key created .*\n/m, at === null ? '' : `# Key created ${at}.\n`);
      }
    },
  });
}

async function again(policy: string, facts: Map<string, string>, at: number, extra: Partial<RunOptions> = {}) {
  const inv = loadInventory(yaml(policy), 'inv.yaml');
  const fake = fakeFleet(inv, { facts: (h) => facts.get(h) });
  const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: NEW, connect: fake.connect, now: () => at, ...extra });
  return { result, sent: fake.sent };
}

describe('rotation.maxAge in the inventory', () => {
  test('hours, days or weeks; anything else is an error at its line and column, before any connection', () => {
    expect(loadInventory(yaml('rotation: {maxAge: 90d}\n'), 'inv.yaml').rotation).toEqual({ maxAge: '90d', maxAgeSec: 90 * 86400 });
    expect(loadInventory(yaml('rotation: {maxAge: 12w}\n'), 'inv.yaml').rotation).toEqual({ maxAge: '12w', maxAgeSec: 12 * 604800 });
    for (const bad of ['90', '0d', '3 months', '-1d']) {
      try {
        loadInventory(yaml(`rotation: {maxAge: '${bad}'}\n`), 'inv.yaml');
        throw new Error(`${bad} was accepted`);
      } catch (err) {
        expect(err).toBeInstanceOf(InventoryError);
        expect((err as InventoryError).problems[0]).toMatchObject({ line: 8, message: expect.stringMatching(/rotation.maxAge.*90d, 12w or 36h/) });
      }
    }
  });
});

describe('a plain re-run under the policy', () => {
  test('rotates exactly the pairs whose key is older than maxAge, saying why; the others keep their key and its time', async () => {
    const facts = await converged(new Date(T0).toISOString().replace('.000', ''), new Date(T0 + 80 * DAY).toISOString().replace('.000', ''));
    const { result, sent } = await again('rotation: {maxAge: 90d}\n', facts, T0 + 97 * DAY);
    const cs = result.changeset!;
    expect(cs.pairs.find((p) => p.name === 'a--b')).toMatchObject({
      key: 'rotated',
      keyAgeSec: 97 * 86400,
      rotateWhy: '97 days old, past rotation.maxAge 90d',
    });
    expect(cs.pairs.find((p) => p.name === 'a--c')).toMatchObject({ key: 'unchanged', keyAgeSec: 17 * 86400 });
    expect(cs.pairs.find((p) => p.name === 'a--c')!.rotateWhy).toBeUndefined();
    expect(renderPlan(cs)).toContain('a--b: the key is 97 days old, past rotation.maxAge 90d: rotate by reauth (default: no probe, libreswan cannot start one');
    // The new key's time is the run's, on both ends; the other pair's files are not written.
    const when = new Date(T0 + 97 * DAY).toISOString().replace('.000', '');
    for (const h of ['a', 'b']) {
      const w = sent.find((c) => c.host === h && c.id === 'write')!;
      expect(w.stdin).toContain(`# Key created ${when}.\n`);
      expect(w.stdin).toContain(key(NEW));
      expect(w.stdin).not.toContain('a--c');
    }
    expect(sent.some((c) => c.host === 'c' && c.id === 'write')).toBe(false);
    expect(result.pairs.find((p) => p.name === 'a--b')).toMatchObject({ status: 'verified' });
  });

  test('a pair that is down is repaired and verified as it is, not failed: its age rotates it on a run that finds it up', async () => {
    const facts = await converged(new Date(T0).toISOString().replace('.000', ''));
    const down = new Map([...facts].map(([h, f]) => [h, f.replace(/@@sas\n[^@]*/, '@@sas\n')]));
    const { result } = await again('rotation: {maxAge: 90d}\n', down, T0 + 97 * DAY);
    for (const p of result.changeset!.pairs) {
      expect(p).toMatchObject({ key: 'unchanged', keyAgeSec: 97 * 86400 });
      expect(p.notRotated).toBeUndefined();
    }
    expect(result.pairs.map((p) => p.status)).toEqual(['verified', 'verified']);
  });

  test('no pair past the policy: nothing is written', async () => {
    const facts = await converged(new Date(T0).toISOString().replace('.000', ''));
    const { result, sent } = await again('rotation: {maxAge: 90d}\n', facts, T0 + 30 * DAY);
    expect(result.changeset!.pairs.map((p) => [p.key, p.keyAgeSec])).toEqual([
      ['unchanged', 30 * 86400],
      ['unchanged', 30 * 86400],
    ]);
    expect(sent.filter((c) => c.id === 'write')).toEqual([]);
  });

  test('a key written before ages were recorded has no age: the policy rotates it; without a policy it is kept as it is, line and all', async () => {
    const facts = await converged(new Date(T0).toISOString().replace('.000', ''), null);
    const withPolicy = await again('rotation: {maxAge: 90d}\n', facts, T0 + DAY);
    expect(withPolicy.result.changeset!.pairs.find((p) => p.name === 'a--c')).toMatchObject({
      key: 'rotated',
      rotateWhy: expect.stringMatching(/^its age is unknown/),
    });
    expect(withPolicy.result.changeset!.pairs.find((p) => p.name === 'a--b')).toMatchObject({ key: 'unchanged' });
    const without = await again('', facts, T0 + DAY);
    expect(without.result.changeset!.pairs.map((p) => p.key)).toEqual(['unchanged', 'unchanged']);
    expect(without.sent.filter((c) => c.id === 'write')).toEqual([]);
  });

  test('a kept key keeps its creation line when its file is rewritten (a mode repaired); a new pair gets the slot the write fills', async () => {
    const facts = await converged('2026-09-01T00:00:00Z');
    const wrongMode = new Map([...facts].map(([h, f]) => [h, f.replace(/^600 (\d+ \/etc\/ipsec\.d\/a--b\.secrets)$/m, '644 $1')]));
    const { result } = await again('', wrongMode, T0 + DAY);
    const f = result.changeset!.hosts.find((h) => h.host === 'a')!.files.find((x) => x.path === '/etc/ipsec.d/a--b.secrets')!;
    expect(f).toMatchObject({ action: 'update', keyState: 'unchanged' });
    expect(createdOf(f.content)).toBe('2026-09-01T00:00:00Z');
    const fresh = await again('', new Map(), T0, { dryRun: true });
    expect(fresh.result.changeset!.hosts[0]!.files.find((x) => x.kind === 'secrets')!.content).toContain(`# Key created ${CREATED_SLOT}.`);
  });
});
