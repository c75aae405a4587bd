import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { readSshConfig } from '../../src/cli/ssh-config-file.js';
import { main } from '../../src/cli.js';
import { InventoryError } from '../../src/inventory/errors.js';
import { loadInventory } from '../../src/inventory/load.js';
import type { SshSettings } from '../../src/inventory/types.js';
import { ConnectError } from '../../src/remote/errors.js';
import { applySshConfig as apply } from '../../src/remote/ssh-config.js';
import { type ConfigFile, parseConfig } from '../../src/remote/ssh-config-parse.js';

// OpenSSH's client config: read as ssh reads it, for the name a host is reached by; the
// inventory's own values win; nothing in it is ever run, and what the tool cannot honour is
// refused with its file and line. The lab e2e connects through one for real.

const tree = (text: string, path = 'config'): ConfigFile => ({ path, entries: parseConfig(text, path).map((line) => ({ line })) });
const applySshConfig = (i: ReturnType<typeof loadInventory>, text: string) => apply(i, tree(text), 'alice').inventory;
/** The problems an ssh config is refused with, as file:line: message. */
const refusal = (text: string, i = inv()): string[] => {
  try {
    apply(i, tree(text), 'alice');
  } catch (err) {
    if (err instanceof InventoryError) return err.problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.message}`);
    throw err;
  }
  return [];
};

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

const DEFAULT_KH = '~/.ssh/known_hosts';
const inv = (extra = '') =>
  loadInventory(
    `${extra}hosts:
  web-1: {address: 192.0.2.1}
  web-2: {address: 192.0.2.2, ssh: {user: root}}
  db-1: {address: 192.0.2.3, ssh: {host: db-1.example.org}}
pairs: [[web-1, web-2], [web-1, db-1]]
`,
    'fleet.yaml',
  );

describe('ssh config', () => {
  test('a host takes what ssh would use for its name; the inventory wins where it says something', () => {
    const hosts = applySshConfig(inv(), config).hosts;
    expect(hosts.get('web-1')!.ssh).toEqual({
      host: 'web-1.mgmt.example.org',
      port: 2222,
      user: 'deploy',
      identityFile: '~/.ssh/web_key',
      jump: 'bastion',
      knownHostsFile: '/etc/ssh/fleet_known_hosts',
      acceptNew: true,
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
    const code = await main(
      ['-i', join(dir, 'fleet.yaml'), '--ssh-config', join(dir, 'config'), '--dry-run'],
      { stdout: new PassThrough(), stderr: new PassThrough() },
      {
        connect: async (name, ssh, opts) => {
          seen.push([name, ssh, ssh.jump ? opts.resolveJump?.(ssh.jump) : undefined]);
          throw new ConnectError(name, 'stop here', 'none');
        },
      },
    );
    expect(code).toBe(1);
    const web1 = seen.find(([n]) => n === 'web-1')!;
    expect(web1[1]).toMatchObject({ host: 'web-1.mgmt.example.org', user: 'deploy', port: 2222, jump: 'bastion' });
    expect(web1[2]).toMatchObject({ host: '198.51.100.7', user: 'jump', port: 22 });
  });

  test('ssh.config belongs under defaults', () => {
    expect(() => loadInventory('hosts:\n  a: {address: 192.0.2.1, ssh: {config: /x}}\n  b: {address: 192.0.2.2}\npairs: [[a, b]]\n', 'x.yaml')).toThrow(
      /`ssh.config` is read for every host/,
    );
  });

  test('Match host, originalhost, user and localuser, negated too; Host with a negated pattern', () => {
    const hosts = applySshConfig(
      inv(),
      `
Host web-* !web-2
  Port 2201
Match originalhost db-1.example.org user root
  User dbadmin
Match host web-2 !localuser bob
  IdentityFile ~/.ssh/%r-%h
Match localuser alice host 192.0.2.*
  UserKnownHostsFile /kh/%%literal
Match all
  Port 2299
`,
    ).hosts;
    expect(hosts.get('web-1')!.ssh).toMatchObject({ port: 2201, user: 'root' });
    // web-2's user is the inventory's (root), and %r and %h expand to it and its name.
    expect(hosts.get('web-2')!.ssh).toMatchObject({ port: 2299, identityFile: '~/.ssh/root-web-2', knownHostsFile: DEFAULT_KH });
    // db-1: reached as db-1.example.org; Match user sees root (the tool's default), not the config's User.
    expect(hosts.get('db-1')!.ssh).toMatchObject({ user: 'dbadmin', port: 2299 });
  });

  test('Match exec is never run, and refused with its file and line; so is every criterion the tool cannot decide', () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'sshcfg-')), 'ran');
    expect(refusal(`Host *\n  User ops\n\nMatch exec "touch ${marker}"\n  User root\n`)).toEqual([
      `config:4:1: Match exec touch ${marker}: provision never runs a command to read a config (\`Match exec\`)`,
    ]);
    expect(existsSync(marker)).toBe(false);
    for (const c of ['canonical', 'final', 'localnetwork 10.0.0.0/8', 'tagged x', '!exec true']) expect(refusal(`Match ${c}\n  User x\n`)).toHaveLength(1);
  });

  test('ProxyCommand, a chained ProxyJump and other lines the tool would drop are refused where they apply, not elsewhere', () => {
    expect(refusal('Host web-1\n  ProxyCommand nc -X 5 -x proxy:1080 %h %p\n')).toEqual([
      'config:2:3: ProxyCommand nc -X 5 -x proxy:1080 %h %p: provision runs no local command to connect: reach the host directly or through one jump host (ProxyJump)',
    ]);
    expect(refusal('Host other-box\n  ProxyCommand nc %h %p\n')).toEqual([]);
    expect(refusal('Host web-1\n  ProxyJump a,b\n')).toEqual(['config:2:3: ProxyJump a,b: provision connects through one jump host, not a chain']);
    // A jump host alias that has a jump host of its own is a chain too.
    expect(refusal('Host web-1\n  ProxyJump bastion\nHost bastion\n  HostName 198.51.100.7\n  ProxyJump outer\n')).toEqual([
      'config:5:3: ProxyJump outer for the jump host bastion: provision connects through one jump host, not a chain',
    ]);
    for (const line of [
      'HostKeyAlias x',
      'KnownHostsCommand /bin/true',
      'CertificateFile ~/.ssh/c',
      'BindAddress 192.0.2.9',
      'CanonicalizeHostname yes',
      'UserKnownHostsFile /a /b',
      'IdentityFile %C',
    ]) {
      expect(refusal(`Host *\n  ${line}\n`)).toHaveLength(1);
    }
    expect(refusal('Host *\n  CanonicalizeHostname no\n  ProxyJump none\n  Ciphers aes256-gcm@openssh.com\n  ServerAliveInterval 30\n')).toEqual([]);
    // One jump host, an alias resolved before any connection.
    const { jumps } = apply(inv(), tree('Host web-1\n  ProxyJump=bastion\nHost bastion\n  HostName 198.51.100.7\n  User "jump user"\n  Port 2022\n'), 'alice');
    expect(jumps.get('bastion')).toEqual({ host: '198.51.100.7', user: 'jump user', port: 2022 });
  });

  test('Include is followed as ssh follows it: relative to ~/.ssh, globs sorted, in place, conditional inside a Host block', async () => {
    const home = mkdtempSync(join(tmpdir(), 'sshhome-'));
    mkdirSync(join(home, '.ssh', 'conf.d'), { recursive: true });
    writeFileSync(join(home, '.ssh', 'config'), 'Host db-*\n  Include db.conf\nHost *\n  Include conf.d/*.conf ~/extra.conf\n  User fallback\n');
    writeFileSync(join(home, '.ssh', 'db.conf'), 'Port 2345\n');
    writeFileSync(join(home, '.ssh', 'conf.d', 'b.conf'), 'Host web-2\n  User from-b\n');
    writeFileSync(join(home, '.ssh', 'conf.d', 'a.conf'), 'Host web-*\n  User from-a\n');
    writeFileSync(join(home, 'extra.conf'), 'Host web-1\n  ProxyCommand nc %h %p\n');
    const config = await readSshConfig(join(home, '.ssh', 'config'), home);
    // web-1 reaches extra.conf's ProxyCommand: refused, with the included file's own line.
    expect(() => apply(inv(), config, 'alice')).toThrow(`${join(home, 'extra.conf')}:2:3: ProxyCommand nc %h %p`);
    const two = loadInventory('hosts:\n  web-2: {address: 192.0.2.2}\n  db-1: {address: 192.0.2.3}\npairs: [[web-2, db-1]]\n', 'f.yaml');
    const hosts = apply(two, config, 'alice').inventory.hosts;
    expect(hosts.get('web-2')!.ssh).toMatchObject({ user: 'from-a', port: 22 });
    expect(hosts.get('db-1')!.ssh).toMatchObject({ user: 'fallback', port: 2345 });
  });

  test('--offline reads no ssh config at all; a dry run that would connect refuses a Match exec before any connection (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sshcfg-'));
    const marker = join(dir, 'ran');
    writeFileSync(join(dir, 'config'), `Match exec "touch ${marker}"\n  User x\n`);
    writeFileSync(
      join(dir, 'fleet.yaml'),
      `defaults:\n  ssh: {config: ${join(dir, 'config')}}\nhosts:\n  web-1: {address: 192.0.2.1}\n  web-2: {address: 192.0.2.2}\npairs: [[web-1, web-2]]\n`,
    );
    let connects = 0;
    const deps = {
      connect: async () => {
        connects++;
        throw new Error('no connection expected');
      },
    };
    const err = new PassThrough();
    let text = '';
    err.on('data', (d) => (text += d));
    expect(await main(['-i', join(dir, 'fleet.yaml'), '--dry-run', '--offline'], { stdout: new PassThrough(), stderr: new PassThrough() }, deps)).toBe(0);
    expect(await main(['-i', join(dir, 'fleet.yaml'), '--dry-run'], { stdout: new PassThrough(), stderr: err }, deps)).toBe(2);
    expect(text).toContain(`${join(dir, 'config')}:1:1: Match exec touch ${marker}`);
    expect({ connects, ran: existsSync(marker) }).toEqual({ connects: 0, ran: false });
  });
});
