import { planText, renderedFiles } from '../helpers/plan.js';

// The seed recipe's conn, line for line, as its walkthrough lists it ("conn foo-connection",
// then type=transport, authby=secret, left=, right=, pfs=yes, auto=start; auto=add on the
// other server). The blog lost the addresses; these are ours.
const seedConn = (auto: string): string[] => [
  'conn foo-connection',
  'type=transport',
  'authby=secret',
  'left=192.0.2.1',
  'right=192.0.2.2',
  'pfs=yes',
  `auto=${auto}`,
];

const inventory = `
defaults:
  ipsec: {backend: openswan, responder: add}
hosts:
  server-01: {address: 192.0.2.1}
  server-02: {address: 192.0.2.2}
pairs:
  - {hosts: [server-01, server-02], name: foo-connection}
`;

/** The conn block without our header comment, trimmed of indentation. */
function connLines(content: string): string[] {
  return content
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.trim());
}

describe('the seed recipe rendered for openswan with responder: add', () => {
  const files = renderedFiles(planText(inventory));

  test('server-01 (initiator) gets the seed conn with auto=start', () => {
    expect(connLines(files.get('server-01')!.get('/etc/ipsec.d/foo-connection.conf')!)).toEqual(seedConn('start'));
  });

  test('server-02 (responder) gets the same conn with auto=add', () => {
    expect(connLines(files.get('server-02')!.get('/etc/ipsec.d/foo-connection.conf')!)).toEqual(seedConn('add'));
  });

  test('parameter lines are indented, as ipsec.conf requires', () => {
    const body = files
      .get('server-01')!
      .get('/etc/ipsec.d/foo-connection.conf')!
      .split('\n')
      .filter((l) => l.includes('='));
    for (const l of body) expect(l).toMatch(/^\s+\S/);
  });

  test("the secrets line is the seed's `A B : PSK` form, key redacted", () => {
    const secrets = files.get('server-02')!.get('/etc/ipsec.d/foo-connection.secrets')!;
    expect(connLines(secrets)).toEqual(['192.0.2.1 192.0.2.2 : PSK <redacted: new 256-bit key>']);
  });
});
