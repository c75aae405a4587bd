import type { ConnLoad } from '../backends/index.js';
import type { IncludeLine } from '../core/paths.js';
import type { KeyState } from '../core/psk.js';
import type { BackendId, SshSettings } from '../inventory/types.js';

// The changeset: what a run will do, as data. The planner makes it from the inventory and
// the facts of every host; the dry run renders it; the executor applies exactly it. It
// holds no key: secrets files carry a placeholder that the executor fills in as it writes.

/** The closed set of things that can happen to a file; the glyph is what people see. */
export const FILE_ACTIONS = { create: '+', update: '~', delete: '-', noop: ' ' } as const;
export type FileAction = keyof typeof FILE_ACTIONS;

export type { KeyState };

/** How the two ends' keys compare, as a saved plan records it: never a key, never a hash of one. */
export type KeyAgreement = 'agree' | 'disagree' | 'missing' | 'weak';

export interface FileChange {
  path: string;
  mode: '0644' | '0600';
  action: FileAction;
  /** The pair the file belongs to, for pair files. */
  pair?: string;
  kind: 'conf' | 'secrets' | 'guard' | 'unit' | 'daemon';
  /**
   * The content written. For secrets files the key is the placeholder KEY_SLOT; what
   * replaces it is the pair's key, decided by `keyState`.
   */
  content: string;
  keyState?: KeyState;
  /** The content on the host now, for the diff; secrets files with their keys redacted. */
  before?: string;
  /** Why, when it is not obvious: "adopted from before fleets", "mode 0644 → 0600". For display. */
  why?: string;
}

export type ServiceAction = 'restart' | 'reload' | 'none';

export interface Install {
  packages: string[];
  /** apt has no candidate yet: apt-get update first. */
  aptUpdate: boolean;
  /** For `backend: auto` on a host whose apt knows no candidate yet: the choice is made after the update, in this order. */
  choose?: { backend: BackendId; packages: string[] }[];
}

export type HostStatus =
  /** Facts read, changes planned (possibly none). */
  | 'planned'
  /** Something on the host stops the plan for it; nothing is done there. */
  | 'blocked'
  /** Not contacted: outside --limit, or the offline plan. */
  | 'unread';

export interface HostPlan {
  host: string;
  address: string;
  ssh: SshSettings;
  status: HostStatus;
  /** Why a blocked host is blocked, each with what to do. */
  problems: { problem: string; hint: string }[];
  backend: { id: BackendId; package: string; version: string; assumed: boolean };
  install?: Install;
  files: FileChange[];
  includes: IncludeLine[];
  /** Include lines provision added that go (teardown, nothing of provision left on the host). */
  dropIncludes?: IncludeLine[];
  service: ServiceAction;
  /** Why the service action: for display only. */
  serviceReason: string;
  reload: ConnLoad[];
  /** Pairs this host initiates whose conn changed: brought up after every host reloaded. */
  bringUp: string[];
  /** Pairs this host initiates whose key changed while their conn did not: re-authenticated. */
  reauth: string[];
  /** Every conn the host holds, with its auto=; for what follows a restart. */
  conns: ConnLoad[];
  /** Conns of retired pairs (their files are deleted): taken down and unloaded. */
  unload: string[];
  /** Files of provision from before fleets, not planned here: left alone unless --retire-legacy. */
  legacy: string[];
  /** Staging folders a killed write left behind: removed by the next write. */
  staleStaging: string[];
  /** The fail-closed guard; absent when the host has none and needs none. */
  guard?: GuardPlan;
  /** Kernel policies for the tool's SSH to or from a peer, where they change in this run. */
  sshPath?: SshPathPlan;
  /** A digest of the facts the plan was made from; a saved plan is refused where it changed. */
  facts?: string;
}

export interface PairPlan {
  name: string;
  hosts: [string, string];
  initiator: string;
  responder: string;
  responderMode: 'route' | 'add';
  key: KeyState;
  agreement: KeyAgreement;
  /** Its conn or its key changes in this run. */
  changed: boolean;
  /** Both ends held ESP SAs for each other before this run (from the initiator's kernel). */
  upBefore: boolean;
  /** Why a rotation asked for was not planned (the pair keeps its key). */
  notRotated?: string;
  /** Seconds since the pair's key was made, where its hosts recorded it. */
  keyAgeSec?: number;
  /** Why the key is rotated without --rotate-psk: its age is past `rotation.maxAge`, or unknown. */
  rotateWhy?: string;
  /** Why the pair is left out of this run: a host outside --limit, blocked, or not read. */
  skipped?: string;
  /** The end that proves a changed key with a new IKE SA (a strongSwan end: make-before-break). */
  reauthBy?: string;
  /** How a rotated key is proved, and why that way (the one asked for, or the default's choice for this pair). */
  rotateMode?: 'reauth' | 'reread';
  rotateModeWhy?: string;
  /** `reread`: the new key is loaded on both ends and compared by MAC; its SAs are not replaced. */
  proof?: 'keys compared';
  /**
   * With `proof`, the end that also authenticates the new key now, with a probe IKE SA that
   * carries no traffic beside the running one (a strongSwan end whose peer answers it).
   */
  probeBy?: string;
  /** The default's `reread`: when the probe cannot run, probeBy re-authenticates instead (make-before-break), so the key is still proved now. */
  reauthIfNoProbe?: boolean;
}

/** The kernel policies that keep the tool's SSH between two peers outside IPsec (plan/ssh-path.ts), as `ip -batch` lines. */
export interface SshPathPlan {
  add: string[];
  remove: string[];
  /** A drop-in of an IKE daemon's unit changed: systemd reloads its units. */
  reloadUnits: boolean;
}

export interface Changeset {
  version: 2;
  /** The version of provision that made it. */
  tool: string;
  mode: 'offline' | 'live';
  /** `fleetFromFile`: the inventory sets no `fleet:`, so renaming its file changes its fleet. */
  inventory: { file: string; fleet: string; fleetFromFile?: true };
  hosts: HostPlan[];
  pairs: PairPlan[];
  /** Pairs no longer in the inventory whose files are on a host: conn name → hosts. */
  retired: { name: string; hosts: string[] }[];
  warnings: string[];
}

/** What stands in for a key in a planned secrets file, until the executor writes it. */
export const KEY_SLOT = '\u0000KEY\u0000';
/** What stands in for a new key's creation time (UTC, to the second), until the executor writes it. */
export const CREATED_SLOT = '\u0000CREATED\u0000';
const CREATED_LINE = new RegExp(`^# Key created (\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ|${CREATED_SLOT})\\.\\n`, 'm');

/** When the key in a secrets file was made, from its "# Key created" line (not secret); undefined without one. */
export function createdOf(content: string | undefined): string | undefined {
  const t = content === undefined ? undefined : CREATED_LINE.exec(content)?.[1];
  return t && t !== CREATED_SLOT ? t : undefined;
}

/** A planned secrets file with its creation line as a kept key's file has it: that time, or no line. */
export function withCreated(content: string, created: string | undefined): string {
  return content.replace(CREATED_LINE, created ? `# Key created ${created}.\n` : '');
}

/** The guard on one host: its table, and how it changes in this run. */
export interface GuardPlan {
  /** The nftables table (inet family). */
  table: string;
  /** Load the table from its file now (it is new, changed, or not loaded). */
  load: boolean;
  /** Remove the table (the host has no guarded pair of this fleet left, or `guard: off`). */
  remove: boolean;
  /** Peers in the guard once it is loaded: those it had, and those that join. */
  members: string[];
  /** Peers that join in this run, before their pair's conns are loaded. */
  joins: { pair: string; address: string }[];
  /** Peers that join in this run once their pair has verified: the tool's SSH runs between the two ends. */
  joinsVerified: { pair: string; address: string }[];
  /** Peers that leave now (their pair retired or unguarded). */
  leaves: string[];
  /** Peer addresses the SSH sessions to this host come from: their SSH stays reachable. */
  ssh: string[];
  sshPort: number;
  /** Peers this host reaches over SSH for the tool (it is their jump host, or the controller): that SSH stays open. */
  sshTo: { address: string; port: number }[];
  /** Enable the boot unit (and reload systemd when its file changed). */
  enableUnit: boolean;
  /** What the loaded table dropped so far (from the facts). */
  dropped?: { out: number; in: number };
}
