import { AUTO_ORDER, BACKENDS } from '../backends/index.js';
import type { BackendId, HostSpec } from '../inventory/types.js';
import type { Facts } from '../remote/facts.js';
import type { Resolved } from '../plan/plan.js';

/** "1:4.10-2+deb12u1" → "4.10": the upstream part of a Debian version. */
export function upstreamVersion(debian: string): string {
  return debian.replace(/^\d+:/, '').replace(/-[^-]*$/, '').replace(/[+~].*$/, '');
}

export type Resolution =
  | { ok: true; resolved: Resolved; install: boolean; needsAptUpdate: boolean }
  | { ok: false; problem: string; hint: string };

/**
 * Which backend a host gets, from what it has: an explicit choice is honoured; `auto` keeps
 * an installed implementation, else takes openswan if apt has it, else libreswan, else
 * strongswan-starter. Without package lists apt-get update must run first; until then the
 * choice is assumed (libreswan).
 */
export function resolveBackend(host: HostSpec, facts: Facts): Resolution {
  const installed = AUTO_ORDER.filter((id) => facts.installed.has(BACKENDS[id].package));
  let id: BackendId;
  if (host.backend !== 'auto') {
    id = host.backend;
    const other = installed.find((x) => x !== id);
    if (other && !installed.includes(id)) {
      return {
        ok: false,
        problem: `${BACKENDS[other].package} is installed but the inventory asks for ${BACKENDS[id].package}; installing it would remove ${BACKENDS[other].package} and every tunnel it carries`,
        hint: `Set \`ipsec: {backend: ${other}}\` for ${host.name}, or remove ${BACKENDS[other].package} yourself first.`,
      };
    }
  } else if (installed.length > 0) {
    id = installed[0]!;
  } else {
    const available = AUTO_ORDER.find((x) => facts.candidates.has(BACKENDS[x].package));
    if (!available && facts.hasPackageLists) {
      return {
        ok: false,
        problem: 'apt has no candidate for openswan, libreswan or strongswan-starter',
        hint: 'Check /etc/apt/sources.list on the host (libreswan is in Debian main and Ubuntu universe).',
      };
    }
    id = available ?? 'libreswan';
  }
  const backend = BACKENDS[id];
  if (!facts.installed.has(backend.package) && facts.hasPackageLists && !facts.candidates.has(backend.package)) {
    return {
      ok: false,
      problem: `apt has no candidate for ${backend.package}`,
      hint: host.backend === 'openswan'
        ? 'openswan is gone from current Debian and Ubuntu: use `backend: auto` or libreswan.'
        : `Check /etc/apt/sources.list on ${host.name}, or choose another backend.`,
    };
  }
  const debianVersion = facts.installed.get(backend.package) ?? facts.candidates.get(backend.package);
  const version = facts.ipsecVersion && facts.installed.has(backend.package)
    ? facts.ipsecVersion
    : debianVersion ? upstreamVersion(debianVersion) : backend.assumedVersion;
  const install = !facts.installed.has(backend.package);
  const needsAptUpdate = install && !facts.candidates.has(backend.package);
  return { ok: true, resolved: { backend: id, version, assumed: !debianVersion && !facts.ipsecVersion }, install, needsAptUpdate };
}
