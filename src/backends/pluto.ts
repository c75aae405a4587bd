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

/**
 * `--up` on an established conn only adds a Child SA to the IKE SA it has (libreswan 4.10,
 * even with reauth=yes; `--rekey-ike` is a CREATE_CHILD_SA that uses no key), so the old IKE
 * SA goes first. `--up` waits for the result: exit 0 once authenticated, 36 on
 * AUTHENTICATION_FAILED (seen in the lab).
 */
export function plutoReauth(name: string): string {
  const n = quote(name);
  return `ipsec auto --down ${n} >/dev/null 2>&1 || true
if ! out=$(timeout 40 ipsec auto --up ${n} 2>&1); then printf '%s\\n' "$out" | tail -n 3 >&2; exit 1; fi`;
}
