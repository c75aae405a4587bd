import type { z } from 'zod';
import { addressFamily, unusableEndpoint } from '../core/address.js';
import { nearest, type Report, shown } from './issues.js';
import type { RawSsh } from './schema.js';

/** Host names become parts of file names and conn names: keep them to a safe alphabet. */
export const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** Conn names are file names under /etc/ipsec.d and tokens in ipsec.conf. */
export const CONN_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
/** A fleet's name is written into file headers and nftables table names. */
export const FLEET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/;

/** A DNS name or an IP address for SSH: no spaces, controls, or a leading dash. */
const SSH_HOST = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$/;
/** As useradd allows, without the odd corners (a trailing $ or a leading dash). */
const SSH_USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;
// eslint-disable-next-line no-control-regex
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function checkSshHost(host: string, path: readonly PropertyKey[], report: Report): void {
  if (addressFamily(host) || SSH_HOST.test(host)) return;
  report(
    path,
    `ssh.host ${shown(host)} is not a host name or an IP address`,
    'Write a DNS name (letters, digits, dot, dash) or an IP address, without spaces, a user (use ssh.user) or a port (use ssh.port).',
  );
}

function checkSshUser(user: string, path: readonly PropertyKey[], report: Report): void {
  if (SSH_USER.test(user)) return;
  report(
    path,
    `ssh.user ${shown(user)} is not a user name`,
    'A user name has letters, digits, dot, dash and underscore, does not start with a dash, and is at most 32 characters.',
  );
}

function checkPort(port: number | undefined, path: readonly PropertyKey[], report: Report): void {
  if (port !== undefined && (port < 1 || port > 65535)) {
    report(path, `port ${port} is out of range`, 'An SSH port is between 1 and 65535; the default is 22.');
  }
}

function checkPath(what: string, value: string, path: readonly PropertyKey[], report: Report): void {
  if (CONTROL.test(value)) {
    report(path, `${what} ${shown(value)} holds a control character`, 'Write the path on one line, without control characters.');
  } else if (/^~[^/]/.test(value)) {
    report(path, `${what} ${shown(value)}: only ~/ (your own home) is expanded`, 'Write the full path, or one starting with ~/.');
  }
}

/** `ssh.jump`: an inventory host, or `[user@]host[:port]` (an IPv6 address in brackets). */
function checkJump(jump: string, path: readonly PropertyKey[], hosts: ReadonlySet<string>, report: Report): void {
  if (hosts.has(jump)) return;
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:@[\]]+)(?::(\d+))?$/.exec(jump);
  const host = m?.[2]?.replace(/^\[|\]$/g, '');
  const bad =
    !m ||
    (m[1] !== undefined && !SSH_USER.test(m[1])) ||
    !host ||
    !(addressFamily(host) || SSH_HOST.test(host)) ||
    (m[3] !== undefined && (Number(m[3]) < 1 || Number(m[3]) > 65535));
  if (bad) {
    report(
      path,
      `ssh.jump ${shown(jump)} is neither a host of this inventory nor user@host:port`,
      'Name a host under `hosts:`, or write `[user@]host[:port]` (an IPv6 address in brackets).',
    );
  }
}

export function checkSsh(ssh: RawSsh, path: readonly PropertyKey[], hosts: ReadonlySet<string>, report: Report): void {
  if (ssh.host !== undefined) checkSshHost(ssh.host, [...path, 'host'], report);
  if (ssh.user !== undefined) checkSshUser(ssh.user, [...path, 'user'], report);
  checkPort(ssh.port, [...path, 'port'], report);
  if (ssh.identityFile !== undefined) checkPath('ssh.identityFile', ssh.identityFile, [...path, 'identityFile'], report);
  if (ssh.knownHostsFile !== undefined) checkPath('ssh.knownHostsFile', ssh.knownHostsFile, [...path, 'knownHostsFile'], report);
  if (ssh.jump !== undefined) checkJump(ssh.jump, [...path, 'jump'], hosts, report);
  if (ssh.config !== undefined) checkPath('ssh.config', ssh.config, [...path, 'config'], report);
}

/** The address's family when it can be an IPsec endpoint; reports why not otherwise. */
export function checkAddress(address: string, path: readonly PropertyKey[], report: Report): 4 | 6 | undefined {
  const family = addressFamily(address);
  if (!family) {
    let hint = 'Write an IPv4 or IPv6 address, such as 192.0.2.10 or 2001:db8::10.';
    if (/\/\d+$/.test(address)) hint = 'Write the address without a prefix length (drop the /NN).';
    else if (/[a-z]/i.test(address) && !address.includes(':')) {
      hint = 'IPsec peers are matched by IP address: put the IP in `address:` and the DNS name in `ssh.host:`.';
    }
    report(path, `${shown(address)} is not an IP address`, hint);
    return undefined;
  }
  const why = unusableEndpoint(address);
  if (why) {
    report(
      path,
      `${address} cannot be an IPsec endpoint: it is ${why === 'IPv4-mapped' ? 'an IPv4-mapped IPv6 address' : `a ${why} address`}`,
      why === 'IPv4-mapped' ? 'Write the IPv4 address itself (without ::ffff:).' : "Use the address the host's peers reach it on.",
    );
    return undefined;
  }
  return family;
}

/** Reads one section of the inventory against its schema, reporting what does not fit. */
export type Section = <T>(schema: z.ZodType<T>, value: unknown, path: readonly PropertyKey[]) => T | undefined;

export function checkHostRef(name: string, path: readonly PropertyKey[], names: ReadonlySet<string>, report: Report): void {
  if (names.has(name)) return;
  const near = nearest(name, [...names]);
  report(
    path,
    `unknown host ${shown(name)}`,
    near ? `Did you mean ${near}? Hosts must be defined under \`hosts:\`.` : 'Define it under `hosts:` first, or fix the name.',
  );
}
