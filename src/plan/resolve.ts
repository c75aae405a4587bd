import { AUTO_ORDER, BACKENDS, type Backend } from '../backends/index.js';
import type { HostSpec } from '../inventory/types.js';
import type { Facts } from '../remote/facts.js';
import type { Install } from './types.js';

/** "1:4.10-2+deb12u1" → "4.10": the upstream part of a Debian version. */
function upstreamVersion(debian: string): string {
  return debian
    .replace(/^\d+:/, '')
    .replace(/-[^-]*$/, '')
    .replace(/[+~].*$/, '');
}

export type Resolution = { ok: true; backend: Backend; version: string; assumed: boolean; install?: Install } | { ok: false; problem: string; hint: string };

/**
 * Which backend a host gets, from what it has: an explicit choice is honoured; `auto` keeps
 * an installed implementation, else takes openswan if apt has it, else libreswan, else
 * strongswan-starter. When apt offers none of what is wanted (no package lists yet, or lists
 * older than the sources), the install runs apt-get update first and chooses then, as the
 * recipe's `apt-get update && apt-get install` does; until then the version is assumed.
 */
export function resolveBackend(host: HostSpec, facts: Facts): Resolution {
  const installed = AUTO_ORDER.filter((id) => facts.installed.has(BACKENDS[id].package));
  if (host.backend !== 'auto') {
    const wanted = BACKENDS[host.backend];
    const other = installed.find((x) => x !== host.backend);
    if (other && !installed.includes(host.backend)) {
      const o = BACKENDS[other];
      return {
        ok: false,
        problem: `${o.package} is installed but the inventory asks for ${wanted.package}; installing it would remove ${o.package} and every tunnel it carries`,
        hint: `Set \`ipsec: {backend: ${other}}\` for ${host.name}, or remove ${o.package} yourself first.`,
      };
    }
    return resolved(wanted, facts);
  }
  if (installed.length > 0) return resolved(BACKENDS[installed[0]!], facts);
  const available = AUTO_ORDER.find((id) => hasCandidates(BACKENDS[id], facts));
  if (available) return resolved(BACKENDS[available], facts);
  // Nothing offered yet: update, then take the first the lists offer.
  const assumed = BACKENDS.libreswan;
  return {
    ok: true,
    backend: assumed,
    version: assumed.assumedVersion,
    assumed: true,
    install: { packages: [...assumed.packages], aptUpdate: true, choose: AUTO_ORDER.map((id) => ({ backend: id, packages: [...BACKENDS[id].packages] })) },
  };
}

function hasCandidates(b: Backend, facts: Facts): boolean {
  return b.packages.every((p) => facts.installed.has(p) || facts.candidates.has(p));
}

function resolved(b: Backend, facts: Facts): Resolution {
  const debian = facts.installed.get(b.package) ?? facts.candidates.get(b.package);
  const version = facts.ipsecVersion && facts.installed.has(b.package) ? facts.ipsecVersion : debian ? upstreamVersion(debian) : b.assumedVersion;
  const missing = b.packages.filter((p) => !facts.installed.has(p));
  const install = missing.length ? { packages: missing, aptUpdate: !missing.every((p) => facts.candidates.has(p)) } : undefined;
  return { ok: true, backend: b, version, assumed: !debian && !facts.ipsecVersion, ...(install ? { install } : {}) };
}
