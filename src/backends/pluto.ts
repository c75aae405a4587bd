import { quote } from '../core/shell.js';
import { major, type Commands, type ConnLoad, type Target } from './types.js';

/**
 * pluto's commands (openswan, libreswan). Up to 4.x they are `ipsec auto --VERB`; 5.x
 * deprecates `ipsec auto` (it warns) for `ipsec VERB` and moves `addconn --checkconfig` to
 * `ipsec checkconfig`.
 */
export function plutoCommands(t: Target, checkConfig?: string): Commands {
  const v5 = major(t.version) >= 5;
  const verb = (v: string): string => (v5 ? `ipsec ${v}` : `ipsec auto --${v}`);
  return {
    ...(checkConfig ? { checkConfig } : {}),
    rereadSecrets: verb('rereadsecrets'),
    /**
     * Replace each changed conn (its old SAs go with it) and route it unless it is `add`.
     * Routing the initiator too matters: until its SA is up, pluto would otherwise let its
     * packets to the peer leave in clear text, and those make an `auto=route` responder
     * start a second negotiation that crosses the initiator's.
     */
    reloadConns: (conns: readonly ConnLoad[]) => conns
      .map((c) => `${verb('replace')} ${quote(c.name)} >/dev/null` + (c.auto !== 'add' ? ` && ${verb('route')} ${quote(c.name)} >/dev/null` : ''))
      .join('\n'),
    up: (name) => `${v5 ? 'ipsec up --asynchronous' : 'ipsec auto --asynchronous --up'} ${quote(name)} >/dev/null`,
    /**
     * `--up` on an established conn only adds a Child SA to the IKE SA it has (libreswan
     * 4.10, even with reauth=yes; `--rekey-ike` is a CREATE_CHILD_SA that uses no key), so
     * the old IKE SA goes first. `--up` waits for the result: exit 0 once authenticated, 36
     * on AUTHENTICATION_FAILED (seen in the lab).
     */
    reauth: (name) => {
      const n = quote(name);
      return `${verb('down')} ${n} >/dev/null 2>&1 || true
if ! out=$(timeout 40 ${verb('up')} ${n} 2>&1); then printf '%s\\n' "$out" | tail -n 3 >&2; exit 1; fi`;
    },
    unloadConns: (names) => names.map((n) => `${verb('delete')} ${quote(n)} >/dev/null 2>&1 || true`).join('\n'),
    /** After a restart: route the `auto=start` conns at once, for the same reason. */
    afterRestart: (conns) => conns.filter((c) => c.auto === 'start').map((c) => `${verb('route')} ${quote(c.name)} >/dev/null 2>&1 || true`).join('\n'),
  };
}
