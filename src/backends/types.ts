import type { BackendId, ResponderMode } from '../inventory/types.js';
import type { Strays } from './pluto-states.js';

/** A conn as one host sees it. `left`/`right` follow the pair as written, on both hosts. */
export interface ConnSpec {
  name: string;
  left: string;
  right: string;
  local: string;
  peer: string;
  role: 'initiator' | 'responder';
  /** `start` on the initiator; the responder's mode on the responder. */
  auto: 'start' | ResponderMode;
}

/** What a backend needs to know about the host it renders for. */
export interface Target {
  /** Upstream version, such as "4.10"; for keywords and verbs that changed between majors. */
  version: string;
}

/** What a key probe needs: the pair's conn name and the two ends' addresses, seen from the prober. */
export interface ProbeSpec {
  name: string;
  local: string;
  peer: string;
}

export interface ConnLoad {
  name: string;
  auto: ConnSpec['auto'];
}

/** Shell snippets that drive the daemon of one version. */
export interface Commands {
  /** Exits non-zero when the config (with every include) would be rejected. */
  checkConfig?: string;
  /** Makes the running daemon read the secrets files again. */
  rereadSecrets: string;
  /** Loads changed conns into a running daemon, each as its `auto=` says, without bringing them up. */
  reloadConns(conns: readonly ConnLoad[]): string;
  /** Initiates a conn now, without waiting for it to finish. */
  up(name: string): string;
  /**
   * Initiates a conn without waiting, unless it has an IKE SA, established or under way: the
   * daemon started its conns as it came up, possibly before the peer had loaded them, and one
   * that failed then has nothing left.
   */
  upUnlessEstablished(name: string): string;
  /**
   * Replaces a conn's SAs with a new IKE SA authenticated now, with the key the daemon
   * holds, and exits non-zero when the peer refuses it. Break-before-make: the old SAs go
   * first, and the conn's trap policy holds traffic (dropped, never clear) meanwhile.
   */
  reauth(name: string): string;
  /** Takes down and forgets conns whose files were deleted. */
  unloadConns(names: readonly string[]): string;
  /** Run once the daemon answers after a restart; empty when there is nothing to do. */
  afterRestart(conns: readonly ConnLoad[]): string;
  /** Makes the running daemon read its daemon-wide settings again (the backend's settings file). */
  reloadSettings?: string;
  /**
   * Lists a conn's states (no keys), for `parseStates`: where two ends that re-authenticate
   * break-before-make can cross negotiations and keep SAs the peer does not hold.
   */
  states?(name: string): string;
  /** Deletes the stray states (and their kernel SAs) `strayStates` found in what `states` listed. */
  dropStates?(strays: Strays): string;
}

/**
 * One IPsec implementation: its packages and the dialect of its files and commands, by
 * version. Data and pure functions only; nothing outside src/backends names a backend.
 */
export interface Backend {
  id: BackendId;
  /** The package people know it by, in messages. */
  package: string;
  /** What apt installs for it, by name (never a metapackage: Debian 13's `strongswan` changed meaning). */
  packages: readonly string[];
  /** The version assumed when the host cannot be asked (offline plans). */
  assumedVersion: string;
  /** The conn block (`conn NAME` and its indented keywords). */
  renderConn(conn: ConnSpec, target: Target): string;
  /** The secrets line for a conn: the IDs of both ends and the key. */
  renderSecret(conn: ConnSpec, psk: string): string;
  commands(target: Target): Commands;
  /** What to do when apt offers none of its packages. */
  noCandidateHint: string;
  /** Other backends it can be paired with; a pair across this line will not come up. */
  speaks: 'ikev1' | 'ikev2';
  /**
   * A daemon-wide settings file provision keeps, when the backend needs one: strongSwan's
   * make-before-break re-authentication (new SAs up before the old ones go).
   */
  settings?: { path: string; content: string };
  /**
   * Passthrough conns a host with an IPv6 pair needs (in a file of their own, shared by the
   * fleets), so that the pair's trap policy does not catch neighbour discovery with the peer.
   */
  ipv6Bypass?: { path: string; content: string; conns: readonly string[] };
  /** Whether its `reauth` builds the new SAs before deleting the old (no packet lost); such an end drives a rotation. */
  makeBeforeBreak?: boolean;
  /**
   * A script that proves the pair's key with a new IKE SA that carries no Child SA (RFC 6023),
   * beside the running one, which it leaves alone: exit 0 when both ends authenticated with
   * the key they hold, 1 when one refused it, 2 when the probe could not run.
   */
  probe?(p: ProbeSpec): string;
  /**
   * Why this version, in this role in the pair, does not answer such a probe while leaving the
   * pair's SAs as they were; undefined when it does.
   */
  probeRefusal?(version: string, role: ConnSpec['role']): string | undefined;
}

/** "4.10" is at least 4.7. */
export function atLeast(version: string, wantMajor: number, wantMinor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > wantMajor || (a === wantMajor && b >= wantMinor);
}

export function major(version: string): number {
  const m = /^(\d+)/.exec(version);
  return m ? Number(m[1]) : 0;
}

export function confBlock(name: string, lines: readonly string[]): string {
  return `conn ${name}\n${lines.map((l) => `    ${l}\n`).join('')}`;
}
