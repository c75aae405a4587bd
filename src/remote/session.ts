import { homedir } from 'node:os';
import { NodeSSH } from 'node-ssh';
import type { SshSettings } from '../inventory/types.js';
import { ConnectError, HostKeyError } from './errors.js';
import { type HostKeyVerdict, hostKeyAlgorithms, judgeHostKey } from './known-hosts.js';
import { KnownHostsStore } from './known-hosts-store.js';
import { SshSession } from './ssh-session.js';

import type { Session } from './types.js';

export type { ExecResult, Session } from './types.js';

export interface ConnectOptions {
  acceptNewHostKeys: boolean;
  connectTimeoutSec: number;
  commandTimeoutSec: number;
  /** Passphrases of encrypted identity files, by path. */
  passphrases?: ReadonlyMap<string, string>;
  /** Settings of a jump host named by `ssh.jump`, when it is an inventory host. */
  resolveJump?: (jump: string) => SshSettings;
  /** The run's known_hosts files; one per run, so that a new key is recorded once. */
  knownHosts?: KnownHostsStore;
  /** Open connections to jump hosts, shared by the hosts behind them. */
  jumps?: JumpCache;
}

export { OUTPUT_CAP } from './ssh-session.js';

export function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path;
}

/** Parses `ssh.jump` when it is not an inventory host: `[user@]host[:port]`. */
export function parseJump(jump: string, fallback: SshSettings): SshSettings {
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(jump);
  if (!m) return { ...fallback, host: jump, port: 22 };
  return { ...fallback, user: m[1] ?? fallback.user, host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] ? Number(m[3]) : 22, jump: undefined };
}

function hostKeyProblem(host: string, addr: string, knownFile: string, v: Exclude<HostKeyVerdict, { kind: 'known' }>): HostKeyError {
  switch (v.kind) {
    case 'unknown':
      return new HostKeyError(
        host,
        `host key of ${addr} is not in ${knownFile} (offered ${v.offered})`,
        `Check the fingerprint on the console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add it to ${knownFile}, or re-run with --accept-new-host-keys to record it.`,
      );
    case 'changed':
      return new HostKeyError(
        host,
        `host key of ${addr} has CHANGED: offered ${v.offered}, ${knownFile} has ${v.known.join(', ')}`,
        `This can be a reinstalled server or an attack. Verify the new key on the console; if it is right, remove the old line (ssh-keygen -R ${addr} -f ${knownFile}) and re-run.`,
      );
    case 'revoked':
      return new HostKeyError(
        host,
        `host key of ${addr} is marked @revoked in ${knownFile} (${v.offered})`,
        'The host presents a revoked key: do not trust it until it has a new key.',
      );
  }
}

interface Endpoint {
  name: string;
  ssh: SshSettings;
}

async function connectOne(target: Endpoint, opts: ConnectOptions, sock?: NodeJS.ReadableStream): Promise<NodeSSH> {
  const { ssh } = target;
  const store = opts.knownHosts ?? new KnownHostsStore();
  const knownFile = expandHome(ssh.knownHostsFile);
  const known = await store.keys(knownFile, ssh.host, ssh.port);
  let refusal: HostKeyError | undefined;
  let toRecord: Buffer | undefined;

  let client = new NodeSSH();
  const identityFile = ssh.identityFile ? expandHome(ssh.identityFile) : undefined;
  const passphrase = identityFile ? opts.passphrases?.get(identityFile) : undefined;
  const attempt = (): Promise<unknown> =>
    client.connect({
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
      // A stream through a jump host is used up by the first attempt.
      if (sock || i + 1 >= CONNECT_TRIES || !RETRYABLE.test((err as Error).message ?? '')) throw connectError(target, err, i + 1);
      await new Promise((r) => setTimeout(r, 250 * 2 ** i * (1 + Math.random() / 2)));
    }
  }
  if (toRecord) await store.record(knownFile, ssh.host, ssh.port, toRecord);
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
 * Connections to jump hosts, one per jump host however many hosts go through it; closed
 * when the last session using it closes.
 */
export class JumpCache {
  private readonly open = new Map<string, { client: Promise<NodeSSH>; users: number }>();

  async acquire(name: string, ssh: SshSettings, opts: ConnectOptions): Promise<{ client: NodeSSH; release: () => void }> {
    const key = `${ssh.user}@${ssh.host}:${ssh.port}`;
    let entry = this.open.get(key);
    if (!entry) {
      const client = connectOne({ name, ssh }, opts);
      entry = { client, users: 0 };
      this.open.set(key, entry);
      client.catch(() => this.open.delete(key));
      client.then(
        (c) => c.connection?.on('close', () => this.open.get(key)?.client === client && this.open.delete(key)),
        () => undefined,
      );
    }
    entry.users++;
    const e = entry;
    try {
      const client = await e.client;
      let released = false;
      return {
        client,
        release: () => {
          if (released) return;
          released = true;
          if (--e.users === 0 && this.open.get(key) === e) {
            this.open.delete(key);
            client.dispose();
          }
        },
      };
    } catch (err) {
      e.users--;
      throw err;
    }
  }

  /** Open jump connections now. */
  get size(): number {
    return this.open.size;
  }
}

/**
 * Opens one session to a host, through its jump host when it has one. The host key is
 * checked against known_hosts before anything is sent.
 */
export async function connect(name: string, ssh: SshSettings, opts: ConnectOptions): Promise<Session> {
  let release = (): void => undefined;
  let sock: NodeJS.ReadableStream | undefined;
  if (ssh.jump) {
    const jumpSsh = { ...(opts.resolveJump?.(ssh.jump) ?? parseJump(ssh.jump, ssh)), jump: undefined };
    const jumps = opts.jumps ?? new JumpCache();
    const jump = await jumps.acquire(`${name} (jump host ${ssh.jump})`, jumpSsh, opts);
    release = jump.release;
    const conn = jump.client.connection!;
    conn.on('error', () => undefined);
    try {
      sock = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
        conn.forwardOut('127.0.0.1', 0, ssh.host, ssh.port, (err, stream) => (err ? reject(err) : resolve(stream))),
      );
    } catch (err) {
      release();
      throw new ConnectError(
        name,
        `the jump host ${ssh.jump} could not reach ${ssh.host}:${ssh.port}: ${(err as Error).message}`,
        'Check the jump host allows TCP forwarding (AllowTcpForwarding) and reaches the host.',
        { cause: err },
      );
    }
  }
  const client = await connectOne({ name, ssh }, opts, sock).catch((err) => {
    release();
    throw err;
  });
  return new SshSession(name, client, ssh.user !== 'root', opts.commandTimeoutSec, release);
}
