import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathPolicies } from '../../src/plan/ssh-path.js';
import { bypasses, clearPassthroughs, declaredPolicies, describePolicy, isDeclared, parseXfrmPolicies } from '../../src/status/policies.js';

// Kernel policies recorded on lab servers after provision converged a mesh of four (strongSwan
// 5.9.1 and 6.0.1, libreswan 4.10 and 5.2), over IPv4 and over IPv6 (test/fixtures/releases).
const recorded = (dir: string, file: string): string => readFileSync(join('test', 'fixtures', 'releases', dir, file), 'utf8');
const HOSTS: Record<string, string> = { 'bullseye-strongswan': '1', 'trixie-strongswan': '2', 'bookworm-libreswan': '3', 'trixie-libreswan': '4' };
const peersOf = (i: string) => ['1', '2', '3', '4'].filter((x) => x !== i);

describe('kernel policies on every release: nothing passes in clear but neighbour discovery', () => {
  for (const [dir, i] of Object.entries(HOSTS)) {
    test(`${dir}: IPv6 passthroughs are ICMPv6 135 and 136 only, and no peer's traffic bypasses its pair`, () => {
      const policies = parseXfrmPolicies(recorded(dir, 'xfrm-policy-ipv6.txt'));
      // The pairs' own policies were read: one out per peer at least.
      expect(
        policies
          .filter((p) => p.ipsec && p.dir === 'out')
          .map((p) => p.dst)
          .sort(),
      ).toEqual(peersOf(i).map((x) => `fd77::1${x}/128`));
      expect(clearPassthroughs(policies).map(describePolicy)).toEqual([]);
      for (const x of peersOf(i)) expect(bypasses(policies, `fd77::1${i}`, `fd77::1${x}`).map(describePolicy)).toEqual([]);
    });
    test(`${dir}: all families (\`ip xfrm policy\`): no IPv4 passthrough either`, () => {
      const policies = parseXfrmPolicies(recorded(dir, 'xfrm-policy.txt'));
      expect(
        policies
          .filter((p) => p.ipsec && p.dir === 'out')
          .map((p) => p.dst)
          .sort(),
      ).toEqual([...peersOf(i).map((x) => `10.77.0.1${x}/32`), ...peersOf(i).map((x) => `fd77::1${x}/128`)]);
      expect(clearPassthroughs(policies).map(describePolicy)).toEqual([]);
      for (const x of peersOf(i)) expect(bypasses(policies, `10.77.0.1${i}`, `10.77.0.1${x}`)).toEqual([]);
    });
  }

  test('strongSwan 5.9.1 without /etc/protocols, given the protocol by name: everything passes, above every pair', () => {
    const policies = parseXfrmPolicies(recorded('bullseye-strongswan', 'xfrm-policy-ipv6-no-protocols-file-named.txt'));
    expect(clearPassthroughs(policies).map(describePolicy)).toEqual([
      'src ::/0 dst ::/0 (any protocol) fwd, priority 199999',
      'src ::/0 dst ::/0 (any protocol) in, priority 199999',
      'src ::/0 dst ::/0 (any protocol) out, priority 199999',
    ]);
    expect(bypasses(policies, 'fd77::11', 'fd77::13').map(describePolicy)).toEqual([
      'src ::/0 dst ::/0 (any protocol) out, priority 199999',
      'src ::/0 dst ::/0 (any protocol) in, priority 199999',
    ]);
  });

  test('the same host given the protocol as a number (what provision writes): neighbour discovery only', () => {
    const policies = parseXfrmPolicies(recorded('bullseye-strongswan', 'xfrm-policy-ipv6-no-protocols-file-numeric.txt'));
    expect(
      policies
        .filter((p) => p.proto === 58)
        .map((p) => p.type)
        .sort(),
    ).toEqual([135, 135, 135, 136, 136, 136]);
    expect(clearPassthroughs(policies)).toEqual([]);
  });

  test('a narrower passthrough counts too, and one the pair outranks does not', () => {
    const own =
      'src 10.0.0.1/32 dst 10.0.0.2/32 \n\tdir out priority 268927 ptype main \n\ttmpl src 0.0.0.0 dst 0.0.0.0\n\t\tproto esp reqid 1 mode transport\n';
    const ssh = 'src 10.0.0.1/32 dst 10.0.0.0/24 proto tcp sport 22 \n\tdir out priority 100 ptype main \n';
    const below = 'src 0.0.0.0/0 dst 0.0.0.0/0 \n\tdir out priority 400000 ptype main \n';
    const block = 'src 0.0.0.0/0 dst 0.0.0.0/0 \n\tdir out action block priority 200 ptype main \n';
    const policies = parseXfrmPolicies(own + ssh + below + block);
    expect(policies.map((p) => [p.dir, p.priority, p.action, p.ipsec])).toEqual([
      ['out', 268927, 'allow', true],
      ['out', 100, 'allow', false],
      ['out', 400000, 'allow', false],
      ['out', 200, 'block', false],
    ]);
    expect(bypasses(policies, '10.0.0.1', '10.0.0.2').map(describePolicy)).toEqual(['src 10.0.0.1/32 dst 10.0.0.0/24 (protocol 6) out, priority 100']);
    // A block that outranks the wide passthrough closes what has no pair policy.
    expect(bypasses(policies, '10.0.0.1', '10.0.1.2')).toEqual([]);
    // No policy of the pair in a direction: any passthrough matching it is a bypass.
    expect(bypasses(parseXfrmPolicies(below), '10.0.0.2', '10.0.0.1').map((p) => p.dir)).toEqual(['out']);
  });
});

describe("the tool's SSH path: declared passthroughs are not exposures", () => {
  const lines = pathPolicies('10.0.0.1', '10.0.0.2', { side: 'client', port: 22 });
  const kernel = parseXfrmPolicies(
    [
      'src 10.0.0.1/32 dst 10.0.0.2/32 proto tcp dport 22 \n\tdir out priority 1 ptype main ',
      'src 10.0.0.2/32 dst 10.0.0.1/32 proto tcp sport 22 \n\tdir in priority 1 ptype main ',
      'src 10.0.0.1/32 dst 10.0.0.2/32 proto tcp dport 80 \n\tdir out priority 1 ptype main ',
      'src 10.0.0.1/32 dst 10.0.0.2/32 \n\tdir out priority 1753281 ptype main \n\ttmpl src 0.0.0.0 dst 0.0.0.0\n\t\tproto esp reqid 1 mode transport',
    ].join('\n'),
  );
  test('what the path file declares matches exactly its policies in the kernel; another port between the same two is still found', () => {
    const declared = declaredPolicies(`# header\n${lines.join('\n')}\n`);
    expect(declared).toHaveLength(2);
    const found = bypasses(kernel, '10.0.0.1', '10.0.0.2');
    expect(found.map(describePolicy)).toEqual([
      'src 10.0.0.1/32 dst 10.0.0.2/32 (protocol 6 port 22) out, priority 1',
      'src 10.0.0.1/32 dst 10.0.0.2/32 (protocol 6 port 80) out, priority 1',
      'src 10.0.0.2/32 dst 10.0.0.1/32 (protocol 6) in, priority 1',
    ]);
    expect(found.filter((p) => !isDeclared(p, declared)).map(describePolicy)).toEqual(['src 10.0.0.1/32 dst 10.0.0.2/32 (protocol 6 port 80) out, priority 1']);
  });
});
