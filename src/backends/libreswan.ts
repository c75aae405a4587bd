import { confBlock, header, major, type Backend } from './types.js';
import { plutoAfterRestart, plutoReauth, plutoReload, plutoUnload, plutoUp } from './pluto.js';

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
  // 4.x has addconn --checkconfig; 5.x moved it to `ipsec checkconfig`.
  checkConfig: 'if [ -x /usr/libexec/ipsec/addconn ]; then /usr/libexec/ipsec/addconn --checkconfig; else ipsec checkconfig; fi',
  rereadSecrets: 'ipsec auto --rereadsecrets',
  reloadConns: plutoReload,
  up: plutoUp,
  reauth: plutoReauth,
  afterRestart: plutoAfterRestart,
  unloadConns: plutoUnload,
};
