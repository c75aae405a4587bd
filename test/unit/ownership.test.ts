import { loadInventory } from '../../src/inventory/load.js';
import { planChanges } from '../../src/plan/plan.js';
import { CREATED_SLOT, KEY_SLOT } from '../../src/plan/types.js';
import { parseFacts } from '../../src/remote/facts.js';
import { renderPlan } from '../../src/report/plan-text.js';
import { type FakeFile, READY_FACTS, TEST_CREATED, withConns, withFiles } from '../helpers/fake-session.js';

// Whose files provision may change: its own fleet's, those of provision from before fleets
// (adopted when planned, left alone otherwise), never an operator's or another fleet's.

const KEY = `0s${Buffer.alloc(32, 7).toString('base64')}`;
const header = (fleet: string) => `# managed by provision for fleet ${fleet}: edits are overwritten\n`;
const legacyHeader = (a: string, b: string) => `# managed by provision: edits are overwritten. Pair ${a}/${b}; ${a} initiates.\n`;

function plan(yaml: string, file: string, facts: Record<string, string>, opts: { retireLegacy?: boolean } = {}) {
  const inv = loadInventory(yaml, file);
  const f = new Map([...inv.hosts.keys()].map((h) => [h, parseFacts(facts[h] ?? READY_FACTS)]));
  return planChanges(inv, f, { mode: 'live', prune: true, retireLegacy: opts.retireLegacy ?? false, tool: 'test' });
}

const pairFiles = (fleetHeader: string, name: string, left: string, right: string): FakeFile[] => [
  { path: `/etc/ipsec.d/${name}.conf`, mode: '644', content: `${fleetHeader}conn ${name}\n    left=${left}\n    right=${right}\n` },
  { path: `/etc/ipsec.d/${name}.secrets`, mode: '600', content: `${fleetHeader}${left} ${right} : PSK ${KEY}\n` },
];

const A = 'hosts:\n  server-01: {address: 10.0.0.1}\n  server-02: {address: 10.0.0.2}\npairs: [[server-01, server-02]]\n';
const B = 'hosts:\n  server-01: {address: 10.0.0.1}\n  server-03: {address: 10.0.0.3}\npairs: [[server-01, server-03]]\n';

describe('fleets: several inventories sharing a host', () => {
  test('the fleet is the file name without its extension, or `fleet:`', () => {
    expect(loadInventory(A, '/srv/inv/a.yaml').fleet).toBe('a');
    expect(loadInventory(`fleet: payments\n${A}`, '/srv/inv/a.yaml').fleet).toBe('payments');
  });

  test("b.yaml on server-01 neither retires nor touches a.yaml's pair there", () => {
    const s1 = withFiles(READY_FACTS, pairFiles(header('a'), 'server-01--server-02', '10.0.0.1', '10.0.0.2'));
    const cs = plan(B, 'b.yaml', { 'server-01': s1 });
    const h = cs.hosts.find((x) => x.host === 'server-01')!;
    expect(h.status).toBe('planned');
    expect(h.files.map((f) => [f.path, f.action])).toEqual([
      ['/etc/ipsec.d/server-01--server-03.conf', 'create'],
      ['/etc/ipsec.d/server-01--server-03.secrets', 'create'],
      ['/etc/provision/guard-b.nft', 'create'],
      ['/etc/systemd/system/provision-guard.service', 'create'],
    ]);
    expect(h.unload).toEqual([]);
    expect(cs.retired).toEqual([]);
  });

  test('two fleets pairing the same two addresses under different names: refused on that host, nothing done there', () => {
    const s1 = withFiles(READY_FACTS, pairFiles(header('a'), 'a-01-03', '10.0.0.1', '10.0.0.3'));
    const cs = plan(B, 'b.yaml', { 'server-01': s1 });
    const h = cs.hosts.find((x) => x.host === 'server-01')!;
    expect(h.status).toBe('blocked');
    expect(h.problems.map((p) => p.problem)).toEqual(['server-01 and server-03 (10.0.0.3) are already paired by fleet a in /etc/ipsec.d/a-01-03.conf']);
    expect(h.files.filter((f) => f.action !== 'noop')).toEqual([]);
  });

  test('an inventory without `fleet:` whose file was renamed: the hint says to add the old fleet name, and the plan says where the name comes from', () => {
    const s1 = withFiles(READY_FACTS, pairFiles(header('hosts'), 'server-01--server-02', '10.0.0.1', '10.0.0.2'));
    const renamed = plan(A, 'prod.yaml', { 'server-01': s1 });
    const h = renamed.hosts.find((x) => x.host === 'server-01')!;
    expect(h.problems[0]!.hint).toBe(
      "This inventory sets no `fleet:`, so its fleet is its file's name, prod. If it is fleet hosts's inventory under a new name, add `fleet: hosts` at its top; if not, a pair is managed by one inventory: remove it from one of the two.",
    );
    expect(renderPlan(renamed)).toMatch(/^Plan for prod\.yaml \(fleet prod, the file's name: set `fleet:` to keep it if the file is renamed\)/);
    // With the old name set, the same host is planned as a no-op for its own files.
    const kept = plan(`fleet: hosts\n${A}`, 'prod.yaml', { 'server-01': s1 });
    expect(kept.hosts.find((x) => x.host === 'server-01')!.status).toBe('planned');
    expect(renderPlan(kept)).toMatch(/^Plan for prod\.yaml \(fleet hosts\): /);
  });

  test("a file of another fleet where ours goes is that host's error, and nothing is done there", () => {
    const s1 = withFiles(READY_FACTS, pairFiles(header('a'), 'server-01--server-03', '10.0.0.1', '10.0.0.3'));
    const cs = plan(B, 'b.yaml', { 'server-01': s1 });
    const h = cs.hosts.find((x) => x.host === 'server-01')!;
    expect(h.status).toBe('blocked');
    expect(h.problems[0]!.problem).toBe('/etc/ipsec.d/server-01--server-03.conf belongs to fleet a, another inventory');
    expect(h.files).toEqual([]);
    // Its pair is skipped: server-03 does not write its half either.
    expect(cs.pairs[0]!.skipped).toMatch(/^server-01 is blocked/);
    expect(cs.hosts.find((x) => x.host === 'server-03')!.files).toEqual([]);
  });
});

describe('the ownership header is matched whole', () => {
  test("an operator's file whose header only begins like ours is neither overwritten, nor retired, nor read", () => {
    const text = withFiles(READY_FACTS, [
      { path: '/etc/ipsec.d/server-01--server-02.conf', mode: '644' },
      { path: '/etc/ipsec.d/old--pair.conf', mode: '644' },
    ]);
    // The facts script does not send such a file's content; the planner sees an operator file.
    expect(parseFacts(text).files.get('/etc/ipsec.d/old--pair.conf')).toEqual({
      path: '/etc/ipsec.d/old--pair.conf',
      mode: '644',
      owner: { kind: 'operator' },
    });
    const cs = plan(A, 'a.yaml', { 'server-01': text });
    const h = cs.hosts.find((x) => x.host === 'server-01')!;
    expect(h.status).toBe('blocked');
    expect(h.problems[0]!.problem).toBe('/etc/ipsec.d/server-01--server-02.conf exists and was not written by provision');
    expect(cs.retired).toEqual([]);
  });
});

describe('files from before fleets (no identity)', () => {
  test('planned by this inventory: adopted, the conn rewritten but not replaced (its SAs stay), the key kept', () => {
    // What an earlier version wrote: the same conn and key, under the old header.
    const fresh = plan(A, 'a.yaml', {});
    const legacy = (host: string): FakeFile[] =>
      fresh.hosts
        .find((x) => x.host === host)!
        .files.map((f) => ({
          path: f.path,
          mode: f.mode.slice(1),
          content:
            legacyHeader('server-01', 'server-02') + f.content.split('\n').slice(2).join('\n').replace(KEY_SLOT, KEY).replace(CREATED_SLOT, TEST_CREATED),
        }));
    const cs = plan(A, 'a.yaml', { 'server-01': withFiles(READY_FACTS, legacy('server-01')), 'server-02': withFiles(READY_FACTS, legacy('server-02')) });
    const h = cs.hosts.find((x) => x.host === 'server-01')!;
    expect(h.files.map((f) => [f.kind, f.action, f.why])).toEqual([
      ['conf', 'update', 'adopted: written by provision before fleets'],
      ['secrets', 'update', 'adopted: written by provision before fleets'],
    ]);
    expect(h.reload).toEqual([]);
    expect(cs.pairs[0]).toMatchObject({ key: 'unchanged', agreement: 'agree' });
  });

  test('not planned: listed as "no identity: not retired", deleted only with --retire-legacy', () => {
    const legacy = withFiles(READY_FACTS, pairFiles(legacyHeader('server-01', 'server-09'), 'server-01--server-09', '10.0.0.1', '10.0.0.9'));
    const kept = plan(A, 'a.yaml', { 'server-01': legacy });
    const h = kept.hosts.find((x) => x.host === 'server-01')!;
    expect(h.legacy).toEqual(['/etc/ipsec.d/server-01--server-09.conf', '/etc/ipsec.d/server-01--server-09.secrets']);
    expect(h.files.filter((f) => f.action === 'delete')).toEqual([]);
    expect(renderPlan(kept)).toMatch(/\? \/etc\/ipsec\.d\/server-01--server-09\.conf {2}\(no identity: not retired; --retire-legacy removes it\)/);
    const gone = plan(A, 'a.yaml', { 'server-01': legacy }, { retireLegacy: true });
    expect(
      gone.hosts
        .find((x) => x.host === 'server-01')!
        .files.filter((f) => f.action === 'delete')
        .map((f) => f.path),
    ).toEqual(['/etc/ipsec.d/server-01--server-09.conf', '/etc/ipsec.d/server-01--server-09.secrets']);
    expect(gone.retired).toEqual([{ name: 'server-01--server-09', hosts: ['server-01'] }]);
  });
});

describe('conn names an operator already uses', () => {
  test('a planned conn defined in /etc/ipsec.conf (or any file it includes) blocks that host', () => {
    const cs = plan(A, 'a.yaml', {
      'server-02': withConns(READY_FACTS, [
        { name: 'server-01--server-02', file: '/etc/ipsec.conf' },
        { name: 'mine', file: '/etc/ipsec.d/mine.conf' },
      ]),
    });
    const h = cs.hosts.find((x) => x.host === 'server-02')!;
    expect(h).toMatchObject({
      status: 'blocked',
      problems: [{ problem: 'conn server-01--server-02 is already defined in /etc/ipsec.conf', hint: expect.stringMatching(/name:/) }],
    });
    expect(cs.hosts.find((x) => x.host === 'server-01')!.files).toEqual([]);
  });

  test('our own conn in its own file is no clash', () => {
    const files = pairFiles(header('a'), 'server-01--server-02', '10.0.0.1', '10.0.0.2');
    const facts = withConns(withFiles(READY_FACTS, files), [{ name: 'server-01--server-02', file: '/etc/ipsec.d/server-01--server-02.conf' }]);
    expect(plan(A, 'a.yaml', { 'server-01': facts }).hosts.find((x) => x.host === 'server-01')!.status).toBe('planned');
  });
});
