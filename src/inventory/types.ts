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
}

export interface HostSpec {
  name: string;
  /** The IPsec endpoint. */
  address: string;
  family: 4 | 6;
  ssh: SshSettings;
  backend: BackendChoice;
  at: Position;
}

/** A pair as written: in `pairs:` or implied by a mesh. Options are explicit only. */
export interface PairDecl {
  hosts: [string, string];
  name?: string;
  initiator?: string;
  responder?: ResponderMode;
  origin: 'pair' | 'mesh';
  at: Position;
}

export interface MeshDecl {
  name: string;
  hosts: string[];
  responder?: ResponderMode;
  at: Position;
}

export interface Inventory {
  file: string;
  hosts: Map<string, HostSpec>;
  pairs: PairDecl[];
  meshes: MeshDecl[];
  defaultResponder: ResponderMode;
}
