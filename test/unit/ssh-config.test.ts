import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.js';
import { loadInventory } from '../../src/inventory/load.js';
import type { SshSettings } from '../../src/inventory/types.js';
import { ConnectError } from '../../src/remote/errors.js';
import { applySshConfig } from '../../src/remote/ssh-config.js';

// OpenSSH's client config: read as ssh reads it, for the name a host is reached by; the
// inventory's own values win. The lab e2e connects through one for real.

const config = `
Host web-*
  User deploy
  Port 2222
  IdentityFile ~/.ssh/web_key
Host web-1
  HostName web-1.mgmt.example.org
  ProxyJump bastion
Host bastion
  HostName 198.51.100.7
  User jump
Host *
  UserKnownHostsFile /etc/ssh/fleet_known_hosts
  StrictHostKeyChecking accept-new
`;

const inv = (extra = '') => loadInventory(`${extra}hosts:
  web-1: {address: 192.0.2.1}
  web-2: {address: 192.0.2.2, ssh: {user: root}}
  db-1: {address: 192.0.2.3, ssh: {host: db-1.example.org}}
pairs: [[web-1, web-2], [web-1, db-1]]
`, 'fleet.yaml');

describe('ssh config', () => {
  test('a host takes what ssh would use for its name; the inventory wins where it says something', () => {
    const hosts = applySshConfig(inv(), config).hosts;
    expect(hosts.get('web-1')!.ssh).toEqual({
      host: 'web-1.mgmt.example.org', port: 2222, user: 'deploy', identityFile: '~/.ssh/web_key', jump: 'bastion',
      knownHostsFile: '/etc/ssh/fleet_known_hosts', acceptNew: true,
    });
    // No HostName for web-2: reached on its IPsec address, as before; its user is the inventory's.
    expect(hosts.get('web-2')!.ssh).toMatchObject({ host: '192.0.2.2', port: 2222, user: 'root' });
    expect(hosts.get('db-1')!.ssh).toMatchObject({ host: 'db-1.example.org', port: 22, user: 'root', knownHostsFile: '/etc/ssh/fleet_known_hosts' });
  });

  test('inventory defaults win over the config too', () => {
    const hosts = applySshConfig(inv('defaults: {ssh: {user: ops, knownHostsFile: /k}}\n'), config).hosts;
    expect(hosts.get('web-1')!.ssh).toMatchObject({ user: 'ops', knownHostsFile: '/k', port: 2222 });
  });

  test('--ssh-config reaches the connection: address, user, port, key, jump host from the config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sshcfg-'));
    writeFileSync(join(dir, 'config'), config);
    writeFileSync(join(dir, 'fleet.yaml'), 'hosts:\n  web-1: {address: 192.0.2.1}\n  web-2: {address: 192.0.2.2}\npairs: [[web-1, web-2]]\n');
    const seen: [string, SshSettings, SshSettings | undefined][] = [];
    const code = await main(['-i', join(dir, 'fleet.yaml'), '--ssh-config', join(dir, 'config'), '--dry-run'], { stdout: new PassThrough(), stderr: new PassThrough() }, {
      connect: async (name, ssh, opts) => {
        seen.push([name, ssh, ssh.jump ? opts.resolveJump?.(ssh.jump) : undefined]);
        throw new ConnectError(name, 'stop here', 'none');
      },
    });
    expect(code).toBe(1);
    const web1 = seen.find(([n]) => n === 'web-1')!;
    expect(web1[1]).toMatchObject({ host: 'web-1.mgmt.example.org', user: 'deploy', port: 2222, jump: 'bastion' });
    expect(web1[2]).toMatchObject({ host: '198.51.100.7', user: 'jump', port: 22 });
  });

  test('ssh.config belongs under defaults', () => {
    expect(() => loadInventory('hosts:\n  a: {address: 192.0.2.1, ssh: {config: /x}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 'x.yaml')).toThrow(/`ssh.config` is read for every host/);
  });
});
