import { plutoCommands } from './pluto.js';
import { type Backend, confBlock } from './types.js';

/** openswan 2.6: the seed recipe exactly (IKEv1, which is all that openswan speaks by default). */
export const openswan: Backend = {
  id: 'openswan',
  package: 'openswan',
  packages: ['openswan'],
  assumedVersion: '2.6',
  speaks: 'ikev1',
  renderConn: (c) => confBlock(c.name, ['type=transport', 'authby=secret', `left=${c.left}`, `right=${c.right}`, 'pfs=yes', `auto=${c.auto}`]),
  renderSecret: (c, psk) => `${c.left} ${c.right} : PSK ${psk}\n`,
  commands: (t) => plutoCommands(t),
  noCandidateHint: 'openswan is gone from current Debian and Ubuntu: use `backend: auto` or libreswan.',
};
