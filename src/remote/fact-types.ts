import type { Owner } from '../core/ownership.js';
import type { IncludeLine } from '../core/paths.js';
import type { KeyFact } from './secrets.js';

/** A file provision may manage, as found on the host. Only files with a header of ours are read. */
export interface FoundFile {
  path: string;
  mode: string;
  owner: Owner;
  content?: string;
}

export interface LoadedGuard {
  peers: string[];
  /** Packets the guard dropped since the table was loaded: leaving for peers, and arriving from them. */
  droppedOut: number;
  droppedIn: number;
}

/**
 * What one round trip learns about a host. No key leaves the host: the content of a secrets
 * file comes with its key masked (each character a '*', its 0s/0x prefix and '=' padding
 * kept, so its strength can be judged), and the key itself only as a MAC in `keys`.
 */
export interface Facts {
  os: string;
  init: 'systemd' | 'sysv';
  /** Installed packages of interest and their Debian versions. */
  installed: Map<string, string>;
  /** apt candidates, read while something of interest is missing; empty without package lists. */
  candidates: Map<string, string>;
  hasPackageLists: boolean;
  /** Upstream version from `ipsec --version`, e.g. "4.10"; undefined without ipsec. */
  ipsecVersion?: string;
  running: boolean;
  /** Include lines (from INCLUDES) that are missing. */
  missingIncludes: IncludeLine[];
  /** Include lines provision added (after its marker). */
  ourIncludes: IncludeLine[];
  files: Map<string, FoundFile>;
  /** Every conn the daemon's config defines (ipsec.conf and what it includes), with its file. */
  conns: { name: string; file: string }[];
  /** Established ESP SAs in the kernel, as "src dst" addresses (no SPI, no key). */
  sas: Set<string>;
  /** Staging folders a killed write left behind, and keep folders (WriteSet.keep) of a run that stopped, older than STALE_MINUTES. */
  staleStaging: string[];
  /** The address this SSH connection comes from, as the host sees it (SSH_CONNECTION), and sshd's port. */
  sshClient?: { address: string; port: number; serverPort: number };
  /** provision's nftables tables loaded now (the guard), by table name. */
  guards: Map<string, LoadedGuard>;
  /** Whether the guard's boot unit is enabled. */
  guardUnitEnabled: boolean;
  /** The key of each secrets file of ours, by path, as a MAC of the run's challenge. */
  keys: Map<string, KeyFact>;
}

/** A script's output cut at its `@@name` lines: the non-blank lines under each. */
export type Sections = ReadonlyMap<string, readonly string[]>;

/** One section of a script run on a host: `echo '@@name'`, then its shell. */
export interface Section {
  name: string;
  /** Shell run by sh with LC_ALL=C; it may print further sections of its own. */
  script(challenge: string): string;
}

/**
 * A section that reads facts: its shell, how its output becomes facts, what an offline plan
 * assumes instead, and what a saved plan's digest covers of them (nothing when absent).
 */
export interface Probe<K extends keyof Facts> extends Section {
  parse(s: Sections): Pick<Facts, K>;
  offline(): Pick<Facts, K>;
  digest?(f: Facts): unknown;
}
