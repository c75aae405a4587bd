import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEBIAN_MAJOR, describeLab, hostIp, hostIp6, hostName, hostPreinstall, hostRelease, IDENTITY, KNOWN_HOSTS, lab, LAB_SCRIPT, labDown,
  labReset, labUp, NETNS, onServer, type Release, sshTo, STATE,
} from '../lab/control.js';

// One server of each release; the reset test turns server-02 into a bookworm server with
// libreswan preinstalled (the snapshot layer path).
const RELEASES: Release[] = ['bullseye', 'bookworm', 'trixie'];
const N = RELEASES.length;
const servers = Array.from({ length: N }, (_, i) => i + 1);

// apt candidates the local mirror must offer, per release.
const CANDIDATES: Record<Release, { libreswan: RegExp; strongswan: RegExp }> = {
  bullseye: { libreswan: /^4\.3-/, strongswan: /^5\.9\.1-/ },
  bookworm: { libreswan: /^4\.10-/, strongswan: /^5\.9\.8-/ },
  trixie: { libreswan: /^5\.2-/, strongswan: /^6\.0\.1-/ },
};

/** Command lines of running UML guests rooted in this lab's state folder. */
function umlProcesses(): string[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      return cmd.includes('linux.uml') && cmd.includes(STATE) ? [cmd] : [];
    } catch {
      return [];
    }
  });
}

function sh(cmd: string): string {
  return spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }).stdout ?? '';
}

/** Runs the same command on every server in parallel (one background ssh each); outputs by server number. */
function onAll(command: (i: number) => string, timeoutMs = 120_000): Record<number, { code: number; out: string }> {
  const script = servers.map((i) => `("$LAB" ssh ${hostName(i)} ${shellQuote(command(i))} > "$D/${i}.out" 2>&1; echo $? > "$D/${i}.rc") &`).join('\n');
  const r = spawnSync('sh', ['-c', `D=$(mktemp -d); ${script}\nwait; for i in ${servers.join(' ')}; do printf '@@%s %s\\n' $i "$(cat $D/$i.rc)"; cat $D/$i.out; done; rm -rf "$D"`],
    { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, LAB: LAB_SCRIPT } });
  const result: Record<number, { code: number; out: string }> = {};
  for (const part of (r.stdout ?? '').split('@@').slice(1)) {
    const m = /^(\d+) (\d+)\n([\s\S]*)$/.exec(part);
    if (m) result[Number(m[1])] = { code: Number(m[2]), out: m[3] ?? '' };
  }
  return result;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

describeLab('the lab of real Debian servers (mixed releases, IPv4 and IPv6)', () => {
  let pids: string[] = [];

  beforeAll(() => {
    labUp(N, { releases: RELEASES });
    pids = servers.map((i) => readFileSync(join(STATE, 'hosts', hostName(i), 'pid'), 'utf8').trim());
  }, 1_800_000);

  afterAll(() => {
    if (existsSync(STATE)) labDown();
  }, 120_000);

  test('each server answers SSH with strict host-key checking and runs its release', () => {
    const r = onAll(() => 'hostname; cat /etc/debian_version');
    for (const i of servers) {
      expect(r[i]?.code).toBe(0);
      expect(r[i]?.out).toMatch(new RegExp(`^${hostName(i)}\n${DEBIAN_MAJOR[RELEASES[i - 1]!]}\\.`));
      expect(hostRelease(hostName(i))).toBe(RELEASES[i - 1]);
      expect(hostPreinstall(hostName(i))).toBe('none');
    }
    // One line per server, with both its addresses and its own key.
    const known = readFileSync(KNOWN_HOSTS, 'utf8').trim().split('\n');
    expect(known.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(servers.map((i) => `${hostIp(i)},${hostIp6(i)} ssh-ed25519`));
    expect(new Set(known.map((l) => l.split(' ')[2])).size).toBe(N);
  });

  test('SSH over IPv6 verifies the same host key', () => {
    for (const i of servers) {
      const r = sshTo(hostIp6(i), 'hostname');
      expect({ code: r.code, out: r.stdout.trim(), err: r.stderr }).toEqual({ code: 0, out: hostName(i), err: '' });
    }
  });

  test('a wrong host key is refused (the check is real)', () => {
    const r = spawnSync('ip', ['netns', 'exec', NETNS, 'ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${KNOWN_HOSTS}`, '-o', 'HostKeyAlias=' + hostIp(2),
      '-i', IDENTITY, `root@${hostIp(1)}`, 'true'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  test('each server reaches its peers and the bridge over IPv4 and IPv6, with no DAD or router advertisement left over', () => {
    const r = onAll((i) => [
      ...servers.filter((j) => j !== i).flatMap((j) => [`ping -c 1 -W 3 ${hostIp(j)} >/dev/null`, `ping -6 -c 1 -W 3 ${hostIp6(j)} >/dev/null`]),
      'ping -6 -c 1 -W 3 fd77::1 >/dev/null',
      'ip -6 addr show dev eth0 | grep -cE "tentative|dadfailed" || true',
      'ip -6 route show default | wc -l',
      'ip -br -6 addr show dev eth0',
    ].join(' && '));
    for (const i of servers) {
      expect(r[i]?.code).toBe(0);
      const [tentative, defaults, addrs] = (r[i]?.out ?? '').trim().split('\n');
      expect({ tentative, defaults }).toEqual({ tentative: '0', defaults: '0' });
      expect(addrs).toContain(`${hostIp6(i)}/64`);
    }
  });

  test('modules for IPsec and nftables are loaded; nftables takes `rt ipsec missing`; no IPsec package is installed', () => {
    const r = onAll(() => 'for m in ipv6 esp4 esp6 xfrm_user nf_tables nft_xfrm; do grep -q "^$m " /proc/modules && echo "$m"; done; ' +
      'nft add table inet labsmoke && nft add chain inet labsmoke o "{ type filter hook output priority 0; }" && ' +
      'nft add rule inet labsmoke o rt ipsec missing counter && ' +
      // `meta ipsec` (the packet was decrypted) is only valid on the way in.
      'nft add chain inet labsmoke i "{ type filter hook input priority 0; }" && nft add rule inet labsmoke i meta ipsec missing counter && ' +
      'nft list table inet labsmoke | grep -c "ipsec missing"; nft delete table inet labsmoke; ' +
      "dpkg-query -W -f='${Status}\\n' libreswan strongswan-starter strongswan-charon strongswan-swanctl 2>/dev/null | grep -c 'install ok installed' || true");
    for (const i of servers) {
      expect({ server: i, out: r[i]?.out.trim().split('\n') }).toEqual({ server: i, out: ['ipv6', 'esp4', 'esp6', 'xfrm_user', 'nf_tables', 'nft_xfrm', '2', '0'] });
    }
  });

  test('ESP carries traffic between two servers over IPv4 and over IPv6 (manual keys, transport mode)', () => {
    // Static SAs between server-01 (bullseye) and server-03 (trixie): the kernels' ESP, not an IKE daemon.
    const key = '0x' + '11'.repeat(36);
    const setup = (me: number, peer: number, addr: (i: number) => string): string => {
      const spiOut = me === 1 ? '0x1001' : '0x3001';
      const spiIn = me === 1 ? '0x3001' : '0x1001';
      return [
        `ip xfrm state add src ${addr(me)} dst ${addr(peer)} proto esp spi ${spiOut} mode transport aead 'rfc4106(gcm(aes))' ${key} 128`,
        `ip xfrm state add src ${addr(peer)} dst ${addr(me)} proto esp spi ${spiIn} mode transport aead 'rfc4106(gcm(aes))' ${key} 128`,
        `ip xfrm policy add src ${addr(me)} dst ${addr(peer)} dir out tmpl proto esp mode transport`,
        `ip xfrm policy add src ${addr(peer)} dst ${addr(me)} dir in tmpl proto esp mode transport`,
      ].join(' && ');
    };
    try {
      for (const [me, peer] of [[1, 3], [3, 1]] as const) {
        const r = onServer(hostName(me), `${setup(me, peer, hostIp)} && ${setup(me, peer, hostIp6)}`);
        expect({ me, code: r.code, err: r.stderr }).toEqual({ me, code: 0, err: '' });
      }
      const ping = onServer(hostName(1), `ping -c 3 -W 3 ${hostIp(3)} >/dev/null && ping -6 -c 3 -W 3 ${hostIp6(3)} >/dev/null && echo ok`);
      expect(ping.stdout.trim()).toBe('ok');
      // Packets decrypted on server-03, in both SAs it received on (IPv4 and IPv6).
      const seen = onServer(hostName(3), 'ip -s xfrm state list spi 0x1001 | grep -A1 "lifetime current" | grep -oE "[0-9]+\\(packets\\)"').stdout.trim().split('\n');
      expect(seen).toHaveLength(2);
      for (const s of seen) expect(Number.parseInt(s, 10)).toBeGreaterThanOrEqual(3);
    } finally {
      for (const i of [1, 3]) onServer(hostName(i), 'ip xfrm policy flush; ip xfrm state flush');
    }
  });

  test('apt installs from the release\'s own mirror: libreswan, strongswan-starter and strongswan-swanctl have the expected candidates', () => {
    const r = onAll(() => 'apt-get update -q >/dev/null && cat /etc/apt/sources.list && ' +
      "for p in libreswan strongswan-starter strongswan-charon strongswan-swanctl openswan; do echo \"$p $(apt-cache policy $p | awk '/Candidate/{print $2}')\"; done && " +
      'cd /tmp && apt-get download -q strongswan-swanctl >/dev/null && dpkg-deb -c strongswan-swanctl_*.deb | grep -c "plugins/libstrongswan-vici.so"', 300_000);
    for (const i of servers) {
      const rel = RELEASES[i - 1]!;
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
    for (const i of servers) {
      expect(r.stdout).toMatch(new RegExp(`${hostName(i)} +${hostIp(i).replace(/\./g, '\\.')} +${hostIp6(i)} +pid \\d+ +running +${RELEASES[i - 1]} +preinstall none`));
    }
  });

  test('reset puts one server back (its files gone, same host key), here with libreswan preinstalled; the others keep running', () => {
    const known = readFileSync(KNOWN_HOSTS, 'utf8');
    expect(onServer(hostName(2), 'echo x > /root/marker && apt-get update -q >/dev/null && ls /var/lib/apt/lists | grep -c Packages').stdout.trim()).toBe('1');
    const before3 = onServer(hostName(3), 'cat /proc/sys/kernel/random/boot_id').stdout;
    labReset(hostName(2), { preinstall: 'libreswan' });
    const r = onServer(hostName(2), 'ls /root/marker 2>&1; ls /var/lib/apt/lists | grep -c Packages; cat /etc/debian_version; ' +
      "dpkg-query -W -f='${Package} ${Version}\\n' libreswan; systemctl is-enabled ipsec; ipsec --version");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/No such file/);
    expect(lines[1]).toBe('0');
    expect(lines[2]).toMatch(/^12\./);
    expect(lines[3]).toMatch(/^libreswan 4\.10-/);
    // Debian's libreswan ships a preset that leaves ipsec.service disabled after the install.
    expect(lines[4]).toBe('disabled');
    expect(lines[5]).toMatch(/Libreswan 4\.10/);
    expect(readFileSync(KNOWN_HOSTS, 'utf8')).toBe(known);
    expect(sshTo(hostIp6(2), 'true').code).toBe(0);
    expect(hostPreinstall(hostName(2))).toBe('libreswan');
    expect(onServer(hostName(3), 'cat /proc/sys/kernel/random/boot_id').stdout).toBe(before3);
    pids[1] = readFileSync(join(STATE, 'hosts', hostName(2), 'pid'), 'utf8').trim();
  }, 600_000);

  test('down leaves no process, mount, tap or namespace of the lab; a second down succeeds', () => {
    labDown();
    for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(umlProcesses()).toEqual([]);
    expect(sh('grep -c "' + STATE + '" /proc/mounts || true').trim()).toBe('0');
    expect(sh(`grep "lab-cache" /proc/mounts | grep -c "${STATE}/" || true`).trim()).toBe('0');
    expect(sh('ip netns list').split('\n').map((l) => l.split(' ')[0])).not.toContain(NETNS);
    expect(sh('ip -o link show | grep -c " tap[0-9]" || true').trim()).toBe('0');
    expect(existsSync(STATE)).toBe(false);
    expect(lab('down').code).toBe(0);
  }, 120_000);
});
