import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEADER_CASE_PATTERNS, type Owner, ownerOf } from '../../src/core/ownership.js';
import { keyBits } from '../../src/plan/keys.js';
import { PROBES } from '../../src/remote/fact-probes.js';
import { factsScript, offlineFacts, PACKAGES, parseFacts, parseIpsecVersion, pskOf, saUp, sections } from '../../src/remote/facts.js';
import { keyMacs, MASK_SECRETS, maskSecrets, parseKeys } from '../../src/remote/secrets.js';
import { statusScript } from '../../src/status/script.js';
import { TEST_CHALLENGE, withFiles } from '../helpers/fake-session.js';

// Recorded from lab servers (Debian 12) after a provision run; keys replaced by a fixture key.
// The files sections were converted to the one-dump format (stat lines, managed list, base64)
// when the facts script changed to it; the e2e tests run the script itself on lab servers.
const fixture = (name: string): string => readFileSync(join('test', 'fixtures', name), 'utf8');

describe('facts, from recorded output', () => {
  test('libreswan 4.10 host', () => {
    const f = parseFacts(fixture('facts-libreswan-4.10.txt'));
    expect(f).toMatchObject({ os: 'debian 12', init: 'systemd', ipsecVersion: '4.10', running: true, hasPackageLists: true });
    expect([...f.installed]).toEqual([['libreswan', '4.10-2+deb12u1']]);
    expect(f.candidates.get('openswan')).toBeUndefined();
    expect(f.candidates.get('strongswan-starter')).toMatch(/^5\.9\.8/);
    expect(f.missingIncludes).toEqual([]);
    const secrets = [...f.files.values()].filter((x) => x.path.endsWith('.secrets'));
    expect(secrets).toHaveLength(2);
    for (const s of secrets) {
      // Written by provision before fleets: the old header, whole.
      expect(s).toMatchObject({ owner: { kind: 'legacy' }, mode: '600' });
      expect(pskOf(s.content)).toMatch(/^0s/);
    }
  });

  test('ESP SAs in the kernel, by address only (server-01 of a 3-server lab; its files left out)', () => {
    const f = parseFacts(fixture('facts-libreswan-up.txt'));
    expect([...f.sas]).toEqual(['10.77.0.11 10.77.0.12', '10.77.0.11 10.77.0.13', '10.77.0.12 10.77.0.11', '10.77.0.13 10.77.0.11']);
    expect(saUp(f, '10.77.0.11', '10.77.0.12')).toBe(true);
    expect(saUp(f, '10.77.0.11', '10.77.0.14')).toBe(false);
    expect(parseFacts(fixture('facts-libreswan-4.10.txt')).sas.size).toBe(0);
    // `ip xfrm state` prints keys on the lines after "src"; the script prints none of them.
    expect(factsScript('0'.repeat(32))).toMatch(/ip xfrm state 2>\/dev\/null \| awk/);
    expect(fixture('facts-libreswan-up.txt')).not.toMatch(/aead|enc |auth-trunc|0x[0-9a-f]{16}/);
  });

  test('strongswan-starter 5.9.8 host', () => {
    const f = parseFacts(fixture('facts-strongswan-5.9.8.txt'));
    expect(f.ipsecVersion).toBe('5.9.8');
    expect([...f.installed.keys()]).toEqual(['strongswan-starter']);
    expect(f.files.get('/etc/ipsec.d/server-01--server-03.conf')?.content).toMatch(/^conn server-01--server-03$/m);
  });

  test('a fresh host: nothing installed, no package lists, no ipsec files', () => {
    const f = parseFacts(
      '@@os\ndebian 12\n@@init\nsystemd\n@@installed\n@@candidates\nopenswan (none)\nlibreswan (none)\n@@lists\n0\n@@version\n@@running\ninactive\n@@includes\nmissing /etc/ipsec.conf\nmissing /etc/ipsec.secrets\n@@files\n@@end\n',
    );
    expect(f).toMatchObject({ running: false, hasPackageLists: false });
    expect(f.installed.size + f.candidates.size + f.files.size).toBe(0);
    expect(f.missingIncludes.map((i) => i.line)).toEqual(['include /etc/ipsec.d/*.conf', 'include /etc/ipsec.d/*.secrets']);
  });

  test('a cut-off answer is an error, not an empty host', () => {
    expect(() => parseFacts('@@os\ndebian 12\n@@installed\n')).toThrow(/did not finish/);
  });

  test('an operator file is seen but not read', () => {
    const f = parseFacts('@@files\n644 120 /etc/ipsec.d/mine.conf\n@@managed\n@@content\n\n@@end\n');
    expect(f.files.get('/etc/ipsec.d/mine.conf')).toEqual({ path: '/etc/ipsec.d/mine.conf', mode: '644', owner: { kind: 'operator' } });
  });

  test('files of ours are cut from the one dump by their sizes, in the listed order', () => {
    const a = '# managed by provision for fleet web: edits are overwritten\nconn a\n';
    const b = '# managed by provision for fleet web: edits are overwritten\nx y : PSK 0sAAAA\n';
    const f = parseFacts(
      withFiles('@@files\n@@end\n', [
        { path: '/etc/ipsec.d/a.conf', mode: '644', content: a },
        { path: '/etc/ipsec.d/mine.conf', mode: '640' },
        { path: '/etc/ipsec.d/a.secrets', mode: '600', content: b },
      ]),
    );
    expect(f.files.get('/etc/ipsec.d/a.conf')).toEqual({ path: '/etc/ipsec.d/a.conf', mode: '644', owner: { kind: 'fleet', fleet: 'web' }, content: a });
    expect(f.files.get('/etc/ipsec.d/a.secrets')).toEqual({
      path: '/etc/ipsec.d/a.secrets',
      mode: '600',
      owner: { kind: 'fleet', fleet: 'web' },
      content: b.replace('0sAAAA', '0s****'),
    });
    expect(f.files.get('/etc/ipsec.d/mine.conf')?.owner).toEqual({ kind: 'operator' });
  });

  test('a file that changed size between stat and cat is an error, not a wrong content', () => {
    const text = withFiles('@@files\n@@end\n', [
      { path: '/etc/ipsec.d/a.conf', mode: '644', content: '# managed by provision for fleet x: edits are overwritten\n' },
    ]);
    expect(() => parseFacts(text.replace(/^644 \d+ /m, '644 5 '))).toThrow(/changed while it was read/);
  });

  test('versions from each implementation', () => {
    expect(parseIpsecVersion('Libreswan 4.10')).toBe('4.10');
    expect(parseIpsecVersion('Linux strongSwan U5.9.8/K6.1.176')).toBe('5.9.8');
    expect(parseIpsecVersion('Linux Openswan U2.6.38/K3.2.0-23-generic (netkey)')).toBe('2.6.38');
    expect(parseIpsecVersion('')).toBeUndefined();
  });

  test('a key that reached the controller unmasked (an older host script) is masked as it is read', () => {
    const b = '# managed by provision for fleet web: edits are overwritten\nx y : PSK 0sAAAA\n';
    const text = withFiles('@@files\n@@end\n', [{ path: '/etc/ipsec.d/a.secrets', mode: '600', content: b }]).replace(
      /(@@content\n)\S+/,
      (_m, h: string) => h + Buffer.from(b).toString('base64'),
    );
    expect(parseFacts(text).files.get('/etc/ipsec.d/a.secrets')!.content).toBe(b.replace('0sAAAA', '0s****'));
  });

  test('a secrets file with two PSK lines has no single key', () => {
    expect(pskOf('a b : PSK 0sAAA\nc d : PSK 0sBBB\n')).toBeUndefined();
  });

  test('every conn the config defines, with its file; the staging a killed write left; where SSH comes from', () => {
    const f = parseFacts(
      '@@conns\noperator-vpn /etc/ipsec.conf\nweb--db /etc/ipsec.d/web--db.conf\n@@stale\n/etc/ipsec.d/.provision-backup.AbC123\n/etc/passwd\n@@ssh\n10.77.0.1 50412 10.77.0.11 22\n@@end\n',
    );
    expect(f.conns).toEqual([
      { name: 'operator-vpn', file: '/etc/ipsec.conf' },
      { name: 'web--db', file: '/etc/ipsec.d/web--db.conf' },
    ]);
    expect(f.staleStaging).toEqual(['/etc/ipsec.d/.provision-backup.AbC123']);
    expect(f.sshClient).toEqual({ address: '10.77.0.1', port: 50412, serverPort: 22 });
  });
});

describe('whose file it is: the whole first line decides', () => {
  const lines: [string, Owner['kind'], string][] = [
    ['# managed by provision for fleet web: edits are overwritten', 'fleet', 'web'],
    ['# managed by provision: edits are overwritten. Pair a/b; a initiates.', 'legacy', ''],
    ['# managed by provisioning team', 'operator', ''],
    ['# managed by provision', 'operator', ''],
    ['# managed by provision for fleet web: edits are overwritten, says ops', 'operator', ''],
    ['# managed by provision for fleet a b: edits are overwritten', 'operator', ''],
    ['# managed by provision: edits are overwritten. Pair a/b; a initiates. (copied)', 'operator', ''],
    ['conn mine', 'operator', ''],
  ];

  test.each(lines)('%j is %s', (line, kind, fleet) => {
    expect(ownerOf(line)).toEqual(fleet ? { kind, fleet } : { kind });
  });

  test('the facts script reads no operator file, even one whose header starts like ours (its key stays on the host)', () => {
    for (const [line, kind] of lines) {
      const r = spawnSync('sh', ['-c', `case "$1" in ${HEADER_CASE_PATTERNS}) echo read ;; *) echo skip ;; esac`, 'sh', line], { encoding: 'utf8' });
      // The shell may read a near miss (the planner then treats it as the operator's), never a plainly different header.
      if (kind !== 'operator') expect(r.stdout.trim()).toBe('read');
      if (/provisioning team|^# managed by provision$|^conn /.test(line)) expect(r.stdout.trim()).toBe('skip');
    }
  });
});

describe('no key leaves a host: the facts script masks every secret and sends keys only as MACs', () => {
  const key = `0s${Buffer.alloc(32, 9).toString('base64')}`;
  const content =
    `# managed by provision for fleet web: edits are overwritten\n10.0.0.1 10.0.0.2 : PSK ${key}\n` +
    '# an old line : PSK "my old secret"\n@user : XAUTH "pa=ss"\nx : PSK 0x00ff00ff\nno newline at the end : PSK 0sQUJD';
  const sh = (script: string, input?: string): string =>
    execFileSync('sh', ['-c', `export LC_ALL=C\n${script}`], { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });

  test('the host masks byte for byte, as the controller does: sizes unchanged, no key character left', () => {
    const masked = sh(MASK_SECRETS, content);
    expect(masked).toBe(maskSecrets(content));
    expect(Buffer.byteLength(masked)).toBe(Buffer.byteLength(content));
    expect(masked).not.toContain(key.slice(2, 10));
    expect(masked).not.toMatch(/old secret|pa=ss|00ff|QUJD/);
    expect(masked).toContain(`: PSK 0s${'*'.repeat(43)}=\n`);
    // Its strength can still be judged: 256 bits.
    expect(keyBits(pskOf(masked.split('\n').slice(0, 2).join('\n'))!)).toBe(256);
  });

  test('a MAC of a fresh challenge, computed on the host: equal keys equal MACs, and neither the key nor its plain hash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mac-'));
    const [a, b, c] = ['a', 'b', 'c'].map((n) => join(dir, `${n}.secrets`));
    writeFileSync(a!, content);
    writeFileSync(b!, content.replace(/fleet web/, 'fleet db'));
    writeFileSync(c!, content.replace(key, `0s${Buffer.alloc(32, 8).toString('base64')}`));
    const macs = (challenge: string) => parseKeys(sh(`set -- ${a} ${b} ${c}\n${keyMacs(challenge)}`).split('\n'));
    const one = macs('1'.repeat(32));
    expect(one.get(a!)!.mac).toBe(one.get(b!)!.mac);
    expect(one.get(a!)!.mac).not.toBe(one.get(c!)!.mac);
    expect(one.get(a!)!.mac).toBe(
      createHash('sha256')
        .update(`${'1'.repeat(32)}\n${key}`)
        .digest('hex')
        .slice(0, 32),
    );
    expect(macs('2'.repeat(32)).get(a!)!.mac).not.toBe(one.get(a!)!.mac);
    const raw = Buffer.from(key.slice(2), 'base64');
    for (const plain of [createHash('sha256').update(key).digest('hex'), createHash('sha256').update(raw).digest('hex')])
      expect(plain.slice(0, 32)).not.toBe(one.get(a!)!.mac);
  });

  test('the facts script sends file contents through the mask and keys only through the MAC', () => {
    const script = factsScript('3'.repeat(32));
    expect(script).toContain(`cat -- "$@" | ${MASK_SECRETS} | base64 -w0`);
    expect(script).toContain(keyMacs('3'.repeat(32)));
    // The one command that sends file contents.
    expect(script.split('\n').filter((l) => !l.startsWith('#') && /\bcat\b|base64 -w/.test(l))).toEqual([
      `[ $# -eq 0 ] || cat -- "$@" | ${MASK_SECRETS.split('\n')[0]}`,
      "}' | base64 -w0",
    ]);
    expect(() => factsScript("x'; rm -rf /")).toThrow(/hex/);
  });
});

describe('the facts model', () => {
  test('each probe gives its own facts: no two give the same one, and together they give every fact a recorded host has', () => {
    const byProbe = PROBES.map((p) => Object.keys(p.parse(sections(readFileSync('test/fixtures/facts-libreswan-up.txt', 'utf8')))));
    const all = byProbe.flat();
    expect(new Set(all).size).toBe(all.length);
    const recorded = parseFacts(readFileSync('test/fixtures/facts-libreswan-up.txt', 'utf8'));
    expect(new Set(all)).toEqual(new Set(Object.keys(recorded)));
    expect(all).toEqual(expect.arrayContaining(['os', 'installed', 'candidates', 'files', 'keys', 'guards']));
  });

  test('an offline host gets fresh maps each time, so one plan cannot change another host', () => {
    const a = offlineFacts();
    a.installed.set('libreswan', '4.10');
    a.missingIncludes.pop();
    expect(offlineFacts().installed.size).toBe(0);
    expect(offlineFacts().missingIncludes.length).toBe(2);
  });

  test('the scripts are the probes in order, each under its own section; status adds the daemon and the policies last', () => {
    const marks = (script: string) => [...script.matchAll(/^echo '@@(\w+)'$/gm)].map((m) => m[1]);
    const facts = marks(factsScript(TEST_CHALLENGE));
    expect(facts.filter((m) => PROBES.some((p) => p.name === m))).toEqual(PROBES.map((p) => p.name));
    expect(facts.at(-1)).toBe('end');
    expect(marks(statusScript(TEST_CHALLENGE))).toEqual([...facts.slice(0, -1), 'daemon', 'policies', 'end']);
  });

  test('the packages asked about are those of every backend, and nftables', () => {
    expect([...PACKAGES].sort()).toEqual(['libreswan', 'nftables', 'openswan', 'strongswan-charon', 'strongswan-starter', 'strongswan-swanctl']);
  });
});
