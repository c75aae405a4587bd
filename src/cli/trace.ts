import { writeSync } from 'node:fs';
import type { Session } from '../remote/session.js';
import { openPrivateFile } from './private-file.js';

/** An open --trace file: records are appended in the order the commands end. */
export interface Trace {
  write(text: string): void;
}

/**
 * Opens the --trace file (0600, never through a symlink). It holds every script sent and
 * everything the hosts answered; what goes over stdin (the new keys on their way to a pair's
 * hosts) is never written to it. No key comes back from a host.
 */
export async function openTrace(path: string): Promise<Trace> {
  const fh = await openPrivateFile(path);
  // Written at once: the CLI may exit right after the last command.
  return { write: (text) => void writeSync(fh.fd, text) };
}

/** A session whose every command is recorded in `trace`, stdin left out. */
export function traced(session: Session, trace: Trace): Session {
  return {
    host: session.host,
    get commands() {
      return session.commands;
    },
    get connected() {
      return session.connected;
    },
    async run(script, opts = {}) {
      const started = Date.now();
      const r = await session.run(script, opts);
      const sec = ((Date.now() - started) / 1000).toFixed(1);
      trace.write(
        `=== ${session.host}: ${opts.step ?? 'command'} (exit ${r.code ?? 'none'}${r.timedOut ? ', timed out' : ''}, ${sec} s${opts.stdin !== undefined ? `, ${Buffer.byteLength(opts.stdin)} bytes of stdin not recorded` : ''})\n` +
          `--- script\n${script}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}\n`,
      );
      return r;
    },
    close: () => session.close(),
  };
}
