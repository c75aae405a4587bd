import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { main } from '../../src/cli.js';

// Malformed and malicious inventories. Every one must stop the run before any SSH
// connection, with exit 2, a file:line:column message and a hint, and no stack trace.

const dir = mkdtempSync(join(tmpdir(), 'hostile-'));
const ok = 'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\n';
const host = (name: string): string =>
  `hosts:\n  ${JSON.stringify(name)}: {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs:\n  - [${JSON.stringify(name)}, b]\n`;
const nested = (n: number): string => `hosts: ${'['.repeat(n)}${']'.repeat(n)}\n`;

const laughs = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
hosts: {x: {address: 192.0.2.1}}
`;

const corpus: [string, string | Buffer][] = [
  // YAML syntax
  ['unclosed flow mapping', 'hosts:\n  a: {address: 192.0.2.1\n'],
  ['unclosed flow sequence', `${ok}pairs: [[a, b]\n`],
  ['unclosed double quote', 'hosts:\n  a: {address: "192.0.2.1}\n'],
  ['unclosed single quote', "hosts:\n  a: {address: '192.0.2.1}\n"],
  ['bad indentation', 'hosts:\n  a:\n     address: 192.0.2.1\n    ssh: {}\n'],
  ['tab indentation', 'hosts:\n\ta: {address: 192.0.2.1}\n'],
  ['duplicate key', `${ok}  a: {address: 192.0.2.3}\npairs: [[a, b]]\n`],
  ['mapping and sequence mixed', 'hosts:\n  a: {address: 192.0.2.1}\n  - b\n'],
  ['invalid escape', 'hosts:\n  a: {address: "192.0.2.\\q"}\n'],
  ['two documents', `${ok}pairs: [[a, b]]\n---\n${ok}`],
  ['bad directive', `%YAML 9.9\n---\n${ok}`],
  ['stray colon', 'hosts:: x\n'],
  ['NUL byte', Buffer.concat([Buffer.from('hosts:\n  a: {address: 192.0.2.1'), Buffer.from([0]), Buffer.from('}\n')])],
  // wrong types
  ['hosts is a list', 'hosts:\n  - a\n  - b\npairs: [[a, b]]\n'],
  ['hosts is text', 'hosts: all of them\n'],
  ['top level is a list', '- hosts\n- pairs\n'],
  ['top level is text', 'hello\n'],
  ['top level is null', '~\n'],
  ['address is a number', 'hosts:\n  a: {address: 10}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['address is a list', 'hosts:\n  a: {address: [192.0.2.1]}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['ssh is text', 'hosts:\n  a: {address: 192.0.2.1, ssh: root@a}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['port is fractional', 'hosts:\n  a: {address: 192.0.2.1, ssh: {port: 22.5}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['port is negative', 'hosts:\n  a: {address: 192.0.2.1, ssh: {port: -1}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['pairs is a mapping', `${ok}pairs: {a: b}\n`],
  ['pair item is a number', `${ok}pairs: [42]\n`],
  ['mesh hosts is text', `${ok}meshes: [{name: m, hosts: "a, b"}]\n`],
  ['backend is a number', 'hosts:\n  a: {address: 192.0.2.1, ipsec: {backend: 5}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['responder is a boolean', `defaults:\n  ipsec: {responder: true}\n${ok}pairs: [[a, b]]\n`],
  ['initiator is a number', `${ok}pairs: [{hosts: [a, b], initiator: 1}]\n`],
  // unknown keys
  ['unknown top-level key', `${ok}pair: [[a, b]]\n`],
  ['unknown host key', 'hosts:\n  a: {address: 192.0.2.1, adress: x}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['unknown defaults key', `defaults:\n  sshh: {}\n${ok}pairs: [[a, b]]\n`],
  ['unknown pair key', `${ok}pairs: [{hosts: [a, b], initator: a}]\n`],
  ['unknown mesh key', `${ok}meshes: [{name: m, host: [a, b]}]\n`],
  ['merge key', 'defaults: {ssh: {port: 22}}\nhosts:\n  a: {<<: {address: 192.0.2.1}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  // huge, deep, aliases
  ['over 4 MiB', `hosts:\n${'#'.repeat(5 * 1024 * 1024)}\n`],
  ['a 1 MB address', `hosts:\n  a: {address: "${'9'.repeat(1_000_000)}"}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n`],
  ['billion laughs', laughs],
  ['a single alias', 'defaults: &d {ssh: {port: 22}}\nhosts:\n  a: {address: 192.0.2.1, ssh: *d}\n'],
  ['nested 200 deep', nested(200)],
  ['nested mappings 100 deep', `hosts: ${'{a: '.repeat(100)}1${'}'.repeat(100)}\n`],
  // shell metacharacters, quotes, newlines in names
  ['semicolon in a host name', host('a;rm -rf /')],
  ['command substitution in a host name', host('$(reboot)')],
  ['backticks in a host name', host('`id`')],
  ['pipe in a host name', host('a|nc x 1')],
  ['ampersand in a host name', host('a&b')],
  ['redirection in a host name', host('a>/etc/passwd')],
  ['single quote in a host name', host("o'brien")],
  ['double quote in a host name', host('say "hi"')],
  ['newline in a host name', host('a\nb')],
  ['carriage return in a host name', host('a\rb')],
  ['space in a host name', host('a b')],
  ['command substitution in a conn name', `${ok}pairs: [{hosts: [a, b], name: "$(reboot)"}]\n`],
  ['semicolon in an address', 'hosts:\n  a: {address: "192.0.2.1; reboot"}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['newline in an address', 'hosts:\n  a: {address: "192.0.2.1\\nreboot"}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  // path traversal
  ['traversal in a conn name', `${ok}pairs: [{hosts: [a, b], name: ../../etc/passwd}]\n`],
  ['dot-dot conn name', `${ok}pairs: [{hosts: [a, b], name: ..}]\n`],
  ['absolute path as a conn name', `${ok}pairs: [{hosts: [a, b], name: /etc/shadow}]\n`],
  ['dot-dot host name', host('..')],
  ['slash in a host name', host('a/../../b')],
  // encodings
  ['invalid UTF-8 byte', Buffer.concat([Buffer.from('hosts:\n  a: {address: 192.0.2.1}\n  b'), Buffer.from([0xff]), Buffer.from(': {address: 192.0.2.2}\n')])],
  ['latin-1 text', Buffer.concat([Buffer.from('hosts:\n  caf'), Buffer.from([0xe9]), Buffer.from(': {address: 192.0.2.1}\n')])],
  ['UTF-16 file', Buffer.from('\ufeffhosts:\n  a: {address: 192.0.2.1}\n', 'utf16le')],
  // SSH settings that would reach a command line or a config
  ['newline in a user name', `defaults:\n  ssh: {user: "root\\nProxyCommand x"}\n${ok}pairs: [[a, b]]\n`],
  ['option-like user name', 'hosts:\n  a: {address: 192.0.2.1, ssh: {user: -oProxyCommand=id}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['space in ssh.host', 'hosts:\n  a: {address: 192.0.2.1, ssh: {host: "h -p 1"}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['command in ssh.jump', 'hosts:\n  a: {address: 192.0.2.1, ssh: {jump: "$(id)@x"}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['port 65536', 'hosts:\n  a: {address: 192.0.2.1, ssh: {port: 65536}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n'],
  ['newline in an identity file', `defaults:\n  ssh: {identityFile: "/k\\nx"}\n${ok}pairs: [[a, b]]\n`],
  ['IPv4-mapped endpoint', 'hosts:\n  a: {address: "::ffff:10.0.0.1"}\n  b: {address: "2001:db8::2"}\npairs: [[a, b]]\n'],
  ['link-local endpoint', 'hosts:\n  a: {address: "fe80::1"}\n  b: {address: "fe80::2"}\npairs: [[a, b]]\n'],
  // checks that once ran after connecting: they are made before any connection
  ['a pair mixing IPv4 and IPv6', 'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: "2001:db8::2"}\npairs: [[a, b]]\n'],
  [
    'a mesh mixing IPv4 and IPv6',
    'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\n  c: {address: "2001:db8::3"}\nmeshes: [{name: m, hosts: [a, b, c]}]\n',
  ],
  [
    'two pairs with one conn name',
    'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\n  c: {address: 192.0.2.3}\npairs:\n  - {hosts: [a, b], name: x}\n  - {hosts: [a, c], name: x}\n',
  ],
  ['a pair named two ways', `${ok}pairs:\n  - {hosts: [a, b], name: x}\n  - {hosts: [b, a], name: y}\n`],
  ['two initiators for one pair', `${ok}pairs:\n  - {hosts: [a, b], initiator: a}\n  - {hosts: [b, a], initiator: b}\n`],
  ['fleet name with a slash', `fleet: ../x\n${ok}pairs: [[a, b]]\n`],
  // meaning
  ['empty file', ''],
  ['comments only', '# nothing\n'],
  ['no pairs', ok],
  ['self pair', `${ok}pairs: [[a, a]]\n`],
  ['unknown host', `${ok}pairs: [[a, c]]\n`],
];

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

test('--inventory /dev/zero stops at the size limit: exit 2, no connection, no memory eaten', async () => {
  const stdout = new Sink();
  const stderr = new Sink();
  const before = process.memoryUsage().rss;
  const code = await main(
    ['--inventory', '/dev/zero'],
    { stdout, stderr },
    {
      connect: async () => {
        throw new Error('no connection may be made');
      },
    },
  );
  expect(code).toBe(2);
  expect(stderr.text).toMatch(/^\/dev\/zero:1:1: the file is over 4 MiB/m);
  expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
});

test('the corpus has at least 50 inventories', () => {
  expect(corpus.length).toBeGreaterThanOrEqual(50);
});

describe('every hostile inventory: exit 2, a positioned message, no stack trace, no SSH', () => {
  test.each(corpus.map(([name, text], i) => [name, text, i] as const))('%s', async (_name, text, i) => {
    const file = join(dir, `inv-${i}.yaml`);
    writeFileSync(file, text);
    const stdout = new Sink();
    const stderr = new Sink();
    const connects: string[] = [];
    const code = await main(
      ['--inventory', file],
      { stdout, stderr },
      {
        connect: async (name) => {
          connects.push(name);
          throw new Error('no connection may be made');
        },
      },
    );
    expect({ code, connects, stdout: stdout.text }).toEqual({ code: 2, connects: [], stdout: '' });
    expect(stderr.text).toContain(`${file}:`);
    expect(stderr.text).toMatch(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
    expect(stderr.text).toMatch(/\n {2}hint: \S/);
    expect(stderr.text).not.toMatch(/\n\s+at \S+ \(/);
    expect(stderr.text.length).toBeLessThan(20_000);
  });
});
