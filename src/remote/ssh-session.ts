import type { NodeSSH } from 'node-ssh';
import type { Client, ClientChannel } from 'ssh2';
import { wrap } from '../core/shell.js';
import { ConnectError } from './errors.js';
import type { ExecResult, Session } from './types.js';

/**
 * What a command may print that is kept: the facts of a host with 1,000 peers are under
 * 1 MiB. node-ssh kept everything, and a host printing without end took the whole run
 * down (a string past 512 MiB cannot be made); past the cap output is counted, not kept.
 */
export const OUTPUT_CAP = { stdout: 8 * 1024 * 1024, stderr: 1024 * 1024 } as const;

class Capture {
  private chunks: Buffer[] = [];
  private kept = 0;
  dropped = 0;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    const room = this.cap - this.kept;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.chunks.push(part);
      this.kept += part.length;
    }
    this.dropped += Math.max(0, chunk.length - Math.max(0, room));
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** A session over one SSH connection (node-ssh's client, ssh2's exec with bounded output). */
export class SshSession implements Session {
  commands = 0;
  private lost: Error | undefined;
  /** Resolves, with the error, when the connection drops, so a command under way fails at once. */
  private readonly dropped: Promise<Error>;
  private onDrop: (err: Error) => void = () => undefined;
  constructor(
    readonly host: string,
    private readonly ssh: NodeSSH,
    private readonly sudo: boolean,
    private readonly defaultTimeoutSec: number,
    private readonly onClose: () => void,
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

  get connected(): boolean {
    return !this.lost;
  }

  async run(script: string, opts: { stdin?: string; timeoutSec?: number } = {}): Promise<ExecResult> {
    if (this.lost) {
      throw new ConnectError(this.host, `the SSH connection was lost: ${this.lost.message}`, 'Check the host is up and re-run; the run is safe to repeat.');
    }
    const timeoutSec = opts.timeoutSec ?? this.defaultTimeoutSec;
    this.commands++;
    let channel: ClientChannel | undefined;
    let timer: NodeJS.Timeout | undefined;
    // The remote side is bounded by `timeout`; this is the backstop if the host stops answering.
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), (timeoutSec + 15) * 1000);
    });
    try {
      const exec = this.exec(wrap(script, { sudo: this.sudo, timeoutSec }), opts.stdin, (c) => (channel = c));
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
      // `timeout` exits 124 when it stopped the command, 137 when it had to kill it.
      return {
        code: r.code,
        stdout: r.stdout,
        stderr: r.stderr,
        timedOut: r.code === 124 || r.code === 137,
        ...(r.dropped.stdout || r.dropped.stderr ? { dropped: r.dropped } : {}),
      };
    } catch (err) {
      throw new ConnectError(
        this.host,
        `the SSH connection failed during a command: ${(err as Error).message}`,
        'Check the host is up and re-run; the run is safe to repeat.',
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  private exec(command: string, stdin: string | undefined, onChannel: (c: ClientChannel) => void) {
    const conn = this.ssh.connection as Client;
    return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; dropped: { stdout: number; stderr: number } }>(
      (resolve, reject) => {
        conn.exec(command, (err, ch) => {
          if (err) return reject(err);
          onChannel(ch);
          const out = new Capture(OUTPUT_CAP.stdout);
          const errs = new Capture(OUTPUT_CAP.stderr);
          let code: number | null = null;
          let signal: string | null = null;
          ch.on('data', (c: Buffer) => out.push(c));
          ch.stderr.on('data', (c: Buffer) => errs.push(c));
          ch.on('exit', (c: number | null, s?: string) => {
            code = c ?? null;
            signal = s ?? null;
          });
          ch.on('close', () => resolve({ code, signal, stdout: out.text(), stderr: errs.text(), dropped: { stdout: out.dropped, stderr: errs.dropped } }));
          ch.end(stdin ?? '');
        });
      },
    );
  }

  async close(): Promise<void> {
    this.ssh.dispose();
    this.onClose();
  }
}
