import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { run } from '../../src/apply/run.js';
import { quote } from '../../src/core/shell.js';
import { loadInventory } from '../../src/inventory/load.js';
import { fakeFleet } from '../helpers/fake-session.js';

// No inventory value may reach a remote shell unquoted. Values that pass validation but
// look odd (dots and dashes in names, spaces in paths) are the test; quotes, dollars and
// newlines in user and host names are refused at load time (hostile-inventories.test.ts).

describe('quote()', () => {
  const nasty = [
    "o'brien",
    '$(reboot)',
    '`id`',
    'a;b',
    'a\nb',
    "'",
    "''",
    '"',
    '\\',
    '*',
    '~root',
    '-rf',
    ' lead',
    'trail ',
    '',
    '$HOME',
    '!!',
    'a\tb',
    '\u00e9t\u00e9',
  ];
  test.each(nasty)('%j comes back from sh unchanged', (value) => {
    expect(execFileSync('sh', ['-c', `printf %s ${quote(value)}`]).toString()).toBe(value);
  });

  test('random strings of any ASCII character but NUL come back unchanged', () => {
    for (let i = 0; i < 200; i++) {
      const value = [...randomBytes(24)].map((b) => String.fromCharCode((b % 127) + 1)).join('');
      const out = spawnSync('sh', ['-c', `printf %s ${quote(value)}`], { encoding: 'utf8' }).stdout;
      expect(out).toBe(value);
    }
  });
});

test('every script sent for an inventory with odd but valid values parses, and carries no user name', async () => {
  const inv = loadInventory(
    `defaults:
  ssh: {user: "o.brien-x", identityFile: "/tmp/key with space"}
hosts:
  web-1.example_a: {address: "2001:db8::1"}
  db.2-b: {address: "2001:db8::2", ssh: {user: "_adm.in"}}
pairs:
  - {hosts: [web-1.example_a, db.2-b], name: a.b-c_d}
`,
    'odd.yaml',
  );
  const fake = fakeFleet(inv);
  await run(inv, { dryRun: false, verify: true, concurrency: 2, random: randomBytes, connect: fake.connect });
  expect(fake.sent.length).toBeGreaterThan(4);
  for (const s of fake.sent) {
    expect(spawnSync('sh', ['-n', '-c', s.script]).status).toBe(0);
    expect(s.script).not.toContain('o.brien-x');
    expect(s.script).not.toContain('_adm.in');
  }
});
