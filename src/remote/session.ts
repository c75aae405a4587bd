import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname } from 'node:path';
import { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import type { SshSettings } from '../inventory/types.js';
import { ConnectError, HostKeyError } from './errors.js';
import { hostKeyAlgorithms, judgeHostKey, keysFor, knownHostsLine, type HostKeyVerdict } from './known-hosts.js';
import { wrap } from './shell.js';

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * A connection to one host, reused for every step. `run` takes a shell script and runs it
 * with sh as root (through `sudo -n` for other users), its stdin the given text: secrets
 * travel that way, never on a command line.
 */
export interface Session {
  readonly host: string;
  run(script: string, opts?: { stdin?: string; timeoutSec?: number }): Promise<ExecResult>;
  /** Remote commands run so far on this connection. */
  readonly commands: number;
  close(): Promise<void>;
}

export interface ConnectOptions {
  acceptNewHostKeys: boolean;
  connectTimeoutSec: number;
  commandTimeoutSec: number;
  /** Passphrases of encrypted identity files, by path. */
  passphrases?: ReadonlyMap<string, string>;
  /** Settings of a jump host named by `ssh.jump`, when it is an inventory host. */
  resolveJump?: (jump: string) => SshSettings;
}

export function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path;
}

async function readKnownHosts(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** Parses `ssh.jump` when it is not an inventory host: `[user@]host[:port]`. */
export function parseJump(jump: string, fallback: SshSettings): SshSettings {
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(jump);
  if (!m) return { ...fallback, host: jump, port: 22 };
  return { ...fallback, user: m[1] ?? fallback.user, host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] ? Number(m[3]) : 22, jump: undefined };
}

class SshSession implements Session {
  commands = 0;
  private lost: Error | undefined;
  /** Settles when the connection drops, so a command under way fails at once. */
  private readonly dropped: Promise<Error>;
  private onDrop: (err: Error) => void = () => undefined;
  constructor(
    readonly host: string,
    private readonly ssh: NodeSSH,
    private readonly sudo: boolean,
    private readonly defaultTimeoutSec: number,
    private readonly onClose: () => Promise<void>,
  ) {
    // A dropped connection must fail this host, never crash the process.
    this.dropped = new Promise((resolve) => (this.onDrop = resolve));
    ssh.connection?.on('error', (err) => {
      this.lost ??= err;
      this.onDrop(this.lost);
    });
    ssh.connection?.on('close', () => {
      this.lost ??= new Error('connection closed');
      this.onDrop(this.lost);
    });
  }

  async run(script: string, opts: { stdin?: string; timeoutSec?: number } = {}): Promise<ExecResult> {
    if (this.lost) {
      throw new ConnectError(this.host, `the SSH connection was lost: ${this.lost.message}`, 'Check the host is up and re-run; the run is safe to repeat.');
    }
    const timeoutSec = opts.timeoutSec ?? this.defaultTimeoutSec;
    this.commands++;
    let channel: ClientChannel | undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      // The remote side is bounded by `timeout`; this is the backstop if the host stops answering.
      timer = setTimeout(() => resolve('timeout'), (timeoutSec + 15) * 1000);
    });
    try {
      const exec = this.ssh.execCommand(wrap(script, { sudo: this.sudo, timeoutSec }), {
        ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
        noTrim: true,
        onChannel: (c) => {
          channel = c;
        },
      });
      const r = await Promise.race([exec, timeout, this.dropped.then((e) => Promise.reject(e))]);
      if (r === 'timeout') {
        channel?.close();
        return { code: null, stdout: '', stderr: `no answer within ${timeoutSec} s`, timedOut: true };
      }
      if (r.code === null && r.signal === null) {
        // The channel closed without an exit status: the connection went away.
        await new Promise((resolve) => setImmediate(resolve));
        if (this.lost) throw this.lost;
      }
      // `timeout` exits 124 when it stopped the command.
      return { code: r.code, stdout: r.stdout, stderr: r.stderr, timedOut: r.code === 124 || r.code === 137 };
    } catch (err) {
      throw new ConnectError(this.host, `the SSH connection failed during a command: ${(err as Error).message}`,
        'Check the host is up and re-run; the run is safe to repeat.', { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.ssh.dispose();
    await this.onClose();
  }
}

function hostKeyProblem(host: string, addr: string, knownFile: string, v: Exclude<HostKeyVerdict, { kind: 'known' }>): HostKeyError {
  switch (v.kind) {
    case 'unknown':
      return new HostKeyError(host, `host key of ${addr} is not in ${knownFile} (offered ${v.offered})`,
        `Check the fingerprint on the console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add it to ${knownFile}, or re-run with --accept-new-host-keys to record it.`);
    case 'changed':
      return new HostKeyError(host, `host key of ${addr} has CHANGED: offered ${v.offered}, ${knownFile} has ${v.known.join(', ')}`,
        `This can be a reinstalled server or an attack. Verify the new key on the console; if it is right, remove the old line (ssh-keygen -R ${addr} -f ${knownFile}) and re-run.`);
    case 'revoked':
      return new HostKeyError(host, `host key of ${addr} is marked @revoked in ${knownFile} (${v.offered})`,
        'The host presents a revoked key: do not trust it until it has a new key.');
  }
}

interface Endpoint {
  name: string;
  ssh: SshSettings;
}

async function connectOne(target: Endpoint, opts: ConnectOptions, sock?: NodeJS.ReadableStream): Promise<NodeSSH> {
  const { ssh } = target;
  const knownFile = expandHome(ssh.knownHostsFile);
  const known = keysFor(await readKnownHosts(knownFile), ssh.host, ssh.port);
  let refusal: HostKeyError | undefined;
  let toRecord: Buffer | undefined;

  let client = new NodeSSH();
  const identityFile = ssh.identityFile ? expandHome(ssh.identityFile) : undefined;
  const passphrase = identityFile ? opts.passphrases?.get(identityFile) : undefined;
  const attempt = (): Promise<unknown> => client.connect({
      host: ssh.host,
      port: ssh.port,
      username: ssh.user,
      ...(identityFile ? { privateKeyPath: identityFile } : {}),
      ...(passphrase ? { passphrase } : {}),
      ...(process.env.SSH_AUTH_SOCK ? { agent: process.env.SSH_AUTH_SOCK } : {}),
      ...(sock ? { sock: sock as never } : {}),
      readyTimeout: opts.connectTimeoutSec * 1000,
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: hostKeyAlgorithms(known) as never },
      hostVerifier: (key: Buffer) => {
        const verdict = judgeHostKey(known, key);
        if (verdict.kind === 'known') return true;
        if (verdict.kind === 'unknown' && opts.acceptNewHostKeys) {
          toRecord = key;
          return true;
        }
        refusal = hostKeyProblem(target.name, `${ssh.host}:${ssh.port}`, knownFile, verdict);
        return false;
      },
    });
  // sshd drops connections before its banner when MaxStartups or MaxSessions is exceeded,
  // as many hosts connecting at once can cause: try again after a growing, jittered pause.
  for (let i = 0; ; i++) {
    try {
      await attempt();
      break;
    } catch (err) {
      client.dispose();
      client = new NodeSSH();
      if (refusal) throw refusal;
      if (i + 1 >= CONNECT_TRIES || !RETRYABLE.test((err as Error).message ?? '')) throw connectError(target, err, i + 1);
      await new Promise((r) => setTimeout(r, 250 * 2 ** i * (1 + Math.random() / 2)));
    }
  }
  if (toRecord) {
    await mkdir(dirname(knownFile), { recursive: true, mode: 0o700 });
    await appendFile(knownFile, knownHostsLine(ssh.host, ssh.port, toRecord), { mode: 0o600 });
  }
  return client;
}

const CONNECT_TRIES = 4;
const RETRYABLE = /ECONNRESET|Connection lost before handshake|kex_exchange_identification|socket hang up|EPIPE/i;

function connectError(target: Endpoint, err: unknown, tries = 1): ConnectError {
  const msg = `${(err as Error).message ?? String(err)}${tries > 1 ? ` (${tries} tries)` : ''}`;
  const where = `${target.ssh.user}@${target.ssh.host}:${target.ssh.port}`;
  let hint = 'Check the address, the port and that sshd runs; `ssh` to it by hand to compare.';
  if (/authentication methods failed|All configured authentication/i.test(msg)) {
    hint = `The server refused the key. Check ssh.user and ssh.identityFile (or the keys in ssh-agent) for ${target.name}.`;
  } else if (/passphrase/i.test(msg)) {
    hint = 'The identity file is encrypted: set PROVISION_SSH_PASSPHRASE, or run from a terminal to be asked.';
  } else if (/Timed out/i.test(msg)) {
    hint = 'No SSH answer in time: check the host is up and reachable on that port from here.';
  }
  return new ConnectError(target.name, `cannot connect to ${where}: ${msg}`, hint, { cause: err });
}

/**
 * Opens one session to a host, through its jump host when it has one. The host key is
 * checked against the inventory's known_hosts before anything is sent.
 */
export async function connect(name: string, ssh: SshSettings, opts: ConnectOptions): Promise<Session> {
  let jumpClient: NodeSSH | undefined;
  let sock: NodeJS.ReadableStream | undefined;
  if (ssh.jump) {
    const jumpSsh = opts.resolveJump?.(ssh.jump) ?? parseJump(ssh.jump, ssh);
    jumpClient = await connectOne({ name: `${name} (jump host ${ssh.jump})`, ssh: { ...jumpSsh, jump: undefined } }, opts);
    const conn = jumpClient.connection!;
    conn.on('error', () => undefined);
    try {
      sock = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
        conn.forwardOut('127.0.0.1', 0, ssh.host, ssh.port, (err, stream) => (err ? reject(err) : resolve(stream))),
      );
    } catch (err) {
      jumpClient.dispose();
      throw new ConnectError(name, `the jump host ${ssh.jump} could not reach ${ssh.host}:${ssh.port}: ${(err as Error).message}`,
        'Check the jump host allows TCP forwarding (AllowTcpForwarding) and reaches the host.', { cause: err });
    }
  }
  const client = await connectOne({ name, ssh }, opts, sock).catch((err) => {
    jumpClient?.dispose();
    throw err;
  });
  return new SshSession(name, client, ssh.user !== 'root', opts.commandTimeoutSec, async () => {
    jumpClient?.dispose();
  });
}
