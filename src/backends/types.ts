import type { BackendId, ResponderMode } from '../inventory/types.js';

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
  /** Free text for the header comment: which pair, who initiates. */
  describe: string;
}

/** What a backend needs to know about the host it renders for. */
export interface Target {
  /** Upstream version, such as "4.10"; for keywords that changed between majors. */
  version: string;
}

/**
 * One IPsec implementation: its package and the dialect of its files. Data and pure
 * functions only; the planner and executor never branch on the backend's name.
 */
export interface Backend {
  id: BackendId;
  /** The apt package that provides it. */
  package: string;
  /** The version assumed when the host cannot be asked (offline plans). */
  assumedVersion: string;
  renderConn(conn: ConnSpec, target: Target): string;
  /** The secrets line for a conn: the IDs of both ends and the key. */
  renderSecret(conn: ConnSpec, psk: string): string;
  /** Shell that exits non-zero when the config (with every include) would be rejected. */
  checkConfig?: string;
  /** Shell that makes the running daemon read the secrets files again. */
  rereadSecrets: string;
  /** Shell that loads changed conns into a running daemon, each as its `auto=` says, without bringing them up. */
  reloadConns(conns: readonly ConnLoad[]): string;
  /** Shell that initiates a conn now, without waiting for it to finish. */
  up(name: string): string;
  /**
   * Shell that replaces a conn's SAs with a new IKE SA authenticated now, with the key the
   * daemon holds, and exits non-zero when the peer refuses it. Break-before-make: the old
   * SAs go first, and the conn's trap policy holds traffic (dropped, never clear) meanwhile.
   */
  reauth(name: string): string;
  /** Shell that takes down and forgets conns whose files were deleted. */
  unloadConns(names: readonly string[]): string;
  /** Shell run once the daemon answers after a restart; empty when there is nothing to do. */
  afterRestart(conns: readonly ConnLoad[]): string;
}

export interface ConnLoad {
  name: string;
  auto: ConnSpec['auto'];
}

export const MANAGED_MARK = '# managed by provision';

export function header(conn: ConnSpec): string {
  return `${MANAGED_MARK}: edits are overwritten. ${conn.describe}\n`;
}

export function major(version: string): number {
  const m = /^(\d+)/.exec(version);
  return m ? Number(m[1]) : 0;
}

export function confBlock(name: string, lines: readonly string[]): string {
  return `conn ${name}\n${lines.map((l) => `    ${l}\n`).join('')}`;
}
