import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.js';
import { wantsColor } from '../../src/report/view.js';
import { run } from '../helpers/io.js';

const dir = mkdtempSync(join(tmpdir(), 'provision-cli-'));
const write = (name: string, text: string): string => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

describe('provision --dry-run --offline', () => {
  test('prints the example plan on stdout, nothing on stderr, exit 0', async () => {
    const r = await run('--inventory', 'inventory.example.yaml', '--dry-run', '--offline');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Plan for inventory\.example\.yaml \(fleet example\): 3 hosts, 3 pairs \(offline: no host was contacted\)$/m);
    expect(r.stdout).toMatch(/^server-01 {2}192\.0\.2\.11 {2}libreswan 4\.10 \(assumed\)$/m);
    expect(r.stdout).toMatch(
      /^ {2}install libreswan nftables \(auto: the first apt offers of openswan, libreswan, strongswan-starter\), after apt-get update/m,
    );
    expect(r.stdout).toMatch(/^ {2}guard: load table inet provision_example; 192\.0\.2\.12, 192\.0\.2\.21 join before the daemons load their pairs$/m);
    expect(r.stdout).toMatch(/^db-01 {2}192\.0\.2\.21 {2}strongswan-starter 5\.9\.8 \(assumed\)$/m);
    expect(r.stdout).toMatch(/^ {2}install strongswan-starter strongswan-charon strongswan-swanctl nftables, after apt-get update/m);
    expect(r.stdout).toMatch(/^ {6}\+ {4}auto=start$/m);
    expect(r.stdout).toMatch(/server-01--server-02 +server-01 \(auto=start\) -> server-02 \(auto=route\)/);
    expect(r.stdout).toMatch(/PSK <redacted: new 256-bit key>/);
    expect(r.stdout).not.toMatch(/PSK 0s/);
    expect(r.stdout).toMatch(
      /^19 files to create, 0 to update, 0 to delete, 3 installs, 3 restarts, 3 guards to load or remove on 3 of 3 hosts; 0 hosts unchanged\. Nothing was changed\.$/m,
    );
  });

  test('--limit applies offline too, and a host in no pair is not shown getting a package', async () => {
    const f = write(
      'lonely.yaml',
      'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\n  c: {address: 192.0.2.3}\n  lonely: {address: 192.0.2.4}\npairs: [[a, b], [a, c]]\n',
    );
    const r = await run('-i', f, '--dry-run', '--offline', '--limit', 'a,b,lonely');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^1 host not read \(outside --limit, or not reached\): c$/m);
    expect(r.stdout).not.toMatch(/^c {2}192/m);
    expect(r.stdout).toMatch(/a--c +a \(auto=start\) -> c \(auto=route\) {2}skipped: c is outside --limit/);
    expect(r.stdout.split('\nlonely  ')[1]!.split('\n\n')[0]).not.toMatch(/install/);
    expect(r.stdout).toMatch(/on 2 of 4 hosts; 1 host unchanged, 1 not read\./);
  });

  test('--limit one host of 200: the hosts not read are counted on one line, not listed', async () => {
    const hosts = Array.from({ length: 200 }, (_, i) => `  h${i}: {address: 192.0.2.${i + 1}}`).join('\n');
    const f = write('two-hundred.yaml', `hosts:\n${hosts}\nmeshes:\n  - {name: all, hosts: [${Array.from({ length: 200 }, (_, i) => `h${i}`).join(', ')}]}\n`);
    const full = await run('-i', f, '--dry-run', '--offline', '--limit', 'h0');
    expect(full.code).toBe(0);
    const lines = full.stdout.split('\n').filter((l) => /^\d+ hosts? not read/.test(l));
    expect(lines[0]).toBe('199 hosts not read (outside --limit, or not reached): h1, h2, h3, h4 and 195 more');
    expect(lines.length).toBe(1);
    // Every pair of the mesh is skipped (h0 with the 199, and theirs), named on one line by reason.
    expect(full.stdout).toMatch(/^Skipped pairs\n {2}19900 skipped \(one end is outside --limit\): h0--h1, h0--h2, h0--h3, h0--h4 and 19896 more$/m);
    expect(full.stdout.split('\n').length).toBeLessThan(20);
  });

  test('plans that read at size: totals first, a file identical on many hosts shown once, guard peer lists cut short, --summary and --detail', async () => {
    const hosts = Array.from({ length: 8 }, (_, i) => `  h${i}: {address: 192.0.2.${i + 1}}`).join('\n');
    const f = write(
      'eight.yaml',
      `fleet: eight\nhosts:\n${hosts}\nmeshes:\n  - {name: all, hosts: [${Array.from({ length: 8 }, (_, i) => `h${i}`).join(', ')}]}\n`,
    );
    const full = await run('-i', f, '--dry-run', '--offline');
    const lines = full.stdout.split('\n');
    expect(lines[2]).toMatch(
      /^\d+ files to create, 0 to update, 0 to delete, 8 installs, 8 restarts, 8 guards to load or remove on 8 of 8 hosts; 0 hosts unchanged\. Nothing was changed\.$/,
    );
    // The guard's boot unit is the same file everywhere: its diff once, then "same as on h0".
    expect(full.stdout.match(/\+ \/etc\/systemd\/system\/provision-guard\.service {2}\(create, 0644\)\n {6}same as on h0$/gm)).toHaveLength(7);
    expect(full.stdout).toMatch(
      /guard: load table inet provision_eight; 192\.0\.2\.2, 192\.0\.2\.3, 192\.0\.2\.4, 192\.0\.2\.5 and 3 more join before the daemons load their pairs/,
    );
    const summary = await run('-i', f, '--dry-run', '--offline', '--summary');
    expect(summary.stdout.split('\n').filter((l) => /^ {2}h\d /.test(l))).toHaveLength(8);
    expect(summary.stdout).not.toMatch(/---|\+\+\+/);
    const totals = await run('-i', f, '--dry-run', '--offline', '--detail', 'summary');
    expect(totals.stdout.split('\n').filter((l) => /^ {2}h\d /.test(l))).toHaveLength(0);
    expect(totals.stdout).toMatch(/on 8 of 8 hosts/);
    const both = await run('-i', f, '--dry-run', '--offline', '--detail', 'full', '--summary');
    expect({ code: both.code, err: both.stderr }).toEqual({ code: 2, err: expect.stringMatching(/--summary is --detail hosts: give one of the two/) });
  });

  test('--json and bad input: the problems as JSON on stdout too (file, line, column, what to do), exit 2', async () => {
    const f = write('typo.yaml', 'hosts:\n  a: {address: 192.0.2.1}\n  b: {adress: 192.0.2.2}\npairs: [[a, b]]\n');
    const r = await run('-i', f, '--dry-run', '--offline', '--json');
    expect(r.code).toBe(2);
    const j = JSON.parse(r.stdout);
    expect(j.error).toBe('inventory');
    expect(j.problems[0]).toMatchObject({ file: f, line: 3, column: expect.any(Number), message: expect.stringMatching(/address/), hint: expect.any(String) });
    expect(j.problems.map((p: { message: string }) => p.message).join(' ')).toMatch(/adress/);
    expect(r.stderr).toMatch(/^error: .*typo\.yaml has \d+ problems?; nothing was done\./);
    const usage = await run('-i', f, '--json', '--offline');
    expect({ code: usage.code, out: JSON.parse(usage.stdout) }).toEqual({
      code: 2,
      out: { error: 'usage', message: expect.stringMatching(/--offline .* needs --dry-run/) },
    });
  });

  test('colour: --color paints the diffs, --no-color and a pipe never; NO_COLOR and TERM=dumb turn the terminal default off', async () => {
    const colored = await run('-i', 'inventory.example.yaml', '--dry-run', '--offline', '--color');
    expect(colored.stdout).toContain('      \u001b[32m+conn server-01--server-02\u001b[0m');
    expect(colored.stdout).toMatch(/\u001b\[36m@@ -0,0 \+1,\d+ @@\u001b\[0m/);
    expect(colored.stdout).not.toMatch(/\u001b\[3\dm\+\+\+ /);
    for (const flags of [['--no-color'], []]) {
      const plain = await run('-i', 'inventory.example.yaml', '--dry-run', '--offline', ...flags);
      expect(plain.stdout).not.toContain('\u001b[');
    }
    const tty = Object.assign(new PassThrough(), { isTTY: true });
    expect([
      wantsColor(undefined, tty, {}),
      wantsColor(undefined, tty, { NO_COLOR: '1' }),
      wantsColor(undefined, tty, { TERM: 'dumb' }),
      wantsColor(true, new PassThrough(), {}),
      wantsColor(false, tty, {}),
    ]).toEqual([true, false, false, true, false]);
  });

  test('--json prints the same plan as versioned JSON', async () => {
    const r = await run('-i', 'inventory.example.yaml', '--dry-run', '--offline', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ version: 2, tool: JSON.parse(readFileSync('package.json', 'utf8')).version, mode: 'offline', inventory: { fleet: 'example' } });
    expect(j.hosts.map((h: { name: string }) => h.name)).toEqual(['server-01', 'server-02', 'db-01']);
    expect(j.pairs).toHaveLength(3);
    const secrets = j.hosts[0].files.find((f: { path: string }) => f.path.endsWith('.secrets'));
    expect(secrets).toMatchObject({ mode: '0600', action: 'create' });
    expect(secrets.content).toMatch(/<redacted: new 256-bit key>/);
    expect(r.stdout).not.toMatch(/PSK 0s/);
  });

  test('an inventory mistake: positioned message on stderr, nothing on stdout, exit 2', async () => {
    const f = write('bad.yaml', 'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs:\n  - [a, c]\n');
    const r = await run('-i', f, '--dry-run', '--offline');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${f}:5:9: unknown host "c"`);
    expect(r.stderr).toMatch(/hint: /);
    expect(r.stderr).toMatch(/nothing was done/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('a missing file is exit 2 with the reason', async () => {
    const r = await run('-i', join(dir, 'nope.yaml'), '--dry-run', '--offline');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot read the inventory .*nope\.yaml: no such file/);
  });

  test('--offline without --dry-run is refused before reading anything', async () => {
    const r = await run('-i', 'inventory.example.yaml', '--offline');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--offline .* needs --dry-run/);
  });

  test('--rotate-psk with --offline is refused: the keys are on the hosts', async () => {
    const r = await run('-i', 'inventory.example.yaml', '--dry-run', '--offline', '--rotate-psk');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--rotate-psk works from the keys on the hosts/);
  });

  test('--rotate-psk naming no pair of the inventory is exit 2, before any connection', async () => {
    let connects = 0;
    const err = new PassThrough();
    let text = '';
    err.on('data', (d) => (text += d));
    const code = await main(
      ['-i', 'inventory.example.yaml', '--rotate-psk', 'nobody--nowhere'],
      { stdout: new PassThrough(), stderr: err },
      {
        connect: async () => {
          connects++;
          throw new Error('no connection expected');
        },
      },
    );
    expect({ code, connects }).toEqual({ code: 2, connects: 0 });
    expect(text).toMatch(/--rotate-psk: no pair "nobody--nowhere" in the inventory \(pairs: /);
  });

  test('an unknown flag is exit 2', async () => {
    const r = await run('-i', 'inventory.example.yaml', '--dry-rum');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Unknown argument/);
  });
});

describe('flags: only the forms they document', () => {
  const noConnect = async (argv: string[]) => {
    let connects = 0;
    const out = new PassThrough();
    const err = new PassThrough();
    let text = '';
    let stdout = '';
    err.on('data', (d) => (text += d));
    out.on('data', (d) => (stdout += d));
    const code = await main(
      argv,
      { stdout: out, stderr: err },
      {
        connect: async () => {
          connects++;
          throw new Error('no connection expected');
        },
      },
    );
    return { code, connects, stderr: text, stdout };
  };

  test.each([
    ['--dry-run=yes'],
    ['--dry-run=1'],
    ['--dry-run=on'],
    ['--json=maybe'],
    ['--verify=no'],
    ['--no-verify=x'],
    ['--prune=0'],
    ['--offline=yes'],
    ['--accept-new-host-keys=y'],
  ])('%s is refused with exit 2 before any connection', async (flag) => {
    const r = await noConnect(['-i', 'inventory.example.yaml', flag]);
    expect({ code: r.code, connects: r.connects }).toEqual({ code: 2, connects: 0 });
    expect(r.stderr).toMatch(/takes no value|true or false/);
    expect(r.stderr).toContain(flag.split('=')[0]!);
  });

  test('--dry-run=true and --dry-run=false are what they say', async () => {
    const t = await run('-i', 'inventory.example.yaml', '--dry-run=true', '--offline');
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/Nothing was changed/);
    const f = await run('-i', 'inventory.example.yaml', '--dry-run=false', '--offline');
    expect(f.code).toBe(2);
    expect(f.stderr).toMatch(/--offline .* needs --dry-run/);
  });

  test.each([
    [['-i', 'a.yaml', '-i', 'b.yaml'], '--inventory'],
    [['-i', 'inventory.example.yaml', '--concurrency', '3', '--concurrency', '4'], '--concurrency'],
    [['-i', 'inventory.example.yaml', '--connect-timeout', '3', '--connect-timeout', '4'], '--connect-timeout'],
  ])('%j: a flag given twice is a usage error', async (argv, flag) => {
    const r = await noConnect(argv);
    expect({ code: r.code, connects: r.connects }).toEqual({ code: 2, connects: 0 });
    expect(r.stderr).toContain(`${flag} was given 2 times`);
    expect(r.stderr).not.toMatch(/TypeError|\n\s+at /);
  });

  test.each([['0'], ['-5'], ['abc'], ['Infinity']])('--connect-timeout %s is refused', async (v) => {
    const r = await noConnect(['-i', 'inventory.example.yaml', '--connect-timeout', v]);
    expect({ code: r.code, connects: r.connects }).toEqual({ code: 2, connects: 0 });
    expect(r.stderr).toMatch(/--connect-timeout takes a number of seconds above 0/);
  });

  test('--limit naming an unknown host is exit 2 before any connection', async () => {
    const r = await noConnect(['-i', 'inventory.example.yaml', '--limit', 'server-01,nope']);
    expect({ code: r.code, connects: r.connects }).toEqual({ code: 2, connects: 0 });
    expect(r.stderr).toMatch(/--limit names host\(s\) not in the inventory: nope/);
  });

  test('--version prints the version of package.json; -h prints the help', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    const v = await noConnect(['--version']);
    expect({ code: v.code, out: v.stdout.trim() }).toEqual({ code: 0, out: pkg.version });
    const h = await noConnect(['-h']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/--inventory/);
    expect(h.stdout).toMatch(/--dry-run/);
  });
});

describe('the command line people expect', () => {
  test('docs/cli.md is what --help prints (npm run cli-doc rewrites it)', async () => {
    const { cliReference } = await import('../../src/cli/reference.js');
    expect(readFileSync('docs/cli.md', 'utf8')).toBe(await cliReference());
  });

  test('man/provision.1 is the same --help as a manual page (npm run cli-doc rewrites it), and man reads it without a warning', async () => {
    const { manPage } = await import('../../src/cli/reference.js');
    const version = JSON.parse(readFileSync('package.json', 'utf8')).version;
    expect(readFileSync('man/provision.1', 'utf8')).toBe(await manPage(version));
    const { spawnSync } = await import('node:child_process');
    const man = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', 'man/provision.1'], { encoding: 'utf8' });
    // groff (groff-base) is installed by scripts/setup: missing, this fails.
    expect({ code: man.status, warnings: man.stderr }).toEqual({ code: 0, warnings: '' });
  });

  test('--help has examples and the exit codes', async () => {
    const r = await run('--help');
    expect(r.stdout).toMatch(/Examples:/);
    expect(r.stdout).toMatch(/^ {2}4 {4}provision apply: a host changed since the plan was made/m);
  });

  test('a mistyped flag or command gets a did-you-mean', async () => {
    const flag = await run('-i', 'inventory.example.yaml', '--dry-rn');
    expect({ code: flag.code }).toEqual({ code: 2 });
    expect(flag.stderr).toMatch(/--dry-rn: did you mean --dry-run\?/);
    const cmd = await run('statsu', '-i', 'inventory.example.yaml');
    expect(cmd.stderr).toMatch(/statsu: did you mean `provision status`\?/);
  });

  test('a flag of another command says so; a number flag repeats what was typed; --nagios makes bad input UNKNOWN (3)', async () => {
    const other = await run('status', '-i', 'inventory.example.yaml', '--dry-run');
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('--dry-run is not an option of `provision status`');
    expect(other.stderr).not.toContain('did you mean --dry-run');
    const nan = await run('-i', 'inventory.example.yaml', '--dry-run', '--offline', '--concurrency', 'abc');
    expect({ code: nan.code, stderr: nan.stderr.split('\n')[0] }).toEqual({
      code: 2,
      stderr: 'error: --concurrency takes a whole number of at least 1, not "abc"',
    });
    expect((await run('-i', 'inventory.example.yaml', '--dry-run', '--offline', '--connect-timeout=soon')).stderr).toContain('not "soon"');
    expect((await run('status', '-i', join(dir, 'missing.yaml'), '--nagios')).code).toBe(3);
    expect((await run('status', '-i', write('typo.yaml', 'hosts:\n  a: {adress: 10.0.0.1}\n'), '--nagios')).code).toBe(3);
    expect((await run('status', '-i', 'inventory.example.yaml', '--nagios', '--bogus')).code).toBe(3);
    expect((await run('status', '-i', join(dir, 'missing.yaml'))).code).toBe(2);
  });

  test('completion for bash and zsh', async () => {
    const bash = await run('completion');
    expect(bash.stdout).toMatch(/complete -o default -F _provision provision/);
    expect(bash.stdout).toContain('--rotate-psk');
    const zsh = await run('completion', 'zsh');
    expect(zsh.stdout).toMatch(/^#compdef provision/);
  });

  test('provision schema prints the JSON Schema of --json, and --help says so', async () => {
    const r = await run('schema');
    expect({ code: r.code, schema: JSON.parse(r.stdout) }).toEqual({ code: 0, schema: JSON.parse(readFileSync('docs/provision.schema.json', 'utf8')) });
    expect((await run('--help')).stdout).toMatch(/--json .*\(its schema: provision\s+schema\)/s);
  });

  test('completion for fish: every flag, files after --inventory, choices after --detail; fish completes from it', async () => {
    const fish = await run('completion', 'fish');
    expect(fish.code).toBe(0);
    const { KNOWN_FLAGS } = await import('../../src/cli/args.js');
    for (const f of KNOWN_FLAGS) expect(fish.stdout).toMatch(new RegExp(`^complete -c provision .*-l ${f}\\b`, 'm'));
    expect(fish.stdout).toContain('complete -c provision -s i -l inventory -r -F');
    expect(fish.stdout).toContain("complete -c provision -l detail -x -a 'summary hosts full'");
    const { spawnSync } = await import('node:child_process');
    const file = write('provision.fish', fish.stdout);
    const r = spawnSync('fish', ['-c', `source ${file}; complete -C 'provision --det'; complete -C 'provision --detail '`], { encoding: 'utf8' });
    // fish is installed by scripts/setup: missing, this fails.
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['--detail', '--detailed-exitcode', 'full', 'hosts', 'summary']);
  });
});
