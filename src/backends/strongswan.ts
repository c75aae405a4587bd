import { quote } from '../remote/shell.js';
import { confBlock, header, type Backend } from './types.js';

/**
 * strongswan-starter (ipsec.conf): IKEv2, no deprecated keywords (`pfs=` is one: PFS comes
 * from the DH groups in `esp=`). left is the local end, which starter expects. The first
 * esp proposal carries DH groups, so that rekeys use PFS as the seed asks; they include
 * curve25519 and modp2048, the groups libreswan's IKE SA ends up with, which a libreswan
 * `pfs=yes` peer reuses for CREATE_CHILD_SA (without them: NO_PROPOSAL_CHOSEN, seen in the
 * lab). Without `!` the defaults stay acceptable, and the first CHILD_SA (made in
 * IKE_AUTH, without DH) matches.
 */
export const strongswan: Backend = {
  id: 'strongswan',
  package: 'strongswan-starter',
  assumedVersion: '5.9.8',
  renderConn: (c) => {
    const lines = ['type=transport', 'authby=psk', `left=${c.local}`, `right=${c.peer}`, 'keyexchange=ikev2',
      'esp=aes256gcm16-curve25519-ecp256-modp2048,aes256gcm16'];
    if (c.role === 'initiator') lines.push('dpddelay=10s', 'dpdtimeout=30s', 'dpdaction=restart');
    lines.push(`auto=${c.auto}`);
    return header(c) + confBlock(c.name, lines);
  },
  renderSecret: (c, psk) => `${header(c)}${c.local} ${c.peer} : PSK ${psk}\n`,
  rereadSecrets: 'ipsec rereadsecrets',
  // starter re-reads ipsec.conf and re-adds (and routes or starts) only the conns that changed.
  reloadConns: () => 'ipsec update',
  up: (name) => `ipsec up ${quote(name)} >/dev/null 2>&1 &`,
  // `ipsec up` exits 0 even when authentication fails (5.9.8 in the lab): read what it says.
  // The old IKE SA goes first: starter has no command to reauthenticate in place.
  reauth: (name) => `ipsec down ${quote(name)} >/dev/null 2>&1 || true
out=$(timeout 40 ipsec up ${quote(name)} 2>&1)
printf '%s\\n' "$out" | grep -q 'established successfully' || { printf '%s\\n' "$out" | tail -n 3 >&2; exit 1; }`,
  afterRestart: () => '',
  // The files are gone by now; `ipsec update` (in reloadConns) forgets the conns, and these
  // take their SAs and trap policies down first.
  unloadConns: (names) => names.map((n) => `ipsec unroute ${quote(n)} >/dev/null 2>&1; ipsec down ${quote(n)} >/dev/null 2>&1`).join('\n'),
};
