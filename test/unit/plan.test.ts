import { connName } from '../../src/inventory/pairs.js';
import { renderPlan } from '../../src/report/plan-text.js';
import { planText, renderedFiles } from '../helpers/plan.js';

const hosts = (...names: string[]): string => `hosts:\n${names.map((n, i) => `  ${n}: {address: 192.0.2.${i + 1}}\n`).join('')}`;

describe('pairs and meshes', () => {
  test('a mesh means every pair among its hosts, first listed initiates', () => {
    const p = planText(`${hosts('a', 'b', 'c', 'd')}meshes:\n  - {name: m, hosts: [a, b, c, d]}\n`);
    expect(p.pairs.map((x) => `${x.initiator}>${x.responder}`)).toEqual(['a>b', 'a>c', 'a>d', 'b>c', 'b>d', 'c>d']);
  });

  test('a pair also in a mesh is one pair; the explicit pair keeps its order and options', () => {
    const p = planText(
      `${hosts('a', 'b', 'c')}pairs:\n  - {hosts: [c, a], responder: add}\nmeshes:\n  - {name: m, hosts: [a, b, c]}\n  - {name: n, hosts: [a, c]}\n`,
    );
    expect(p.pairs).toHaveLength(3);
    const ac = p.pairs.find((x) => x.name === 'a--c')!;
    expect(ac).toMatchObject({ hosts: ['c', 'a'], initiator: 'c', responder: 'a', responderMode: 'add' });
  });

  test('initiator: picks the other host; the responder defaults to auto=route', () => {
    const p = planText(`${hosts('a', 'b')}pairs:\n  - {hosts: [a, b], initiator: b}\n`);
    expect(p.pairs[0]).toMatchObject({ initiator: 'b', responder: 'a', responderMode: 'route' });
    expect(renderedFiles(p).get('a')!.get('/etc/ipsec.d/a--b.conf')).toMatch(/^\s+auto=route$/m);
    expect(renderedFiles(p).get('b')!.get('/etc/ipsec.d/a--b.conf')).toMatch(/^\s+auto=start$/m);
  });

  test('defaults.ipsec.responder: add gives the seed responder everywhere', () => {
    const p = planText(`defaults:\n  ipsec: {responder: add}\n${hosts('a', 'b', 'c')}meshes:\n  - {name: m, hosts: [a, b, c]}\n`);
    expect(new Set(p.pairs.map((x) => x.responderMode))).toEqual(new Set(['add']));
  });

  test('a host in several pairs gets one conn file and one secrets file per pair', () => {
    const p = planText(`${hosts('a', 'b', 'c')}pairs:\n  - [a, b]\n  - [a, c]\n`);
    const files = renderedFiles(p).get('a')!;
    expect([...files.keys()].sort()).toEqual([
      '/etc/ipsec.d/a--b.conf',
      '/etc/ipsec.d/a--b.secrets',
      '/etc/ipsec.d/a--c.conf',
      '/etc/ipsec.d/a--c.secrets',
      '/etc/provision/guard-test.nft',
      '/etc/systemd/system/provision-guard.service',
    ]);
    expect(p.hosts.find((h) => h.host === 'a')!.includes.map((i) => i.line)).toEqual(['include /etc/ipsec.d/*.conf', 'include /etc/ipsec.d/*.secrets']);
  });

  test('a host in no pair gets nothing to write and nothing installed', () => {
    const p = planText(`${hosts('a', 'b', 'lonely')}pairs: [[a, b]]\n`);
    const lonely = p.hosts.find((h) => h.host === 'lonely')!;
    expect({ files: lonely.files, install: lonely.install, service: lonely.service }).toEqual({ files: [], install: undefined, service: 'none' });
    expect(p.hosts.find((h) => h.host === 'a')!.install).toMatchObject({ packages: ['libreswan', 'nftables'], aptUpdate: true });
  });
});

describe('names and determinism', () => {
  test('a derived name does not depend on listing order', () => {
    expect(connName('web-2', 'db-1')).toBe('db-1--web-2');
    const one = planText(`${hosts('x', 'y')}pairs: [[x, y]]\n`);
    const two = planText(`${hosts('y', 'x')}pairs: [[y, x]]\n`);
    expect(one.pairs[0]!.name).toBe(two.pairs[0]!.name);
  });

  test('adding a host or a pair does not rename existing pairs', () => {
    const before = planText(`${hosts('a', 'b', 'c')}meshes:\n  - {name: m, hosts: [a, b, c]}\n`).pairs.map((p) => p.name);
    const after = planText(`${hosts('a', 'b', 'c', 'd')}meshes:\n  - {name: m, hosts: [a, b, c, d]}\n`).pairs.map((p) => p.name);
    expect(after).toEqual(expect.arrayContaining(before));
  });

  test('the same inventory gives byte-identical output', () => {
    const yaml = `${hosts('a', 'b', 'c', 'd')}pairs:\n  - {hosts: [d, a], name: special}\nmeshes:\n  - {name: m, hosts: [a, b, c, d]}\n`;
    const render = () => renderPlan(planText(yaml, 'inv.yaml'));
    expect(render()).toBe(render());
  });

  test('an explicit backend is honoured; libreswan and strongswan each render their dialect', () => {
    const p = planText(
      'hosts:\n  a: {address: 192.0.2.1, ipsec: {backend: libreswan}}\n  b: {address: 192.0.2.2, ipsec: {backend: strongswan}}\npairs: [[a, b]]\n',
    );
    const [a, b] = p.hosts;
    expect(a!.backend.package).toBe('libreswan');
    expect(b!.backend.package).toBe('strongswan-starter');
    const files = renderedFiles(p);
    expect(files.get('a')!.get('/etc/ipsec.d/a--b.conf')).toMatch(/ikev2=insist/);
    expect(files.get('b')!.get('/etc/ipsec.d/a--b.conf')).toMatch(/keyexchange=ikev2/);
    expect(files.get('b')!.get('/etc/ipsec.d/a--b.conf')).not.toMatch(/pfs=/);
    expect(p.warnings).toEqual([]);
  });

  test('openswan paired with an IKEv2-only backend is warned about', () => {
    const p = planText(
      'hosts:\n  a: {address: 192.0.2.1, ipsec: {backend: openswan}}\n  b: {address: 192.0.2.2, ipsec: {backend: libreswan}}\npairs: [[a, b]]\n',
    );
    expect(p.warnings.join('\n')).toMatch(/pair a--b: openswan speaks IKEv1/);
  });
});
