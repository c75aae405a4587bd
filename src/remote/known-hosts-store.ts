import { chmod, mkdir, open, readFile, realpath, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type KnownKey, keysFor, knownHostsLine } from './known-hosts.js';

/** Where OpenSSH keeps the keys every user trusts. */
const GLOBAL_KNOWN_HOSTS = '/etc/ssh/ssh_known_hosts';

/**
 * The known_hosts files of one run, as OpenSSH reads them: the user's file (the
 * inventory's `knownHostsFile`) and the system-wide one. Keys recorded with
 * --accept-new-host-keys are written once per run even when many hosts share them (a jump
 * host), each on a line of its own, and the file is replaced atomically.
 */
export class KnownHostsStore {
  private readonly cache = new Map<string, Promise<string>>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly recorded = new Set<string>();

  constructor(private readonly globalFile: string = GLOBAL_KNOWN_HOSTS) {}

  private read(file: string): Promise<string> {
    let text = this.cache.get(file);
    if (!text) {
      text = readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return '';
        throw err;
      });
      this.cache.set(file, text);
    }
    return text;
  }

  /** The keys either file holds for the host, the user's first. */
  async keys(userFile: string, host: string, port: number): Promise<KnownKey[]> {
    const [mine, global] = await Promise.all([this.read(userFile), this.read(this.globalFile)]);
    return [...keysFor(mine, host, port), ...keysFor(global, host, port)];
  }

  /** Appends the line for a new key to the user's file, unless this run already did. */
  record(userFile: string, host: string, port: number, blob: Buffer): Promise<void> {
    const line = knownHostsLine(host, port, blob);
    const key = `${userFile}\n${line}`;
    if (this.recorded.has(key)) return Promise.resolve();
    this.recorded.add(key);
    const next = this.queue.then(() => appendLine(userFile, line));
    this.queue = next.catch(() => undefined);
    this.cache.delete(userFile);
    return next;
  }
}

/** Adds a line to a file through a temporary copy renamed over it: readers see all or nothing. */
async function appendLine(given: string, line: string): Promise<void> {
  await mkdir(dirname(given), { recursive: true, mode: 0o700 });
  // A symlinked known_hosts stays a symlink: the file it points to is replaced.
  const file = await realpath(given).catch(() => given);
  let before = '';
  let mode = 0o600;
  try {
    before = await readFile(file, 'utf8');
    mode = (await stat(file)).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (before.split('\n').includes(line.trimEnd())) return;
  const text = before + (before && !before.endsWith('\n') ? '\n' : '') + line;
  const tmp = join(dirname(file), `.${Date.now()}.${process.pid}.known_hosts.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(tmp, mode);
  await rename(tmp, file);
}
