import { InventoryError, type Problem } from '../../src/inventory/errors.js';
import { loadInventory } from '../../src/inventory/load.js';
import { offlineResolver, plan } from '../../src/plan/plan.js';

const ok = `hosts:
  a: {address: 192.0.2.1}
  b: {address: 192.0.2.2}
  c: {address: 192.0.2.3}
`;

/** Loads and plans; returns the problems raised, or fails the test if there were none. */
function problems(yaml: string): Problem[] {
  try {
    plan(loadInventory(yaml, 'inv.yaml'), offlineResolver);
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
  ['duplicate key', ok + '  a: {address: 192.0.2.9}\npairs: [[a, b]]\n', 5, 3, /duplicated mapping key/, /once/],
  ['unknown top-level key', ok + 'pair:\n  - [a, b]\n', 5, 1, /unknown key "pair"/, /Did you mean `pairs`/],
  ['unknown host key', 'hosts:\n  a: {address: 192.0.2.1, adress: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 27, /unknown key "adress" in `hosts.a`/, /Did you mean `address`/],
  ['unknown ssh key', 'defaults:\n  ssh: {identity_file: x}\n' + ok + 'pairs: [[a, b]]\n', 2, 9, /unknown key "identity_file"/, /identityFile/],
  ['wrong type: address number', 'hosts:\n  a: {address: 10}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /`hosts.a.address` should be text, not number 10/, /Quote/],
  ['wrong type: hosts a list', 'hosts:\n  - a\n  - b\n', 2, 3, /`hosts` should be a mapping, not a list/, /mapping/],
  ['missing address', 'hosts:\n  a: {ssh: {port: 22}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 6, /`hosts.a.address` is required/, /Add `address:`/],
  ['wrong type: port text', 'hosts:\n  a: {address: 192.0.2.1, ssh: {port: "22"}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 39, /should be a number/, /without quotes/],
  ['bad backend', 'hosts:\n  a: {address: 192.0.2.1, ipsec: {backend: libreswan4}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 44, /not one of: auto, openswan, libreswan, strongswan/, /Did you mean `libreswan`/],
  ['bad address', 'hosts:\n  a: {address: 192.0.2.300}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /"192.0.2.300" is not an IP address/, /IPv4 or IPv6/],
  ['address with prefix', 'hosts:\n  a: {address: 192.0.2.1/24}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /not an IP address/, /prefix length/],
  ['DNS name as address', 'hosts:\n  a: {address: web1.example.org}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /not an IP address/, /ssh.host/],
  ['loopback address', 'hosts:\n  a: {address: 127.0.0.1}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 16, /cannot be an IPsec endpoint/, /peers reach/],
  ['duplicate address', 'hosts:\n  a: {address: "2001:db8::1"}\n  b: {address: "2001:DB8:0::1"}\npairs: [[a, b]]\n', 3, 16, /already used by host a/, /own IPsec address/],
  ['bad port', 'hosts:\n  a: {address: 192.0.2.1, ssh: {port: 70000}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 2, 39, /port 70000 is out of range/, /1 and 65535/],
  ['unknown host in a pair', ok + 'pairs:\n  - [a, bb]\n', 6, 9, /unknown host "bb"/, /Did you mean b\?/],
  ['unknown host in a mesh', ok + 'meshes:\n  - {name: m, hosts: [a, b, zzz]}\n', 6, 29, /unknown host "zzz"/, /under `hosts:`/],
  ['host paired with itself', ok + 'pairs:\n  - [a, a]\n', 6, 9, /host "a" is paired with itself/, /two different hosts/],
  ['host twice in a mesh', ok + 'meshes:\n  - {name: m, hosts: [a, b, a]}\n', 6, 29, /listed twice/, /once/],
  ['pair of three', ok + 'pairs:\n  - [a, b, c]\n', 6, 5, /exactly two hosts, this one has 3/, /mesh/],
  ['pair not a list', ok + 'pairs:\n  - a\n', 6, 5, /a list of two hosts or a mapping/, /host-a, host-b/],
  ['initiator not in pair', ok + 'pairs:\n  - {hosts: [a, b], initiator: c}\n', 6, 32, /initiator "c" is not one of this pair's hosts \("a", "b"\)/, /one of the two hosts/],
  ['unsafe host name', 'hosts:\n  "a;rm -rf /": {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs: [["a;rm -rf /", b]]\n', 2, 3, /not safe in a file or conn name/, /letters, digits/],
  ['path traversal in a conn name', ok + 'pairs:\n  - {hosts: [a, b], name: ../../etc/passwd}\n', 6, 27, /conn name "..\/..\/etc\/passwd" is not safe/, /letters, digits/],
  ['newline in a host name', 'hosts:\n  "a\\nb": {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\npairs: [["a\\nb", b]]\n', 2, 3, /not safe/, /letters/],
  ['conflicting initiator', ok + 'pairs:\n  - {hosts: [a, b], initiator: a}\n  - {hosts: [b, a], initiator: b}\n', 7, 5, /conflicting initiator for this pair: b here, a at line 6/, /one initiator/],
  ['conflicting name between pair and mesh-free duplicate', ok + 'pairs:\n  - {hosts: [a, b], name: one}\n  - {hosts: [a, b], name: two}\n', 7, 5, /conflicting name/, /one name/],
  ['conflicting responder between pair and mesh', ok + 'pairs:\n  - {hosts: [a, b], responder: add}\nmeshes:\n  - {name: m, hosts: [a, b, c], responder: route}\n', 8, 5, /conflicting responder mode/, /one responder mode/],
  ['conn name used twice', ok + 'pairs:\n  - {hosts: [a, b], name: x}\n  - {hosts: [a, c], name: x}\n', 7, 5, /conn name x is used by two pairs/, /different `name:`/],
  ['mixed address families', 'hosts:\n  a: {address: 192.0.2.1}\n  b: {address: "2001:db8::2"}\npairs:\n  - [a, b]\n', 5, 5, /mixes address families/, /same family/],
  ['empty inventory', '', 1, 1, /the inventory is empty/, /hosts:/],
  ['comments only', '# nothing yet\n', 1, 1, /the inventory is empty/, /hosts:/],
  ['no hosts', 'hosts: {}\npairs: []\n', 1, 8, /no hosts are defined/, /at least two hosts/],
  ['no pairs', ok, 1, 1, /no pairs or meshes/, /pairs:/],
  ['alias', 'defaults: &d {ssh: {port: 22}}\nhosts:\n  a: {address: 192.0.2.1, ssh: *d}\n', 3, 33, /aliases/, /Write the value out/],
  ['mesh of one', ok + 'meshes:\n  - {name: m, hosts: [a]}\n', 6, 22, /has 1 item\(s\); at least 2 needed/, /at least two hosts/],
  ['ssh.host as a default', 'defaults:\n  ssh: {host: x}\n' + ok + 'pairs: [[a, b]]\n', 2, 9, /cannot be a default/, /each host/],
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

  test('every problem is reported, not only the first', () => {
    const ps = problems('hosts:\n  a: {address: 1.2.3.999}\n  b: {address: nope}\npairs: [[a, c]]\n');
    expect(ps.map((p) => p.line)).toEqual([2, 3, 4]);
  });
});
