import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyMacScript } from '../../src/apply/steps/keys.js';
import { INCLUDE_MARK, STAGING_MARK } from '../../src/core/paths.js';
import { quote } from '../../src/core/shell.js';
import { GUARD_UNIT, guardFile, renderGuard, renderGuardUnit } from '../../src/plan/guard.js';
import { factsScript, PACKAGES, parseFacts, sections } from '../../src/remote/facts.js';
import { parseKeys } from '../../src/remote/secrets.js';
import { parseXfrmPolicies } from '../../src/status/policies.js';
import { parseDaemon, statusScript } from '../../src/status/script.js';
import { describeIsolated, FakeHost } from '../helpers/fake-host.js';

// The read-only scripts (facts, status, key MACs), run by sh against fake dpkg-query,
// apt-cache, ipsec, systemctl, ip and nft; their output is read as the controller reads it.
// Isolated runs see planted files at the real paths (/etc/ipsec.d, /etc/provision, /run),
// in a mount namespace of their own: the machine's /etc is never written.

const challenge = '5'.repeat(32);
const mac = (key: string): string => createHash('sha256').update(`${challenge}\n${key}`).digest('hex').slice(0, 32);
const SSH = { SSH_CONNECTION: '10.0.0.100 50000 10.0.0.1 22' };

// `ip xfrm state`: the keys are on the lines after "src"; a larval SA (SPI 0) is no SA.
const AEAD = 'ab'.repeat(20);
const XFRM = `src 10.0.0.1 dst 10.0.0.2
\tproto esp spi 0xc1d2e3f4 reqid 16389 mode transport
\treplay-window 0 flag af-unspec
\taead rfc4106(gcm(aes)) 0x${AEAD} 128
\tsel src 10.0.0.1/32 dst 10.0.0.2/32
src 10.0.0.2 dst 10.0.0.1
\tproto esp spi 0x0a0b0c0d reqid 16389 mode transport
\taead rfc4106(gcm(aes)) 0x${'cd'.repeat(20)} 128
src 10.0.0.2 dst 10.0.0.1
\tproto esp spi 0x0e0f1011 reqid 16390 mode transport
src FD00:0::3 dst fd00::1
\tproto esp spi 0x00c0ffee reqid 7 mode transport
src 10.0.0.9 dst 10.0.0.1
\tproto esp spi 0x00000000 reqid 0 mode transport
`;

const NFT_TABLE = `table inet provision_web {
\tset peers4 {
\t\ttype ipv4_addr
\t\telements = { 10.0.0.2, 10.0.0.3 }
\t}
\tchain output {
\t\tip daddr @peers4 rt ipsec missing counter packets 7 bytes 588 drop
\t}
\tchain input {
\t\tip saddr @peers4 meta ipsec missing counter packets 3 bytes 252 drop
\t}
}`;

const CANDIDATES: Record<string, string> = { libreswan: '4.10-2+deb12u1', 'strongswan-starter': '5.9.8-5+deb12u1', nftables: '1.0.6-2+deb12u2' };

/** A Debian host with fakes for every command the facts script asks; `installed` is what dpkg-query prints. */
function factsHost(installed: string, version = 'Libreswan 4.10'): FakeHost {
  const candidates = Object.entries(CANDIDATES)
    .map(([p, v]) => `${p}) v=${v} ;;`)
    .join(' ');
  return new FakeHost()
    .fake('dpkg-query', `printf '${installed}'`)
    .fake(
      'apt-cache',
      `shift; for p; do case $p in ${candidates} *) v='(none)' ;; esac; printf '%s:\\n  Installed: (none)\\n  Candidate: %s\\n  Version table:\\n     %s 500\\n' "$p" "$v" "$v"; done`,
    )
    .fake('ipsec', `[ "$1" = --version ] && printf '%s\\n' ${quote(version)}; exit 0`)
    .fake('systemctl', 'case "$1" in is-active) echo active ;; is-enabled) echo enabled ;; esac')
    .fake('ip', `[ "$1 $2" = 'xfrm state' ] && cat <<'EOF'\n${XFRM}EOF\nexit 0`)
    .fake(
      'nft',
      `case "$*" in 'list tables') printf 'table inet filter\\ntable inet provision_web\\ntable ip provision_old\\n' ;;
  'list table inet provision_web') cat <<'EOF'\n${NFT_TABLE}\nEOF\n;; esac`,
    );
}

describe('the facts script, run by sh against fake commands', () => {
  test('runs to its end; packages, version, SAs (no key printed), guard tables and the SSH client come from what the commands said', () => {
    const host = factsHost('libreswan ii  4.10-2+deb12u1\\nopenswan un  \\nnftables rc  1.0.6-2\\n');
    try {
      const r = host.run(factsScript(challenge), { env: SSH });
      expect(r.code).toBe(0);
      expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('@@end');
      const f = parseFacts(r.stdout);
      expect([...f.installed]).toEqual([['libreswan', '4.10-2+deb12u1']]);
      // libreswan is there, nftables is not: apt is asked about nftables only.
      expect([...f.candidates]).toEqual([['nftables', '1.0.6-2+deb12u2']]);
      expect(f.ipsecVersion).toBe('4.10');
      expect([...f.sas].sort()).toEqual(['10.0.0.1 10.0.0.2', '10.0.0.2 10.0.0.1', 'fd00::3 fd00::1']);
      expect(r.stdout).not.toMatch(new RegExp(`${AEAD}|aead|spi|cdcdcd`));
      expect([...f.guards]).toEqual([['provision_web', { peers: ['10.0.0.2', '10.0.0.3'], droppedOut: 7, droppedIn: 3 }]]);
      expect(f.guardUnitEnabled).toBe(true);
      expect(f.sshClient).toEqual({ address: '10.0.0.100', port: 50000, serverPort: 22 });
      const calls = host.calls();
      expect(calls.filter((c) => /^(apt-cache|nft|systemctl) /.test(c))).toEqual([
        'apt-cache policy nftables',
        ...(f.init === 'systemd' ? ['systemctl is-active ipsec'] : []),
        'nft list tables',
        'nft list table inet provision_web',
        'systemctl is-enabled provision-guard',
      ]);
      expect(calls.find((c) => c.startsWith('dpkg-query'))).toMatch(new RegExp(` ${PACKAGES.join(' ')}$`));
    } finally {
      host.cleanup();
    }
  });

  test.each([
    ['nothing installed: apt is asked about every package', '', PACKAGES.join(' '), [...Object.entries(CANDIDATES)].sort()],
    ['an IPsec package and nftables installed: apt is not asked', 'libreswan ii  4.10\\nnftables ii  1.0.6\\n', undefined, []],
  ])('%s', (_, installed, asked, candidates) => {
    const host = factsHost(installed, 'Linux strongSwan U5.9.8/K6.1.0-28-amd64\nUniversity of Applied Sciences Rapperswil, Switzerland');
    try {
      const r = host.run(factsScript(challenge), { env: SSH });
      const f = parseFacts(r.stdout);
      expect(host.calls().filter((c) => c.startsWith('apt-cache'))).toEqual(asked ? [`apt-cache policy ${asked}`] : []);
      expect([...f.candidates].sort()).toEqual(candidates);
      expect(f.ipsecVersion).toBe('5.9.8');
    } finally {
      host.cleanup();
    }
  });

  test('through sudo, where SSH_CONNECTION is gone, the SSH client is read from the login shell above', () => {
    const host = factsHost('');
    try {
      const r = host.run(`env -u SSH_CONNECTION sh -c ${quote(factsScript(challenge))}; exit $?`, { env: { SSH_CONNECTION: '192.0.2.7 41000 10.0.0.1 2222' } });
      expect(r.code).toBe(0);
      expect(parseFacts(r.stdout).sshClient).toEqual({ address: '192.0.2.7', port: 41000, serverPort: 2222 });
    } finally {
      host.cleanup();
    }
  });
});

describeIsolated('the facts script on a host with files (a mount namespace of its own)', () => {
  const header = '# managed by provision for fleet web: edits are overwritten';
  const key = `0s${Buffer.alloc(32, 7).toString('base64')}`;
  const conf = `${header}\nconn a--b\n    left=10.0.0.1\n    right=10.0.0.2\n    auto=start\n`;
  const secrets = `${header}\n10.0.0.1 10.0.0.2 : PSK ${key}\n`;
  const guard = renderGuard('web', { peers: ['10.0.0.2'], ssh: [], sshPort: 22 });

  const planted = (): FakeHost =>
    factsHost('libreswan ii  4.10-2+deb12u1\\nnftables ii  1.0.6-2+deb12u2\\n')
      .plant('/etc/os-release', 'ID=debian\nVERSION_ID="13"\n')
      .plant(
        '/etc/ipsec.conf',
        `config setup\n    uniqueids=no\n\nconn %default\n    ikev2=insist\n\nconn top\n    auto=ignore\n\n${INCLUDE_MARK}\ninclude /etc/ipsec.d/*.conf\n`,
      )
      .plant('/etc/ipsec.secrets', ': PSK "topsecret"\n', 0o600)
      .plant('/etc/ipsec.d/a--b.conf', conf)
      .plant('/etc/ipsec.d/a--b.secrets', secrets, 0o600)
      .plant('/etc/ipsec.d/mine.conf', 'conn mine\n    auto=add\ninclude /etc/ipsec.d/extra/more.conf\n', 0o640)
      .plant('/etc/ipsec.d/extra/more.conf', 'conn deeper\n    auto=add\n')
      .plant('/etc/ipsec.d/mine.secrets', '10.0.0.1 10.0.0.9 : PSK "opsecret"\n', 0o600)
      .plant(guardFile('web'), guard, 0o600)
      .plant(GUARD_UNIT, renderGuardUnit())
      // Staging a killed write left (marked, old), one under way (new), and look-alikes that are not ours.
      .plant(`/etc/ipsec.d/.provision-backup.Old111/${STAGING_MARK}`, '')
      .plant('/etc/ipsec.d/.provision-backup.Old111', undefined, 0o700, 120)
      .plant(`/etc/ipsec.d/.provision-backup.New222/${STAGING_MARK}`, '')
      .plant('/etc/ipsec.d/.provision-backup.NoMark', undefined, 0o700, 120)
      .plant(`/etc/.provision-backup.Etc333/${STAGING_MARK}`, '')
      .plant('/etc/.provision-backup.Etc333', undefined, 0o700, 120)
      .plant(`/run/provision/undo.0a1b2c/${STAGING_MARK}`, '')
      .plant('/run/provision/undo.0a1b2c', undefined, 0o700, 120);

  test("every file of ours with its mode, owner and masked content; operators' files seen, not read; keys only as MACs; conns, includes and staging", () => {
    const host = planted().plant('/run/systemd/system', undefined);
    try {
      const r = host.run(factsScript(challenge), { env: SSH, isolated: true });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      const f = parseFacts(r.stdout);
      expect({ os: f.os, init: f.init, running: f.running }).toEqual({ os: 'debian 13', init: 'systemd', running: true });
      expect([...f.files.values()].sort((a, b) => a.path.localeCompare(b.path))).toEqual([
        { path: '/etc/ipsec.d/a--b.conf', mode: '644', owner: { kind: 'fleet', fleet: 'web' }, content: conf },
        {
          path: '/etc/ipsec.d/a--b.secrets',
          mode: '600',
          owner: { kind: 'fleet', fleet: 'web' },
          content: `${header}\n10.0.0.1 10.0.0.2 : PSK 0s${'*'.repeat(43)}=\n`,
        },
        { path: '/etc/ipsec.d/mine.conf', mode: '640', owner: { kind: 'operator' } },
        { path: '/etc/ipsec.d/mine.secrets', mode: '600', owner: { kind: 'operator' } },
        { path: guardFile('web'), mode: '600', owner: { kind: 'fleet', fleet: 'web' }, content: guard },
        { path: GUARD_UNIT, mode: '644', owner: { kind: 'shared' }, content: renderGuardUnit() },
      ]);
      expect([...f.keys]).toEqual([['/etc/ipsec.d/a--b.secrets', { mac: mac(key) }]]);
      expect(r.stdout).not.toMatch(new RegExp(`${key.slice(2, 12)}|opsecret|topsecret|conn mine`));
      expect(f.conns.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
        { name: 'a--b', file: '/etc/ipsec.d/a--b.conf' },
        { name: 'deeper', file: '/etc/ipsec.d/extra/more.conf' },
        { name: 'mine', file: '/etc/ipsec.d/mine.conf' },
        { name: 'top', file: '/etc/ipsec.conf' },
      ]);
      expect(f.ourIncludes.map((i) => i.path)).toEqual(['/etc/ipsec.conf']);
      expect(f.missingIncludes.map((i) => i.path)).toEqual(['/etc/ipsec.secrets']);
      expect(f.staleStaging.sort()).toEqual(['/etc/.provision-backup.Etc333', '/etc/ipsec.d/.provision-backup.Old111', '/run/provision/undo.0a1b2c']);
    } finally {
      host.cleanup();
    }
  });

  test('a SysV host: running is what /etc/init.d/ipsec status says; systemctl is not asked', () => {
    for (const code of [0, 3]) {
      const host = planted().hide('/run/systemd/system');
      host.plant('/etc/init.d/ipsec', `#!/bin/sh\necho "init.d $*" >> ${host.dir}/calls\nexit ${code}\n`, 0o755);
      try {
        const f = parseFacts(host.run(factsScript(challenge), { env: SSH, isolated: true }).stdout);
        expect({ init: f.init, running: f.running }).toEqual({ init: 'sysv', running: code === 0 });
        expect(host.calls().filter((c) => /^(init\.d|systemctl is-active)/.test(c))).toEqual(['init.d status']);
      } finally {
        host.cleanup();
      }
    }
  });
});

describe('the status script: the facts, then what the daemon says of its SAs and the kernel policies', () => {
  const policies = `src 10.0.0.1/32 dst 10.0.0.2/32
\tdir out priority 1040383 ptype main
\ttmpl src 0.0.0.0 dst 0.0.0.0
\t\tproto esp reqid 16389 mode transport
src ::/0 dst ::/0 proto ipv6-icmp type 135
\tdir out priority 1 ptype main
`;
  const run = (version: string, daemon: string) => {
    const host = factsHost('libreswan ii  4.10-2+deb12u1\\nnftables ii  1.0.6-2+deb12u2\\n', version);
    host.fake('ipsec', `case "$*" in --version) printf '%s\\n' ${quote(version)} ;; 'whack --trafficstatus'|statusall) cat <<'EOF'\n${daemon}EOF\n;; esac`);
    host.fake('ip', `case "$*" in 'xfrm state') cat <<'EOF'\n${XFRM}EOF\n;; 'xfrm policy') cat <<'EOF'\n${policies}EOF\n;; esac`);
    try {
      const r = host.run(statusScript(challenge), { env: SSH });
      return { code: r.code, stdout: r.stdout, calls: host.calls().filter((c) => c.startsWith('ipsec')) };
    } finally {
      host.cleanup();
    }
  };
  const now = 1_700_000_300_000;

  test('libreswan: whack --trafficstatus, read by parseDaemon; the policies; one @@end, last', () => {
    const r = run('Libreswan 4.10', `006 #4: "a--b", type=ESP, add_time=1700000000, inBytes=840, outBytes=1680, maxBytes=2^63B, id='10.0.0.2'\n`);
    expect(r.code).toBe(0);
    const s = sections(r.stdout);
    expect([...s.keys()].slice(-3)).toEqual(['daemon', 'policies', 'end']);
    expect(r.stdout.match(/^@@end$/gm)).toHaveLength(1);
    expect([...parseDaemon(s.get('daemon')!, now)]).toEqual([['a--b', { ageSec: 300, bytesIn: 840, bytesOut: 1680 }]]);
    expect(parseXfrmPolicies(s.get('policies')!.join('\n')).map((p) => [p.src, p.dst, p.proto, p.ipsec])).toEqual([
      ['10.0.0.1/32', '10.0.0.2/32', 0, true],
      ['::/0', '::/0', 58, false],
    ]);
    expect(r.calls).toEqual(['ipsec --version', 'ipsec --version', 'ipsec whack --trafficstatus']);
    expect(parseFacts(r.stdout).installed.get('libreswan')).toBe('4.10-2+deb12u1');
  });

  test('strongSwan: only the ESTABLISHED, INSTALLED and byte-count lines of statusall reach the controller', () => {
    const statusall = `Status of IKE charon daemon (strongSwan 5.9.8, Linux 6.1.0-28-amd64, x86_64):
Listening IP addresses:
  10.0.0.1
Connections:
        a--b:  10.0.0.1...10.0.0.2  IKEv2
Security Associations (1 up, 0 connecting):
        a--b[3]: ESTABLISHED 5 minutes ago, 10.0.0.1[10.0.0.1]...10.0.0.2[10.0.0.2]
        a--b{7}:  INSTALLED, TRANSPORT, reqid 1, ESP SPIs: c1d2e3f4_i 0a0b0c0d_o
        a--b{7}:   AES_GCM_16_256, 840 bytes_i (10 pkts, 3s ago), 1680 bytes_o (20 pkts, 3s ago), rekeying in 50 minutes
`;
    const r = run('Linux strongSwan U5.9.8/K6.1.0-28-amd64', statusall);
    const daemon = sections(r.stdout).get('daemon')!;
    expect(daemon.map((l) => l.trim().slice(0, 12))).toEqual(['a--b[3]: EST', 'a--b{7}:  IN', 'a--b{7}:   A']);
    expect([...parseDaemon(daemon, now)]).toEqual([['a--b', { ageSec: 300, bytesIn: 840, bytesOut: 1680 }]]);
    expect(r.calls).toEqual(['ipsec --version', 'ipsec --version', 'ipsec statusall']);
  });
});

test('the key MAC script: one MAC per secrets file that holds a key (equal keys, equal MACs); a missing or keyless file prints nothing; exit 0', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keymac-'));
  try {
    const key = `0s${Buffer.alloc(32, 1).toString('base64')}`;
    const files = { a: `x y : PSK ${key}\n`, b: `# other header\nx z : PSK ${key}\n`, c: 'x y : PSK 0sOTHER\n', none: '# no key here\n' };
    for (const [n, content] of Object.entries(files)) writeFileSync(join(dir, `${n}.secrets`), content, { mode: 0o600 });
    const paths = ['a', 'b', 'c', 'none', 'gone'].map((n) => join(dir, `${n}.secrets`));
    const host = new FakeHost();
    const r = host.run(keyMacScript(challenge, paths));
    host.cleanup();
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(key.slice(2));
    expect([...parseKeys(r.stdout.split('\n'))]).toEqual([
      [paths[0], { mac: mac(key) }],
      [paths[1], { mac: mac(key) }],
      [paths[2], { mac: mac('0sOTHER') }],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
