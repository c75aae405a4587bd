import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SshSettings } from '../../src/inventory/types.js';
import { ConnectError, HostKeyError } from '../../src/remote/errors.js';
import { KnownHostsStore } from '../../src/remote/known-hosts-store.js';
import { type ConnectOptions, connect, JumpCache, OUTPUT_CAP } from '../../src/remote/session.js';
import { sshServer } from '../helpers/ssh-server.js';

// The session layer against a real SSH server (ssh2's, on 127.0.0.1).

const options: ConnectOptions = { acceptNewHostKeys: false, connectTimeoutSec: 5, commandTimeoutSec: 10 };

function settings(srv: { port: number; identityFile: string; dir: string }, known: string, user = 'root'): SshSettings {
  const file = join(srv.dir, `known_hosts_${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, known);
  return { host: '127.0.0.1', port: srv.port, user, identityFile: srv.identityFile, knownHostsFile: file };
}

describe('SSH session', () => {
  test('a known host: commands run with sh under timeout, stdin carried, one connection reused', async () => {
    const srv = await sshServer({ exec: (_c, stdin) => ({ stdout: `got ${stdin.length} bytes` }) });
    const s = await connect('h', settings(srv, srv.knownHostsLine), options);
    expect((await s.run('cat', { stdin: 'secret' })).stdout).toBe('got 6 bytes');
    expect((await s.run('true')).code).toBe(0);
    expect(srv.commands.map((c) => c.command)).toEqual(['timeout -k 5 10 sh -c cat', 'timeout -k 5 10 sh -c true']);
    expect(srv.commands[0]!.stdin).toBe('secret');
    expect(srv.connections).toBe(1);
    expect(s.commands).toBe(2);
    await s.close();
    await srv.close();
  });

  test('a non-root user goes through sudo -n', async () => {
    const srv = await sshServer();
    const s = await connect('h', settings(srv, srv.knownHostsLine, 'deploy'), options);
    await s.run('id -u');
    expect(srv.commands[0]!.command).toBe("sudo -n -- timeout -k 5 10 sh -c 'id -u'");
    await s.close();
    await srv.close();
  });

  test('an unknown host is refused before anything is sent; --accept-new-host-keys records it', async () => {
    const srv = await sshServer();
    const ssh = settings(srv, '');
    await expect(connect('h', ssh, options)).rejects.toThrow(HostKeyError);
    await expect(connect('h', ssh, options)).rejects.toThrow(/is not in .*offered SHA256:/);
    expect(srv.commands).toEqual([]);
    const s = await connect('h', ssh, { ...options, acceptNewHostKeys: true });
    await s.close();
    expect(readFileSync(ssh.knownHostsFile, 'utf8')).toBe(srv.knownHostsLine);
    const again = await connect('h', ssh, options);
    await again.close();
    await srv.close();
  });

  test('a changed key is refused even with --accept-new-host-keys, showing both fingerprints', async () => {
    const srv = await sshServer();
    const other = await sshServer();
    const wrong = other.knownHostsLine.replace(`]:${other.port} `, `]:${srv.port} `);
    const err = await connect('h', settings(srv, wrong), { ...options, acceptNewHostKeys: true }).catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyError);
    expect(err.message).toMatch(/has CHANGED: offered SHA256:\S+, .* has ssh-ed25519 SHA256:\S+/);
    expect(err.hint).toMatch(/ssh-keygen -R/);
    await srv.close();
    await other.close();
  });

  test('connections dropped before the banner (MaxStartups) are retried with back-off', async () => {
    const srv = await sshServer({ dropFirst: 2 });
    const s = await connect('h', settings(srv, srv.knownHostsLine), options);
    await s.run('true');
    expect(srv.connections).toBe(3);
    await s.close();
    await srv.close();
  });

  test('a connection that keeps being dropped fails that host with a hint, after a bounded number of tries', async () => {
    const srv = await sshServer({ dropFirst: 100 });
    const err = await connect('h', settings(srv, srv.knownHostsLine), options).catch((e) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.message).toMatch(/cannot connect to root@127\.0\.0\.1:\d+/);
    expect(srv.connections).toBe(4);
    await srv.close();
  });

  test('a command that prints without end keeps the first MiBs, counts the rest, and the process lives', async () => {
    const srv = await sshServer({ exec: (c) => (c.includes('flood') ? { flood: 40 * 1024 * 1024, code: 0 } : { stdout: 'fine' }) });
    const s = await connect('h', settings(srv, srv.knownHostsLine), options);
    const r = await s.run('flood');
    expect(r.stdout.length).toBe(OUTPUT_CAP.stdout);
    expect(r.dropped?.stdout).toBe(40 * 1024 * 1024 - OUTPUT_CAP.stdout);
    expect((await s.run('true')).stdout).toBe('fine');
    await s.close();
    await srv.close();
  }, 30_000);

  test('hosts behind one jump host share one connection to it, and its new key is recorded once', async () => {
    const bastion = await sshServer();
    const targets = await Promise.all([sshServer(), sshServer(), sshServer()]);
    const known = join(bastion.dir, 'known_hosts_jump');
    writeFileSync(known, targets.map((t) => t.knownHostsLine).join(''));
    const jumps = new JumpCache();
    const knownHosts = new KnownHostsStore(join(bastion.dir, 'no-global'));
    const jumpSsh: SshSettings = { host: '127.0.0.1', port: bastion.port, user: 'root', identityFile: bastion.identityFile, knownHostsFile: known };
    const opts: ConnectOptions = { ...options, acceptNewHostKeys: true, jumps, knownHosts, resolveJump: () => jumpSsh };
    const sessions = await Promise.all(
      targets.map((t, i) =>
        connect(
          `h${i}`,
          {
            host: '127.0.0.1',
            port: t.port,
            user: 'root',
            identityFile: t.identityFile,
            knownHostsFile: known,
            jump: 'bastion',
          },
          opts,
        ),
      ),
    );
    for (const s of sessions) expect((await s.run('true')).code).toBe(0);
    expect({ connections: bastion.connections, forwards: bastion.forwards, open: jumps.size }).toEqual({ connections: 1, forwards: 3, open: 1 });
    expect(
      readFileSync(known, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith(`[127.0.0.1]:${bastion.port} `)),
    ).toHaveLength(1);
    for (const s of sessions) await s.close();
    expect(jumps.size).toBe(0);
    await Promise.all([bastion, ...targets].map((x) => x.close()));
  });

  test('a connection cut during a command fails that command, without crashing the process', async () => {
    const srv = await sshServer({ exec: () => ({ hang: true }) });
    const s = await connect('h', settings(srv, srv.knownHostsLine), options);
    const pending = s.run('sleep 100');
    setTimeout(() => srv.cut(), 200);
    await expect(pending).rejects.toThrow(ConnectError);
    await expect(s.run('true')).rejects.toThrow(/connection was lost/);
    await s.close();
    await srv.close();
  });
});
