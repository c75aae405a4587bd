import { quote } from '../remote/shell.js';
import type { ConnLoad } from './types.js';

// openswan and libreswan share pluto's `ipsec auto` commands.

/** Replace each changed conn (its old SAs go with it) and route it where auto says so. */
export function plutoReload(conns: readonly ConnLoad[]): string {
  return conns
    .map((c) => {
      const n = quote(c.name);
      return `ipsec auto --replace ${n} >/dev/null` + (c.auto === 'route' ? ` && ipsec auto --route ${n} >/dev/null` : '');
    })
    .join('\n');
}

export function plutoUp(name: string): string {
  return `ipsec auto --up ${quote(name)} --asynchronous >/dev/null`;
}
