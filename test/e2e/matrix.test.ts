import { describeLab, hostIp, hostIp6, hostRelease, labDown, labUp, onServer } from '../lab/control.js';
import { watchPair, type OutageSeen } from '../helpers/outage.js';
import { inventory, json, keyOf, outcome, provision, spin, wireCheck } from './support.js';

// Every release a fleet runs: Debian 11, 12 and 13 servers, each with libreswan or strongSwan
// (libreswan 4.3 / 4.10 / 5.2, strongswan-starter 5.9.1 / 5.9.8 / 6.0.1). An IPv4 mesh
// pairs every (release, backend) with every other once; IPv6 pairs cover each backend.
// The trixie servers start with nothing (the tool installs libreswan 5.2, and strongSwan
// 6.0.1 by package name, which conflicts with libreswan there); the others have their
// package preinstalled, to keep the lab's two cores from installing six at once. Every pair
// is proved by the tool and from outside; cross-version pairs are rotated, and rotations
// of each kind of pair are measured on the wire.

const LAB = [
  { i: 1, release: 'bullseye', backend: 'libreswan' },
  { i: 2, release: 'bullseye', backend: 'strongswan' },
  { i: 3, release: 'bookworm', backend: 'libreswan' },
  { i: 4, release: 'bookworm', backend: 'strongswan' },
  { i: 5, release: 'trixie', backend: 'libreswan' },
  { i: 6, release: 'trixie', backend: 'strongswan' },
] as const;
const name = (i: number) => `server-0${i}`;
const all = LAB.map((h) => name(h.i));
/** Every pair of the mesh: 15, each (release, backend) with every other once. */
const v4 = () => inventory('matrix.yaml', LAB.map((h) => ({ i: h.i, backend: h.backend })), `meshes:\n  - {name: all, hosts: [${all.join(', ')}]}\n`);
/**
 * IPv6: each pair joins one release's libreswan with another's strongSwan, covering the six.
 * A second fleet on the same hosts, so its pairs need conn names of their own.
 */
const v6 = () => inventory('matrix6.yaml', LAB.map((h) => ({ i: h.i, backend: h.backend, v6: true })),
  'pairs:\n  - {hosts: [server-01, server-04], name: v6-01-04}\n  - {hosts: [server-03, server-06], name: v6-03-06}\n  - {hosts: [server-05, server-02], name: v6-02-05}\n');

describeLab('every release and backend, IPv4 and IPv6', () => {
  beforeAll(() => {
    labUp(6, { releases: ['bullseye', 'bullseye', 'bookworm', 'bookworm', 'trixie', 'trixie'], preinstall: ['libreswan', 'strongswan', 'libreswan', 'strongswan', 'none', 'none'] });
    for (const h of LAB) expect(hostRelease(name(h.i))).toBe(h.release);
  }, 900_000);
  afterAll(() => labDown(), 120_000);

  test('IPv4 mesh: the right package on each release (installed by the tool on trixie), all 15 pairs ESP-verified', () => {
    const r = provision('--inventory', v4(), '--json');
    const o = outcome(r);
    expect(o.pairs.filter(([, s]) => s !== 'verified')).toEqual([]);
    expect(o).toMatchObject({ code: 0 });
    expect(o.pairs).toHaveLength(15);
    const versions = Object.fromEntries(json(r).hosts.map((h: any) => [h.name, `${h.backend.package} ${h.backend.version}`]));
    expect(versions).toEqual({
      'server-01': 'libreswan 4.3', 'server-02': 'strongswan-starter 5.9.1', 'server-03': 'libreswan 4.10',
      'server-04': 'strongswan-starter 5.9.8', 'server-05': 'libreswan 5.2', 'server-06': 'strongswan-starter 6.0.1',
    });
    const installed = Object.fromEntries(json(r).hosts.filter((h: any) => h.did?.some((d: string) => d.startsWith('installed ')))
      .map((h: any) => [h.name, h.did.find((d: string) => d.startsWith('installed '))]));
    // The preinstalled strongSwan servers lack strongswan-swanctl (the vici plugin rotation uses): the tool adds it.
    expect(installed).toMatchObject({ 'server-02': expect.stringMatching(/^installed .*strongswan-swanctl/), 'server-04': expect.stringMatching(/^installed .*strongswan-swanctl/) });
    expect(Object.keys(installed).sort()).toEqual(['server-02', 'server-04', 'server-05', 'server-06']);
    expect(installed['server-05']).toMatch(/^installed libreswan( nftables)?$/);
    expect(installed['server-06']).toMatch(/^installed strongswan-starter strongswan-charon strongswan-swanctl( nftables)?$/);
    expect(onServer('server-06', "dpkg-query -W -f='${Status}' libreswan 2>/dev/null | grep -c 'ok installed' || true").stdout.trim()).toBe('0');
    // libreswan 5 gets its own dialect, and no deprecation warning from its daemon.
    expect(onServer('server-05', 'grep -c keyexchange=ikev2 /etc/ipsec.d/server-01--server-05.conf').stdout.trim()).toBe('1');
    expect(onServer('server-01', 'grep -c ikev2=insist /etc/ipsec.d/server-01--server-05.conf').stdout.trim()).toBe('1');
    expect(onServer('server-05', 'journalctl -u ipsec --no-pager | grep -ci "deprecated\\|obsolete" || true').stdout.trim()).toBe('0');
  }, 1_800_000);

  test('from outside: each server sends ESP, never clear text, to a peer of every other release', () => {
    for (const [from, to] of [[1, 6], [4, 1], [6, 3]] as const) {
      expect({ from, to, seen: wireCheck(name(from), hostIp(to)) }).toMatchObject({ seen: { esp: 4, clear: 0, replies: 4 } });
    }
  }, 600_000);

  // KNOWN FAILING (README, docs/support.md): on this lab the IPv6 pairs negotiate no SAs at
  // all ("no SAs on server-01 and server-04 after 25 s", every pair), cause not found yet.
  // test.failing keeps the real assertions: once IPv6 works this reports, and must become test().
  test.failing('IPv6 pairs covering each backend: verified by the tool (ICMPv6) and from outside, one rotated', () => {
    const r = provision('--inventory', v6(), '--json');
    expect(outcome(r)).toEqual({ code: 0, pairs: [['v6-01-04', 'verified'], ['v6-03-06', 'verified'], ['v6-02-05', 'verified']] });
    expect(wireCheck('server-06', hostIp6(3))).toMatchObject({ esp: 4, clear: 0, replies: 4 });
    expect(wireCheck('server-02', hostIp6(5))).toMatchObject({ esp: 4, clear: 0, replies: 4 });
    // Two fleets on the same hosts: the IPv4 one is untouched.
    expect(json(r).retired).toEqual([]);
    const before = keyOf('server-05', 'v6-02-05');
    expect(outcome(provision('--inventory', v6(), '--rotate-psk', 'v6-02-05', '--json'))).toMatchObject({ code: 0 });
    expect(keyOf('server-05', 'v6-02-05')).not.toBe(before);
    expect(keyOf('server-02', 'v6-02-05')).toBe(keyOf('server-05', 'v6-02-05'));
  }, 1_200_000);

  test('a rotation of a cross-version pair (libreswan 4.3 with strongSwan 6.0.1)', () => {
    const before = keyOf('server-01', 'server-01--server-06');
    const r4 = provision('--inventory', v4(), '--rotate-psk', 'server-01,server-06', '--json');
    expect(outcome(r4).pairs.find(([p]) => p === 'server-01--server-06')).toEqual(['server-01--server-06', 'verified']);
    const after = keyOf('server-01', 'server-01--server-06');
    expect(after).not.toBe(before);
    expect(keyOf('server-06', 'server-01--server-06')).toBe(after);
  }, 900_000);

  // Key rotation under 20 pings/s each way, one pair at a time, watched on the taps: the loss
  // and the clear packets per direction, for each kind of pair (docs/rotation.md has them).
  const rotations: string[] = [];
  const measure = (a: number, b: number, mode: 'reauth' | 'reread', inv: string) => {
    const w = watchPair(a, b);
    let r: ReturnType<typeof provision> | undefined;
    let seen: OutageSeen;
    try {
      r = provision('--inventory', inv, '--rotate-psk', `${name(a)},${name(b)}`, '--rotate-mode', mode, '--json');
      spin(2);
    } finally {
      seen = w.stop();
    }
    const pair = json(r).pairs.find((p: any) => p.hosts.includes(name(a)) && p.hosts.includes(name(b)));
    const line = `${name(a)} (${LAB[a - 1]!.backend} on ${LAB[a - 1]!.release}) / ${name(b)} (${LAB[b - 1]!.backend} on ${LAB[b - 1]!.release}), ${mode}: ` +
      seen.directions.map((d) => `${d.from} -> ${d.to} ${d.sent - d.received} of ${d.sent} lost`).join(', ') +
      `; clear ${Object.values(seen.clear).reduce((n, t) => n + t.length, 0)}; ${pair.status}${pair.reauthBy ? ` (re-authenticated by ${pair.reauthBy})` : ''}`;
    rotations.push(line);
    process.stdout.write(`${line}\n`);
    return { status: pair.status, lost: seen.directions.map((d) => d.sent - d.received), clear: Object.values(seen.clear).flat().length, sent: seen.directions.map((d) => d.sent) };
  };

  test('rotations driven from a strongSwan end (make-before-break): at most one packet lost each way, none in clear', () => {
    // Measured over two runs: 0 or 1 lost per direction for every kind of pair (libreswan 4.10
    // and 5.2 with strongSwan 5.9.8 and 6.0.1, strongSwan with strongSwan), the 1 at the moment
    // the old Child SA goes. Asserted at that level.
    const seen: Record<string, unknown> = {};
    for (const [a, b] of [[3, 4], [5, 6], [2, 4], [4, 6]] as const) {
      const m = measure(a, b, 'reauth', v4());
      seen[`${a}-${b}`] = { status: m.status, clear: m.clear, lostWithin: m.lost.every((l) => l <= 1), enoughSent: m.sent.every((n) => n > 40) };
    }
    for (const k of Object.keys(seen)) expect({ pair: k, ...(seen[k] as object) }).toEqual({ pair: k, status: 'verified', clear: 0, lostWithin: true, enoughSent: true });
  }, 1_800_000);

  test('libreswan pairs: a new IKE SA proves the key, break-before-make (loss measured, never clear); --rotate-mode reread loses nothing', () => {
    for (const [a, b] of [[1, 3], [3, 5]] as const) {
      const m = measure(a, b, 'reauth', v4());
      expect({ status: m.status, clear: m.clear }).toEqual({ status: 'verified', clear: 0 });
      // The gap is one negotiation: 9 to 54 pings (0.45 to 2.7 s) measured in the lab, the
      // most with two labs on two cores.
      for (const l of m.lost) expect(l).toBeLessThanOrEqual(60);
      const quiet = measure(a, b, 'reread', v4());
      expect({ status: quiet.status, clear: quiet.clear, lost: quiet.lost }).toEqual({ status: 'verified', clear: 0, lost: [0, 0] });
    }
    process.stdout.write(`rotation, all pairs:\n  ${rotations.join('\n  ')}\n`);
  }, 1_800_000);
});

