import { quote } from '../core/shell.js';
import type { Strays } from './pluto-states.js';
import { type Commands, type ConnLoad, major, type Target } from './types.js';

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
     * start a second negotiation that crosses the initiator's. One command per line: under
     * set -e, sh ignores a failure inside an && list that is not the script's last line.
     */
    reloadConns: (conns: readonly ConnLoad[]) =>
      conns
        .flatMap((c) => [`${verb('replace')} ${quote(c.name)} >/dev/null`, ...(c.auto !== 'add' ? [`${verb('route')} ${quote(c.name)} >/dev/null`] : [])])
        .join('\n'),
    up: (name) => `${v5 ? 'ipsec up --asynchronous' : 'ipsec auto --asynchronous --up'} ${quote(name)} >/dev/null`,
    // Only a conn with no state at all: taking down a negotiation under way left the two ends
    // with SAs out of step (seen once in five runs, libreswan 4.10 with strongSwan 5.9.8).
    upUnlessEstablished: (name) =>
      `ipsec whack --showstates 2>/dev/null | grep -qF ${quote(`"${name}":`)} || ` +
      `${v5 ? 'ipsec up --asynchronous' : 'ipsec auto --asynchronous --up'} ${quote(name)} >/dev/null`,
    /**
     * `--up` on an established conn only adds a Child SA to the IKE SA it has (libreswan
     * 4.10, even with reauth=yes; `--rekey-ike` is a CREATE_CHILD_SA that uses no key), so
     * the old IKE SA goes first. `--up` waits for the result: exit 0 once authenticated, 36
     * on AUTHENTICATION_FAILED (seen in the lab). openswan's; libreswan's is `libreswanReauth`.
     */
    reauth: (name) => {
      const n = quote(name);
      return `${verb('down')} ${n} >/dev/null 2>&1 || true
if ! out=$(timeout 40 ${verb('up')} ${n} 2>&1); then printf '%s\\n' "$out" | tail -n 3 >&2; exit 1; fi`;
    },
    unloadConns: (names) => names.map((n) => `${verb('delete')} ${quote(n)} >/dev/null 2>&1 || true`).join('\n'),
    /** After a restart: route the `auto=start` conns at once, for the same reason. */
    afterRestart: (conns) =>
      conns
        .filter((c) => c.auto === 'start')
        .map((c) => `${verb('route')} ${quote(c.name)} >/dev/null 2>&1 || true`)
        .join('\n'),
  };
}

/**
 * libreswan's re-authentication, break-before-make, proved by whichever end starts the new
 * IKE SA. Under traffic both ends do the moment the old one goes (each trap policy catches a
 * packet), so an `--up` that waits for its own negotiation can lose to the peer's and hang on
 * a Child SA request the peer never answers (seen: 4.3 with 5.2). So: down, `--up` only when
 * nothing started one, then wait for any established Child SA of the conn (the down took all
 * of them, so it is new, authenticated with the keys both ends hold now). A refusal shows
 * as AUTHENTICATION_FAILED in the daemon's journal; without a journal the 40 s bound decides.
 * `parseStates`/`strayStates` then clear what crossed negotiations leave behind.
 */
export function libreswanReauth(t: Target, name: string): string {
  const v5 = major(t.version) >= 5;
  const n = quote(name);
  const mine = quote(`"${name}"`);
  return `t=$(date +%s)
${v5 ? 'ipsec down' : 'ipsec auto --down'} ${n} >/dev/null 2>&1 || true
sleep 0.3
ipsec whack --showstates 2>/dev/null | grep -qF ${quote(`"${name}":`)} || ${v5 ? 'ipsec up --asynchronous' : 'ipsec auto --asynchronous --up'} ${n} >/dev/null 2>&1 || true
journal() { command -v journalctl >/dev/null 2>&1 && journalctl -q -u ipsec -S "@$t" -o cat 2>/dev/null | grep -F ${mine}; }
while [ $(($(date +%s) - t)) -lt 40 ]; do
  ipsec whack --showstates 2>/dev/null | grep -F ${quote(`"${name}":`)} | grep -Eq ' (STATE_V2_)?ESTABLISHED_CHILD_SA ' && exit 0
  journal | grep -q AUTHENTICATION_FAILED && { journal | grep AUTHENTICATION_FAILED | tail -n 3 >&2; exit 1; }
  sleep 0.5
done
{ echo ${quote(`no Child SA of ${name} came up within 40 s`)}; journal | tail -n 2; } >&2
exit 1`;
}

/** libreswan's states of one conn (no keys: serial numbers, state names and SPIs), for `parseStates`. */
export function libreswanStates(name: string): string {
  // A listing that cannot be read fails, so that it is never taken for an end without states.
  return `out=$(ipsec whack --showstates 2>&1) || { echo "ipsec whack --showstates failed: $(printf '%s\\n' "$out" | tail -n 1)" >&2; exit 1; }
printf '%s\\n' "$out" | grep -F ${quote(`"${name}"`)} || true`;
}

/**
 * Deletes stray states: their kernel SAs at once (libreswan 5.x keeps them until the peer
 * answers the delete, which it will not, for 60 s), then the states themselves, without
 * waiting for that answer.
 */
export function libreswanDropStates(strays: Strays): string {
  const sa = (x: string): string => {
    const [, spi, dst] = /^esp\.([0-9a-f]+)@([0-9a-fA-F.:]+)$/.exec(x) ?? [];
    return spi && dst ? `ip xfrm state delete dst ${quote(dst)} proto esp spi ${quote(`0x${spi}`)} 2>/dev/null || true` : '';
  };
  return [
    ...strays.sas.map(sa).filter(Boolean),
    ...strays.serials.map((s: number) => `ipsec whack --asynchronous --deletestate ${Math.trunc(s)} >/dev/null 2>&1 || true`),
  ].join('\n');
}
