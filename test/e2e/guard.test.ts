import { type OutageSeen, watchPair } from '../helpers/outage.js';
import { watchWire } from '../helpers/wire.js';
import { describeLab, hostIp, labDown, labUp, onServer } from '../lab/control.js';
import { inventory, json, outcome, provision, spin } from './support.js';

// The fail-closed guard, watched on the wire outside the servers (tcpdump on the lab's taps,
// which also sees what a rebooting server sends): pings at 20/s both ways on a libreswan
// pair (server-01/server-02) and a libreswan-strongSwan pair (server-03/server-04), while a
// daemon restarts, is reinstalled (the upgrade path), or its server reboots. With the guard:
// no clear packet between the two servers, ever; traffic resumes within a bound. Without it
// (guard: off), a restart leaks, so the test can fail.

const PAIRS = [
  [1, 2],
  [3, 4],
] as const;
const name = (i: number) => `server-0${i}`;
const inv = (guard = true) =>
  inventory(
    guard ? 'guarded.yaml' : 'guarded-off.yaml',
    [{ i: 1 }, { i: 2 }, { i: 3 }, { i: 4, backend: 'strongswan' }],
    'pairs:\n  - [server-01, server-02]\n  - [server-03, server-04]\n',
    { fleet: 'guarded', ...(guard ? {} : { defaults: '  ipsec: {guard: off}\n' }) },
  );
const seen: string[] = [];

/**
 * Watches both pairs while `act` runs on one server of each (at once, in the background), waits
 * for `act` to finish on both (or for the server to have rebooted), then until traffic flows
 * again both ways; returns what the wire saw, and records it for the report. A rebooting
 * server's own pinger dies with it, so only its peer pings then (and the early-boot unit of
 * test (c) sends from the rebooting side).
 */
function scenario(what: string, servers: [number, number], act: (server: string) => string, maxSec: number, reboot = false): OutageSeen[] {
  const watches = PAIRS.map(([a, b]) => watchPair(a, b, reboot ? [a, b].filter((i) => !servers.includes(i)) : [a, b]));
  const results: OutageSeen[] = [];
  try {
    const boot = servers.map((s) => onServer(name(s), 'cat /proc/sys/kernel/random/boot_id').stdout.trim());
    for (const s of servers) {
      const cmd = reboot ? act(name(s)) : `${act(name(s))}; touch /run/act.done`;
      expect(onServer(name(s), `rm -f /run/act.done; (nohup sh -c ${JSON.stringify(cmd)} >/tmp/act.log 2>&1 &) ; true`).code).toBe(0);
    }
    const deadline = Date.now() + maxSec * 1000;
    servers.forEach((s, k) => {
      const done = () =>
        /yes/.test(
          onServer(name(s), `test -e /run/act.done || [ "$(cat /proc/sys/kernel/random/boot_id)" != "${boot[k]}" ] && echo yes`, undefined, 20_000).stdout,
        );
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`${what}: not finished on ${name(s)} within ${maxSec} s`);
        spin(2);
      }
    });
    const after = Date.now() / 1000;
    for (const w of watches) expect(w.waitFlowing(after, maxSec)).toBe(true);
  } finally {
    for (const w of watches) results.push(w.stop());
  }
  results.forEach((r, k) => {
    const [a, b] = PAIRS[k]!;
    const gap = Math.max(...r.directions.map((d) => d.longestGap));
    seen.push(
      `${what}, ${name(a)}/${name(b)}: traffic stopped ${gap.toFixed(1)} s; clear ICMP from ${name(a)}: ${r.clear[name(a)]!.length}, from ${name(b)}: ${r.clear[name(b)]!.length}`,
    );
  });
  process.stdout.write(`${seen.slice(-2).join('\n')}\n`);
  return results;
}

const noClear = (rs: OutageSeen[]) => rs.map((r) => Object.fromEntries(Object.entries(r.clear).map(([k, v]) => [k, v.length])));

describeLab('the fail-closed guard', () => {
  beforeAll(() => {
    labUp(4, { preinstall: ['libreswan', 'libreswan', 'libreswan', 'strongswan'] });
    // The first converge, watched on the wire: the guard holds from the first negotiation.
    const wire = watchWire('guarded');
    const r = provision('--inventory', inv(), '--json');
    expect(wire.stop(PAIRS.map(([a, b]) => [hostIp(a), hostIp(b)]))).toEqual([]);
    expect(outcome(r)).toEqual({
      code: 0,
      pairs: [
        ['server-01--server-02', 'verified'],
        ['server-03--server-04', 'verified'],
      ],
    });
  }, 1_200_000);
  afterAll(() => {
    process.stdout.write(`guard, all scenarios:\n  ${seen.join('\n  ')}\n`);
    labDown();
  }, 120_000);

  test('the guard is loaded with each peer, at boot before the IKE daemon, and reported with its counters', () => {
    for (const [a, b] of PAIRS) {
      expect(onServer(name(a), 'nft list set inet provision_guarded peers4').stdout).toContain(`elements = { ${hostIp(b)} }`);
      expect(onServer(name(b), 'nft list set inet provision_guarded peers4').stdout).toContain(`elements = { ${hostIp(a)} }`);
    }
    const unit = onServer('server-02', 'systemctl show provision-guard -p Before -p WantedBy -p UnitFileState').stdout;
    expect(unit).toMatch(/Before=.*ipsec\.service/);
    expect(unit).toMatch(/UnitFileState=enabled/);
    const j = json(provision('--inventory', inv(), '--json'));
    expect(j.hosts.find((h: any) => h.name === 'server-01').guard).toMatchObject({ table: 'provision_guarded', members: [hostIp(2)], load: false });
  }, 300_000);

  test('(a) the daemon restarts (a libreswan initiator, a strongSwan responder): no clear packet, traffic back within 300 s', () => {
    // The responder side restarts in the guard-off test below, which leaks without the guard.
    // libreswan's restart took 25 to 40 s on a lab alone, and over 180 s with two labs on
    // two cores: the bound is generous, the point is that nothing leaves in clear meanwhile.
    const rs = scenario('restart ipsec on server-01 and server-04', [1, 4], () => 'systemctl restart ipsec', 300);
    expect(noClear(rs)).toEqual([
      { 'server-01': 0, 'server-02': 0 },
      { 'server-03': 0, 'server-04': 0 },
    ]);
    for (const r of rs) for (const d of r.directions) expect(d.longestGap).toBeLessThan(300);
  }, 1_200_000);

  test('(b) the IPsec package is reinstalled (what an upgrade does): no clear packet', () => {
    for (const s of [2, 4]) expect(onServer(name(s), 'apt-get update -q >/dev/null 2>&1; echo ok').code).toBe(0);
    const rs = scenario(
      'apt-get install --reinstall on server-02 (libreswan) and server-04 (strongSwan)',
      [2, 4],
      (s) => `DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -q ${s === 'server-04' ? 'strongswan-starter' : 'libreswan'}`,
      300,
    );
    expect(noClear(rs)).toEqual([
      { 'server-01': 0, 'server-02': 0 },
      { 'server-03': 0, 'server-04': 0 },
    ]);
  }, 900_000);

  test('(c) a server reboots, with an application pinging its peer from early boot: no clear packet', () => {
    // A unit that pings the peer from before the IKE daemon starts, on each rebooting server.
    for (const [s, peer] of [
      [2, 1],
      [3, 4],
    ] as const) {
      expect(
        onServer(
          name(s),
          `printf '[Unit]\\nDefaultDependencies=no\\nAfter=network.target\\nBefore=ipsec.service\\n[Service]\\nExecStart=/bin/ping -i 0.05 -w 120 ${hostIp(peer)}\\n[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/early-ping.service && systemctl enable --quiet early-ping`,
        ).code,
      ).toBe(0);
    }
    const rs = scenario('reboot of server-02 and server-03', [2, 3], () => 'systemctl reboot', 420, true);
    expect(noClear(rs)).toEqual([
      { 'server-01': 0, 'server-02': 0 },
      { 'server-03': 0, 'server-04': 0 },
    ]);
    // The guard was loaded before ipsec started.
    const order = onServer(
      'server-02',
      'systemctl show provision-guard -p ActiveEnterTimestampMonotonic --value; systemctl show ipsec -p ExecMainStartTimestampMonotonic --value',
    )
      .stdout.trim()
      .split('\n')
      .map(Number);
    expect(order[0]).toBeGreaterThan(0);
    expect(order[0]).toBeLessThan(order[1]!);
    for (const s of [2, 3]) onServer(name(s), 'systemctl disable --quiet early-ping; rm -f /etc/systemd/system/early-ping.service');
  }, 1_200_000);

  test('without the guard (guard: off), a restart leaks: this test can fail', () => {
    // Its own state: every server up (a reboot above may still be finishing), then guard: off.
    for (const s of [1, 2, 3, 4]) {
      const deadline = Date.now() + 300_000;
      while (onServer(name(s), 'systemctl is-system-running --wait >/dev/null 2>&1; true', undefined, 60_000).code !== 0) {
        if (Date.now() > deadline) throw new Error(`${name(s)} did not answer within 300 s`);
        spin(5);
      }
    }
    const off = provision('--inventory', inv(false), '--json');
    expect(outcome(off)).toEqual({
      code: 0,
      pairs: [
        ['server-01--server-02', 'verified'],
        ['server-03--server-04', 'verified'],
      ],
    });
    expect(onServer('server-02', 'nft list tables | grep -c provision_guarded || true').stdout.trim()).toBe('0');
    const rs = scenario('restart ipsec on server-02 and server-04 without the guard', [2, 4], () => 'systemctl restart ipsec', 300);
    expect(rs[0]!.clear['server-02']!.length).toBeGreaterThan(0);
  }, 900_000);
});
