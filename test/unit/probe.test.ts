import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKENDS } from '../../src/backends/index.js';
import { atLeast } from '../../src/backends/types.js';
import { chooseMode } from '../../src/plan/rotate-mode.js';

// The strongSwan key probe (--rotate-mode reread): a childless IKE SA with the pair's IDs,
// loaded through vici for the probe only. Run by sh against a fake swanctl that logs its calls.

const probe = (name = 'web-1--db-1', local = '10.0.0.1', peer = 'fd77::12') => BACKENDS.strongswan.probe!({ name, local, peer });

function runProbe(
  initiate: { out: string; code: number; sleep?: number },
  opts: { stale?: string; killAfterMs?: number; runDir?: (dir: string) => void } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'probe-'));
  opts.runDir?.(join(dir, 'run'));
  const conf = join(dir, 'conf.d');
  spawnSync('mkdir', [conf]);
  if (opts.stale) writeFileSync(join(conf, opts.stale), 'left by a killed run\n');
  const log = join(dir, 'calls');
  writeFileSync(join(dir, 'initiate.out'), `${initiate.out}\n`);
  writeFileSync(
    join(dir, 'swanctl'),
    `#!/bin/sh
echo "$* | $(ls ${conf} | tr '\\n' ' ')" >> ${log}
case "$1" in
  --initiate) sleep ${initiate.sleep ?? 0}; cat ${join(dir, 'initiate.out')}; exit ${initiate.code} ;;
esac
exit 0
`,
  );
  chmodSync(join(dir, 'swanctl'), 0o755);
  // The lock folder inside the test's own, owned by whoever runs the test.
  const script = probe().replaceAll('/etc/swanctl/conf.d', conf).replaceAll('/run/provision', join(dir, 'run')).replace('"0 700"', '"$(id -u) 700"');
  const r = spawnSync('sh', ['-c', script], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${dir}:/usr/bin:/bin` },
    timeout: 20_000,
    ...(opts.killAfterMs ? { timeout: opts.killAfterMs, killSignal: 'SIGTERM' as const } : {}),
  });
  const calls = existsSync(log)
    ? readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.trimEnd())
    : [];
  const left = existsSync(conf) ? spawnSync('ls', ['-A', conf], { encoding: 'utf8' }).stdout.trim() : '';
  rmSync(dir, { recursive: true, force: true });
  return { code: r.status, stderr: r.stderr, calls, left };
}

test("the probe conn: childless, the pair's own IDs (so the very secrets line the pair uses), its own name", () => {
  const s = probe();
  expect(s).toContain('provision-probe-web-1--db-1 {');
  expect(s).toMatch(/local_addrs = 10\.0\.0\.1\n\s+remote_addrs = fd77::12/);
  expect(s).toMatch(/childless = force/);
  expect(s).toMatch(/local \{\n\s+auth = psk\n\s+id = 10\.0\.0\.1\n\s+\}\n\s+remote \{\n\s+auth = psk\n\s+id = fd77::12/);
  expect(s).not.toMatch(/secret|PSK /i);
});

test('authenticated: exit 0; the probe IKE SA is terminated, its file removed and the conns loaded again', () => {
  const r = runProbe({ out: '[IKE] IKE_SA provision-probe-web-1--db-1[3] established\ninitiate completed successfully', code: 0 });
  expect(r.code).toBe(0);
  expect(r.calls).toEqual([
    '--load-conns | provision-probe-web-1--db-1.conf',
    '--initiate --ike provision-probe-web-1--db-1 --timeout 25 | provision-probe-web-1--db-1.conf',
    '--terminate --ike provision-probe-web-1--db-1 --timeout 5 | provision-probe-web-1--db-1.conf',
    '--load-conns |',
  ]);
  expect(r.left).toBe('');
});

test("the peer refuses the key: exit 1 with the daemon's words; cleaned up all the same", () => {
  const r = runProbe({
    out: "plugin 'ldap': failed to load\n[ENC] parsed IKE_AUTH response 1 [ N(AUTH_FAILED) ]\n[IKE] received AUTHENTICATION_FAILED notify error\ninitiate failed: establishing IKE_SA 'provision-probe-web-1--db-1' failed",
    code: 1,
  });
  expect(r.code).toBe(1);
  expect(r.stderr).toBe('[IKE] received AUTHENTICATION_FAILED notify error\n');
  expect(r.calls.at(-1)).toBe('--load-conns |');
  expect(r.left).toBe('');
});

test('a probe that cannot run (a peer without childless support) says so with exit 2, not as a refusal', () => {
  const r = runProbe({
    out: "plugin 'ldap': failed to load\n[IKE] peer does not support childless IKE_SA initiation\ninitiate failed: establishing IKE_SA 'provision-probe-web-1--db-1' failed",
    code: 1,
  });
  expect(r.code).toBe(2);
  expect(r.stderr).not.toMatch(/plugin/);
  expect(r.stderr).toMatch(/does not support childless/);
  expect(r.left).toBe('');
});

test('who answers a probe and keeps its SAs as they were: libreswan 5.x, and 4.7+ as responder; not strongSwan (uniqueids=yes)', () => {
  const v = ['4.3', '4.6', '4.7', '4.10', '5.2'];
  const answers = (x: string, role: 'initiator' | 'responder') => BACKENDS.libreswan.probeRefusal!(x, role) === undefined;
  expect(v.map((x) => answers(x, 'responder'))).toEqual([false, false, true, true, true]);
  expect(v.map((x) => answers(x, 'initiator'))).toEqual([false, false, false, false, true]);
  expect(BACKENDS.libreswan.probeRefusal!('4.3', 'responder')).toMatch(/from 4\.7 on/);
  expect(BACKENDS.libreswan.probeRefusal!('4.10', 'initiator')).toMatch(/brings its conn up again/);
  expect(BACKENDS.strongswan.probeRefusal!('6.0.1', 'responder')).toMatch(/uniqueids/);
  expect(BACKENDS.libreswan.probe).toBeUndefined();
  expect([atLeast('4.10', 4, 7), atLeast('5.0', 4, 7), atLeast('4', 4, 7), atLeast('3.32', 4, 7)]).toEqual([true, true, false, false]);
});

test('a probe killed mid-way (the step timeout sends TERM) still deletes its IKE SA, its file and its conn', () => {
  const r = runProbe({ out: 'never printed', code: 0, sleep: 3 }, { killAfterMs: 1000 });
  expect(r.code).toBe(2);
  expect(r.calls.slice(-2)).toEqual(['--terminate --ike provision-probe-web-1--db-1 --timeout 5 | provision-probe-web-1--db-1.conf', '--load-conns |']);
  expect(r.left).toBe('');
});

test('what a killed run left in conf.d is removed before anything is loaded', () => {
  const r = runProbe({ out: 'initiate completed successfully', code: 0 }, { stale: 'provision-probe-old--pair.conf' });
  expect(r.calls[0]).toBe('--load-conns | provision-probe-web-1--db-1.conf');
  expect(r.left).toBe('');
});

test('a pair name too long for a swanctl section gets a short probe name of its own', () => {
  const long = `${'a'.repeat(63)}--${'b'.repeat(63)}`;
  const s = BACKENDS.strongswan.probe!({ name: long, local: '10.0.0.1', peer: '10.0.0.2' });
  const name = /connections \{\n {2}(\S+) \{/.exec(s)![1]!;
  expect(name).toMatch(/^provision-probe-[0-9a-f]{16}$/);
  expect(BACKENDS.strongswan.probe!({ name: long.replace('a', 'c'), local: '10.0.0.1', peer: '10.0.0.2' })).not.toContain(name);
});

test("the lock lives in a folder of root's own: one that is a link (or not 0700) stops the probe before anything is loaded", () => {
  const elsewhere = mkdtempSync(join(tmpdir(), 'elsewhere-'));
  const r = runProbe({ out: '', code: 0 }, { runDir: (d) => symlinkSync(elsewhere, d) });
  expect({ code: r.code, calls: r.calls }).toEqual({ code: 2, calls: [] });
  expect(r.stderr).toMatch(/is not root's own 0700 folder/);
  expect(readdirSync(elsewhere)).toEqual([]);
  const loose = runProbe({ out: '', code: 0 }, { runDir: (d) => mkdirSync(d, { mode: 0o777 }) });
  expect(loose.code).toBe(2);
});

describe('the default rotation mode of each pairing', () => {
  const end = (host: string, id: 'libreswan' | 'strongswan', version: string, role: 'initiator' | 'responder') => ({
    host,
    backend: BACKENDS[id],
    version,
    role,
  });
  test.each([
    ['strongswan', '5.9.1', 'libreswan', '4.10', 'reread', 'default: a can probe its peer'],
    ['libreswan', '5.2', 'strongswan', '6.0.1', 'reread', 'default: b can probe its peer'],
    ['libreswan', '4.10', 'strongswan', '5.9.8', 'reauth', /libreswan 4\.10 \(a, the initiator\): as the initiator/],
    ['libreswan', '4.3', 'strongswan', '6.0.1', 'reauth', /libreswan 4\.3 \(a, the initiator\): it answers an IKE SA without a Child SA from 4\.7 on/],
    [
      'strongswan',
      '5.9.8',
      'strongswan',
      '6.0.1',
      'reauth',
      /strongswan-starter 6\.0\.1 \(b, the responder\): it takes a probe .*; strongswan-starter 5\.9\.8 \(a, the initiator\)/,
    ],
    ['libreswan', '5.2', 'libreswan', '4.10', 'reauth', 'default: no probe, libreswan cannot start one (an IKE SA without a Child SA)'],
  ] as const)('%s %s initiating with %s %s: %s', (ia, iv, ra, rv, mode, why) => {
    const c = chooseMode([end('a', ia, iv, 'initiator'), end('b', ra, rv, 'responder')], undefined);
    expect(c.mode).toBe(mode);
    if (typeof why === 'string') expect(c.why).toBe(why);
    else expect(c.why).toMatch(why);
    expect(chooseMode([end('a', ia, iv, 'initiator'), end('b', ra, rv, 'responder')], 'reauth')).toEqual({
      mode: 'reauth',
      why: '--rotate-mode reauth',
      chosen: false,
    });
  });
});
