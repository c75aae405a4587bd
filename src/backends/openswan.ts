import { confBlock, header, type Backend } from './types.js';
import { plutoAfterRestart, plutoReauth, plutoReload, plutoUnload, plutoUp } from './pluto.js';

/** openswan 2.6: the seed recipe exactly (IKEv1, which is all that openswan speaks by default). */
export const openswan: Backend = {
  id: 'openswan',
  package: 'openswan',
  assumedVersion: '2.6',
  renderConn: (c) =>
    header(c) +
    confBlock(c.name, ['type=transport', 'authby=secret', `left=${c.left}`, `right=${c.right}`, 'pfs=yes', `auto=${c.auto}`]),
  renderSecret: (c, psk) => `${header(c)}${c.left} ${c.right} : PSK ${psk}\n`,
  rereadSecrets: 'ipsec auto --rereadsecrets',
  reloadConns: plutoReload,
  up: plutoUp,
  reauth: plutoReauth,
  afterRestart: plutoAfterRestart,
  unloadConns: plutoUnload,
};
