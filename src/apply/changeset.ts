import type { BackendId } from '../inventory/types.js';
import type { IncludeLine } from '../plan/plan.js';
import type { KeyState } from '../psk.js';

/** The closed set of things that can happen to a file; the glyph is what people see. */
export const FILE_ACTIONS = { create: '+', update: '~', delete: '-', noop: ' ' } as const;
export type FileAction = keyof typeof FILE_ACTIONS;

export interface FileChange {
  path: string;
  mode: '0644' | '0600';
  action: FileAction;
  pair: string;
  /** True for secrets files: their content is never rendered, only described. */
  secret: boolean;
  /** Current content of the managed file, when there is one. Holds a key for secrets files. */
  before?: string;
  /** Wanted content. Holds a key for secrets files: stays in memory, goes over stdin only. */
  after: string;
  /** Wanted content as people and JSON see it: for secrets files, the key is a marker. */
  shown: string;
  keyState?: KeyState;
}

export type ServiceAction = 'restart' | 'reload' | 'none';

export interface ConnReload {
  name: string;
  auto: 'start' | 'route' | 'add';
}

export interface HostChange {
  host: string;
  address: string;
  backend: { id: BackendId; package: string; version: string; assumed: boolean };
  install?: { package: string; aptUpdate: boolean };
  files: FileChange[];
  includes: IncludeLine[];
  service: ServiceAction;
  /** Why the service action: for display only. */
  serviceReason: string;
  reload: ConnReload[];
  /** Pairs this host initiates whose conn or key changed: brought up after every host reloaded. */
  bringUp: string[];
  /**
   * Pairs this host initiates whose key changed while their conn did not (rotated or
   * repaired): after both peers reread secrets, a new IKE SA proves the new key.
   */
  reauth: string[];
  /** Every conn the host holds, with its auto=; for what follows a restart. */
  conns: ConnReload[];
  /** Conns of retired pairs (their files are deleted): taken down and unloaded. */
  unload: string[];
}

export interface PairChange {
  name: string;
  initiator: string;
  responder: string;
  key: KeyState;
  changed: boolean;
  /** Both ends held ESP SAs for each other before this run (from the initiator's kernel). */
  upBefore: boolean;
  /** Why a rotation asked for was not planned (the pair keeps its key). */
  notRotated?: string;
}

export interface Changeset {
  version: 1;
  hosts: HostChange[];
  pairs: PairChange[];
  /** Pairs no longer in the inventory whose files are still on a host, by conn name → hosts. */
  retired: { name: string; hosts: string[] }[];
}
