import type { Backend } from '../backends/index.js';
import type { HostSpec } from '../inventory/types.js';
import type { Facts } from '../remote/facts.js';
import type { HostConn } from './desired.js';
import type { SshPath } from './ssh-path.js';
import type { Install, KeyState } from './types.js';

/** What planHost works from for one host: its pairs, its backend, the facts read from it, and the run's choices. */
export interface HostInput {
  /** The inventory sets no `fleet:` (the fleet is its file's name). */
  fleetFromFile?: true;
  fleet: string;
  host: HostSpec;
  conns: HostConn[];
  backend: Backend;
  version: string;
  assumed: boolean;
  install?: Install;
  facts: Facts;
  /** Key decisions of the pairs that run this time, by conn name; pairs absent here are left as they are. */
  keys: ReadonlyMap<string, KeyState>;
  prune: boolean;
  retireLegacy: boolean;
  /** provision teardown: retire only these pairs' files (ours or from before fleets), and take out our include lines when nothing is left. */
  teardown?: ReadonlySet<string>;
  /** Pairs whose rotated key is reread on both ends, not proved by a new authentication (rotate-mode.ts). */
  rereadPairs?: ReadonlySet<string>;
  /** Pairs whose two ends the tool's SSH runs between (a host reached from its peer), with this end's side of it. */
  sshPairs?: ReadonlyMap<string, SshPath>;
}

/** The host's pairs that this run works on: the others (a peer outside --limit, not read) are left as they are. */
export function inRun(input: HostInput): HostConn[] {
  return input.conns.filter((c) => input.keys.has(c.pair.name));
}
