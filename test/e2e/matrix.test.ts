import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clearPassthroughs, describePolicy, parseXfrmPolicies } from '../../src/status/policies.js';
import { type OutageSeen, watchPair } from '../helpers/outage.js';
import { watchWire } from '../helpers/wire.js';
import {
  CACHE,
  DEBIAN_MAJOR,
  describeLab,
  hostIp,
  hostIp6,
  hostName,
  hostPreinstall,
  hostRelease,
  IDENTITY,
  KNOWN_HOSTS,
  LAB_SCRIPT,
  lab,
  labDown,
  labUp,
  NETNS,
  onServer,
  type Release,
  STATE,
  sshTo,
} from '../lab/control.js';
import { inventory, json, keyOf, outcome, provision, spin, wireCheck } from './support.js';

// The lab itself first (its servers, addresses, host keys, kernel ESP and mirrors), then
// every release a fleet runs: Debian 11, 12 and 13 servers, each with libreswan or strongSwan
// (libreswan 4.3 / 4.10 / 5.2, strongswan-starter 5.9.1 / 5.9.8 / 6.0.1). An IPv4 mesh
// pairs every (release, backend) with every other once, and so does an IPv6 mesh.
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
const PREINSTALL = ['libreswan', 'strongswan', 'libreswan', 'strongswan', 'none', 'none'] as const;
const name = (i: number) => `server-0${i}`;
const all = LAB.map((h) => name(h.i));
/** Every pair of the mesh: 15, each (release, backend) with every other once. */
const v4 = () =>
  inventory(
    'matrix.yaml',
    LAB.map((h) => ({ i: h.i, backend: h.backend })),
    `meshes:\n  - {name: all, hosts: [${all.join(', ')}]}\n`,
  );
/** Every two servers of the lab: 15 pairs, each (release, backend) with every other once. */
const V4_PAIRS = ALL_PAIRS();
function ALL_PAIRS(): [number, number][] {
  return [1, 2, 3, 4, 5, 6].flatMap((a) => [1, 2, 3, 4, 5, 6].filter((b) => b > a).map((b): [number, number] => [a, b]));
}
/**
 * IPv6: every two servers too, as a second fleet on the same hosts (so its pairs need conn
 * names of their own). server-05 (libreswan 5.2) initiates to server-02 (strongSwan 5.9.1),
 * the pair the rotations below use; the others initiate from the lower number.
 */
const V6_PAIRS = ALL_PAIRS().map(([a, b]) => (a === 2 && b === 5 ? [5, 2] : [a, b]) as [number, number]);
const v6Name = (a: number, b: number): string => `v6-0${Math.min(a, b)}-0${Math.max(a, b)}`;
const v6 = () =>
  inventory(
    'matrix6.yaml',
    LAB.map((h) => ({ i: h.i, backend: h.backend, v6: true })),
    `pairs:\n${V6_PAIRS.map(([a, b]) => `  - {hosts: [${name(a)}, ${name(b)}], name: ${v6Name(a, b)}}\n`).join('')}`,
  );

// apt candidates the local mirror must offer, per release.
const CANDIDATES: Record<Release, { libreswan: RegExp; strongswan: RegExp }> = {
  bullseye: { libreswan: /^4\.3-/, strongswan: /^5\.9\.1-/ },
  bookworm: { libreswan: /^4\.10-/, strongswan: /^5\.9\.8-/ },
  trixie: { libreswan: /^5\.2-/, strongswan: /^6\.0\.1-/ },
};

/** Command lines of running UML guests rooted in this lab's state folder. */
function umlProcesses(): string[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => {
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
        return cmd.includes('rootfstype=hostfs') && cmd.includes(`${STATE}/`) ? [cmd] : [];
      } catch {
        return [];
      }
    });
}

function sh(cmd: string): string {
  return spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }).stdout ?? '';
}

/** Runs the same command on the given servers in parallel (one background ssh each); outputs by server number. */
function onAll(servers: readonly number[], command: (i: number) => string, timeoutMs = 120_000): Record<number, { code: number; out: string }> {
  const script = servers.map((i) => `("$LAB" ssh ${hostName(i)} ${shellQuote(command(i))} > "$D/${i}.out" 2>&1; echo $? > "$D/${i}.rc") &`).join('\n');
  const r = spawnSync(
    'sh',
    ['-c', `D=$(mktemp -d); ${script}\nwait; for i in ${servers.join(' ')}; do printf '@@%s %s\\n' $i "$(cat $D/$i.rc)"; cat $D/$i.out; done; rm -rf "$D"`],
    { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, LAB: LAB_SCRIPT } },
  );
  const result: Record<number, { code: number; out: string }> = {};
  for (const part of (r.stdout ?? '').split('@@').slice(1)) {
    const m = /^(\d+) (\d+)\n([\s\S]*)$/.exec(part);
    if (m) result[Number(m[1])] = { code: Number(m[2]), out: m[3] ?? '' };
  }
  return result;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

const ALL = [1, 2, 3, 4, 5, 6] as const;
/** Every measured rotation (the benchmark), not one pair per mechanism (CI). */
const ALL_ROTATIONS = Boolean(process.env.PROVISION_ROTATION_ALL);
/** Rotations of each pair in a row (the benchmark's loop: PROVISION_ROTATION_LOOP=20); 1 in CI. */
const LOOP = Number(process.env.PROVISION_ROTATION_LOOP ?? 1);
/** The rotation tests' time limits, longer with each loop. */
const [LOOP_MS, LONG_LOOP_MS] = [1_200_000 * LOOP, 1_800_000 * LOOP];
const looped = <T>(xs: readonly T[]): T[] => xs.flatMap((x) => Array.from({ length: LOOP }, () => x));
const nth = (seen: Record<string, unknown>, key: string): string =>
  LOOP > 1 ? `${key} #${Object.keys(seen).filter((k) => k.startsWith(`${key} `)).length + 1}` : key;
// Pings lost per direction while a refused re-authentication of libreswan 4.3 / 5.2 is rolled
// back: 107 and 108 (5.4 s) on the development machine; asserted at 240 (12 s) for a loaded one.
const ROLLBACK_LOSS = 240;
/** One server of each release, for the lab's own checks. */
const ONE_EACH = [1, 3, 5] as const;

describeLab('the lab, then every release and backend, IPv4 and IPv6', () => {
  let pids: string[] = [];

  beforeAll(() => {
    labUp(6, { releases: LAB.map((h) => h.release), preinstall: PREINSTALL });
    pids = ALL.map((i) => readFileSync(join(STATE, 'hosts', hostName(i), 'pid'), 'utf8').trim());
  }, 900_000);
  afterAll(() => {
    if (existsSync(STATE)) labDown();
  }, 120_000);

  test('each server answers SSH with strict host-key checking and runs its release', () => {
    const r = onAll(ALL, () => 'hostname; cat /etc/debian_version');
    for (const h of LAB) {
      const i = h.i;
      expect(r[i]?.code).toBe(0);
      expect(r[i]?.out).toMatch(new RegExp(`^${hostName(i)}\n${DEBIAN_MAJOR[h.release]}\\.`));
      expect(hostRelease(hostName(i))).toBe(h.release);
      expect(hostPreinstall(hostName(i))).toBe(PREINSTALL[i - 1]);
    }
    // One line per server, with both its addresses and its own key.
    const known = readFileSync(KNOWN_HOSTS, 'utf8').trim().split('\n');
    expect(known.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(ALL.map((i) => `${hostIp(i)},${hostIp6(i)} ssh-ed25519`));
    expect(new Set(known.map((l) => l.split(' ')[2])).size).toBe(ALL.length);
  });

  test('SSH over IPv6 verifies the same host key', () => {
    for (const i of ONE_EACH) {
      const r = sshTo(hostIp6(i), 'hostname');
      expect({ code: r.code, out: r.stdout.trim(), err: r.stderr }).toEqual({ code: 0, out: hostName(i), err: '' });
    }
  });

  test('a wrong host key is refused (the check is real)', () => {
    const r = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        NETNS,
        'ssh',
        '-o',
        'BatchMode=yes',
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        `UserKnownHostsFile=${KNOWN_HOSTS}`,
        '-o',
        `HostKeyAlias=${hostIp(2)}`,
        '-i',
        IDENTITY,
        `root@${hostIp(1)}`,
        'true',
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  test('each server reaches its peers and the bridge over IPv4 and IPv6, with no DAD or router advertisement left over', () => {
    const r = onAll(ONE_EACH, (i) =>
      [
        ...ONE_EACH.filter((j) => j !== i).flatMap((j) => [`ping -c 1 -W 3 ${hostIp(j)} >/dev/null`, `ping -6 -c 1 -W 3 ${hostIp6(j)} >/dev/null`]),
        'ping -6 -c 1 -W 3 fd77::1 >/dev/null',
        'ip -6 addr show dev eth0 | grep -cE "tentative|dadfailed" || true',
        'ip -6 route show default | wc -l',
        'ip -br -6 addr show dev eth0',
      ].join(' && '),
    );
    for (const i of ONE_EACH) {
      expect(r[i]?.code).toBe(0);
      const [tentative, defaults, addrs] = (r[i]?.out ?? '').trim().split('\n');
      expect({ tentative, defaults }).toEqual({ tentative: '0', defaults: '0' });
      expect(addrs).toContain(`${hostIp6(i)}/64`);
    }
  });

  test('modules for IPsec and nftables are loaded; nftables takes `rt ipsec missing`; only the preinstalled IPsec package is there', () => {
    const r = onAll(
      ONE_EACH,
      () =>
        'for m in ipv6 esp4 esp6 xfrm_user nf_tables nft_xfrm; do grep -q "^$m " /proc/modules && echo "$m"; done; ' +
        'nft add table inet labsmoke && nft add chain inet labsmoke o "{ type filter hook output priority 0; }" && ' +
        'nft add rule inet labsmoke o rt ipsec missing counter && ' +
        // `meta ipsec` (the packet was decrypted) is only valid on the way in.
        'nft add chain inet labsmoke i "{ type filter hook input priority 0; }" && nft add rule inet labsmoke i meta ipsec missing counter && ' +
        'nft list table inet labsmoke | grep -c "ipsec missing"; nft delete table inet labsmoke; ' +
        "dpkg-query -W -f='${Package} ${Status}\\n' libreswan strongswan-starter strongswan-swanctl 2>/dev/null | grep 'install ok installed' | cut -d' ' -f1",
    );
    for (const i of ONE_EACH) {
      const pkgs = { none: [], libreswan: ['libreswan'], strongswan: ['strongswan-starter'] }[PREINSTALL[i - 1]!];
      expect({ server: i, out: r[i]?.out.trim().split('\n') }).toEqual({
        server: i,
        out: ['ipv6', 'esp4', 'esp6', 'xfrm_user', 'nf_tables', 'nft_xfrm', '2', ...pkgs],
      });
    }
  });

  test('ESP carries traffic between two servers over IPv4 and over IPv6 (manual keys, transport mode)', () => {
    // Static SAs between server-01 (bullseye) and server-05 (trixie): the kernels' ESP, not an IKE daemon.
    const key = `0x${'11'.repeat(36)}`;
    const setup = (me: number, peer: number, addr: (i: number) => string): string => {
      const spiOut = me === 1 ? '0x1001' : '0x5001';
      const spiIn = me === 1 ? '0x5001' : '0x1001';
      return [
        `ip xfrm state add src ${addr(me)} dst ${addr(peer)} proto esp spi ${spiOut} mode transport aead 'rfc4106(gcm(aes))' ${key} 128`,
        `ip xfrm state add src ${addr(peer)} dst ${addr(me)} proto esp spi ${spiIn} mode transport aead 'rfc4106(gcm(aes))' ${key} 128`,
        `ip xfrm policy add src ${addr(me)} dst ${addr(peer)} dir out tmpl proto esp mode transport`,
        `ip xfrm policy add src ${addr(peer)} dst ${addr(me)} dir in tmpl proto esp mode transport`,
      ].join(' && ');
    };
    try {
      for (const [me, peer] of [
        [1, 5],
        [5, 1],
      ] as const) {
        const r = onServer(hostName(me), `${setup(me, peer, hostIp)} && ${setup(me, peer, hostIp6)}`);
        expect({ me, code: r.code, err: r.stderr }).toEqual({ me, code: 0, err: '' });
      }
      const ping = onServer(hostName(1), `ping -c 3 -W 3 ${hostIp(5)} >/dev/null && ping -6 -c 3 -W 3 ${hostIp6(5)} >/dev/null && echo ok`);
      expect(ping.stdout.trim()).toBe('ok');
      // Packets decrypted on server-05, in both SAs it received on (IPv4 and IPv6).
      const seen = onServer(hostName(5), 'ip -s xfrm state list spi 0x1001 | grep -A1 "lifetime current" | grep -oE "[0-9]+\\(packets\\)"')
        .stdout.trim()
        .split('\n');
      expect(seen).toHaveLength(2);
      for (const s of seen) expect(Number.parseInt(s, 10)).toBeGreaterThanOrEqual(3);
    } finally {
      for (const i of [1, 5]) onServer(hostName(i), 'ip xfrm policy flush; ip xfrm state flush');
    }
  });

  test("apt installs from the release's own mirror: libreswan, strongswan-starter and strongswan-swanctl have the expected candidates", () => {
    const r = onAll(
      ONE_EACH,
      () =>
        'apt-get update -q >/dev/null && cat /etc/apt/sources.list && ' +
        'for p in libreswan strongswan-starter strongswan-charon strongswan-swanctl openswan; do echo "$p $(apt-cache policy $p | awk \'/Candidate/{print $2}\')"; done && ' +
        'cd /tmp && apt-get download -q strongswan-swanctl >/dev/null && dpkg-deb -c strongswan-swanctl_*.deb | grep -c "plugins/libstrongswan-vici.so"',
      300_000,
    );
    for (const i of ONE_EACH) {
      const rel = LAB[i - 1]!.release;
      expect({ server: i, code: r[i]?.code }).toEqual({ server: i, code: 0 });
      const out = r[i]?.out ?? '';
      expect(out).toContain(`deb [trusted=yes] http://10.77.0.1:8080/${rel} ./`);
      const candidate = (p: string): string => new RegExp(`^${p} (.*)$`, 'm').exec(out)?.[1] ?? '';
      expect(candidate('libreswan')).toMatch(CANDIDATES[rel].libreswan);
      expect(candidate('strongswan-starter')).toMatch(CANDIDATES[rel].strongswan);
      expect(candidate('strongswan-charon')).toMatch(CANDIDATES[rel].strongswan);
      expect(candidate('strongswan-swanctl')).toMatch(CANDIDATES[rel].strongswan);
      expect(candidate('openswan')).toMatch(/^(\(none\))?$/);
      expect(out.trim().split('\n').pop()).toBe('1');
    }
  }, 300_000);

  test('status lists each server with its addresses, release and preinstall', () => {
    const r = lab('status');
    for (const h of LAB) {
      expect(r.stdout).toMatch(
        new RegExp(
          `${hostName(h.i)} +${hostIp(h.i).replace(/\./g, '\\.')} +${hostIp6(h.i)} +pid \\d+ +running +${h.release} +preinstall ${PREINSTALL[h.i - 1]}`,
        ),
      );
    }
  });

  test('IPv4 mesh: the right package on each release (installed by the tool on trixie), all 15 pairs ESP-verified, no clear packet on the wire', () => {
    const wire = watchWire('mesh4');
    const r = provision('--inventory', v4(), '--json');
    // Watched outside the servers for the whole first converge: installs, restarts, first negotiations.
    expect(wire.stop(V4_PAIRS.map(([a, b]) => [hostIp(a), hostIp(b)]))).toEqual([]);
    const o = outcome(r);
    expect({ notVerified: o.pairs.filter(([, s]) => s !== 'verified'), hosts: o.hosts ?? [] }).toEqual({ notVerified: [], hosts: [] });
    expect(o).toMatchObject({ code: 0 });
    expect(o.pairs).toHaveLength(15);
    const versions = Object.fromEntries(json(r).hosts.map((h: any) => [h.name, `${h.backend.package} ${h.backend.version}`]));
    expect(versions).toEqual({
      'server-01': 'libreswan 4.3',
      'server-02': 'strongswan-starter 5.9.1',
      'server-03': 'libreswan 4.10',
      'server-04': 'strongswan-starter 5.9.8',
      'server-05': 'libreswan 5.2',
      'server-06': 'strongswan-starter 6.0.1',
    });
    const installed = Object.fromEntries(
      json(r)
        .hosts.filter((h: any) => h.did?.some((d: string) => d.startsWith('installed ')))
        .map((h: any) => [h.name, h.did.find((d: string) => d.startsWith('installed '))]),
    );
    // The preinstalled strongSwan servers lack strongswan-swanctl (the vici plugin rotation uses): the tool adds it.
    expect(installed).toMatchObject({
      'server-02': expect.stringMatching(/^installed .*strongswan-swanctl/),
      'server-04': expect.stringMatching(/^installed .*strongswan-swanctl/),
    });
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
    for (const [from, to] of [
      [1, 6],
      [4, 1],
      [6, 3],
    ] as const) {
      expect({ from, to, seen: wireCheck(name(from), hostIp(to)) }).toMatchObject({ seen: { esp: 4, clear: 0, replies: 4 } });
    }
  }, 600_000);

  // strongSwan's trap policy caught the neighbour advertisements to the peer: no SA ever formed
  // until the strongSwan ends got their ND passthrough (src/backends/strongswan.ts).
  test('IPv6 mesh of every release and backend: all 15 pairs verified by the tool (ICMPv6) and from outside, no clear packet on the wire, one rotated (--rotate-mode reauth, then by default: reread and probed)', () => {
    // server-02 (strongSwan 5.9.1) as on a system without netbase: no /etc/protocols. Given
    // `ipv6-icmp` by name, charon there passed all IPv6 traffic in clear.
    onServer('server-02', 'mv /etc/protocols /etc/protocols.away');
    const wire = watchWire('pairs6');
    let r: ReturnType<typeof provision>;
    let policies: string;
    try {
      r = provision('--inventory', v6(), '--json');
      policies = onServer('server-02', 'ip -6 xfrm policy').stdout;
    } finally {
      onServer('server-02', 'mv /etc/protocols.away /etc/protocols');
    }
    expect(wire.stop(V6_PAIRS.map(([a, b]) => [hostIp6(a), hostIp6(b)]))).toEqual([]);
    expect(clearPassthroughs(parseXfrmPolicies(policies)).map(describePolicy)).toEqual([]);
    expect(outcome(r)).toEqual({ code: 0, pairs: V6_PAIRS.map(([a, b]) => [v6Name(a, b), 'verified']) });
    // The strongSwan ends pass neighbour discovery (and only that) outside IPsec.
    for (const s of ['server-02', 'server-04', 'server-06']) {
      const shunts = onServer(s, 'ipsec statusall | grep "provision-nd-n[sa]:.*PASS" | cut -d: -f1 | tr -d " " | sort -u').stdout.trim();
      expect({ s, shunts }).toEqual({ s, shunts: 'provision-nd-na\nprovision-nd-ns' });
    }
    expect(wireCheck('server-06', hostIp6(3))).toMatchObject({ esp: 4, clear: 0, replies: 4 });
    expect(wireCheck('server-02', hostIp6(5))).toMatchObject({ esp: 4, clear: 0, replies: 4 });
    expect(wireCheck('server-02', hostIp6(6))).toMatchObject({ esp: 4, clear: 0, replies: 4 });
    // Two fleets on the same hosts: the IPv4 one is untouched.
    expect(json(r).retired).toEqual([]);
    const before = keyOf('server-05', 'v6-02-05');
    expect(outcome(provision('--inventory', v6(), '--rotate-psk', 'v6-02-05', '--rotate-mode', 'reauth', '--json'))).toMatchObject({ code: 0 });
    expect(keyOf('server-05', 'v6-02-05')).not.toBe(before);
    expect(keyOf('server-02', 'v6-02-05')).toBe(keyOf('server-05', 'v6-02-05'));
    // Again by default: reread, strongSwan 5.9.1 probes libreswan 5.2 over IPv6.
    const reread = provision('--inventory', v6(), '--rotate-psk', 'v6-02-05', '--json');
    expect(outcome(reread)).toMatchObject({ code: 0 });
    expect(json(reread).pairs.find((p: any) => p.name === 'v6-02-05')).toMatchObject({ rotateMode: 'reread', probeBy: 'server-02' });
    expect(json(reread).hosts.find((h: any) => h.name === 'server-02').did).toContain(
      'authenticated the new key of v6-02-05 with a probe IKE SA; its SAs kept',
    );
    expect(keyOf('server-02', 'v6-02-05')).toBe(keyOf('server-05', 'v6-02-05'));
  }, 1_200_000);

  // Key rotation under 20 pings/s each way, one pair at a time, watched on the taps: the loss
  // and the clear packets per direction (docs/rotation.md has them). One pair per mechanism
  // here; `npm run bench:rotation` (PROVISION_ROTATION_ALL=1) measures every kind of pair.
  const rotations: string[] = [];
  // mode 'default': no --rotate-mode, the per-pair choice (reread with a probe, or reauth).
  const measure = (a: number, b: number, mode: 'reauth' | 'reread' | 'default', inv: string) => {
    const conn = `${name(a)}--${name(b)}`;
    const before = keyOf(name(a), conn);
    const w = watchPair(a, b);
    let r: ReturnType<typeof provision> | undefined;
    let seen: OutageSeen;
    try {
      r = provision('--inventory', inv, '--rotate-psk', `${name(a)},${name(b)}`, ...(mode === 'default' ? [] : ['--rotate-mode', mode]), '--json');
      spin(2);
    } finally {
      seen = w.stop();
    }
    const pair = json(r).pairs.find((p: any) => p.hosts.includes(name(a)) && p.hosts.includes(name(b)));
    const did: string[] = json(r).hosts.flatMap((h: any) => h.did ?? []);
    const probed = did.includes(`authenticated the new key of ${conn} with a probe IKE SA; its SAs kept`);
    const line =
      `${name(a)} (${LAB[a - 1]!.backend} on ${LAB[a - 1]!.release}) / ${name(b)} (${LAB[b - 1]!.backend} on ${LAB[b - 1]!.release}), ${mode === 'default' ? `default (${pair.rotateMode})` : mode}: ` +
      seen.directions.map((d) => `${d.from} -> ${d.to} ${d.lost} of ${d.sent} lost`).join(', ') +
      `; clear ${Object.values(seen.clear).reduce((n, t) => n + t.length, 0)}; ${pair.status}${pair.reauthBy ? ` (re-authenticated by ${pair.reauthBy})` : ''}${probed ? ' (key probed)' : ''}` +
      // Why, when it did not verify: a rollback that the test's retry then hides is still on record.
      (pair.status !== 'verified' && pair.reason ? ` (${pair.reason})` : '');
    rotations.push(line);
    process.stdout.write(`${line}\n`);
    const keys = [keyOf(name(a), conn), keyOf(name(b), conn)];
    return {
      probed,
      mode: pair.rotateMode,
      kept: keys[0] === before && keys[1] === before,
      // The reason, and any host's error, only when it did not verify: CI shows why.
      status: pair.status === 'verified' ? 'verified' : `${pair.status}: ${pair.reason ?? ''} ${(outcome(r!).hosts ?? []).join('; ')}`,
      rotated: keys[0] !== before && keys[0] === keys[1],
      lost: seen.directions.map((d) => d.lost),
      clear: Object.values(seen.clear).flat().length,
      sent: seen.directions.map((d) => d.sent),
    };
  };

  test(
    'rotations driven from a strongSwan end (make-before-break): the new key on both ends, at most 8 packets (0.4 s) lost each way, none in clear',
    () => {
      // The peer sends on the new Child SA before this end has its keys (docs/rotation.md has
      // the figures). Asserted at 8 (0.4 s) on libreswan 4.3 with strongSwan 6.0.1 (the widest
      // version gap); the benchmark adds libreswan 4.10 with strongSwan 5.9.8 (Debian 12's
      // own) and strongSwan 5.9.8 with 6.0.1.
      const seen: Record<string, unknown> = {};
      for (const [a, b] of looped(
        ALL_ROTATIONS
          ? ([
              [1, 6],
              [3, 4],
              [4, 6],
            ] as const)
          : ([[1, 6]] as const),
      )) {
        // By default: no end of these can probe its peer without costing its SAs.
        const m = measure(a, b, 'default', v4());
        seen[nth(seen, `${a}-${b}`)] = {
          mode: m.mode,
          status: m.status,
          rotated: m.rotated,
          clear: m.clear,
          lostWithin: m.lost.every((l) => l <= 8),
          enoughSent: m.sent.every((n) => n > 40),
        };
      }
      for (const k of Object.keys(seen))
        expect({ pair: k, ...(seen[k] as object) }).toEqual({
          pair: k,
          mode: 'reauth',
          status: 'verified',
          rotated: true,
          clear: 0,
          lostWithin: true,
          enoughSent: true,
        });
    },
    LONG_LOOP_MS,
  );

  test(
    'the default rotation of a pair with a strongSwan end that can probe: reread, a probe IKE SA authenticates the new key and nothing is lost; a key the peer does not take is rolled back, still without loss',
    () => {
      // The probe: a childless IKE SA (RFC 6023) from the strongSwan end beside the running
      // one, with the pair's IDs. Its peer here: libreswan 4.10 as responder (strongSwan 5.9.1
      // initiates); the IPv6 test has it probe libreswan 5.2, and the benchmark adds libreswan
      // 5.2 as initiator (with strongSwan 6.0.1).
      // The pair's ESP SAs (SPIs, on the libreswan end), and what the probe leaves on the strongSwan end.
      const spis = (a: number, b: number) =>
        onServer(
          name(a),
          `{ ip xfrm state list src ${hostIp(a)} dst ${hostIp(b)}; ip xfrm state list src ${hostIp(b)} dst ${hostIp(a)}; } | awk '$1 == "proto" && $2 == "esp" {print $4}' | sort | tr '\\n' ' '`,
        ).stdout.trim();
      const leftovers = (s: number) =>
        onServer(
          name(s),
          'ls /etc/swanctl/conf.d | grep -c provision-probe; swanctl --list-conns 2>/dev/null | grep -c provision-probe; swanctl --list-sas 2>/dev/null | grep -c provision-probe',
        )
          .stdout.split('\n')
          .slice(0, 3)
          .join(' ');
      const seen: Record<string, unknown> = {};
      for (const [a, b, ls, ss] of looped(
        ALL_ROTATIONS
          ? ([
              [2, 3, 3, 2],
              [5, 6, 5, 6],
            ] as const)
          : ([[2, 3, 3, 2]] as const),
      )) {
        const before = spis(ls, ss);
        const m = measure(a, b, 'default', v4());
        seen[nth(seen, `${a}-${b}`)] = {
          mode: m.mode,
          status: m.status,
          rotated: m.rotated,
          probed: m.probed,
          clear: m.clear,
          lost: m.lost,
          sasKept: before !== '' && spis(ls, ss) === before,
          leftovers: leftovers(ss),
        };
      }
      for (const k of Object.keys(seen)) {
        expect({ pair: k, ...(seen[k] as object) }).toEqual({
          pair: k,
          mode: 'reread',
          status: 'verified',
          rotated: true,
          probed: true,
          clear: 0,
          lost: [0, 0],
          sasKept: true,
          leftovers: '0 0 0',
        });
      }
      // A stale secrets line on the libreswan end, read before provision's file, keeps the old
      // key in force there: both files agree (the keys compare equal), but the probe is refused.
      const stale = '/etc/ipsec.d/00-stale.secrets';
      expect(
        onServer('server-03', `grep PSK /etc/ipsec.d/server-02--server-03.secrets > ${stale}; chmod 600 ${stale}; ipsec auto --rereadsecrets >/dev/null`).code,
      ).toBe(0);
      try {
        const m = measure(2, 3, 'default', v4());
        expect({
          status: m.status.split(':')[0],
          refused: /did not authenticate with server-03: .*AUTHENTICATION_FAILED/.test(m.status),
          kept: m.kept,
          clear: m.clear,
          lost: m.lost,
        }).toEqual({ status: 'rolled-back', refused: true, kept: true, clear: 0, lost: [0, 0] });
      } finally {
        onServer('server-03', `rm -f ${stale}; ipsec auto --rereadsecrets >/dev/null`);
      }
    },
    LOOP_MS,
  );

  test(
    'libreswan pairs: --rotate-mode reread loses nothing; by default a new IKE SA proves the key, break-before-make (loss measured, never clear)',
    () => {
      // libreswan 4.3 with 5.2: the oldest and the newest. The reread first, on a pair at rest
      // (CI once counted 2 lost each way when it ran just after the re-authentication).
      const quiet = measure(1, 5, 'reread', v4());
      expect({ status: quiet.status, rotated: quiet.rotated, clear: quiet.clear, lost: quiet.lost }).toEqual({
        status: 'verified',
        rotated: true,
        clear: 0,
        lost: [0, 0],
      });
      // Under traffic both ends start the new IKE SA at once; before the tool cleared what such
      // crossed negotiations leave (strays, docs/rotation.md), this rotation rolled back in
      // about one run in four. It must now verify at the first try.
      for (let n = 0; n < LOOP; n++) {
        const m = measure(1, 5, 'default', v4());
        expect({ n, mode: m.mode, status: m.status, rotated: m.rotated, clear: m.clear }).toEqual({
          n,
          mode: 'reauth',
          status: 'verified',
          rotated: true,
          clear: 0,
        });
        // The gap is one negotiation: 9 to 54 pings (0.45 to 2.7 s) measured in the lab, 83 (4.2 s)
        // on the loaded CI machine: asserted at 100 (5 s).
        for (const l of m.lost) expect(l).toBeLessThanOrEqual(100);
      }
      // A key the responder does not take (a stale line read before provision's file): the
      // re-authentication is refused, the old key goes back and the pair comes up with it.
      // The pair carries nothing from the initiator's --down until then, never anything in clear.
      const stale = '/etc/ipsec.d/00-stale.secrets';
      expect(
        onServer('server-05', `grep PSK /etc/ipsec.d/server-01--server-05.secrets > ${stale}; chmod 600 ${stale}; ipsec auto --rereadsecrets >/dev/null`).code,
      ).toBe(0);
      try {
        const back = measure(1, 5, 'default', v4());
        expect({ status: back.status.split(':')[0], kept: back.kept, clear: back.clear }).toEqual({ status: 'rolled-back', kept: true, clear: 0 });
        for (const l of back.lost) expect(l).toBeLessThanOrEqual(ROLLBACK_LOSS);
      } finally {
        onServer('server-05', `rm -f ${stale}; ipsec auto --rereadsecrets >/dev/null`);
      }
      process.stdout.write(`rotation, all pairs:\n  ${rotations.join('\n  ')}\n`);
    },
    LONG_LOOP_MS,
  );

  test('down leaves no process, mount, tap or namespace of the lab; a second down succeeds', () => {
    labDown();
    for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(umlProcesses()).toEqual([]);
    expect(sh(`grep -c " ${STATE}/" /proc/mounts || true`).trim()).toBe('0');
    expect(sh(`grep -F "${CACHE}/" /proc/mounts | grep -c "${STATE}/" || true`).trim()).toBe('0');
    expect(
      sh('ip netns list')
        .split('\n')
        .map((l) => l.split(' ')[0]),
    ).not.toContain(NETNS);
    expect(sh('ip -o link show | grep -c " tap[0-9]" || true').trim()).toBe('0');
    expect(existsSync(STATE)).toBe(false);
    expect(lab('down').code).toBe(0);
  }, 120_000);
});
