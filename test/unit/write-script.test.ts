import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostChange } from '../../src/apply/changeset.js';
import { writeScript } from '../../src/apply/scripts.js';
import { wrap } from '../../src/remote/shell.js';

// The write script is shell run on the hosts; here it runs for real with sh, in a temp dir.

function change(dir: string, files: { name: string; mode: '0644' | '0600'; after: string; action?: 'create' | 'update' | 'delete' }[], includes: { path: string; line: string }[] = []): HostChange {
  return {
    host: 'h', address: '10.0.0.1',
    backend: { id: 'libreswan', package: 'libreswan', version: '4.10', assumed: false },
    files: files.map((f) => ({ path: join(dir, f.name), mode: f.mode, action: f.action ?? 'create', pair: 'p', secret: f.mode === '0600', after: f.after, shown: f.after })),
    includes, service: 'reload', serviceReason: '', reload: [], bringUp: [], reauth: [], conns: [], unload: [],
  };
}

function runScript(script: string, stdin: string) {
  return spawnSync('sh', ['-c', script], { input: stdin, encoding: 'utf8' });
}

describe('the write script', () => {
  test('writes every file with its mode, from stdin, and leaves no temp or backup behind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    const { script, stdin } = writeScript(change(dir, [
      { name: 'p.conf', mode: '0644', after: 'conn p\n    auto=start\n' },
      { name: 'p.secrets', mode: '0600', after: 'a b : PSK 0sSECRET\n' },
    ]), {}, dir);
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
    const { script, stdin } = writeScript(change(dir, [], [{ path: secrets, line: 'include /etc/ipsec.d/*.secrets' }]), {}, dir);
    expect(runScript(script, stdin).status).toBe(0);
    expect(readFileSync(secrets, 'utf8')).toBe('# mine\n: RSA mykey\ninclude /etc/ipsec.d/*.secrets\n');
    expect((statSync(secrets).mode & 0o777).toString(8)).toBe('600');
  });

  test('a refused config puts every file back as it was and removes the new ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'w-'));
    writeFileSync(join(dir, 'old.conf'), 'before\n');
    const c = change(dir, [
      { name: 'old.conf', mode: '0644', after: 'after\n' },
      { name: 'new.secrets', mode: '0600', after: 'x y : PSK 0sNEW\n' },
    ]);
    const { script, stdin } = writeScript(c, { checkConfig: 'echo "line 3: syntax error" >&2; false' }, dir);
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
    const { script, stdin } = writeScript(change(dir, [{ name: 'a.conf', mode: '0644', after: 'new content\n' }]), {}, dir);
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
      { name: `p${i}.conf`, mode: '0644' as const, after: `conn p${i}\n`, action: i === 0 ? 'update' as const : 'create' as const },
      { name: `p${i}.secrets`, mode: '0600' as const, after: `a b : PSK 0sKEY${i}\n` },
    ]).flat();
    const { script, stdin } = writeScript(change(dir, [...files, { name: 'gone.conf', mode: '0644', after: '', action: 'delete' }]), {}, dir);
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
    const c = change(dir, [
      { name: 'a.conf', mode: '0644', after: 'after\n', action: 'update' },
      { name: 'gone.secrets', mode: '0600', after: '', action: 'delete' },
      { name: 'b.conf', mode: '0644', after: 'new\n' },
    ], [{ path: join(dir, 'ipsec.conf'), line: 'include /etc/ipsec.d/*.conf' }]);
    const r = runScript(writeScript(c, { checkConfig: 'false' }, dir).script, writeScript(c, {}, dir).stdin);
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
    const { script, stdin } = writeScript(change(dir, files, [{ path: join(dir, 'ipsec.conf'), line: 'include /etc/ipsec.d/*.conf' }]), { checkConfig: 'true' }, dir);
    expect(wrap(script, { sudo: true, timeoutSec: 120 }).length).toBeLessThan(128 * 1024);
    expect(runScript(script, stdin).status).toBe(0);
    expect(readdirSync(dir)).toHaveLength(1999);
    for (const f of [files[0]!, files[1]!, files[1996]!, files[1997]!]) {
      expect(readFileSync(join(dir, f.name), 'utf8')).toBe(f.after);
      expect((statSync(join(dir, f.name)).mode & 0o777).toString(8)).toBe(f.mode.slice(1));
    }
  });

  test('sh accepts the script (syntax check)', () => {
    const { script } = writeScript(change('/nonexistent', [{ name: 'a.conf', mode: '0644', after: 'x' }], [{ path: '/nonexistent/ipsec.conf', line: 'include x' }]), { checkConfig: 'true' }, '/nonexistent');
    expect(() => execFileSync('sh', ['-n', '-c', script])).not.toThrow();
  });
});
