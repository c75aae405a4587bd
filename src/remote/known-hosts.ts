import { createHash, createHmac } from 'node:crypto';

/** One usable line of a known_hosts file. */
export interface KnownKey {
  type: string;
  /** The key blob, as the server sends it. */
  blob: Buffer;
  revoked: boolean;
}

/**
 * The name OpenSSH looks a host up by: `host`, or `[host]:port` off port 22, lower-cased
 * (ssh lower-cases the host name before it looks it up, and hashes that).
 */
function lookupName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function matchesPattern(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  // Plain patterns compare without case, as OpenSSH's match_hostname does.
  const p = pattern.toLowerCase();
  if (p.includes('*') || p.includes('?')) {
    const re = new RegExp(
      `^${p
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    return re.test(name);
  }
  return p === name;
}

/**
 * The keys known_hosts holds for a host: plain and hashed names, `[host]:port`, wildcards
 * and negations, and `@revoked` markers. `@cert-authority` lines are not supported and are
 * skipped (such a host shows as unknown).
 */
export function keysFor(knownHosts: string, host: string, port: number): KnownKey[] {
  const name = lookupName(host, port);
  const keys: KnownKey[] = [];
  for (const raw of knownHosts.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]?.startsWith('@')) {
      const marker = fields.shift();
      if (marker === '@cert-authority') continue;
      revoked = marker === '@revoked';
    }
    const [patterns, type, b64] = fields;
    if (!patterns || !type || !b64) continue;
    let hit = false;
    let negated = false;
    for (const p of patterns.split(',')) {
      if (p.startsWith('!')) {
        if (matchesPattern(p.slice(1), name)) negated = true;
      } else if (matchesPattern(p, name)) {
        hit = true;
      }
    }
    if (hit && !negated) keys.push({ type, blob: Buffer.from(b64, 'base64'), revoked });
  }
  return keys;
}

/** The key type named inside a key blob (its first SSH string). */
export function blobType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** As `ssh-keygen -l` prints it: SHA256:<base64 without padding>. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export type HostKeyVerdict =
  | { kind: 'known' }
  | { kind: 'unknown'; offered: string }
  | { kind: 'changed'; offered: string; known: string[] }
  | { kind: 'revoked'; offered: string };

export function judgeHostKey(known: KnownKey[], offered: Buffer): HostKeyVerdict {
  const fp = fingerprint(offered);
  if (known.some((k) => k.revoked && k.blob.equals(offered))) return { kind: 'revoked', offered: fp };
  const usable = known.filter((k) => !k.revoked);
  if (usable.some((k) => k.blob.equals(offered))) return { kind: 'known' };
  if (usable.length === 0) return { kind: 'unknown', offered: fp };
  return { kind: 'changed', offered: fp, known: usable.map((k) => `${k.type} ${fingerprint(k.blob)}`) };
}

/** The host-key algorithms to offer, those already known for the host first, as OpenSSH does. */
export function hostKeyAlgorithms(known: KnownKey[]): string[] {
  const all = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  const knownTypes = new Set(known.filter((k) => !k.revoked).map((k) => k.type));
  const forType = (alg: string): string => (alg.startsWith('rsa-sha2') ? 'ssh-rsa' : alg);
  const preferred = all.filter((a) => knownTypes.has(forType(a)));
  return preferred.length ? preferred : all;
}

/** The line `--accept-new-host-keys` appends. */
export function knownHostsLine(host: string, port: number, blob: Buffer): string {
  return `${lookupName(host, port)} ${blobType(blob)} ${blob.toString('base64')}\n`;
}
