// Test-side handle on the lab (test/lab/lab): bring it up or down, run commands on its
// servers from outside the tool, and decide whether lab tests can run here.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LAB_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'lab');
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// Jest runs two test files at once (jest.config.js): each worker gets a lab of its own (its
// own namespace and state folder; one shared cache, built before the workers start by
// test/lab/global-setup.mjs). The lab script reads the same variables.
const worker = Number(process.env.JEST_WORKER_ID ?? '1');
const suffix = worker > 1 ? `-${worker}` : '';
process.env.PROVISION_LAB_STATE ??= join(REPO, `.lab${suffix}`);
process.env.PROVISION_LAB_CACHE ??= '/var/cache/provision-lab';
process.env.PROVISION_LAB_NETNS ??= `provision-lab${suffix}`;
export const STATE = process.env.PROVISION_LAB_STATE;
export const CACHE = process.env.PROVISION_LAB_CACHE;
export const NETNS = process.env.PROVISION_LAB_NETNS;
/** The private key the lab's servers accept for root. */
export const IDENTITY = join(CACHE, 'id_ed25519');

/** Debian releases the lab can boot, and the major version each reports in /etc/debian_version. */
export const RELEASES = ['bullseye', 'bookworm', 'trixie'] as const;
export type Release = (typeof RELEASES)[number];
export const DEBIAN_MAJOR: Record<Release, number> = { bullseye: 11, bookworm: 12, trixie: 13 };
/** What a server can have installed at boot (from a cached snapshot), besides the base. */
export type Preinstall = 'none' | 'libreswan' | 'strongswan';

export interface LabOptions {
  /** One per server, repeated when shorter than the number of servers (default: bookworm). */
  releases?: readonly Release[];
  /** One per server, repeated likewise (default: none). */
  preinstall?: readonly Preinstall[];
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string, timeoutMs = 600_000): Result {
  // env: jest gives test code a copy of process.env, which a child does not inherit unless passed.
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: process.env });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/** Why lab tests cannot run here, or undefined when they can. */
function labUnavailable(): string | undefined {
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
    describe.skip(`${name} (skipped: ${why})`, fn);
  }
}

export function lab(...args: string[]): Result {
  return run(LAB_SCRIPT, args);
}

/** Boots n servers, replacing a running lab: `labUp(3, { releases: ['bullseye', 'bookworm', 'trixie'] })`. */
export function labUp(n: number, opts: LabOptions = {}): void {
  const args = ['up', String(n)];
  if (opts.releases?.length) args.push('--releases', opts.releases.join(','));
  if (opts.preinstall?.length) args.push('--preinstall', opts.preinstall.join(','));
  const r = lab(...args);
  if (r.code !== 0) throw new Error(`lab ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
}

/**
 * Puts one server back to a fresh state without touching the others: a new root from the
 * (cached) base, the same addresses and host keys (known_hosts stays valid), booted and
 * answering SSH. Optionally with another release or preinstalled backend.
 */
export function labReset(name: string, opts: { release?: Release; preinstall?: Preinstall } = {}): void {
  const args = ['reset', name];
  if (opts.release) args.push('--release', opts.release);
  if (opts.preinstall) args.push('--preinstall', opts.preinstall);
  const r = lab(...args);
  if (r.code !== 0) throw new Error(`lab ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
}

export function labDown(): void {
  const r = lab('down');
  if (r.code !== 0) throw new Error(`lab down failed (${r.code}):\n${r.stderr}`);
}

export const hostName = (i: number): string => `server-${String(i).padStart(2, '0')}`;
export const hostIp = (i: number): string => `10.77.0.${10 + i}`;
/** The server's IPv6 address (fd77::/64, lab namespace only): fd77::11 for server-01, written like its IPv4 byte. */
export const hostIp6 = (i: number): string => `fd77::${10 + i}`;
export const KNOWN_HOSTS = join(STATE, 'known_hosts');

/** Runs a shell command on a lab server as root, from outside the tool. */
export function onServer(name: string, command: string, input?: string, timeoutMs?: number): Result {
  return run(LAB_SCRIPT, ['ssh', name, command], input, timeoutMs);
}

/** Runs a program inside the lab's network namespace (where the servers' addresses live). */
export function inLab(args: string[], input?: string, timeoutMs?: number): Result {
  return run('ip', ['netns', 'exec', NETNS, ...args], input, timeoutMs);
}

/** A server's Debian release in the running lab. */
export function hostRelease(name: string): Release {
  return readFileSync(join(STATE, 'hosts', name, 'release'), 'utf8').trim() as Release;
}

/** What a server of the running lab booted with installed (none, libreswan, strongswan). */
export function hostPreinstall(name: string): Preinstall {
  return readFileSync(join(STATE, 'hosts', name, 'preinstall'), 'utf8').trim() as Preinstall;
}

/** Runs a command over SSH to any lab address (IPv4 or IPv6), with the lab's key and known_hosts. */
export function sshTo(address: string, command: string, input?: string, timeoutMs?: number): Result {
  return inLab(
    [
      'ssh',
      '-q',
      '-i',
      IDENTITY,
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=5',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${KNOWN_HOSTS}`,
      `root@${address}`,
      command,
    ],
    input,
    timeoutMs,
  );
}
