import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The installable package: npm pack, installed into an empty prefix as a user would, and
// run from there. Needs the npm registry (for the dependencies), as CI has.

const sh = (cmd: string, args: string[], cwd?: string) => spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000 });

test('npm pack, installed into an empty prefix: provision --version and an offline plan run from there', () => {
  const out = mkdtempSync(join(tmpdir(), 'pack-'));
  // npm test built dist already; --ignore-scripts skips prepack's second build.
  const pack = sh('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', out]);
  expect({ code: pack.status, err: pack.status ? pack.stderr : '' }).toEqual({ code: 0, err: '' });
  const tarball = join(out, pack.stdout.trim().split('\n').at(-1)!);
  // What an operator installs: the program and the user docs; no source maps to sources it
  // does not ship, no development notes.
  const listed = sh('tar', ['-tzf', tarball]).stdout.split('\n').filter(Boolean);
  expect(listed.filter((f) => /\.map$|docs\/(development|lab)\.md$|^package\/(src|test)\//.test(f))).toEqual([]);
  expect(listed).toEqual(
    expect.arrayContaining(['package/docs/provision.schema.json', 'package/docs/inventory.md', 'package/README.md', 'package/man/provision.1']),
  );
  const prefix = mkdtempSync(join(tmpdir(), 'prefix-'));
  // As the README says: no native add-on (on Debian with Node.js from npm they crash).
  const install = sh('npm', ['install', '--global', '--ignore-scripts', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', tarball]);
  expect({ code: install.status, err: install.status ? install.stderr : '' }).toEqual({ code: 0, err: '' });
  const bin = join(prefix, 'bin', 'provision');
  const version = sh(bin, ['--version']);
  expect(version.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  const example = join(prefix, 'lib', 'node_modules', 'ipsec-provision', 'inventory.example.yaml');
  const plan = sh(bin, ['--inventory', example, '--dry-run', '--offline']);
  expect({ code: plan.status, err: plan.stderr }).toEqual({ code: 0, err: '' });
  expect(plan.stdout).toMatch(/^Plan for .*inventory\.example\.yaml \(fleet example\): 3 hosts, 3 pairs/m);
  // The JSON Schema is reachable from an installed copy.
  const schema = sh(bin, ['schema']);
  expect({ code: schema.status, schema: JSON.parse(schema.stdout) }).toEqual({
    code: 0,
    schema: JSON.parse(readFileSync('docs/provision.schema.json', 'utf8')),
  });
}, 300_000);
