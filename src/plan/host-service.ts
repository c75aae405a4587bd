import type { Facts } from '../remote/facts.js';
import { type HostInput, inRun } from './host-input.js';
import type { Install, ServiceAction } from './types.js';

/** nftables joins the install when the guard needs it and the host lacks it. */
export function withNft(install: Install | undefined, needsNft: boolean, f: Facts): Install | undefined {
  if (!needsNft) return install;
  const aptUpdate = !f.candidates.has('nftables');
  if (!install) return { packages: ['nftables'], aptUpdate };
  return {
    ...install,
    packages: [...install.packages, 'nftables'],
    aptUpdate: install.aptUpdate || aptUpdate,
    ...(install.choose ? { choose: install.choose.map((c) => ({ ...c, packages: [...c.packages, 'nftables'] })) } : {}),
  };
}

/** What the host's IKE daemon does after the files are written (restart, reload or nothing), and why. */
export function service(input: HostInput, includes: boolean, changed: boolean): { service: ServiceAction; serviceReason: string } {
  const f = input.facts;
  if (inRun(input).length === 0) {
    return changed && f.running
      ? { service: 'reload', serviceReason: 'retired conns are taken down' }
      : { service: 'none', serviceReason: input.conns.length ? 'none of its pairs is in this run' : 'no pairs on this host' };
  }
  if (input.install?.packages.some((p) => input.backend.packages.includes(p))) {
    return { service: 'restart', serviceReason: `${input.backend.package} is installed by this run` };
  }
  if (includes) return { service: 'restart', serviceReason: 'include lines were added' };
  if (!f.running) return { service: 'restart', serviceReason: 'ipsec is not running' };
  if (changed) return { service: 'reload', serviceReason: 'only what changed; other tunnels stay up' };
  return { service: 'none', serviceReason: 'nothing changed' };
}
