import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CURRENT_KEY, keptCopy, type WriteSet, writeScript } from '../../src/apply/scripts.js';
import { INCLUDE_MARK, RUN_DIR, STAGING_MARK } from '../../src/core/paths.js';
import { wrap } from '../../src/core/shell.js';

// The write script is shell run on the hosts; here it runs for real with sh, in a temp dir.

type F = { name: string; mode: '0644' | '0600'; after: string; action?: 'create' | 'update' | 'delete' };

function change(dir: string, files: F[], includes: { path: string; line: string }[] = []): WriteSet {
  return {
    puts: files.filter((f) => f.action !== 'delete').map((f) => ({ path: join(dir, f.name), mode: f.mode, content: f.after })),
    deletes: files.filter((f) => f.action === 'delete').map((f) => join(dir, f.name)),
    includes,
  };
}

// The include lock's folder, under the test's own: nothing is made in this machine's /run.
const RUN = mkdtempSync(join(tmpdir(), 'run-'));
function runScript(script: string, stdin: string) {
  return spawnSync('sh', ['-c', script.replaceAll(RUN_DIR, join(RUN, 'provision'))], { input: stdin, encoding: 'utf8' });
}

describe('the write script', () => {
  test('writes every file with its mode, from stdin, and leaves no temp or backup behind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    const { script, stdin } = writeScript(
      change(dir, [
        { name: 'p.conf', mode: '0644', after: 'conn p\n    auto=start\n' },
        { name: 'p.secrets', mode: '0600', after: 'a b : PSK 0sSECRET\n' },
      ]),
    );
    expect(script).not.toContain('SECRET');
    const r = runScript(script, stdin);
    expect(r.status).toBe(0);
    expect(readFileSync(join(dir, 'p.secrets'), 'utf8')).toBe('a b : PSK 0sSECRET\n');
    expect((statSync(join(dir, 'p.secrets')).mode & 0o777).toString(8)).toBe('600');
    expect((statSync(join(dir, 'p.conf')).mode & 0o777).toString(8)).toBe('644');
    expect(readdirSync(dir).sort()).toEqual(['p.conf', 'p.secrets']);
  });

  test('include lines are appended once, keeping the operator lines and the file mode', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    const secrets = join(dir, 'ipsec.secrets');
    writeFileSync(secrets, '# mine\n: RSA mykey', { mode: 0o600 });
    const { script, stdin } = writeScript(change(dir, [], [{ path: secrets, line: 'include /etc/ipsec.d/*.secrets' }]));
    expect(runScript(script, stdin).status).toBe(0);
    expect(readFileSync(secrets, 'utf8')).toBe(`# mine\n: RSA mykey\n${INCLUDE_MARK}\ninclude /etc/ipsec.d/*.secrets\n`);
    expect((statSync(secrets).mode & 0o777).toString(8)).toBe('600');
  });

  test('a refused config puts every file back as it was and removes the new ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    writeFileSync(join(dir, 'old.conf'), 'before\n');
    const c = change(dir, [
      { name: 'old.conf', mode: '0644', after: 'after\n' },
      { name: 'new.secrets', mode: '0600', after: 'x y : PSK 0sNEW\n' },
    ]);
    const { script, stdin } = writeScript(c, 'echo "line 3: syntax error" >&2; false');
    const r = runScript(script, stdin);
    expect(r.status).toBe(30);
    expect(r.stderr).toMatch(/syntax error/);
    expect(readFileSync(join(dir, 'old.conf'), 'utf8')).toBe('before\n');
    expect(existsSync(join(dir, 'new.secrets'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['old.conf']);
  });

  test('input cut short (a dropped connection) leaves the old file and no partial one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    writeFileSync(join(dir, 'a.conf'), 'old\n');
    const { script, stdin } = writeScript(change(dir, [{ name: 'a.conf', mode: '0644', after: 'new content\n' }]));
    const r = runScript(script, stdin.slice(0, 4));
    expect(r.status).toBe(20);
    expect(readFileSync(join(dir, 'a.conf'), 'utf8')).toBe('old\n');
    expect(readdirSync(dir)).toEqual(['a.conf']);
  });

  test('many files at once: creates, updates and deletes, each with its mode and content', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    writeFileSync(join(dir, 'p0.conf'), 'old conf\n', { mode: 0o600 });
    writeFileSync(join(dir, 'gone.conf'), 'retired\n');
    writeFileSync(join(dir, 'mine.conf'), 'operator\n');
    const files = Array.from({ length: 40 }, (_, i) => [
      { name: `p${i}.conf`, mode: '0644' as const, after: `conn p${i}\n`, action: i === 0 ? ('update' as const) : ('create' as const) },
      { name: `p${i}.secrets`, mode: '0600' as const, after: `a b : PSK 0sKEY${i}\n` },
    ]).flat();
    const { script, stdin } = writeScript(change(dir, [...files, { name: 'gone.conf', mode: '0644', after: '', action: 'delete' }]));
    expect(runScript(script, stdin).status).toBe(0);
    for (const f of files) {
      expect(readFileSync(join(dir, f.name), 'utf8')).toBe(f.after);
      expect((statSync(join(dir, f.name)).mode & 0o777).toString(8)).toBe(f.mode.slice(1));
    }
    expect(existsSync(join(dir, 'gone.conf'))).toBe(false);
    expect(readFileSync(join(dir, 'mine.conf'), 'utf8')).toBe('operator\n');
    expect(readdirSync(dir)).toHaveLength(81);
  });

  test('a refused config brings back an updated file, a deleted one and its include line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    writeFileSync(join(dir, 'a.conf'), 'before\n', { mode: 0o640 });
    writeFileSync(join(dir, 'gone.secrets'), 'x y : PSK 0sOLD\n', { mode: 0o600 });
    writeFileSync(join(dir, 'ipsec.conf'), 'config setup\n');
    const c = change(
      dir,
      [
        { name: 'a.conf', mode: '0644', after: 'after\n', action: 'update' },
        { name: 'gone.secrets', mode: '0600', after: '', action: 'delete' },
        { name: 'b.conf', mode: '0644', after: 'new\n' },
      ],
      [{ path: join(dir, 'ipsec.conf'), line: 'include /etc/ipsec.d/*.conf' }],
    );
    const r = runScript(writeScript(c, 'false').script, writeScript(c).stdin);
    expect(r.status).toBe(30);
    expect(readFileSync(join(dir, 'a.conf'), 'utf8')).toBe('before\n');
    expect((statSync(join(dir, 'a.conf')).mode & 0o777).toString(8)).toBe('640');
    expect(readFileSync(join(dir, 'gone.secrets'), 'utf8')).toBe('x y : PSK 0sOLD\n');
    expect(readFileSync(join(dir, 'ipsec.conf'), 'utf8')).toBe('config setup\n');
    expect(readdirSync(dir).sort()).toEqual(['a.conf', 'gone.secrets', 'ipsec.conf']);
  });

  test('a host with 999 peers: the script stays under the 128 KiB that Linux allows one argument, and works', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    const files = Array.from({ length: 999 }, (_, i) => [
      { name: `server-${String(i).padStart(4, '0')}--server-9999.conf`, mode: '0644' as const, after: `conn x${i}\n    auto=start\n` },
      { name: `server-${String(i).padStart(4, '0')}--server-9999.secrets`, mode: '0600' as const, after: `a b : PSK 0sKEY${i}\n` },
    ]).flat();
    const { script, stdin } = writeScript(change(dir, files, [{ path: join(dir, 'ipsec.conf'), line: 'include /etc/ipsec.d/*.conf' }]), 'true');
    expect(wrap(script, { sudo: true, timeoutSec: 120 }).length).toBeLessThan(128 * 1024);
    expect(runScript(script, stdin).status).toBe(0);
    expect(readdirSync(dir)).toHaveLength(1999);
    for (const f of [files[0]!, files[1]!, files[1996]!, files[1997]!]) {
      expect(readFileSync(join(dir, f.name), 'utf8')).toBe(f.after);
      expect((statSync(join(dir, f.name)).mode & 0o777).toString(8)).toBe(f.mode.slice(1));
    }
  });

  test('sh accepts the script (syntax check)', () => {
    const { script } = writeScript(
      change('/nonexistent', [{ name: 'a.conf', mode: '0644', after: 'x' }], [{ path: '/nonexistent/ipsec.conf', line: 'include x' }]),
      'true',
    );
    expect(() => execFileSync('sh', ['-n', '-c', script])).not.toThrow();
  });

  const staging = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('.provision'));

  test('killed while the files arrive (its time limit): nothing changes and no staging folder is left', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    writeFileSync(join(dir, 'a.conf'), 'old\n');
    const { script } = writeScript(
      change(dir, [
        { name: 'a.conf', mode: '0644', after: 'new content\n' },
        { name: 'a.secrets', mode: '0600', after: 'a b : PSK 0sNEWKEY\n' },
      ]),
    );
    const r = spawnSync('sh', ['-c', '(printf new; sleep 3) | timeout -s TERM 1 sh -c "$0"', script], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(readFileSync(join(dir, 'a.conf'), 'utf8')).toBe('old\n');
    expect(readdirSync(dir)).toEqual(['a.conf']);
  });

  test('a refused config, and a script killed after the files moved, leave no staging folder (it holds new keys)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    const set = change(dir, [{ name: 'a.secrets', mode: '0600', after: 'a b : PSK 0sNEWKEY\n' }]);
    expect(runScript(writeScript(set, 'false').script, writeScript(set).stdin).status).toBe(30);
    expect(staging(dir)).toEqual([]);
    const killed = runScript(writeScript(set, 'kill -TERM $$; sleep 1').script, writeScript(set).stdin);
    expect(killed.status).toBe(143);
    expect(staging(dir)).toEqual([]);
  });

  test('staging folders a killed write left behind are removed by the next write; only those with our marker, never through a link', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    // What a killed write leaves: its staging folder, marked.
    const killed = runScript(
      writeScript(change(dir, [{ name: 'k.secrets', mode: '0600', after: 'a b : PSK 0sLEFTOVER\n' }]), 'kill -KILL $$').script,
      'a b : PSK 0sLEFTOVER\n',
    );
    expect(killed.status).not.toBe(0);
    const left = staging(dir);
    expect(left).toHaveLength(1);
    expect(readdirSync(join(dir, left[0]!))).toContain(STAGING_MARK);
    // Look-alikes that are not ours: an unmarked folder, a link to a marked folder elsewhere.
    mkdirSync(join(dir, '.provision-backup.NotOurs'));
    const elsewhere = mkdtempSync(join(tmpdir(), 'w-'));
    writeFileSync(join(elsewhere, STAGING_MARK), '');
    symlinkSync(elsewhere, join(dir, '.provision-backup.Link'));
    const stale = ['.provision-backup.NotOurs', '.provision-backup.Link', left[0]!].map((n) => join(dir, n));
    const set = { ...change(dir, [{ name: 'a.conf', mode: '0644' as const, after: 'x\n' }]), stale };
    expect(runScript(writeScript(set).script, writeScript(set).stdin).status).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['.provision-backup.Link', '.provision-backup.NotOurs', 'a.conf', 'k.secrets']);
    expect(readdirSync(elsewhere)).toEqual([STAGING_MARK]);
  });

  test('files in several folders are written in one go, each atomically in its own folder', () => {
    const a = mkdtempSync(join(tmpdir(), 'w-'));
    const b = mkdtempSync(join(tmpdir(), 'w-'));
    writeFileSync(join(b, 'old.nft'), 'old\n');
    const set: WriteSet = {
      puts: [
        { path: join(a, 'p.conf'), mode: '0644', content: 'conn p\n' },
        { path: join(b, 'guard.nft'), mode: '0600', content: 'table inet x {}\n' },
      ],
      deletes: [join(b, 'old.nft')],
      includes: [],
    };
    const { script, stdin } = writeScript(set);
    expect(runScript(script, stdin).status).toBe(0);
    expect(readFileSync(join(a, 'p.conf'), 'utf8')).toBe('conn p\n');
    expect(readFileSync(join(b, 'guard.nft'), 'utf8')).toBe('table inet x {}\n');
    expect((statSync(join(b, 'guard.nft')).mode & 0o777).toString(8)).toBe('600');
    expect(readdirSync(b)).toEqual(['guard.nft']);
    expect(readdirSync(a)).toEqual(['p.conf']);
  });

  test('the new files are flushed to disk before they replace the old ones', () => {
    const { script } = writeScript(change('/x', [{ name: 'a.secrets', mode: '0600', after: 'k\n' }]));
    expect(script.indexOf('sync -- "$S0/0600"/*')).toBeGreaterThan(-1);
    expect(script.indexOf('sync -- "$S0/0600"/*')).toBeLessThan(script.indexOf('mv -f -t "$D0"'));
  });
});

describe('keys that never travel', () => {
  const KEY = `0s${Buffer.alloc(32, 5).toString('base64')}`;
  const header = '# managed by provision for fleet web: edits are overwritten\n';
  const setup = () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    const priv = join(dir, 'run');
    mkdirSync(priv, { mode: 0o700 });
    writeFileSync(join(dir, 'p.secrets'), `${header}a b : PSK ${KEY}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'p.conf'), 'conn p\n', { mode: 0o644 });
    writeFileSync(join(dir, 'q.conf'), 'conn q\n', { mode: 0o644 });
    return { dir, keep: join(priv, 'undo.abc123') };
  };

  test('a kept key is put in on the host from its own file: the script and stdin never hold it', () => {
    const { dir, keep } = setup();
    const { script, stdin } = writeScript({
      puts: [{ path: join(dir, 'p.secrets'), mode: '0600', content: `${header}a c : PSK ${CURRENT_KEY}\n` }],
      deletes: [],
      includes: [],
      keep,
    });
    expect(script + stdin).not.toContain(KEY);
    expect(runScript(script, stdin).status).toBe(0);
    expect(readFileSync(join(dir, 'p.secrets'), 'utf8')).toBe(`${header}a c : PSK ${KEY}\n`);
    expect((statSync(join(dir, 'p.secrets')).mode & 0o777).toString(8)).toBe('600');
  });

  test('a file that lost its key since it was read: nothing is written, exit 21', () => {
    const { dir } = setup();
    writeFileSync(join(dir, 'p.secrets'), `${header}# no key here\n`);
    const { script, stdin } = writeScript({
      puts: [
        { path: join(dir, 'p.secrets'), mode: '0600', content: `${header}a c : PSK ${CURRENT_KEY}\n` },
        { path: join(dir, 'p.conf'), mode: '0644', content: 'conn p2\n' },
      ],
      deletes: [],
      includes: [],
    });
    const r = runScript(script, stdin);
    expect(r.status).toBe(21);
    expect(r.stderr).toMatch(/no longer holds a key/);
    expect(readFileSync(join(dir, 'p.conf'), 'utf8')).toBe('conn p\n');
    expect(readdirSync(dir).sort()).toEqual(['p.conf', 'p.secrets', 'q.conf', 'run']);
  });

  test('the files a write replaces or deletes are kept in a root-only folder, and put back from there: no content from the controller', () => {
    const { dir, keep } = setup();
    const NEW = `0s${Buffer.alloc(32, 6).toString('base64')}`;
    const w = writeScript({
      puts: [
        { path: join(dir, 'p.secrets'), mode: '0600', content: `${header}a b : PSK ${NEW}\n` },
        { path: join(dir, 'n.conf'), mode: '0644', content: 'conn n\n' },
      ],
      deletes: [join(dir, 'q.conf')],
      includes: [],
      keep,
    });
    expect(runScript(w.script, w.stdin).status).toBe(0);
    expect((statSync(keep).mode & 0o777).toString(8)).toBe('700');
    expect(readdirSync(keep).sort()).toEqual(
      [STAGING_MARK, basename(keptCopy(keep, join(dir, 'p.secrets'))), basename(keptCopy(keep, join(dir, 'q.conf')))].sort(),
    );
    expect(readFileSync(keptCopy(keep, join(dir, 'p.secrets')), 'utf8')).toContain(KEY);
    const undo = writeScript({
      puts: [],
      deletes: [join(dir, 'n.conf')],
      includes: [],
      restores: [join(dir, 'p.secrets'), join(dir, 'q.conf')].map((path) => ({ path, from: keptCopy(keep, path) })),
    });
    expect(undo.script + undo.stdin).not.toContain(KEY);
    expect(runScript(undo.script, undo.stdin).status).toBe(0);
    expect(readFileSync(join(dir, 'p.secrets'), 'utf8')).toBe(`${header}a b : PSK ${KEY}\n`);
    expect((statSync(join(dir, 'p.secrets')).mode & 0o777).toString(8)).toBe('600');
    expect(readFileSync(join(dir, 'q.conf'), 'utf8')).toBe('conn q\n');
    expect(readdirSync(dir).sort()).toEqual(['p.conf', 'p.secrets', 'q.conf', 'run']);
  });

  test('a kept copy that is gone (or a link) puts nothing back: exit 22, the files as they were', () => {
    const { dir, keep } = setup();
    mkdirSync(keep, { mode: 0o700 });
    symlinkSync(join(dir, 'q.conf'), keptCopy(keep, join(dir, 'p.conf')));
    for (const from of [keptCopy(keep, join(dir, 'p.secrets')), keptCopy(keep, join(dir, 'p.conf'))]) {
      const undo = writeScript({
        puts: [],
        deletes: [],
        includes: [],
        restores: [{ path: join(dir, from.endsWith('secrets') ? 'p.secrets' : 'p.conf'), from }],
      });
      expect(runScript(undo.script, undo.stdin).status).toBe(22);
    }
    expect(readFileSync(join(dir, 'p.conf'), 'utf8')).toBe('conn p\n');
    expect(readFileSync(join(dir, 'p.secrets'), 'utf8')).toContain(KEY);
  });

  test('a keep folder that is a link is refused before anything moves', () => {
    const { dir, keep } = setup();
    symlinkSync(tmpdir(), keep);
    const w = writeScript({ puts: [{ path: join(dir, 'p.conf'), mode: '0644', content: 'conn p2\n' }], deletes: [], includes: [], keep });
    expect(runScript(w.script, w.stdin).status).not.toBe(0);
    expect(readFileSync(join(dir, 'p.conf'), 'utf8')).toBe('conn p\n');
  });
});

test("deleting the last guard file removes provision's own folder (rmdir: never a non-empty one), and no other folder", () => {
  const guard = writeScript({ puts: [], deletes: ['/etc/provision/guard-lab.nft'], includes: [] }).script;
  expect(guard).toContain("rmdir /etc/provision 2>/dev/null || true' EXIT");
  expect(writeScript({ puts: [], deletes: ['/etc/ipsec.d/a--b.conf'], includes: [] }).script).not.toContain('rmdir');
});

describe('a leftover staging folder in the plan', () => {
  test('the dry run lists it as a deletion; a temp file of the old naming is not taken for ours', async () => {
    const { loadInventory } = await import('../../src/inventory/load.js');
    const { planChanges } = await import('../../src/plan/plan.js');
    const { parseFacts } = await import('../../src/remote/facts.js');
    const { renderPlan } = await import('../../src/report/plan-text.js');
    const { READY_FACTS } = await import('../helpers/fake-session.js');
    const inv = loadInventory('hosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 'f.yaml');
    const leftover = READY_FACTS.replace('@@stale\n', '@@stale\n/etc/ipsec.d/.provision-backup.AbC123\n/etc/.provision.x1\n');
    const cs = planChanges(
      inv,
      new Map([
        ['a', parseFacts(leftover)],
        ['b', parseFacts(READY_FACTS)],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 'test' },
    );
    const a = cs.hosts.find((h) => h.host === 'a')!;
    expect(a.staleStaging).toEqual(['/etc/ipsec.d/.provision-backup.AbC123']);
    expect(renderPlan(cs)).toContain("  - /etc/ipsec.d/.provision-backup.AbC123/  (delete: the staging folder an interrupted write of provision's left)");
  });
});
