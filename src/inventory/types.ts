import type { Position } from './yaml.js';

export const BACKEND_CHOICES = ['auto', 'openswan', 'libreswan', 'strongswan'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendId = Exclude<BackendChoice, 'auto'>;

/** How the responder of a pair loads its conn: `route` fails closed, `add` is the seed's. */
export type ResponderMode = 'route' | 'add';

export interface SshSettings {
  /** Management address or name to connect to; the IPsec address when not given. */
  host: string;
  port: number;
  user: string;
  identityFile?: string;
  knownHostsFile: string;
  jump?: string;
  /** From an OpenSSH config's `StrictHostKeyChecking accept-new`: record this host's key when unknown. */
  acceptNew?: boolean;
}

export interface HostSpec {
  name: string;
  /** The IPsec endpoint. */
  address: string;
  family: 4 | 6;
  ssh: SshSettings;
  /** The SSH settings the inventory gives itself (host, group, defaults), before an ssh config and built-in defaults. */
  sshSet: Partial<SshSettings>;
  backend: BackendChoice;
  /** Whether the host keeps the fail-closed guard (an nftables table of provision's). */
  guard: boolean;
  /** Groups the host is in, as the inventory lists them. */
  groups: string[];
  at: Position;
}

/** One pair after pairs and meshes are merged: who initiates, and the conn's name. */
export interface PlannedPair {
  name: string;
  /** The two hosts as first written: `left` and `right` in the conn. */
  left: string;
  right: string;
  initiator: string;
  responder: string;
  responderMode: ResponderMode;
  /** Whether each end's guard drops what leaves for, or comes from, the other without IPsec. */
  guard: boolean;
}

/** A pair as written: in `pairs:` or implied by a mesh. Options are explicit only. */
export interface PairDecl {
  hosts: [string, string];
  name?: string;
  initiator?: string;
  responder?: ResponderMode;
  guard?: boolean;
  origin: 'pair' | 'mesh';
  at: Position;
}

export interface Inventory {
  file: string;
  /**
   * Which inventory this is, written into every file it manages: a run retires only its own
   * files and never overwrites another fleet's. `fleet:`, else the file's name.
   */
  fleet: string;
  /** No `fleet:`: the fleet is the file's name, and renaming the file changes it. */
  fleetFromFile?: true;
  hosts: Map<string, HostSpec>;
  groups: Map<string, string[]>;
  /** Every pair, meshes expanded and merged with `pairs:`, checked. */
  pairs: PlannedPair[];
  /** `defaults.ssh.config`: an OpenSSH client config to read. */
  sshConfig?: string;
  /** `rotation.maxAge`: a plain run rotates every pair whose key is older (as written, and in seconds). */
  rotation?: { maxAge: string; maxAgeSec: number };
}
