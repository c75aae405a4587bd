// Test-side handle on the lab (test/lab/lab): bring it up or down, run commands on its
// servers from outside the tool, and decide whether lab tests can run here.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LAB_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'lab');
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const STATE = process.env.PROVISION_LAB_STATE ?? join(REPO, '.lab');
export const NETNS = process.env.PROVISION_LAB_NETNS ?? 'provision-lab';

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string, timeoutMs = 600_000): Result {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/** Why lab tests cannot run here, or undefined when they can. */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'lab tests need root (namespaces, taps, mounts)';
  for (const tool of ['/usr/bin/linux.uml', '/usr/sbin/debootstrap', '/usr/bin/dpkg-scanpackages']) {
    if (!existsSync(tool)) return `lab tests need ${tool}: apt-get install user-mode-linux debootstrap dpkg-dev`;
  }
  return undefined;
}

/**
 * `describe` for lab tests: skipped with a one-line reason where the lab cannot run, but in
 * CI (CI=true) a lab that cannot run fails the suite, since a skip there proves nothing.
 */
export function describeLab(name: string, fn: () => void): void {
  const why = labUnavailable();
  if (!why) {
    describe(name, fn);
  } else if (process.env.CI) {
    describe(name, () => {
      test('the lab can run in CI', () => {
        throw new Error(`lab tests cannot run in CI: ${why}`);
      });
    });
  } else {
    // eslint-disable-next-line jest/no-disabled-tests
    describe.skip(`${name} (skipped: ${why})`, fn);
  }
}

export function lab(...args: string[]): Result {
  return run(LAB_SCRIPT, args);
}

export function labUp(n: number): void {
  const r = lab('up', String(n));
  if (r.code !== 0) throw new Error(`lab up ${n} failed (${r.code}):\n${r.stderr}`);
}

export function labDown(): void {
  const r = lab('down');
  if (r.code !== 0) throw new Error(`lab down failed (${r.code}):\n${r.stderr}`);
}

export const hostName = (i: number): string => `server-${String(i).padStart(2, '0')}`;
export const hostIp = (i: number): string => `10.77.0.${10 + i}`;
export const INVENTORY = join(STATE, 'inventory.yaml');
export const KNOWN_HOSTS = join(STATE, 'known_hosts');

/** Runs a shell command on a lab server as root, from outside the tool. */
export function onServer(name: string, command: string, input?: string, timeoutMs?: number): Result {
  return run(LAB_SCRIPT, ['ssh', name, command], input, timeoutMs);
}

/** Runs a program inside the lab's network namespace (where the servers' addresses live). */
export function inLab(args: string[], input?: string, timeoutMs?: number): Result {
  return run('ip', ['netns', 'exec', NETNS, ...args], input, timeoutMs);
}

export function labCount(): number {
  return existsSync(join(STATE, 'count')) ? Number(readFileSync(join(STATE, 'count'), 'utf8')) : 0;
}
