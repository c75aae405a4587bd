import { confBlock, header, major, type Backend } from './types.js';

/**
 * libreswan: the seed's conn, IKEv2 only, and dead-peer detection on the initiator so that
 * it re-initiates when either side restarts. IKEv2 is spelled `ikev2=insist` up to 4.x;
 * 5.x wants `keyexchange=ikev2`, which 4.x rejects as a fatal error.
 */
export const libreswan: Backend = {
  id: 'libreswan',
  package: 'libreswan',
  assumedVersion: '4.10',
  renderConn: (c, t) => {
    const v5 = major(t.version) >= 5;
    const lines = ['type=transport', 'authby=secret', `left=${c.left}`, `right=${c.right}`, 'pfs=yes',
      v5 ? 'keyexchange=ikev2' : 'ikev2=insist'];
    if (c.role === 'initiator') lines.push('dpddelay=10', 'dpdtimeout=30', 'dpdaction=restart');
    lines.push(`auto=${c.auto}`);
    return header(c) + confBlock(c.name, lines);
  },
  renderSecret: (c, psk) => `${header(c)}${c.left} ${c.right} : PSK ${psk}\n`,
};
