import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeLab, hostIp, hostName, lab, labDown, labUp, NETNS, onServer, STATE } from '../lab/control.js';

const N = 3;

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

describeLab('the lab of real Debian servers', () => {
  let pids: string[] = [];

  beforeAll(() => {
    labUp(N);
    pids = Array.from({ length: N }, (_, i) => readFileSync(join(STATE, 'hosts', hostName(i + 1), 'pid'), 'utf8').trim());
  }, 600_000);

  afterAll(() => {
    if (existsSync(STATE)) labDown();
  }, 120_000);

  test('each server answers SSH with strict host-key checking, from the lab known_hosts', () => {
    for (let i = 1; i <= N; i++) {
      const r = onServer(hostName(i), 'hostname; cat /etc/debian_version');
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(r.stdout).toMatch(new RegExp(`^${hostName(i)}\n12\\.`));
    }
    const known = readFileSync(join(STATE, 'known_hosts'), 'utf8').trim().split('\n');
    expect(known).toHaveLength(N);
    expect(new Set(known.map((l) => l.split(' ')[2])).size).toBe(N);
  });

  test('a wrong host key is refused (the check is real)', () => {
    const r = spawnSync('ip', ['netns', 'exec', NETNS, 'ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${join(STATE, 'known_hosts')}`, '-o', 'HostKeyAlias=' + hostIp(2),
      '-i', join(STATE, '..', '.lab-cache', 'id_ed25519'), `root@${hostIp(1)}`, 'true'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  test('each server reaches its peers', () => {
    for (let i = 1; i <= N; i++) {
      const peers = Array.from({ length: N }, (_, j) => j + 1).filter((j) => j !== i);
      const r = onServer(hostName(i), peers.map((j) => `ping -c 1 -W 3 ${hostIp(j)} >/dev/null`).join(' && '));
      expect(r.code).toBe(0);
    }
  });

  test('esp4 is loaded and no IPsec package is installed', () => {
    for (let i = 1; i <= N; i++) {
      const r = onServer(hostName(i), "grep -c '^esp4 ' /proc/modules; dpkg-query -W -f='${Status}\\n' libreswan strongswan-starter 2>/dev/null | grep -c 'install ok installed' || true");
      expect(r.stdout.split('\n').slice(0, 2)).toEqual(['1', '0']);
    }
  });

  test('apt installs from the local mirror; openswan has no candidate, libreswan and strongswan-starter do', () => {
    const r = onServer(hostName(1),
      'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q netbase >/dev/null && dpkg-query -W -f=\'${Status}\' netbase && echo && ' +
      "for p in openswan libreswan strongswan-starter; do echo \"$p $(apt-cache policy $p | awk '/Candidate/{print $2}')\"; done",
      undefined, 300_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^install ok installed$/m);
    expect(r.stdout).toMatch(/^openswan (\(none\))?$/m);
    expect(r.stdout).toMatch(/^libreswan 4\.10/m);
    expect(r.stdout).toMatch(/^strongswan-starter 5\.9\.8/m);
  }, 300_000);

  test('status lists the servers', () => {
    const r = lab('status');
    for (let i = 1; i <= N; i++) expect(r.stdout).toMatch(new RegExp(`${hostName(i)} +${hostIp(i).replace(/\./g, '\\.')} +pid \\d+ +running`));
  });

  test('down leaves no process, mount, tap or namespace of the lab; a second down succeeds', () => {
    labDown();
    for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(umlProcesses()).toEqual([]);
    expect(sh('grep -c "' + STATE + '" /proc/mounts || true').trim()).toBe('0');
    expect(sh('ip netns list').split('\n').map((l) => l.split(' ')[0])).not.toContain(NETNS);
    expect(sh('ip -o link show type tun 2>/dev/null; ip -o link show | grep -c " tap[0-9]" || true').trim()).toBe('0');
    expect(existsSync(STATE)).toBe(false);
    expect(lab('down').code).toBe(0);
  }, 120_000);
});
