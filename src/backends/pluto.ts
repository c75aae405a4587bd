import { quote } from '../remote/shell.js';
import type { ConnLoad } from './types.js';

// openswan and libreswan share pluto's `ipsec auto` commands.

/**
 * Replace each changed conn (its old SAs go with it) and route it unless it is `add`.
 * Routing the initiator too matters: until its SA is up, pluto would otherwise let its
 * packets to the peer leave in clear text, and those make an `auto=route` responder start a
 * second negotiation that crosses the initiator's.
 */
export function plutoReload(conns: readonly ConnLoad[]): string {
  return conns
    .map((c) => {
      const n = quote(c.name);
      return `ipsec auto --replace ${n} >/dev/null` + (c.auto !== 'add' ? ` && ipsec auto --route ${n} >/dev/null` : '');
    })
    .join('\n');
}

export function plutoUnload(names: readonly string[]): string {
  return names.map((n) => `ipsec auto --delete ${quote(n)} >/dev/null 2>&1 || true`).join('\n');
}

/** After a restart: route the `auto=start` conns at once, for the same reason. */
export function plutoAfterRestart(conns: readonly ConnLoad[]): string {
  return conns.filter((c) => c.auto === 'start').map((c) => `ipsec auto --route ${quote(c.name)} >/dev/null 2>&1 || true`).join('\n');
}

export function plutoUp(name: string): string {
  return `ipsec auto --asynchronous --up ${quote(name)} >/dev/null`;
}
