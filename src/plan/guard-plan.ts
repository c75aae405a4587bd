import { normalizeAddress } from '../core/address.js';
import type { HostSpec } from '../inventory/types.js';
import type { Facts } from '../remote/facts.js';
import type { HostConn } from './desired.js';
import { GUARD_UNIT, guardFile, guardPeers, guardSshTo, guardTable, renderGuard, renderGuardUnit } from './guard.js';
import type { SshPath } from './ssh-path.js';
import type { FileChange, GuardPlan } from './types.js';

interface GuardInput {
  fleet: string;
  host: HostSpec;
  conns: HostConn[];
  facts: Facts;
  /** Pairs that run this time (their peers join the guard now), by conn name: the run's key decisions, fleet-wide. */
  inRun: { has(pair: string): boolean };
  /** Pairs the tool's own SSH runs over (a host reached from its peer): their peers join once verified. */
  sshPairs?: ReadonlyMap<string, SshPath>;
}

/**
 * The guard's files and actions on one host. A peer joins when its pair is first configured,
 * before either daemon loads the pair's conns, so that nothing between the two ever leaves in
 * clear, first negotiation included; it stays while its pair is in the inventory and guarded,
 * and leaves when the pair is retired or unguarded. Except where the tool's SSH runs between
 * the two (one is the controller, or the other's jump host): dropping their clear traffic
 * before their SAs are up would cut the session the run goes on with, so that peer joins once
 * the pair has verified, on both ends. Without guarded pairs left the table goes; the boot
 * unit stays while any fleet's guard file does.
 */
export function planGuard(input: GuardInput): { files: FileChange[]; guard?: GuardPlan; needsNft: boolean } {
  const { fleet, facts: f } = input;
  const path = guardFile(fleet);
  const table = guardTable(fleet);
  const found = f.files.get(path);
  const ours = found?.owner.kind === 'fleet' && found.owner.fleet === fleet;
  const guarded = input.host.guard ? input.conns.filter((c) => c.pair.guard) : [];
  const loaded = f.guards.get(table);
  const dropped = loaded ? { out: loaded.droppedOut, in: loaded.droppedIn } : undefined;
  const otherGuards = [...f.files.values()].filter((x) => x.path.startsWith('/etc/provision/') && x.path.endsWith('.nft') && x.path !== path);
  const files: FileChange[] = [];

  if (guarded.length === 0) {
    if (!ours && !loaded) return { files, needsNft: false };
    if (ours) files.push({ path, mode: '0600', action: 'delete', kind: 'guard', content: '', before: found!.content! });
    const unit = f.files.get(GUARD_UNIT);
    if (unit?.owner.kind === 'shared' && otherGuards.length === 0)
      files.push({ path: GUARD_UNIT, mode: '0644', action: 'delete', kind: 'unit', content: '', before: unit.content! });
    return {
      files,
      needsNft: false,
      guard: {
        table,
        load: false,
        remove: Boolean(loaded),
        members: [],
        joins: [],
        joinsVerified: [],
        leaves: loaded?.peers ?? guardPeers(found?.content),
        ssh: [],
        sshPort: 22,
        sshTo: [],
        enableUnit: false,
        ...(dropped ? { dropped } : {}),
      },
    };
  }

  // Nothing to guard in this run yet (the pairs are out of scope): no table is made for it.
  if (!ours && !guarded.some((c) => input.inRun.has(c.pair.name))) return { files, needsNft: false };
  const wanted = new Set(guarded.map((c) => normalizeAddress(c.peer.address)));
  const now = ours ? guardPeers(found!.content) : [];
  const kept = now.filter((a) => wanted.has(a));
  const leaves = now.filter((a) => !wanted.has(a));
  const joining = guarded
    .filter((c) => input.inRun.has(c.pair.name) && !kept.includes(normalizeAddress(c.peer.address)))
    .map((c) => ({ pair: c.pair.name, address: normalizeAddress(c.peer.address) }));
  const joins = joining.filter((j) => !input.sshPairs?.has(j.pair));
  const joinsVerified = joining.filter((j) => input.sshPairs?.has(j.pair));
  const members = [...new Set([...kept, ...joins.map((j) => j.address)])];
  const client = f.sshClient?.address;
  const ssh = client && wanted.has(client) ? [client] : [];
  const sshPort = f.sshClient?.serverPort ?? input.host.ssh.port;
  // This end's SSH to a peer (it is the peer's jump host, or the controller) stays open too.
  // A pair this run does not work on keeps what the file has: only both ends' facts tell.
  const hadTo = ours ? guardSshTo(found!.content) : [];
  const sshTo = guarded.flatMap((c) => {
    const peer = normalizeAddress(c.peer.address);
    if (!input.inRun.has(c.pair.name)) return hadTo.filter((t) => t.address === peer);
    const p = input.sshPairs?.get(c.pair.name);
    return p?.side === 'client' ? [{ address: peer, port: p.port }] : [];
  });
  const content = renderGuard(fleet, { peers: members, ssh, sshPort, sshTo });
  if (found && !ours) return { files, needsNft: false };
  const action = !found ? 'create' : found.content === content && found.mode === '600' ? 'noop' : 'update';
  files.push({ path, mode: '0600', action, kind: 'guard', content, ...(found?.content !== undefined ? { before: found.content } : {}) });
  const unitContent = renderGuardUnit();
  const unit = f.files.get(GUARD_UNIT);
  if (!unit || unit.owner.kind === 'shared') {
    const unitAction = !unit ? 'create' : unit.content === unitContent && unit.mode === '644' ? 'noop' : 'update';
    files.push({
      path: GUARD_UNIT,
      mode: '0644',
      action: unitAction,
      kind: 'unit',
      content: unitContent,
      ...(unit?.content !== undefined ? { before: unit.content } : {}),
    });
  }
  const loadedRight = loaded !== undefined && sameSet(loaded.peers, members);
  return {
    files,
    needsNft: !f.installed.has('nftables'),
    guard: {
      table,
      load: action !== 'noop' || !loadedRight,
      remove: false,
      members,
      joins,
      joinsVerified,
      leaves,
      ssh,
      sshPort,
      sshTo,
      enableUnit: !f.guardUnitEnabled || files.some((x) => x.kind === 'unit' && x.action !== 'noop'),
      ...(dropped ? { dropped } : {}),
    },
  };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a.map(normalizeAddress));
  return x.size === new Set(b).size && b.every((v) => x.has(v));
}
