import { createHash } from 'node:crypto';
import { SHARED_HEADER } from '../core/ownership.js';
import { ENSURE_RUN_DIR, RUN_DIR } from '../core/paths.js';
import { quote } from '../core/shell.js';
import { type Backend, type ConnLoad, confBlock, type ProbeSpec } from './types.js';

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
  // swanctl brings the vici plugin, which can force a re-authentication (stroke cannot).
  packages: ['strongswan-starter', 'strongswan-charon', 'strongswan-swanctl'],
  makeBeforeBreak: true,
  settings: {
    path: '/etc/strongswan.d/provision.conf',
    content: `${SHARED_HEADER}
# Re-authentication builds the new IKE and Child SAs before it deletes the old ones, so a key
# rotation loses no packet (the default from strongSwan 6.0 on). Daemon-wide: it applies to
# every conn of this charon, and to the periodic re-authentication of IKEv2 SAs too, which
# then overlaps instead of tearing down first. The peer must be strongSwan >= 5.3 or
# libreswan for the overlap to help; docs/rotation.md.
charon {
  make_before_break = yes
}
`,
  },
  // A pair's `auto=route` policy (host to host, every protocol) also catches the neighbour
  // advertisement a host sends its peer: the peer never learns its link-layer address, so IKE
  // answers never arrive and no SA ever forms (seen on the lab: "creating acquire job for
  // policy ...[ipv6-icmp/136]", the libreswan end's neighbour entry FAILED). libreswan
  // installs such bypass policies itself; charon does not, and strongSwan's docs ("IPv6 and
  // the Neighbor Discovery Protocol") give these conns. Only solicitations and
  // advertisements pass: pings and everything else between the peers stay under IPsec.
  // The protocol is a number: charon looks a name up in /etc/protocols, and where that file
  // is missing (a host without netbase) it skips the subnet and passes everything instead:
  // `src ::/0 dst ::/0` at priority 199999, above every pair (seen with 5.9.1; the recorded
  // policies are in test/fixtures/releases).
  ipv6Bypass: {
    path: '/etc/ipsec.d/provision-ipv6-nd.conf',
    conns: ['provision-nd-ns', 'provision-nd-na'],
    content: `${SHARED_HEADER}
# IPv6 neighbour discovery (ICMPv6, protocol 58: types 135, 136) passes in clear, as it must: without it a pair's
# policy catches the neighbour advertisements and the peers never reach each other.
conn provision-nd-ns
    type=passthrough
    left=%any
    right=%any
    leftsubnet=::/0[58/135]
    rightsubnet=::/0
    auto=route

conn provision-nd-na
    type=passthrough
    left=%any
    right=%any
    leftsubnet=::/0[58/136]
    rightsubnet=::/0
    auto=route
`,
  },
  assumedVersion: '5.9.8',
  speaks: 'ikev2',
  renderConn: (c) => {
    const lines = [
      'type=transport',
      'authby=psk',
      `left=${c.local}`,
      `right=${c.peer}`,
      'keyexchange=ikev2',
      `ike=${IKE_PROPOSALS}`,
      'esp=aes256gcm16-curve25519-ecp256-modp2048,aes256gcm16',
    ];
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
    // charon retries its own negotiations (and a second `ipsec up` would run beside one, asking
    // the peer for a second Child SA): only a conn with no IKE SA at all is started.
    upUnlessEstablished: (name) =>
      `ipsec status ${quote(name)} 2>/dev/null | grep -Eq '^ *${name.replace(/[.]/g, '\\.')}\\[[0-9]+\\]: (ESTABLISHED|CONNECTING)' || { ipsec up ${quote(name)} >/dev/null 2>&1 & }`,
    // Make-before-break through vici (stroke cannot force a re-authentication): the new IKE SA
    // authenticates with the key charon holds now, its Child SA is installed, then the old
    // ones go. Success is a newer IKE SA of that name, established; a refused key leaves the
    // old one up (and traffic on it).
    reauth: (name) => {
      const n = quote(name);
      return `ids() { swanctl --list-sas --ike ${n} 2>/dev/null | sed -n 's/^${name.replace(/[.]/g, '\\.')}: #\\([0-9]*\\), ESTABLISHED.*/\\1/p' | sort -n | tail -n 1; }
old=$(ids)
[ -n "$old" ] || { echo "${name} has no established IKE SA to re-authenticate" >&2; exit 1; }
swanctl --rekey --ike ${n} --reauth >/dev/null 2>&1 || { echo "swanctl could not start the re-authentication of ${name}" >&2; exit 1; }
i=0; while [ $i -lt 70 ]; do new=$(ids); if [ -n "$new" ] && [ "$new" -gt "$old" ]; then exit 0; fi; i=$((i+1)); sleep 0.5; done
echo "no new IKE SA for ${name} within 35 s: the peer did not accept the new key (the old SAs are kept)" >&2; exit 1`;
    },
    reloadSettings: 'pkill -HUP -x charon || true',
    // The files are gone by now; `ipsec update` (in reloadConns) forgets the conns, and these
    // take their SAs and trap policies down first.
    unloadConns: (names) => names.map((n) => `ipsec unroute ${quote(n)} >/dev/null 2>&1; ipsec down ${quote(n)} >/dev/null 2>&1`).join('\n'),
    // The initiator's conns are routed, not started: once starter has loaded each, start it.
    afterRestart: (conns: readonly ConnLoad[]) =>
      conns
        .filter((c) => c.auto === 'start')
        .map((c) => {
          const n = quote(c.name);
          return `i=0; until ipsec statusall 2>/dev/null | grep -q "^ *${c.name}:"; do i=$((i+1)); [ $i -ge 20 ] && break; sleep 0.5; done; ipsec up ${n} >/dev/null 2>&1 &`;
        })
        .join('\n'),
  }),
  probe: (p) => probeScript(p),
  // No: with strongswan-starter's default `uniqueids=yes`, charon takes a second IKE SA from
  // the same peer and IDs for a re-authentication and deletes the running one 10 s later
  // (measured with 6.0.1: the pair's SAs went and came back, 23 and 28 pings lost).
  probeRefusal: () => "it takes a probe for a re-authentication and deletes the pair's running IKE SA (uniqueids)",
  noCandidateHint: 'strongswan-starter is in Debian and Ubuntu main: check /etc/apt/sources.list on the host, or choose another backend.',
};

/**
 * The key probe: a conn of its own, loaded through vici for the probe only (a file in
 * /etc/swanctl/conf.d, then `swanctl --load-conns`, which loads the whole swanctl.conf as
 * `swanctl --load-all` does, and unloads vici conns it does not list), initiated without a
 * Child SA (`childless = force`, RFC 6023) with the pair's IDs, so both daemons look up the
 * very secrets line the pair's next authentication will use. charon finds the key in what
 * it read from ipsec.secrets. The probe IKE SA is deleted and the conn unloaded however the script ends, a signal included
 * (dash runs an EXIT trap on `exit` only); a lock keeps two runs from reloading the conns
 * under each other's probe, and the first to hold it removes the files a killed one left.
 */
function probeScript(p: ProbeSpec): string {
  // swanctl.conf reads a section name into 128 bytes; a pair's name can be 128 long.
  const conn = `provision-probe-${p.name.length <= 100 ? p.name : createHash('sha256').update(p.name).digest('hex').slice(0, 16)}`;
  const file = `/etc/swanctl/conf.d/${conn}.conf`;
  const body = `${SHARED_HEADER}
# A key probe of one rotation (docs/rotation.md): removed as soon as it is done.
connections {
  ${conn} {
    version = 2
    local_addrs = ${p.local}
    remote_addrs = ${p.peer}
    proposals = ${IKE_PROPOSALS}
    childless = force
    local {
      auth = psk
      id = ${p.local}
    }
    remote {
      auth = psk
      id = ${p.peer}
    }
  }
}
`;
  const [c, f] = [quote(conn), quote(file)];
  return `${ENSURE_RUN_DIR}
exec 9>${RUN_DIR}/probe.lock && flock -w 15 9 || { echo "another probe held ${RUN_DIR}/probe.lock for 15 s" >&2; exit 2; }
rm -f /etc/swanctl/conf.d/provision-probe-*.conf /etc/swanctl/conf.d/provision-probe-*.conf.tmp
cleanup() { swanctl --terminate --ike ${c} --timeout 5 >/dev/null 2>&1; rm -f ${f} ${f}.tmp; swanctl --load-conns >/dev/null 2>&1; }
trap cleanup EXIT
trap 'exit 2' HUP INT TERM
printf '%s' ${quote(body)} > ${f}.tmp && mv -f ${f}.tmp ${f} || { echo "could not write ${file}" >&2; exit 2; }
swanctl --load-conns >/dev/null 2>&1 || { echo "swanctl --load-conns failed: the probe was not loaded" >&2; exit 2; }
out=$(swanctl --initiate --ike ${c} --timeout 25 2>&1) && exit 0
why=$(printf '%s\n' "$out" | grep -E 'AUTHENTICATION_FAILED|MAC mismatched|no shared key' | head -n 3)
[ -n "$why" ] && { printf '%s\n' "$why" >&2; exit 1; }
printf '%s\n' "$out" | grep -v "^plugin '" | tail -n 3 >&2
exit 2`;
}

/**
 * IKE proposals every version in the support matrix accepts (strongSwan 5.9.1 to 6.0.1,
 * libreswan 4.3 to 5.2): AES-GCM with a SHA-2 PRF, then AES-CBC with SHA-2; curve25519,
 * ecp256 and modp2048. Written out rather than left to each version's defaults, which moved
 * with the crypto plugins (6.0 loads openssl instead of aes, sha2, gmp, curve25519).
 */
const IKE_PROPOSALS = 'aes256gcm16-prfsha256-curve25519-ecp256-modp2048,aes256-sha256-curve25519-ecp256-modp2048';
