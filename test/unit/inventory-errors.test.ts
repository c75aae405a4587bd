import { InventoryError, type Problem } from '../../src/inventory/errors.js';
import { loadInventory } from '../../src/inventory/load.js';

const ok = `hosts:
  a: {address: 192.0.2.1}
  b: {address: 192.0.2.2}
  c: {address: 192.0.2.3}
`;

/** Loads and plans; returns the problems raised, or fails the test if there were none. */
function problems(yaml: string): Problem[] {
  try {
    loadInventory(yaml, 'inv.yaml');
  } catch (err) {
    if (err instanceof InventoryError) return err.problems;
    throw err;
  }
  throw new Error('expected an InventoryError');
}

// [case, inventory, line, column, message, hint]
const cases: [string, string, number, number, RegExp, RegExp][] = [
  ['YAML syntax', 'hosts:\n  a: {address: 192.0.2.1\n  b: 1\n', 3, 3, /./, /YAML syntax/],
  ['tab indentation', 'hosts:\n\ta: {address: 192.0.2.1}\n', 2, 1, /tab/i, /spaces/],
  ['duplicate key', `${ok}  a: {address: 192.0.2.9}\npairs: [[a, b]]\n`, 5, 3, /duplicated mapping key/, /once/],
  ['unknown top-level key', `${ok}pair:\n  - [a, b]\n`, 5, 1, /unknown key "pair"/, /Did you mean `pairs`/],
  [
    'unknown host key',
    'hosts:\n  a: {address: 192.0.2.1, adress: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    27,
    /unknown key "adress" in `hosts.a`/,
    /Did you mean `address`/,
  ],
  ['unknown ssh key', `defaults:\n  ssh: {identity_file: x}\n${ok}pairs: [[a, b]]\n`, 2, 9, /unknown key "identity_file"/, /identityFile/],
  [
    'wrong type: address number',
    'hosts:\n  a: {address: 10}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    16,
    /`hosts.a.address` should be text, not number 10/,
    /Quote/,
  ],
  ['wrong type: hosts a list', 'hosts:\n  - a\n  - b\n', 2, 3, /`hosts` should be a mapping, not a list/, /mapping/],
  ['missing address', 'hosts:\n  a: {ssh: {port: 22}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 6, /`hosts.a.address` is required/, /Add `address:`/],
  [
    'wrong type: port text',
    'hosts:\n  a: {address: 192.0.2.1, ssh: {port: "22"}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    39,
    /should be a number/,
    /without quotes/,
  ],
  [
    'bad backend',
    'hosts:\n  a: {address: 192.0.2.1, ipsec: {backend: libreswan4}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    44,
    /not one of: auto, openswan, libreswan, strongswan/,
    /Did you mean `libreswan`/,
  ],
  [
    'bad address',
    'hosts:\n  a: {address: 192.0.2.300}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    16,
    /"192.0.2.300" is not an IP address/,
    /IPv4 or IPv6/,
  ],
  ['address with prefix', 'hosts:\n  a: {address: 192.0.2.1/24}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /not an IP address/, /prefix length/],
  ['DNS name as address', 'hosts:\n  a: {address: web1.example.org}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /not an IP address/, /ssh.host/],
  ['loopback address', 'hosts:\n  a: {address: 127.0.0.1}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /cannot be an IPsec endpoint/, /peers reach/],
  [
    'duplicate address',
    'hosts:\n  a: {address: "2001:db8::1"}\n  b: {address: "2001:DB8:0::1"}\npairs: [[a, b]]\n',
    3,
    16,
    /already used by host a/,
    /own IPsec address/,
  ],
  [
    'bad port',
    'hosts:\n  a: {address: 192.0.2.1, ssh: {port: 70000}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    39,
    /port 70000 is out of range/,
    /1 and 65535/,
  ],
  ['unknown host in a pair', `${ok}pairs:\n  - [a, bb]\n`, 6, 9, /unknown host "bb"/, /Did you mean b\?/],
  ['unknown host in a mesh', `${ok}meshes:\n  - {name: m, hosts: [a, b, zzz]}\n`, 6, 29, /unknown host "zzz"/, /under `hosts:`/],
  ['host paired with itself', `${ok}pairs:\n  - [a, a]\n`, 6, 9, /host "a" is paired with itself/, /two different hosts/],
  ['host twice in a mesh', `${ok}meshes:\n  - {name: m, hosts: [a, b, a]}\n`, 6, 29, /listed twice/, /once/],
  ['pair of three', `${ok}pairs:\n  - [a, b, c]\n`, 6, 5, /exactly two hosts, this one has 3/, /mesh/],
  ['pair not a list', `${ok}pairs:\n  - a\n`, 6, 5, /a list of two hosts or a mapping/, /host-a, host-b/],
  [
    'initiator not in pair',
    `${ok}pairs:\n  - {hosts: [a, b], initiator: c}\n`,
    6,
    32,
    /initiator "c" is not one of this pair's hosts \("a", "b"\)/,
    /one of the two hosts/,
  ],
  [
    'unsafe host name',
    'hosts:\n  "a;rm -rf /": {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs: [["a;rm -rf /", b]]\n',
    2,
    3,
    /not safe in a file or conn name/,
    /letters, digits/,
  ],
  [
    'path traversal in a conn name',
    `${ok}pairs:\n  - {hosts: [a, b], name: ../../etc/passwd}\n`,
    6,
    27,
    /conn name "..\/..\/etc\/passwd" is not safe/,
    /letters, digits/,
  ],
  ['newline in a host name', 'hosts:\n  "a\\nb": {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs: [["a\\nb", b]]\n', 2, 3, /not safe/, /letters/],
  [
    'conflicting initiator',
    `${ok}pairs:\n  - {hosts: [a, b], initiator: a}\n  - {hosts: [b, a], initiator: b}\n`,
    7,
    5,
    /conflicting initiator for this pair: b here, a at line 6/,
    /one initiator/,
  ],
  [
    'conflicting name between pair and mesh-free duplicate',
    `${ok}pairs:\n  - {hosts: [a, b], name: one}\n  - {hosts: [a, b], name: two}\n`,
    7,
    5,
    /conflicting name/,
    /one name/,
  ],
  [
    'conflicting responder between pair and mesh',
    `${ok}pairs:\n  - {hosts: [a, b], responder: add}\nmeshes:\n  - {name: m, hosts: [a, b, c], responder: route}\n`,
    8,
    5,
    /conflicting responder mode/,
    /one responder mode/,
  ],
  [
    'conn name used twice',
    `${ok}pairs:\n  - {hosts: [a, b], name: x}\n  - {hosts: [a, c], name: x}\n`,
    7,
    5,
    /conn name x is used by two pairs/,
    /different `name:`/,
  ],
  [
    'mixed address families',
    'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: "2001:db8::2"}\npairs:\n  - [a, b]\n',
    5,
    5,
    /mixes address families/,
    /same family/,
  ],
  ['empty inventory', '', 1, 1, /the inventory is empty/, /hosts:/],
  ['comments only', '# nothing yet\n', 1, 1, /the inventory is empty/, /hosts:/],
  ['no hosts', 'hosts: {}\npairs: []\n', 1, 8, /no hosts are defined/, /at least two hosts/],
  ['no pairs', ok, 1, 1, /no pairs or meshes/, /pairs:/],
  ['alias', 'defaults: &d {ssh: {port: 22}}\nhosts:\n  a: {address: 192.0.2.1, ssh: *d}\n', 3, 33, /aliases/, /Write the value out/],
  ['mesh of one', `${ok}meshes:\n  - {name: m, hosts: [a]}\n`, 6, 22, /mesh "m" has 1 host$/, /at least two hosts/],
  ['ssh.host as a default', `defaults:\n  ssh: {host: x}\n${ok}pairs: [[a, b]]\n`, 2, 9, /cannot be a default/, /each host/],
  ['user with a newline', `defaults:\n  ssh: {user: "root\\nid"}\n${ok}pairs: [[a, b]]\n`, 2, 15, /ssh.user "root\\nid" is not a user name/, /letters, digits/],
  [
    'user with a quote',
    'hosts:\n  a: {address: 192.0.2.1, ssh: {user: "o\'brien"}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    39,
    /ssh.user "o'brien" is not a user name/,
    /letters/,
  ],
  [
    'user starting with a dash',
    'hosts:\n  a: {address: 192.0.2.1, ssh: {user: -oProxyCommand=x}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    39,
    /is not a user name/,
    /dash/,
  ],
  [
    'ssh.host with a space',
    'hosts:\n  a: {address: 192.0.2.1, ssh: {host: "web 1"}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    39,
    /ssh.host "web 1" is not a host name/,
    /DNS name/,
  ],
  [
    'ssh.host with user@',
    'hosts:\n  a: {address: 192.0.2.1, ssh: {host: root@web1}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    39,
    /is not a host name/,
    /ssh.user/,
  ],
  ['port 0', 'hosts:\n  a: {address: 192.0.2.1, ssh: {port: 0}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 39, /port 0 is out of range/, /1 and 65535/],
  [
    'jump that is neither',
    'hosts:\n  a: {address: 192.0.2.1, ssh: {jump: "bastion; id"}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    39,
    /ssh.jump "bastion; id" is neither/,
    /\[user@\]host/,
  ],
  [
    'jump with a bad port',
    'hosts:\n  a: {address: 192.0.2.1, ssh: {jump: "admin@bastion:99999"}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    39,
    /is neither/,
    /port/,
  ],
  [
    'own jump host',
    'hosts:\n  a: {address: 192.0.2.1, ssh: {jump: a}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n',
    2,
    39,
    /its own jump host/,
    /another host/,
  ],
  [
    'identity file with a control character',
    `defaults:\n  ssh: {identityFile: "/root/.ssh/id\\x07"}\n${ok}pairs: [[a, b]]\n`,
    2,
    23,
    /holds a control character/,
    /one line/,
  ],
  [
    'known_hosts of another user',
    `defaults:\n  ssh: {knownHostsFile: "~bob/.ssh/known_hosts"}\n${ok}pairs: [[a, b]]\n`,
    2,
    25,
    /only ~\/ .* is expanded/,
    /full path/,
  ],
  [
    'IPv4-mapped address',
    'hosts:\n  a: {address: "::ffff:192.0.2.1"}\n  b: {address: "2001:db8::2"}\npairs: [[a, b]]\n',
    2,
    16,
    /IPv4-mapped/,
    /without ::ffff:/,
  ],
  ['link-local IPv4', 'hosts:\n  a: {address: 169.254.1.1}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /link-local/, /peers reach/],
  ['link-local IPv6', 'hosts:\n  a: {address: "fe80::1"}\n  b: {address: "2001:db8::2"}\npairs: [[a, b]]\n', 2, 16, /link-local/, /peers reach/],
  ['unspecified IPv4', 'hosts:\n  a: {address: 0.0.0.0}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /unspecified/, /peers reach/],
  ['multicast IPv6', 'hosts:\n  a: {address: "ff02::1"}\n  b: {address: "2001:db8::2"}\npairs: [[a, b]]\n', 2, 16, /multicast/, /peers reach/],
  ['unspecified IPv6', 'hosts:\n  a: {address: "::"}\n  b: {address: "2001:db8::2"}\npairs: [[a, b]]\n', 2, 16, /unspecified/, /peers reach/],
  ['multicast IPv4', 'hosts:\n  a: {address: 224.0.0.1}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /multicast/, /peers reach/],
  ['loopback IPv6', 'hosts:\n  a: {address: "::1"}\n  b: {address: "2001:db8::2"}\npairs: [[a, b]]\n', 2, 16, /loopback/, /peers reach/],
  ['bad fleet name', `fleet: "a b"\n${ok}pairs: [[a, b]]\n`, 1, 8, /fleet "a b" is not a safe name/, /letters/],
  ['not UTF-8', 'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: "\uFFFD"}\n', 3, 17, /not valid UTF-8/, /UTF-8/],
];

describe('inventory errors carry file:line:column, a message and a hint', () => {
  test.each(cases)('%s', (_name, yaml, line, column, message, hint) => {
    const ps = problems(yaml);
    const p = ps.find((x) => message.test(x.message));
    expect({ found: p?.message, all: ps.map((x) => `${x.line}:${x.column} ${x.message}`) }).toMatchObject({ found: expect.any(String) });
    expect(p).toMatchObject({ file: 'inv.yaml', line, column });
    expect(p!.hint).toMatch(hint);
  });

  test('a wrong type does not hide the other problems: all are reported in one run', () => {
    const ps = problems(
      'defaults:\n  ssh: {port: "22"}\nhosts:\n  a: {address: 10}\n  b: {address: 127.0.0.1, ssh: {user: "x y"}}\n  c: {address: 192.0.2.3}\npairs:\n  - [a, c]\n  - [b, zz]\n',
    );
    expect(ps.map((p) => `${p.line}: ${p.message}`)).toEqual([
      '2: `defaults.ssh.port` should be a number, not the text "22"',
      '4: `hosts.a.address` should be text, not number 10',
      '5: 127.0.0.1 cannot be an IPsec endpoint: it is a loopback address',
      '5: ssh.user "x y" is not a user name',
      '9: unknown host "zz"',
    ]);
  });

  test('every problem is reported, not only the first', () => {
    const ps = problems('hosts:\n  a: {address: 1.2.3.999}\n  b: {address: nope}\npairs: [[a, c]]\n');
    expect(ps.map((p) => p.line)).toEqual([2, 3, 4]);
  });
});
