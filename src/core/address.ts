import { isIP } from 'node:net';

/** Lower-case, compressed form, so that two spellings of one IPv6 address compare equal. */
export function normalizeAddress(address: string): string {
  if (!address.includes(':')) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address.toLowerCase();
  }
}

export function addressFamily(address: string): 4 | 6 | undefined {
  const f = isIP(address);
  return f === 4 || f === 6 ? f : undefined;
}

/**
 * Why an address cannot be an IPsec endpoint between two servers, or undefined when it can:
 * loopback, unspecified, link-local, multicast, reserved, and IPv4-mapped IPv6 (the kernel
 * would speak IPv4 to it, and the two ends would not agree on the pair's addresses).
 */
export function unusableEndpoint(address: string): string | undefined {
  const family = addressFamily(address);
  if (!family) return 'not an IP address';
  const n = normalizeAddress(address);
  if (family === 4) {
    const [a, b] = n.split('.').map(Number) as [number, number];
    if (a === 0) return 'unspecified';
    if (a === 127) return 'loopback';
    if (a === 169 && b === 254) return 'link-local';
    if (a >= 224 && a <= 239) return 'multicast';
    if (a >= 240) return 'reserved';
    return undefined;
  }
  if (n === '::') return 'unspecified';
  if (n === '::1') return 'loopback';
  if (/^::ffff:/.test(n)) return 'IPv4-mapped';
  if (/^fe[89ab][0-9a-f]?:/.test(n)) return 'link-local';
  if (n.startsWith('ff')) return 'multicast';
  return undefined;
}
