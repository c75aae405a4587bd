import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A host to run a remote script on with sh, in a temp dir: its bin/ holds fake commands,
 * first on PATH, each of which logs "name args" to one file before it does its part.
 *
 * `isolated` runs go into a mount namespace of their own (unshare -m, private) where /etc
 * and /run are overlays over the machine's: reads see the machine's files and those planted
 * here, and everything written lands in this temp dir. /etc/ipsec.d there is this host's
 * own folder, without the machine's files. The namespace, and its mounts, end with the script.
 */
export class FakeHost {
  readonly dir = mkdtempSync(join(tmpdir(), 'fake-host-'));
  readonly bin = join(this.dir, 'bin');

  constructor() {
    mkdirSync(this.bin);
  }

  /** A fake command: logs its name and arguments, then runs `body`. */
  fake(name: string, body = 'exit 0'): this {
    writeFileSync(join(this.bin, name), `#!/bin/sh\nprintf '%s\\n' "${name} $*" >> ${this.dir}/calls\n${body}\n`, { mode: 0o755 });
    return this;
  }

  /** What the fakes were called with, in order. */
  calls(): string[] {
    const log = join(this.dir, 'calls');
    return existsSync(log) ? readFileSync(log, 'utf8').trimEnd().split('\n') : [];
  }

  /** Where `path` of the isolated host is kept here: what a script wrote there, or what is planted. */
  path(path: string): string {
    return path.startsWith('/etc/ipsec.d') ? join(this.dir, 'ipsec.d', path.slice('/etc/ipsec.d'.length)) : join(this.dir, 'root', path);
  }

  /** A file (or, with content undefined, a folder) of the isolated host; `ageMin` back-dates it. */
  plant(path: string, content: string | undefined, mode = 0o644, ageMin = 0): this {
    const p = this.path(path);
    if (content === undefined) mkdirSync(p, { recursive: true, mode });
    else {
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, content, { mode });
    }
    const t = Date.now() / 1000 - ageMin * 60;
    utimesSync(p, t, t);
    return this;
  }

  /** Hides a path of the machine from the isolated host: an overlay whiteout in the upper layer. */
  hide(path: string): this {
    mkdirSync(dirname(this.path(path)), { recursive: true });
    const r = spawnSync('mknod', [this.path(path), 'c', '0', '0']);
    if (r.status !== 0) throw new Error(`mknod failed: ${r.stderr}`);
    return this;
  }

  run(script: string, opts: { input?: string; env?: Record<string, string>; isolated?: boolean } = {}): Ran {
    const prelude = `set -e
T=$1
mkdir -p "$T/ipsec.d"
for d in /etc /run; do
  mkdir -p "$T/root$d" "$T/work$d"
  mount -t overlay fake-host -o "lowerdir=$d,upperdir=$T/root$d,workdir=$T/work$d" "$d"
done
mkdir -p /etc/ipsec.d && mount --bind "$T/ipsec.d" /etc/ipsec.d
exec sh -c "$2"`;
    const [cmd, args] = opts.isolated
      ? ['unshare', ['--mount', '--propagation', 'private', 'sh', '-c', prelude, 'sh', this.dir, script]]
      : ['sh', ['-c', script]];
    const r = spawnSync(cmd as string, args as string[], {
      encoding: 'utf8',
      input: opts.input ?? '',
      env: { PATH: `${this.bin}:/usr/bin:/bin`, ...opts.env },
      timeout: 20_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr + (r.error ? String(r.error) : '') };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `fn` on this host, which is removed afterwards. */
export function onHost<T>(host: FakeHost, fn: (h: FakeHost) => T): T {
  try {
    return fn(host);
  } finally {
    host.cleanup();
  }
}

/** Why isolated runs cannot happen here (they need root for the mount namespace), or undefined. */
export function isolationUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'a mount namespace with overlays needs root';
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs fake-host /mnt'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `unshare -m failed: ${r.stderr.trim() || r.error}`;
}

/** `describe` for isolated runs: skipped with the reason where they cannot run, but failing in CI (CI=true), as the lab does. */
export function describeIsolated(name: string, fn: () => void): void {
  const why = isolationUnavailable();
  if (!why) describe(name, fn);
  else if (process.env.CI)
    describe(name, () => {
      test('isolated runs can happen in CI', () => {
        throw new Error(why);
      });
    });
  else describe.skip(`${name} (skipped: ${why})`, fn);
}
