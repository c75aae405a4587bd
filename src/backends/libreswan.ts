import { libreswanDropStates, libreswanReauth, libreswanStates, plutoCommands } from './pluto.js';
import { atLeast, type Backend, confBlock, major } from './types.js';

/**
 * libreswan: the seed's conn, IKEv2 only, and dead-peer detection on the initiator so that
 * it re-initiates when either side restarts. IKEv2 is spelled `ikev2=insist` up to 4.x;
 * 5.x wants `keyexchange=ikev2`, which 4.x rejects as a fatal error. 5.x ignores
 * `dpdaction=` (listed obsolete: it always restarts a conn whose peer is dead), so it is not
 * written there.
 */
export const libreswan: Backend = {
  id: 'libreswan',
  package: 'libreswan',
  packages: ['libreswan'],
  assumedVersion: '4.10',
  speaks: 'ikev2',
  renderConn: (c, t) => {
    const v5 = major(t.version) >= 5;
    const lines = ['type=transport', 'authby=secret', `left=${c.left}`, `right=${c.right}`, 'pfs=yes', v5 ? 'keyexchange=ikev2' : 'ikev2=insist'];
    if (c.role === 'initiator') lines.push('dpddelay=10', 'dpdtimeout=30', ...(v5 ? [] : ['dpdaction=restart']));
    lines.push(`auto=${c.auto}`);
    return confBlock(c.name, lines);
  },
  renderSecret: (c, psk) => `${c.left} ${c.right} : PSK ${psk}\n`,
  // 4.x has addconn --checkconfig; 5.x moved it to `ipsec checkconfig`.
  commands: (t) => ({
    ...plutoCommands(t, major(t.version) >= 5 ? 'ipsec checkconfig' : '/usr/libexec/ipsec/addconn --checkconfig'),
    reauth: (name) => libreswanReauth(t, name),
    states: libreswanStates,
    dropStates: libreswanDropStates,
  }),
  // No probe of its own: 4.10 and 5.2 start an IKE SA without a Child SA only for labeled
  // IPsec, when they re-authenticate by replacing the IKE SA (which deletes the running one),
  // or under an IMPAIR test switch (ikev2_ike_sa_init.c, ikev2_replace.c).
  // From 4.7 it announces childless support (CHILDLESS_IKEV2_SUPPORTED, which a strongSwan
  // probe with `childless = force` waits for) and keeps the pair's running IKE SA beside the
  // probe's (4.3, Debian 11's, has neither). But 4.x, on a conn it must keep up (the
  // initiator's `auto=start`), takes the probe's deletion for the loss of its newest IKE SA
  // and "revives" the conn: a new Child SA on the running IKE SA, whose switch lost a packet
  // (measured with 4.10; revival.c). 5.x does not (measured with 5.2).
  probeRefusal: (version, role) =>
    major(version) >= 5 || (atLeast(version, 4, 7) && role === 'responder')
      ? undefined
      : atLeast(version, 4, 7)
        ? 'as the initiator, 4.x brings its conn up again when a probe ends, and a packet can be lost'
        : 'it answers an IKE SA without a Child SA from 4.7 on',
  noCandidateHint: 'libreswan is in Debian main and Ubuntu universe: check /etc/apt/sources.list on the host, or choose another backend.',
};
