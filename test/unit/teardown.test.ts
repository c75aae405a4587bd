import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { run } from '../../src/apply/run.js';
import { writeScript } from '../../src/apply/scripts.js';
import { main } from '../../src/cli.js';
import { INCLUDE_MARK, RUN_DIR } from '../../src/core/paths.js';
import { loadInventory } from '../../src/inventory/load.js';
import type { HostSpec } from '../../src/inventory/types.js';
import { guardTable, renderGuard, renderGuardUnit } from '../../src/plan/guard.js';
import { type Call, fakeFleet, READY_FACTS, withFiles, withGuard, written } from '../helpers/fake-session.js';

// provision teardown against fake hosts. The lab e2e does it for real, an operator conn beside.

const dir = mkdtempSync(join(tmpdir(), 'teardown-'));
const file = join(dir, 'web.yaml');
const text = 'hosts:\n  a: {address: 10.0.0.1}\n  b: {address: 10.0.0.2}\n  c: {address: 10.0.0.3}\npairs: [[a, b], [a, c]]\n';
writeFileSync(file, text);
const inv = loadInventory(text, file);
const peers: Record<string, string[]> = { a: ['10.0.0.2', '10.0.0.3'], b: ['10.0.0.1'], c: ['10.0.0.1'] };
const withMark = (facts: string) => facts.replace('present /etc/ipsec.conf\n', 'present /etc/ipsec.conf\nours /etc/ipsec.conf\n');

async function converged(): Promise<Map<string, string>> {
  const fake = fakeFleet(inv);
  const first = await run(inv, { dryRun: false, verify: false, concurrency: 4, random: () => new Uint8Array(32).fill(3), connect: fake.connect });
  return new Map(
    first.changeset!.hosts.map((h) => [
      h.host,
      withMark(
        withGuard(
          withFiles(READY_FACTS, [
            ...h.files.map((f) => ({
              path: f.path,
              mode: f.mode.slice(1),
              content:
                f.kind === 'guard'
                  ? renderGuard('web', { peers: peers[h.host]!, ssh: [], sshPort: 22 })
                  : f.kind === 'unit'
                    ? renderGuardUnit()
                    : written(f.content, `0s${'A'.repeat(43)}=`),
            })),
            { path: '/etc/ipsec.d/operator-vpn.conf', mode: '644' },
          ]),
          guardTable('web'),
          peers[h.host]!,
        ),
      ),
    ]),
  );
}

class Sink extends Writable {
  text = '';
  override _write(c: Buffer, _e: string, cb: () => void): void {
    this.text += c.toString();
    cb();
  }
}

async function teardown(argv: string[], facts: Map<string, string>) {
  const sent: Call[] = [];
  const fake = fakeFleet(inv, { facts: (h) => facts.get(h), respond: (c) => void sent.push(c) });
  const stdout = new Sink();
  const code = await main(
    ['teardown', '-i', file, ...argv],
    { stdout, stderr: new PassThrough() },
    { connect: (name: string) => fake.connect(inv.hosts.get(name) as HostSpec) },
  );
  return { code, stdout: stdout.text, sent };
}

describe('provision teardown', () => {
  test("every pair goes: files, conns, guard; the operator's conn stays, and so does the include it needs", async () => {
    const r = await teardown([], await converged());
    expect(r.code).toBe(0);
    const write = r.sent.find((c) => c.host === 'a' && c.step === 'write')!;
    expect(write.script).toMatch(/^x 0 a--b\.conf$/m);
    expect(write.script).toMatch(/^x 1 guard-web\.nft$/m);
    expect(write.script).not.toMatch(/operator-vpn/);
    // operator-vpn.conf is still in /etc/ipsec.d: the include line stays.
    expect(write.script).not.toMatch(/dropline/);
    expect(r.sent.find((c) => c.host === 'a' && c.step === 'guard')!.script).toContain('nft delete table inet provision_web');
    expect(r.sent.find((c) => c.host === 'a' && c.step === 'reload conns')!.script).toMatch(/ipsec auto --delete a--b[\s\S]*ipsec auto --delete a--c/);
    expect(r.sent.some((c) => c.step.startsWith('verify') || c.stdin?.includes('PSK'))).toBe(false);
  });

  test('a host with nothing of provision left loses the include line provision added, and only that', async () => {
    const facts = await converged();
    facts.set('b', facts.get('b')!.replace(/^644 \d+ \/etc\/ipsec\.d\/operator-vpn\.conf\n/m, ''));
    const r = await teardown([], facts);
    expect(r.sent.find((c) => c.host === 'b' && c.step === 'write')!.script).toMatch(/dropline \/etc\/ipsec\.conf/);
  });

  test("--limit c: only c's pair goes, on c and on its peer a; b is not contacted", async () => {
    const r = await teardown(['--limit', 'c', '--dry-run'], await converged());
    expect(r.code).toBe(0);
    expect(new Set(r.sent.map((c) => c.host))).toEqual(new Set(['a', 'c']));
    expect(r.stdout).toMatch(/^ {2}- \/etc\/ipsec\.d\/a--c\.conf/m);
    expect(r.stdout).not.toMatch(/- \/etc\/ipsec\.d\/a--b\.conf/);
    expect(r.stdout).toMatch(/guard: load table inet provision_web with 10\.0\.0\.2; 10\.0\.0\.3 leaves/);
    expect(r.sent.every((c) => c.step === 'facts')).toBe(true);
  });
});

describe('the include line provision added', () => {
  // The lock folder of the write script, moved under the test's own folder.
  const local = (script: string, d: string) => script.replaceAll(RUN_DIR, join(d, 'run'));

  test('is written below its marker, and removed with it, leaving every other line', () => {
    const d = mkdtempSync(join(tmpdir(), 'inc-'));
    const conf = join(d, 'ipsec.conf');
    writeFileSync(conf, 'config setup\n  # mine\n');
    const add = writeScript({ puts: [], deletes: [], includes: [{ path: conf, line: 'include /etc/ipsec.d/*.conf' }] });
    expect(spawnSync('sh', ['-c', local(add.script, d)]).status).toBe(0);
    expect(readFileSync(conf, 'utf8')).toBe(`config setup\n  # mine\n${INCLUDE_MARK}\ninclude /etc/ipsec.d/*.conf\n`);
    const drop = writeScript({ puts: [], deletes: [], includes: [], dropIncludes: [{ path: conf, line: 'include /etc/ipsec.d/*.conf' }] });
    expect(spawnSync('sh', ['-c', local(drop.script, d)]).status).toBe(0);
    expect(readFileSync(conf, 'utf8')).toBe('config setup\n  # mine\n');
  });

  test("is not added twice: a line added since the facts were read (another fleet's run) is left as it is, and two runs at once add one", async () => {
    const d = mkdtempSync(join(tmpdir(), 'inc-'));
    const conf = join(d, 'ipsec.conf');
    writeFileSync(conf, 'config setup\n  include   /etc/ipsec.d/*.conf\n');
    const add = writeScript({ puts: [], deletes: [], includes: [{ path: conf, line: 'include /etc/ipsec.d/*.conf' }] });
    expect(spawnSync('sh', ['-c', local(add.script, d)]).status).toBe(0);
    expect(readFileSync(conf, 'utf8')).toBe('config setup\n  include   /etc/ipsec.d/*.conf\n');
    writeFileSync(conf, 'config setup\n');
    const both = await Promise.all(
      [1, 2].map(
        () =>
          new Promise<number | null>((resolve) => {
            spawn('sh', ['-c', local(add.script, d)], { stdio: 'ignore' }).on('exit', resolve);
          }),
      ),
    );
    expect(both).toEqual([0, 0]);
    expect(readFileSync(conf, 'utf8')).toBe(`config setup\n${INCLUDE_MARK}\ninclude /etc/ipsec.d/*.conf\n`);
  });
});
