import { PROBES } from '../remote/fact-probes.js';
import type { Section } from '../remote/fact-types.js';
import { sectionsScript } from '../remote/facts.js';

/** What status reads beyond a run's facts: the daemon's SAs, and the kernel's IPsec policies (selectors and templates: no keys). */
const STATUS_SECTIONS: readonly Section[] = [
  {
    name: 'daemon',
    script: () =>
      "if ipsec --version 2>/dev/null | grep -qi strongswan; then ipsec statusall 2>/dev/null | grep -E '(ESTABLISHED|INSTALLED|bytes_i)'; else ipsec whack --trafficstatus 2>/dev/null; fi",
  },
  { name: 'policies', script: () => 'ip xfrm policy 2>/dev/null' },
];

/**
 * What `provision status` asks a host, in one command: its facts as a run reads them (keys
 * masked, compared by MACs of the fresh challenge: no key, nor a plain hash of one, leaves
 * the host), what the daemon says of its SAs (libreswan's traffic status, or strongSwan's
 * statusall), and the kernel's IPsec policies.
 */
export const statusScript = (challenge: string): string => sectionsScript([...PROBES, ...STATUS_SECTIONS], challenge);

export interface DaemonSa {
  /** Seconds since the Child SA was made (its last rekey), when the daemon says. */
  ageSec?: number;
  bytesIn?: number;
  bytesOut?: number;
}

/**
 * The daemon's view of each conn's current Child SA: libreswan's `whack --trafficstatus`
 * (add_time, inBytes, outBytes) or strongSwan's `statusall` (ESTABLISHED ... ago, bytes_i,
 * bytes_o).
 */
export function parseDaemon(lines: readonly string[], now: number): Map<string, DaemonSa> {
  const out = new Map<string, DaemonSa>();
  for (const line of lines) {
    const lib = /#\d+: "([^"]+)"(?:\[\d+\])?[^,]*, type=ESP, add_time=(\d+), inBytes=(\d+), outBytes=(\d+)/.exec(line);
    if (lib) {
      out.set(lib[1]!, { ageSec: Math.max(0, Math.round(now / 1000) - Number(lib[2])), bytesIn: Number(lib[3]), bytesOut: Number(lib[4]) });
      continue;
    }
    const est = /^\s*([^\s[{]+)\[\d+\]: ESTABLISHED (\d+) (second|minute|hour|day)s? ago/.exec(line);
    if (est) {
      const unit = { second: 1, minute: 60, hour: 3600, day: 86400 }[est[3] as 'second'];
      out.set(est[1]!, { ...out.get(est[1]!), ageSec: Number(est[2]) * unit });
      continue;
    }
    const bytes = /^\s*([^\s[{]+)\{\d+\}:.* (\d+) bytes_i.* (\d+) bytes_o/.exec(line);
    if (bytes) out.set(bytes[1]!, { ...out.get(bytes[1]!), bytesIn: Number(bytes[2]), bytesOut: Number(bytes[3]) });
  }
  return out;
}
