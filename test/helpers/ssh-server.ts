import { mkdtempSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect as connectTcp, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';

/**
 * ssh2's generator drops a leading zero byte of the public key, so about 1 pair in 256
 * cannot be parsed back (mscdex/ssh2#1390, #1513); it failed CI once. Draw again until
 * both halves parse.
 */
function ed25519KeyPair(): { private: string; public: string } {
  for (;;) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) {
      return pair;
    }
  }
}

/**
 * A real SSH server (ssh2's) on 127.0.0.1 for tests of the session layer: host keys,
 * authentication, exec with stdin, refused and dropped connections. `exec` answers each
 * command; `dropFirst` closes that many connections before the SSH banner, as sshd does
 * when MaxStartups is exceeded.
 */
export async function sshServer(
  opts: {
    exec?: (command: string, stdin: string) => { stdout?: string; stderr?: string; code?: number; hang?: boolean; flood?: number };
    dropFirst?: number;
  } = {},
) {
  const hostKey = ed25519KeyPair();
  const clientKey = ed25519KeyPair();
  const dir = mkdtempSync(join(tmpdir(), 'sshd-'));
  const identityFile = join(dir, 'id_ed25519');
  writeFileSync(identityFile, clientKey.private, { mode: 0o600 });
  let dropped = 0;
  let connections = 0;
  let forwards = 0;
  const commands: { command: string; stdin: string }[] = [];
  const sockets = new Set<Socket>();

  const server = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => {
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => (ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey'])));
    client.on('ready', () => {
      // Direct TCP forwarding, as a jump host allows it (ssh -J).
      client.on('tcpip', (accept, _reject, info) => {
        forwards++;
        const up = connectTcp(info.destPort, info.destIP);
        const ch = accept();
        up.on('error', () => ch.destroy());
        ch.on('error', () => up.destroy());
        up.pipe(ch).pipe(up);
      });
      client.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acceptExec, _reject, info) => {
          const stream = acceptExec();
          let stdin = '';
          stream.on('data', (d: Buffer) => (stdin += d.toString()));
          const answer = (): void => {
            commands.push({ command: info.command, stdin });
            const r = opts.exec?.(info.command, stdin) ?? { stdout: '' };
            if (r.hang) return;
            if (r.flood) {
              // Bytes without end, as a runaway command prints them, then the exit status.
              const chunk = Buffer.alloc(1024 * 1024, 0x61);
              let left = r.flood;
              const pump = (): void => {
                while (left > 0) {
                  left -= chunk.length;
                  if (!stream.write(chunk)) return void stream.once('drain', pump);
                }
                stream.exit(r.code ?? 0);
                stream.end();
              };
              pump();
              return;
            }
            if (r.stdout) stream.write(r.stdout);
            if (r.stderr) stream.stderr.write(r.stderr);
            stream.exit(r.code ?? 0);
            stream.end();
          };
          stream.on('end', answer);
        });
      });
    });
  });
  server.on('error', () => undefined);
  // A plain TCP front: it drops the first connections before the banner, as an overloaded
  // sshd does, and hands the others to the SSH server.
  const front = createServer((sock: Socket) => {
    connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    if (dropped < (opts.dropFirst ?? 0)) {
      dropped++;
      sock.destroy();
      return;
    }
    server.injectSocket(sock);
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const port = (front.address() as AddressInfo).port;
  const hostKeyPublic = hostKey.public.trim().split(' ').slice(0, 2).join(' ');
  return {
    port,
    identityFile,
    dir,
    commands,
    get connections() {
      return connections;
    },
    /** TCP forwards opened through this server, as a jump host. */
    get forwards() {
      return forwards;
    },
    hostKeyPublic,
    knownHostsLine: `[127.0.0.1]:${port} ${hostKeyPublic}\n`,
    /** Cuts every open connection, as a host going away would. */
    cut(): void {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        front.close(() => resolve());
      }),
  };
}
