import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeLab, hostIp, IDENTITY, KNOWN_HOSTS, labDown, labReset, labUp, NETNS, onServer, REPO } from '../lab/control.js';
import { BIN, dir, inventory, json, keyOf, outcome, provision, spin, wireCheck } from './support.js';

// What goes wrong on real servers, and what the operator's world looks like: apt failing, the
// dpkg lock held, Ctrl-C during an install, a daemon that will not start, a key the
// responder refuses, host keys, a jump host and sudo, an ssh config,
// retiring and tearing down with an operator's conn beside. server-01 and server-02 start with
// libreswan preinstalled, server-03 (strongSwan) with nothing: the install scenarios come first.

const mesh = () =>
  inventory('mesh.yaml', [{ i: 1 }, { i: 2 }, { i: 3, backend: 'strongswan' }], 'meshes:\n  - {name: lab, hosts: [server-01, server-02, server-03]}\n');
const seed = () => inventory('seed.yaml', [{ i: 1 }, { i: 2 }], 'pairs:\n  - [server-01, server-02]\n', { fleet: 'mesh' });
const verified = (r: ReturnType<typeof provision>) => outcome(r).pairs.every(([, s]) => s === 'verified');

describeLab("faults and the operator's world, on real servers", () => {
  beforeAll(() => labUp(3, { preinstall: ['libreswan', 'libreswan', 'none'] }), 900_000);
  afterAll(() => labDown(), 120_000);

  test('apt failing on one host: the error names the package and the host; the others carry on', () => {
    const sources =
      'for f in /etc/apt/sources.list /etc/apt/sources.list.off /etc/apt/sources.list.d/*.list*; do [ -e "$f" ] || continue; case "$f" in *broken.list) ;; *.off) mv "$f" "${f%.off}" ;; *) mv "$f" "$f.off" ;; esac; done';
    expect(onServer('server-03', `echo 'deb [trusted=yes] http://10.77.0.1:9/ ./' > /etc/apt/sources.list.d/broken.list; ${sources}`).code).toBe(0);
    try {
      const r = provision('--inventory', mesh());
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(
        /server-03 +FAILED +install strongswan-starter strongswan-charon strongswan-swanctl: apt has no candidate for strongswan-starter strongswan-charon strongswan-swanctl, even after apt-get update/,
      );
      expect(r.stdout).toMatch(/server-01--server-02 +ESP verified/);
      expect(r.stdout).toMatch(/server-01--server-03 +skipped +not changed: server-03 failed at install/);
    } finally {
      // The sources back as they were (the renamed ones back, the broken one gone).
      expect(onServer('server-03', `rm -f /etc/apt/sources.list.d/broken.list; ${sources}; grep -c 10.77.0.1:8080 /etc/apt/sources.list`).stdout.trim()).toBe(
        '1',
      );
    }
  }, 900_000);

  test("another process holds the dpkg lock: the tool waits for it (apt's DPkg::Lock::Timeout), then installs; the others carry on", () => {
    const holder = readFileSync(join(REPO, 'test', 'lab', 'hold-dpkg-lock'), 'utf8');
    const hold = onServer(
      'server-03',
      'cat > /root/hold-dpkg-lock && (nohup perl /root/hold-dpkg-lock 40 > /root/hold.out 2>&1 & echo $! > /root/hold.pid); ' +
        'i=0; until grep -q locked /root/hold.out; do i=$((i+1)); [ $i -lt 50 ] || exit 1; sleep 0.1; done',
      holder,
    );
    expect(hold.code).toBe(0);
    try {
      const r = provision('--inventory', mesh(), '--json');
      expect(outcome(r)).toEqual({
        code: 0,
        pairs: [
          ['server-01--server-02', 'verified'],
          ['server-01--server-03', 'verified'],
          ['server-02--server-03', 'verified'],
        ],
      });
      // The install ran after the holder let go of the lock, 40 s after it took it.
      const took = onServer('server-03', 'echo $(( $(stat -c %Y /var/lib/dpkg/info/strongswan-starter.list) - $(stat -c %Y /root/hold.out) ))').stdout.trim();
      expect(Number(took)).toBeGreaterThanOrEqual(38);
      expect(json(r).hosts.find((h: any) => h.name === 'server-03').did).toContain('installed strongswan-starter strongswan-charon strongswan-swanctl');
    } finally {
      onServer('server-03', 'kill $(cat /root/hold.pid) 2>/dev/null; true');
    }
  }, 900_000);

  test('Ctrl-C during an install: the install finishes, nothing is written anywhere, exit 130; the next run converges', async () => {
    labReset('server-03', { preinstall: 'none' });
    const child = spawn('ip', ['netns', 'exec', NETNS, 'node', BIN, '--inventory', mesh()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      if (/server-03: install strongswan-starter/.test(stderr) && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect({ code, stderr: stderr.slice(-600) }).toMatchObject({ code: 130 });
    expect(stdout).toMatch(/server-03 +INTERRUPTED +done before Ctrl-C: installed strongswan-starter strongswan-charon strongswan-swanctl/);
    expect(onServer('server-03', 'ls /etc/ipsec.d/*.conf 2>/dev/null | wc -l').stdout.trim()).toBe('0');
    expect(verified(provision('--inventory', mesh(), '--json'))).toBe(true);
  }, 900_000);

  test('a daemon that will not start with the new files: the previous files go back and it runs again', () => {
    expect(verified(provision('--inventory', mesh(), '--json'))).toBe(true);
    const conf = 'cat /etc/ipsec.d/server-02--server-03.conf';
    const before = onServer('server-03', conf).stdout;
    const setup = onServer(
      'server-03',
      "sed -i '/^include \\/etc\\/ipsec.d\\/\\*.conf/d' /etc/ipsec.conf && mkdir -p /etc/systemd/system/strongswan-starter.service.d && " +
        `printf '[Service]\\nExecStartPre=/bin/sh -c "! grep -qs auto=add /etc/ipsec.d/server-02--server-03.conf"\\n' > /etc/systemd/system/strongswan-starter.service.d/refuse.conf && systemctl daemon-reload`,
    );
    expect(setup.code).toBe(0);
    try {
      const inv = inventory(
        'responder-add.yaml',
        [{ i: 1 }, { i: 2 }, { i: 3, backend: 'strongswan' }],
        'pairs:\n  - [server-01, server-02]\n  - [server-01, server-03]\n  - {hosts: [server-02, server-03], responder: add}\n',
        { fleet: 'mesh' },
      );
      const r = provision('--inventory', inv, '--json');
      const s3 = json(r).hosts.find((h: any) => h.name === 'server-03');
      expect({ code: r.code, status: s3.status, step: s3.step }).toEqual({ code: 1, status: 'failed', step: 'restart ipsec' });
      expect(s3.error).toMatch(/ipsec did not start with the new files, so the previous files are back and ipsec runs again/);
      expect(onServer('server-03', conf).stdout).toBe(before);
      expect(onServer('server-03', 'systemctl is-active ipsec').stdout.trim()).toBe('active');
      // The pair's change (its responder now auto=add) is on server-03's side only, which kept its previous files.
      expect(json(r).pairs.find((p: any) => p.name === 'server-02--server-03')).toMatchObject({
        status: 'skipped',
        reason: expect.stringMatching(/not changed: server-03 failed at restart ipsec/),
      });
      expect(onServer('server-02', 'grep auto= /etc/ipsec.d/server-02--server-03.conf').stdout.trim()).toBe('auto=start');
    } finally {
      onServer('server-03', 'rm -rf /etc/systemd/system/strongswan-starter.service.d && systemctl daemon-reload');
    }
    expect(verified(provision('--inventory', mesh(), '--json'))).toBe(true);
  }, 900_000);

  test('a new key the responder does not take: rolled back on both ends, the pair up again with the old key, exit 1', () => {
    expect(verified(provision('--inventory', mesh(), '--json'))).toBe(true);
    const old = keyOf('server-01', 'server-01--server-02');
    // An operator's stale secrets file on server-02, loaded before ours, keeps the old key in force there.
    expect(
      onServer(
        'server-02',
        'grep PSK /etc/ipsec.d/server-01--server-02.secrets > /etc/ipsec.d/00-stale.secrets; chmod 600 /etc/ipsec.d/00-stale.secrets; ipsec auto --rereadsecrets >/dev/null',
      ).code,
    ).toBe(0);
    try {
      const r = provision('--inventory', mesh(), '--rotate-psk', 'server-01--server-02', '--json');
      const p = json(r).pairs.find((x: any) => x.name === 'server-01--server-02');
      expect({ code: r.code, status: p.status }).toEqual({ code: 1, status: 'rolled-back' });
      expect(p.reason).toMatch(/the new key did not authenticate with server-02/);
      expect(p.restored).toBe('the previous files are back and the pair is ESP-verified with them');
      expect([keyOf('server-01', 'server-01--server-02'), keyOf('server-02', 'server-01--server-02')]).toEqual([old, old]);
    } finally {
      onServer('server-02', 'rm -f /etc/ipsec.d/00-stale.secrets; ipsec auto --rereadsecrets >/dev/null');
    }
  }, 900_000);

  test('host keys: a changed key refuses that host with both fingerprints; an unknown one is refused, then recorded with --accept-new-host-keys', () => {
    const tampered = join(dir, 'known_hosts_tampered');
    copyFileSync(KNOWN_HOSTS, tampered);
    const lines = readFileSync(tampered, 'utf8').trim().split('\n');
    const key3 = lines[2]!.split(' ').slice(1).join(' ');
    lines[1] = `${hostIp(2)} ${key3}`;
    writeFileSync(tampered, `${lines.join('\n')}\n`);
    const r = provision(
      '--inventory',
      inventory(
        'tampered.yaml',
        [{ i: 1 }, { i: 2 }, { i: 3, backend: 'strongswan' }],
        'meshes:\n  - {name: lab, hosts: [server-01, server-02, server-03]}\n',
        { fleet: 'mesh', knownHosts: tampered },
      ),
    );
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/server-02 +REFUSED +host key of 10\.77\.0\.12:22 has CHANGED: offered SHA256:\S+, .* has ssh-ed25519 SHA256:\S+/);
    expect(r.stdout).toMatch(/server-01--server-03 +ESP verified/);
    expect(r.stdout).toMatch(/server-01--server-02 +skipped +server-02 was not read/);
    const partial = join(dir, 'known_hosts_partial');
    writeFileSync(
      partial,
      readFileSync(KNOWN_HOSTS, 'utf8')
        .split('\n')
        .filter((l) => !l.includes(hostIp(2)))
        .join('\n'),
    );
    // The mesh's own pair, without pruning the rest: the known_hosts file is what is under test.
    const inv = inventory('partial.yaml', [{ i: 1 }, { i: 2 }], 'pairs:\n  - [server-01, server-02]\n', { fleet: 'mesh', knownHosts: partial });
    const refused = provision('--inventory', inv, '--no-verify', '--no-prune');
    expect(refused.code).toBe(3);
    expect(refused.stdout).toMatch(/server-02 +REFUSED +host key of 10\.77\.0\.12:22 is not in/);
    expect(outcome(provision('--inventory', inv, '--accept-new-host-keys', '--no-verify', '--no-prune', '--json'))).toEqual({
      code: 0,
      pairs: [['server-01--server-02', 'unverified: --no-verify']],
    });
    expect(
      readFileSync(partial, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith(`${hostIp(2)} `)),
    ).toHaveLength(1);
    // Another inventory pairing the same two servers under another name is refused on both.
    const twin = provision(
      '--inventory',
      inventory('twin.yaml', [{ i: 1 }, { i: 2 }], 'pairs:\n  - {hosts: [server-01, server-02], name: twin-01-02}\n', { fleet: 'twin' }),
      '--dry-run',
    );
    expect(twin.code).toBe(1);
    expect(twin.stdout).toMatch(/server-01 and server-02 \(10\.77\.0\.12\) are already paired by fleet mesh in \/etc\/ipsec\.d\/server-01--server-02\.conf/);
  }, 900_000);

  test("a jump host that is its target's peer, from nothing, and a non-root user through sudo -n; a user without sudo rights gets a clear error", () => {
    for (const [user, sudo] of [
      ['deploy', true],
      ['nosudo', false],
    ] as const) {
      expect(
        onServer(
          'server-02',
          `id ${user} >/dev/null 2>&1 || useradd -m -s /bin/bash ${user}
        install -d -m 700 -o ${user} /home/${user}/.ssh && install -m 600 -o ${user} /root/.ssh/authorized_keys /home/${user}/.ssh/
        ${sudo ? `echo '${user} ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/${user}` : 'true'}`,
        ).code,
      ).toBe(0);
    }
    const viaJump = (user: string) =>
      inventory(`jump-${user}.yaml`, [{ i: 1 }, { i: 2, extra: `ssh: {user: ${user}, jump: server-01}` }], 'pairs:\n  - [server-01, server-02]\n', {
        fleet: 'mesh',
      });
    // The pair from nothing, through the jump host it pairs: the jump host's guard must not cut
    // the session it forwards while the pair's SAs come up (it did: the target was lost).
    expect(outcome(provision('teardown', '--inventory', seed(), '--json'))).toMatchObject({ code: 0 });
    const ok = provision('--inventory', viaJump('deploy'), '--json', '--no-prune');
    expect(outcome(ok)).toEqual({ code: 0, pairs: [['server-01--server-02', 'verified']] });
    expect(json(ok).hosts.find((h: any) => h.name === 'server-01').did).toContain(`guard: ${hostIp(2)} joined (verified; SSH runs between the two)`);
    expect(onServer('server-01', 'nft list set inet provision_mesh peers4').stdout).toContain(hostIp(2));
    // Their SSH passes outside IPsec: the target's daemon stopped (libreswan flushes every
    // policy as it stops), the pair is down and nothing else passes in clear, yet status and a
    // re-run still reach it through the jump host. About 60 s.
    const sshPolicies = (n: string): string => onServer(n, "ip xfrm policy | grep -c 'proto tcp' || true").stdout.trim();
    expect([sshPolicies('server-01'), sshPolicies('server-02')]).toEqual(['2', '2']);
    expect(onServer('server-02', 'systemctl stop ipsec && ip xfrm policy | grep -c src || true').stdout.trim()).toBe('0');
    expect(wireCheck('server-01', hostIp(2))).toMatchObject({ clear: 0, replies: 0 });
    const st = provision('status', '--inventory', viaJump('deploy'), '--json');
    expect({ code: st.code, pair: json(st).pairs[0].status }).toEqual({ code: 1, pair: expect.stringMatching(/^(down|half-up)$/) });
    expect(JSON.stringify(json(st).hosts)).not.toMatch(/unreachable/);
    const again = provision('--inventory', viaJump('deploy'), '--json', '--no-prune');
    expect(outcome(again)).toEqual({ code: 0, pairs: [['server-01--server-02', 'verified']] });
    expect(
      json(again)
        .hosts.find((h: any) => h.name === 'server-02')
        .did.join('; '),
    ).toMatch(/ipsec restarted/);
    // The daemon's start put the target's policies back (the drop-in); a restart of the jump host's too.
    expect(onServer('server-01', 'systemctl restart ipsec').code).toBe(0);
    expect([sshPolicies('server-01'), sshPolicies('server-02')]).toEqual(['2', '2']);
    // The way in is no exposure: the pair is healthy once it is back. (The host may show drift
    // of its own: --no-prune kept files of pairs that earlier scenarios left.)
    spin(10);
    expect(outcome(provision('--inventory', viaJump('deploy'), '--json', '--no-prune'))).toEqual({ code: 0, pairs: [['server-01--server-02', 'verified']] });
    const healthy = provision('status', '--inventory', viaJump('deploy'), '--json');
    expect(json(healthy).pairs.map((p: any) => [p.name, p.status, p.keys, p.exposures, p.drift])).toEqual([['server-01--server-02', 'up', 'agree', [], []]]);
    const refused = provision('--inventory', viaJump('nosudo'), '--no-prune');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/server-02 +FAILED +facts: sudo wants a password for nosudo/);
  }, 900_000);

  test('an inventory with only names and addresses, and an ssh config with the rest: reached as ssh would', () => {
    const config = join(dir, 'ssh_config');
    writeFileSync(
      config,
      `Host server-0*\n  User root\n  IdentityFile ${IDENTITY}\n  UserKnownHostsFile ${KNOWN_HOSTS}\nHost server-02\n  HostName ${hostIp(2)}\n  ProxyJump server-01\n`,
    );
    const bare = join(dir, 'bare.yaml');
    writeFileSync(
      bare,
      `fleet: mesh\ndefaults:\n  ssh: {config: ${config}}\nhosts:\n  server-01: {address: ${hostIp(1)}}\n  server-02: {address: ${hostIp(2)}}\npairs: [[server-01, server-02]]\n`,
    );
    const r = provision('--inventory', bare, '--json', '--no-prune');
    expect(outcome(r)).toEqual({ code: 0, pairs: [['server-01--server-02', 'verified']] });
    // server-02 was reached through server-01, as the config says: its SSH came from server-01,
    // a peer, so the guard keeps that path open.
    expect(json(r).hosts.find((h: any) => h.name === 'server-02').guard.ssh).toEqual([hostIp(1)]);
    expect(json(r).hosts.find((h: any) => h.name === 'server-01').guard.ssh).toEqual([]);
  }, 900_000);

  test("pairs gone from the inventory are retired, and teardown takes the rest; an operator's conn is never touched", () => {
    expect(verified(provision('--inventory', mesh(), '--json'))).toBe(true);
    const operatorConf = 'conn operator-vpn\n    type=transport\n    authby=secret\n    left=10.77.0.11\n    right=192.0.2.99\n    auto=add\n';
    const put = onServer(
      'server-01',
      'cat > /etc/ipsec.d/operator-vpn.conf; echo \'10.77.0.11 192.0.2.99 : PSK "operator-secret-operator-secret-x"\' > /etc/ipsec.d/operator-vpn.secrets; chmod 600 /etc/ipsec.d/operator-vpn.secrets; ipsec auto --add operator-vpn >/dev/null 2>&1; stat -c %Y /etc/ipsec.d/operator-vpn.*',
      operatorConf,
    );
    expect(put.code).toBe(0);
    expect(onServer('server-01', 'ipsec status | grep -c operator-vpn').stdout.trim()).not.toBe('0');
    // server-03 leaves the inventory: its pairs are retired on server-01 and server-02.
    const dry = provision('--inventory', seed(), '--dry-run');
    expect(dry.stdout).toMatch(/- \/etc\/ipsec\.d\/server-01--server-03\.conf {2}\(delete, 0644\)/);
    expect(dry.stdout).not.toMatch(/operator/);
    const r = provision('--inventory', seed(), '--json');
    expect(outcome(r)).toEqual({ code: 0, pairs: [['server-01--server-02', 'verified']] });
    expect(json(r).hosts.find((h: any) => h.name === 'server-01').did).toContain('retired server-01--server-03');
    // Teardown of the rest: everything of provision's goes from server-01, the operator's conn stays.
    const down = provision('teardown', '--inventory', seed(), '--json');
    expect(down.code).toBe(0);
    const after = onServer(
      'server-01',
      'ls /etc/ipsec.d/*.conf /etc/ipsec.d/*.secrets /etc/provision/ 2>/dev/null; stat -c %Y /etc/ipsec.d/operator-vpn.*; nft list tables | grep -c provision || true; ipsec status | grep -c "server-01--server-0" || true',
    );
    expect(after.stdout).toBe(`${['/etc/ipsec.d/operator-vpn.conf', '/etc/ipsec.d/operator-vpn.secrets', ''].join('\n') + put.stdout}0\n0\n`);
    expect(onServer('server-01', 'ipsec status | grep -c operator-vpn').stdout.trim()).not.toBe('0');
  }, 900_000);
});
