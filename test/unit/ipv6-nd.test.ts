import { strongswan } from '../../src/backends/strongswan.js';
import { loadInventory } from '../../src/inventory/load.js';
import { planChanges } from '../../src/plan/plan.js';
import { parseFacts } from '../../src/remote/facts.js';
import { READY_FACTS, withFiles, written } from '../helpers/fake-session.js';
import { planText, renderedFiles } from '../helpers/plan.js';

// strongSwan's trap policy for an IPv6 pair catches neighbour advertisements to the peer
// (the lab: no SA ever formed). A host-level file of passthrough conns lets ND through.

const ND = '/etc/ipsec.d/provision-ipv6-nd.conf';
const v6 = (backend: string) => `hosts:\n  a: {address: "2001:db8::1"}\n  b: {address: "2001:db8::2", ipsec: {backend: ${backend}}}\npairs: [[a, b]]\n`;

/** Facts of a running strongSwan 5.9.8 host holding these files. */
const swanFacts = (files: { path: string; mode: string; content?: string }[]) =>
  parseFacts(
    withFiles(
      READY_FACTS.replace(
        'libreswan ii  4.10-2+deb12u1',
        'strongswan-starter ii  5.9.8-5+deb12u1\nstrongswan-charon ii  5.9.8-5+deb12u1\nstrongswan-swanctl ii  5.9.8-5+deb12u1',
      ).replace('Libreswan 4.10', 'Linux strongSwan U5.9.8/K6.1.0'),
      files,
    ),
  );

describe('IPv6 neighbour discovery past strongSwan trap policies', () => {
  test('a strongSwan host with an IPv6 pair gets the passthrough conns for ICMPv6 135 and 136 only; its libreswan peer does not', () => {
    const files = renderedFiles(planText(v6('strongswan')));
    const nd = files.get('b')!.get(ND)!;
    expect(nd).toMatch(/^conn provision-nd-ns\n(?: {4}.*\n)*? {4}leftsubnet=::\/0\[58\/135\]\n/m);
    expect(nd).toMatch(/^conn provision-nd-na\n(?: {4}.*\n)*? {4}leftsubnet=::\/0\[58\/136\]\n/m);
    expect(nd.match(/type=passthrough/g)).toHaveLength(2);
    // Nothing else passes: no other protocol or ICMPv6 type (pings stay under IPsec).
    expect(nd.match(/\[[^\]]*\]/g)).toEqual(['[58/135]', '[58/136]']);
    expect(files.get('a')!.has(ND)).toBe(false);
  });

  test('an IPv4 pair on strongSwan gets no such file', () => {
    const files = renderedFiles(planText('hosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2, ipsec: {backend: strongswan}}\npairs: [[a, b]]\n'));
    expect(files.get('b')!.has(ND)).toBe(false);
  });

  test('on a running host the new file is loaded with the changed conns (ipsec update); once there, a re-run leaves it', () => {
    const inv = loadInventory(v6('strongswan'), 'v6.yaml');
    const plan = (facts: ReturnType<typeof swanFacts>) =>
      planChanges(
        inv,
        new Map([
          ['a', parseFacts(READY_FACTS)],
          ['b', facts],
        ]),
        { mode: 'live', prune: true, retireLegacy: false, tool: 'test' },
      ).hosts.find((h) => h.host === 'b')!;
    const first = plan(swanFacts([]));
    expect(first.files.find((f) => f.path === ND)).toMatchObject({ action: 'create', kind: 'conf', mode: '0644' });
    expect(first.reload.map((c) => c.name)).toEqual(expect.arrayContaining(['provision-nd-ns', 'provision-nd-na']));
    const kept = plan(swanFacts([{ path: ND, mode: '644', content: strongswan.ipv6Bypass!.content }]));
    expect(kept.files.find((f) => f.path === ND)!.action).toBe('noop');
    expect(kept.reload.map((c) => c.name)).not.toContain('provision-nd-ns');
  });

  test('an operator file at that path blocks the host, naming it', () => {
    const inv = loadInventory(v6('strongswan'), 'v6.yaml');
    const b = planChanges(
      inv,
      new Map([
        ['a', parseFacts(READY_FACTS)],
        ['b', swanFacts([{ path: ND, mode: '644' }])],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 'test' },
    ).hosts.find((h) => h.host === 'b')!;
    expect(b.status).toBe('blocked');
    expect(b.problems.map((p) => p.problem)).toContain(`${ND} exists and was not written by provision`);
  });

  test('teardown deletes it with the last pair, and takes its conns down', () => {
    const inv = loadInventory(v6('strongswan'), 'v6.yaml');
    const live = planChanges(
      inv,
      new Map([
        ['a', parseFacts(READY_FACTS)],
        ['b', swanFacts([])],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 'test' },
    );
    const written = live.hosts.find((h) => h.host === 'b')!.files.map((f) => ({ path: f.path, mode: f.mode.slice(1), content: f.content }));
    const down = planChanges(
      inv,
      new Map([
        ['a', parseFacts(READY_FACTS)],
        ['b', swanFacts(written)],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 'test', teardown: new Set(['a--b']) },
    ).hosts.find((h) => h.host === 'b')!;
    expect(down.files.find((f) => f.path === ND)!.action).toBe('delete');
    expect(down.unload).toEqual(expect.arrayContaining(['a--b', 'provision-nd-ns', 'provision-nd-na']));
  });

  test('teardown of the last pair also deletes the daemon settings file, and restarts nothing for it; a pair left keeps it', () => {
    const SETTINGS = strongswan.settings!.path;
    const inv = loadInventory(v6('strongswan'), 'v6.yaml');
    const live = planChanges(
      inv,
      new Map([
        ['a', parseFacts(READY_FACTS)],
        ['b', swanFacts([])],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 'test' },
    );
    const written = live.hosts.find((h) => h.host === 'b')!.files.map((f) => ({ path: f.path, mode: f.mode.slice(1), content: f.content }));
    expect(written.map((f) => f.path)).toContain(SETTINGS);
    const down = (extra: { path: string; mode: string; content?: string }[]) =>
      planChanges(
        inv,
        new Map([
          ['a', parseFacts(READY_FACTS)],
          ['b', swanFacts([...written, ...extra])],
        ]),
        { mode: 'live', prune: true, retireLegacy: false, tool: 'test', teardown: new Set(['a--b']) },
      ).hosts.find((h) => h.host === 'b')!;
    const last = down([]);
    expect(last.files.find((f) => f.path === SETTINGS)).toMatchObject({ action: 'delete', kind: 'daemon' });
    expect(last.service).not.toBe('restart');
    // Another fleet's pair on the host: the settings stay.
    const other = written.find((f) => f.path.endsWith('a--b.conf'))!;
    const kept = down([{ path: '/etc/ipsec.d/x--b.conf', mode: '644', content: other.content.replace('fleet v6', 'fleet other') }]);
    expect(kept.files.find((f) => f.path === SETTINGS)).toBeUndefined();
  });
});

describe('a key repaired while the strongSwan end restarts', () => {
  test('the libreswan initiator proves it, not the restarting end (whose SAs are gone and which re-authenticates nothing)', () => {
    const inv = loadInventory('hosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2, ipsec: {backend: strongswan}}\npairs: [[a, b]]\n', 'r.yaml');
    const live = planChanges(
      inv,
      new Map([
        ['a', parseFacts(READY_FACTS)],
        ['b', swanFacts([])],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 'test' },
    );
    const key = `0s${'A'.repeat(43)}=`;
    const kept = live.hosts.find((h) => h.host === 'a')!.files.map((f) => ({ path: f.path, mode: f.mode.slice(1), content: written(f.content, key) }));
    // a still holds the pair (and SAs with b's old self); b came back with none of provision's files.
    const withSas = READY_FACTS.replace('@@sas\n', '@@sas\n192.0.2.1 192.0.2.2\n192.0.2.2 192.0.2.1\n');
    // b's ipsec.conf and ipsec.secrets as strongswan-starter installs them: without our include lines.
    const fresh = parseFacts(
      withFiles(
        READY_FACTS.replace(
          'libreswan ii  4.10-2+deb12u1',
          'strongswan-starter ii  5.9.8-5+deb12u1\nstrongswan-charon ii  5.9.8-5+deb12u1\nstrongswan-swanctl ii  5.9.8-5+deb12u1',
        )
          .replace('Libreswan 4.10', 'Linux strongSwan U5.9.8/K6.1.0')
          .replace('present /etc/ipsec.conf\npresent /etc/ipsec.secrets', 'missing /etc/ipsec.conf\nmissing /etc/ipsec.secrets'),
        [],
      ),
    );
    const again = planChanges(
      inv,
      new Map([
        ['a', parseFacts(withFiles(withSas, kept))],
        ['b', fresh],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 'test' },
    );
    expect(again.pairs[0]).toMatchObject({ key: 'repaired', reauthBy: 'a' });
    expect(again.hosts.find((h) => h.host === 'b')!.service).toBe('restart');
    expect(again.hosts.find((h) => h.host === 'a')!.reauth).toEqual(['a--b']);
  });
});
