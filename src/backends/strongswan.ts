import { quote } from '../core/shell.js';
import { confBlock, type Backend, type ConnLoad } from './types.js';

/**
 * strongswan-starter (ipsec.conf): IKEv2, no deprecated keywords (`pfs=` is one: PFS comes
 * from the DH groups in `esp=`). left is the local end, which starter expects.
 *
 * Both ends load their conn with `auto=route`, the initiator too, and the tool initiates it
 * explicitly: `auto=start` installs no trap policy, so a negotiation that fails (or a peer
 * that never answers) left the initiator sending in clear text (seen: a 5.9.1 initiator
 * whose 6.0.1 responder refused it). A routed conn keeps its kernel policy whatever IKE
 * does; traffic it catches starts a negotiation instead of leaving unencrypted.
 *
 * The first esp proposal carries DH groups, so that rekeys use PFS as the seed asks; they
 * include curve25519 and modp2048, the groups libreswan's IKE SA ends up with, which a
 * libreswan `pfs=yes` peer reuses for CREATE_CHILD_SA (without them: NO_PROPOSAL_CHOSEN,
 * seen in the lab). Without `!` the defaults stay acceptable, and the first CHILD_SA (made
 * in IKE_AUTH, without DH) matches.
 */
export const strongswan: Backend = {
  id: 'strongswan',
  package: 'strongswan-starter',
  packages: ['strongswan-starter', 'strongswan-charon'],
  assumedVersion: '5.9.8',
  speaks: 'ikev2',
  renderConn: (c) => {
    const lines = ['type=transport', 'authby=psk', `left=${c.local}`, `right=${c.peer}`, 'keyexchange=ikev2',
      `ike=${IKE_PROPOSALS}`, 'esp=aes256gcm16-curve25519-ecp256-modp2048,aes256gcm16'];
    if (c.role === 'initiator') lines.push('dpddelay=10s', 'dpdtimeout=30s', 'dpdaction=restart');
    lines.push(`auto=${c.auto === 'add' ? 'add' : 'route'}`);
    return confBlock(c.name, lines);
  },
  renderSecret: (c, psk) => `${c.local} ${c.peer} : PSK ${psk}\n`,
  commands: () => ({
    rereadSecrets: 'ipsec rereadsecrets',
    // starter re-reads ipsec.conf and re-adds (and routes) only the conns that changed.
    reloadConns: () => 'ipsec update',
    up: (name) => `ipsec up ${quote(name)} >/dev/null 2>&1 &`,
    // `ipsec up` exits 0 even when authentication fails (5.9.8 in the lab): read what it says.
    // The old IKE SA goes first: starter has no command to reauthenticate in place.
    reauth: (name) => `ipsec down ${quote(name)} >/dev/null 2>&1 || true
out=$(timeout 40 ipsec up ${quote(name)} 2>&1)
printf '%s\\n' "$out" | grep -q 'established successfully' || { printf '%s\\n' "$out" | tail -n 3 >&2; exit 1; }`,
    // The files are gone by now; `ipsec update` (in reloadConns) forgets the conns, and these
    // take their SAs and trap policies down first.
    unloadConns: (names) => names.map((n) => `ipsec unroute ${quote(n)} >/dev/null 2>&1; ipsec down ${quote(n)} >/dev/null 2>&1`).join('\n'),
    // The initiator's conns are routed, not started: once starter has loaded each, start it.
    afterRestart: (conns: readonly ConnLoad[]) => conns.filter((c) => c.auto === 'start').map((c) => {
      const n = quote(c.name);
      return `i=0; until ipsec statusall 2>/dev/null | grep -q "^ *${c.name}:"; do i=$((i+1)); [ $i -ge 20 ] && break; sleep 0.5; done; ipsec up ${n} >/dev/null 2>&1 &`;
    }).join('\n'),
  }),
  noCandidateHint: 'strongswan-starter is in Debian and Ubuntu main: check /etc/apt/sources.list on the host, or choose another backend.',
};

/**
 * IKE proposals every version in the support matrix accepts (strongSwan 5.9.1 to 6.0.1,
 * libreswan 4.3 to 5.2): AES-GCM with a SHA-2 PRF, then AES-CBC with SHA-2; curve25519,
 * ecp256 and modp2048. Written out rather than left to each version's defaults, which moved
 * with the crypto plugins (6.0 loads openssl instead of aes, sha2, gmp, curve25519).
 */
const IKE_PROPOSALS = 'aes256gcm16-prfsha256-curve25519-ecp256-modp2048,aes256-sha256-curve25519-ecp256-modp2048';
