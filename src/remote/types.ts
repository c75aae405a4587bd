// What a connection to a host is, apart from how it is made (session.ts) and run (ssh-session.ts).

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Bytes of output past the cap, counted and dropped. */
  dropped?: { stdout: number; stderr: number };
}

/**
 * A connection to one host, reused for every step. `run` takes a shell script and runs it
 * with sh as root (through `sudo -n` for other users), its stdin the given text: secrets
 * travel that way, never on a command line.
 */
export interface Session {
  readonly host: string;
  run(script: string, opts?: { stdin?: string; timeoutSec?: number; step?: string; id?: string }): Promise<ExecResult>;
  /** Remote commands run so far on this connection. */
  readonly commands: number;
  /** False once the connection dropped: the pool opens a new one for the next step. */
  readonly connected?: boolean;
  close(): Promise<void>;
}
