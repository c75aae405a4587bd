import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostChange } from '../../src/apply/changeset.js';
import { writeScript } from '../../src/apply/scripts.js';

// The write script is shell run on the hosts; here it runs for real with sh, in a temp dir.

function change(dir: string, files: { name: string; mode: '0644' | '0600'; after: string }[], includes: { path: string; line: string }[] = []): HostChange {
  return {
    host: 'h', address: '10.0.0.1',
    backend: { id: 'libreswan', package: 'libreswan', version: '4.10', assumed: false },
    files: files.map((f) => ({ path: join(dir, f.name), mode: f.mode, action: 'create', pair: 'p', secret: f.mode === '0600', after: f.after, shown: f.after })),
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

  test('sh accepts the script (syntax check)', () => {
    const { script } = writeScript(change('/nonexistent', [{ name: 'a.conf', mode: '0644', after: 'x' }]), { checkConfig: 'true' });
    expect(() => execFileSync('sh', ['-n', '-c', script])).not.toThrow();
  });
});
