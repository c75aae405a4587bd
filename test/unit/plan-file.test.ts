import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.js';
import { loadInventory } from '../../src/inventory/load.js';
import { fakeFleet } from '../helpers/fake-session.js';

// `--out` writes the saved plan readable by its owner alone, whatever was at the path: an
// existing file's looser mode does not survive, and a symlink there is replaced, never
// written through.

const text = 'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n';

async function save(out: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'planfile-'));
  const file = join(dir, 'fleet.yaml');
  writeFileSync(file, text);
  const fleet = fakeFleet(loadInventory(text, file));
  const inv = loadInventory(text, file);
  return main(
    ['-i', file, '--dry-run', '--out', out, '--ssh-config', '/dev/null'],
    { stdout: new PassThrough(), stderr: new PassThrough() },
    {
      connect: async (name) => fleet.connect(inv.hosts.get(name)!),
    },
  );
}

describe('--out', () => {
  test('an existing file at the path gets mode 0600 and the plan', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'planfile-')), 'plan.json');
    writeFileSync(out, 'old', { mode: 0o644 });
    expect(await save(out)).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toHaveProperty('version');
  });

  test('a symlink at the path is replaced by the plan; the file it pointed at is untouched', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'planfile-'));
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n', { mode: 0o644 });
    const out = join(dir, 'plan.json');
    symlinkSync(victim, out);
    expect(await save(out)).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(out).isSymbolicLink()).toBe(false);
    expect(lstatSync(out).mode & 0o777).toBe(0o600);
  });
});

describe('provision apply', () => {
  test("a host and a pair added to the saved plan's inventory text are refused (exit 4), nothing is applied to them, and the listed pair's hosts are refused too", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'planfile-'));
    const plan = join(dir, 'plan.json');
    expect(await save(plan)).toBe(0);
    const saved = JSON.parse(readFileSync(plan, 'utf8'));
    saved.inventory.text = saved.inventory.text.replace('pairs: [[a, b]]', '  c: {address: 192.0.2.3}\npairs: [[a, b], [a, c]]');
    expect(saved.inventory.text).toContain('c: {address: 192.0.2.3}');
    writeFileSync(plan, JSON.stringify(saved));
    const inv3 = loadInventory(saved.inventory.text, saved.inventory.file);
    const fleet = fakeFleet(inv3);
    const out = new PassThrough();
    let stdout = '';
    out.on('data', (d) => (stdout += d));
    const code = await main(
      ['apply', plan, '--ssh-config', '/dev/null'],
      { stdout: out, stderr: new PassThrough() },
      {
        connect: async (name) => fleet.connect(inv3.hosts.get(name)!),
      },
    );
    expect(code).toBe(4);
    expect(stdout).toMatch(/c +STALE PLAN +not in the saved plan/);
    expect(fleet.steps('c')).toEqual(['facts']);
    // a's plan now has the pair a--c, which the plan never showed: a is refused as changed.
    expect(stdout).toMatch(/a +STALE PLAN +changed since the plan was made/);
    expect(fleet.steps('a')).toEqual(['facts']);
  });
});

describe('--trace', () => {
  test('records each command and what the host answered, 0600, never through a symlink; stdin (new keys) is left out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trace-'));
    const file = join(dir, 'fleet.yaml');
    writeFileSync(file, text);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n', { mode: 0o644 });
    const trace = join(dir, 'trace.txt');
    symlinkSync(victim, trace);
    const inv = loadInventory(text, file);
    const fleet = fakeFleet(inv);
    const code = await main(
      ['-i', file, '--no-verify', '--trace', trace, '--ssh-config', '/dev/null'],
      { stdout: new PassThrough(), stderr: new PassThrough() },
      {
        connect: async (name) => fleet.connect(inv.hosts.get(name)!),
      },
    );
    expect(code).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(trace).mode & 0o777).toBe(0o600);
    const written = readFileSync(trace, 'utf8');
    expect(written).toMatch(/^=== a: facts \(exit 0, [\d.]+ s\)\n--- script\nset \+e\n/);
    expect(written).toContain('--- stdout\n@@os\ndebian 12\n');
    const writes = fleet.sent.filter((c) => c.stdin);
    expect(writes.length).toBeGreaterThan(0);
    for (const w of writes) {
      expect(written).toMatch(new RegExp(`=== ${w.host}: write \\(exit 0, [\\d.]+ s, ${Buffer.byteLength(w.stdin!)} bytes of stdin not recorded\\)`));
      expect(written).not.toContain(/PSK (0s\S+)/.exec(w.stdin!)![1]);
    }
  });
});

describe('on a terminal, the plan first, then a question', () => {
  async function apply(extra: string[], answer: string | undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'ask-'));
    const file = join(dir, 'fleet.yaml');
    writeFileSync(file, text);
    const inv = loadInventory(text, file);
    const fleet = fakeFleet(inv);
    const asked: string[] = [];
    let stderr = '';
    const err = new PassThrough();
    err.on('data', (d) => (stderr += d));
    const code = await main(
      ['-i', file, '--no-verify', '--ssh-config', '/dev/null', ...extra],
      { stdout: new PassThrough(), stderr: err },
      {
        connect: async (name) => fleet.connect(inv.hosts.get(name)!),
        ...(answer !== undefined
          ? {
              ask: async (q: string) => {
                asked.push(q);
                return answer;
              },
            }
          : {}),
      },
    );
    return { code, asked, stderr, steps: fleet.steps() };
  }

  test('"no" (or anything but yes): the plan was shown, nothing else ran, exit 0', async () => {
    for (const answer of ['', 'n', 'no', 'yess']) {
      const r = await apply([], answer);
      expect({ answer, code: r.code, steps: [...new Set(r.steps)] }).toEqual({ answer, code: 0, steps: ['facts'] });
      expect(r.asked).toEqual(['Apply this plan to 2 host(s)? [y/N] (--yes skips this question) ']);
      expect(r.stderr).toMatch(/^ {2}a {2}\+4 ~0 -0; reread secrets; reload a--b/m);
      expect(r.stderr).toMatch(/^8 files to create, .* on 2 of 2 hosts; 0 hosts unchanged\.\n/m);
      expect(r.stderr).toMatch(/Not applied: nothing was changed\.\n$/);
    }
  });

  test('"yes" applies the plan that was shown, without reading the hosts again', async () => {
    const r = await apply([], 'yes');
    expect(r.code).toBe(0);
    expect(r.asked).toHaveLength(1);
    expect(r.steps.filter((s) => s === 'facts')).toHaveLength(2);
    expect(r.steps).toContain('write');
  });

  test('--yes, --json, a dry run, or no terminal: never asked', async () => {
    for (const extra of [['--yes'], ['-y'], ['--json'], ['--dry-run']]) {
      const r = await apply(extra, 'no');
      expect({ extra, asked: r.asked.length }).toEqual({ extra, asked: 0 });
    }
    const silent = await apply([], undefined);
    expect(silent.steps).toContain('write');
  });
});

describe('-q and -v', () => {
  async function go(flags: string[]) {
    const dir = mkdtempSync(join(tmpdir(), 'quiet-'));
    const file = join(dir, 'fleet.yaml');
    writeFileSync(file, text);
    const inv = loadInventory(text, file);
    const fleet = fakeFleet(inv);
    let stderr = '';
    let stdout = '';
    const err = Object.assign(new PassThrough(), { isTTY: true, columns: 80 });
    const out = new PassThrough();
    err.on('data', (d) => (stderr += d));
    out.on('data', (d) => (stdout += d));
    const code = await main(
      ['-i', file, '--no-verify', '--ssh-config', '/dev/null', ...flags],
      { stdout: out, stderr: err },
      { connect: async (name) => fleet.connect(inv.hosts.get(name)!) },
    );
    return { code, stderr, stdout };
  }

  test('-q: no progress on stderr, the result on stdout; -v: a line per event even on a terminal; both: exit 2', async () => {
    const quiet = await go(['-q']);
    expect({ code: quiet.code, err: quiet.stderr }).toEqual({ code: 0, err: '' });
    expect(quiet.stdout).toMatch(/^Hosts\n/m);
    const verbose = await go(['-v']);
    expect(verbose.stderr).toMatch(/^a: facts\n/m);
    expect(verbose.stderr).toMatch(/^a: changed: .* \[\d\/2\]$/m);
    const both = await go(['-q', '-v']);
    expect({ code: both.code, err: both.stderr }).toEqual({ code: 2, err: expect.stringMatching(/-q \(--quiet\) and -v \(--verbose\) say opposite things/) });
  });
});

describe('the question on a real terminal (a pseudo-terminal from script(1))', () => {
  // Runs the real readline on a terminal, as a person answers; needs dist (npm test builds it).
  const askOn = (input: string): string => {
    const dir = mkdtempSync(join(tmpdir(), 'pty-'));
    const prog = join(dir, 'ask.mjs');
    writeFileSync(
      prog,
      `import { terminalAsk } from ${JSON.stringify(join(process.cwd(), 'dist/cli/live.js'))};\nconst ask = terminalAsk();\nconsole.log(ask ? 'ANSWER<' + (await ask('Apply? [y/N] ')) + '>' : 'NO-TTY');\n`,
    );
    const r = spawnSync('sh', ['-c', `(sleep 1; printf '${input}') | script -qec "node ${prog}" /dev/null`], { encoding: 'utf8', timeout: 20_000 });
    return /ANSWER<([^>]*)>|NO-TTY/.exec(r.stdout.replace(/\r/g, ''))?.[0] ?? `nothing: ${r.stdout} ${r.stderr}`;
  };

  test('a typed answer comes back; Ctrl-C is an empty answer (no), not a hang', () => {
    expect(askOn('yes\\r')).toBe('ANSWER<yes>');
    expect(askOn('\\003')).toBe('ANSWER<>');
  });

  test('without a terminal, nothing is asked', () => {
    const r = spawnSync(
      'node',
      ['-e', `import(${JSON.stringify(join(process.cwd(), 'dist/cli/live.js'))}).then((m) => console.log(m.terminalAsk() ? 'TTY' : 'NO-TTY'))`],
      { input: '', encoding: 'utf8' },
    );
    expect(r.stdout.trim()).toBe('NO-TTY');
  });
});
