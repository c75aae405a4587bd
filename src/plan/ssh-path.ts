import { addressFamily, normalizeAddress } from '../core/address.js';
import { headerLine, SHARED_HEADER } from '../core/ownership.js';
import type { Facts } from '../remote/facts.js';
import type { HostConn } from './desired.js';
import { GUARD_DIR } from './guard.js';
import type { FileChange, SshPathPlan } from './types.js';

/**
 * The tool's SSH between the two ends of a pair (one is the controller, or the other's jump
 * host) passes outside IPsec, so that the pair being down never cuts the way in: kernel
 * policies of provision's own let TCP to and from the sshd port between exactly those two
 * addresses by in clear (SSH encrypts it), ahead of the pair's own policies. They are kept in
 * an `ip -batch` file per fleet, applied by each run and after every start of the IKE daemon
 * (a drop-in: libreswan flushes every policy when it stops). `server`: this end runs the sshd
 * on `port`; `client`: the peer does.
 */
export interface SshPath {
  side: 'server' | 'client';
  port: number;
}

/** Below every policy the IKE daemons install (the lowest number wins). */
const PRIORITY = 1;

export function sshPathFile(fleet: string): string {
  return `${GUARD_DIR}/ssh-${fleet}.xfrm`;
}

/** Drop-ins of the IKE daemons' units (libreswan's, strongSwan's): the policies come back after every start. Shared by the fleets. */
export const SSH_PATH_DROPINS = [
  '/etc/systemd/system/ipsec.service.d/provision.conf',
  '/etc/systemd/system/strongswan-starter.service.d/provision.conf',
] as const;

const APPLY_ALL = `/bin/sh -c 'for f in ${GUARD_DIR}/ssh-*.xfrm; do [ -e "$f" ] && /sbin/ip -batch "$f"; done; exit 0'`;

export function renderDropin(): string {
  return `${SHARED_HEADER}
# provision: after the IKE daemon starts, the kernel policies that keep the tool's SSH between
# two peers outside IPsec (${GUARD_DIR}/ssh-*.xfrm) come back; libreswan flushes them when it stops.
[Service]
ExecStartPost=-${APPLY_ALL}
`;
}

/** The `ip -batch` lines of one path: `update` adds or replaces, so applying twice is harmless. */
export function pathPolicies(local: string, peer: string, path: SshPath): string[] {
  const bits = addressFamily(local) === 6 ? 128 : 32;
  const [l, p] = [`${normalizeAddress(local)}/${bits}`, `${normalizeAddress(peer)}/${bits}`];
  const port = Math.trunc(path.port);
  return path.side === 'server'
    ? [
        `xfrm policy update src ${p} dst ${l} proto 6 dport ${port} dir in priority ${PRIORITY} action allow`,
        `xfrm policy update src ${l} dst ${p} proto 6 sport ${port} dir out priority ${PRIORITY} action allow`,
      ]
    : [
        `xfrm policy update src ${l} dst ${p} proto 6 dport ${port} dir out priority ${PRIORITY} action allow`,
        `xfrm policy update src ${p} dst ${l} proto 6 sport ${port} dir in priority ${PRIORITY} action allow`,
      ];
}

/** The policy lines of a path file (comments and blank lines aside). */
function fileLines(content: string | undefined): string[] {
  return (content ?? '').split('\n').filter((l) => l.startsWith('xfrm policy update '));
}

/** `ip -batch` line that removes the policy an `update` line adds (its selector and direction). */
export function deleteLine(update: string): string {
  return update.replace('xfrm policy update ', 'xfrm policy delete ').replace(/ priority \d+ action allow$/, '');
}

interface SshPathInput {
  fleet: string;
  local: string;
  conns: HostConn[];
  /** Pairs this run works on (both ends read); the others keep their path as it is. */
  inRun: { has(pair: string): boolean };
  facts: Facts;
  /** This host's pairs that carry the tool's SSH, by conn name. */
  sshPairs?: ReadonlyMap<string, SshPath>;
}

/** The path file of this fleet on this host, the shared drop-ins, and the policies to add and remove now. */
export function planSshPath(input: SshPathInput): { files: FileChange[]; plan?: SshPathPlan } {
  const { fleet, facts: f } = input;
  const path = sshPathFile(fleet);
  const found = f.files.get(path);
  const ours = found?.owner.kind === 'fleet' && found.owner.fleet === fleet;
  const files: FileChange[] = [];
  if (found && !ours) return { files };
  // A pair this run does not work on (its peer outside --limit, or not read) keeps its path:
  // only both ends' facts say whether the tool's SSH runs between them, and dropping one
  // end's half would cut that SSH.
  const kept = ours ? byPair(found!.content ?? '') : new Map<string, string[]>();
  const lines = input.conns.flatMap((c) => {
    if (!input.inRun.has(c.pair.name)) return kept.get(c.pair.name) ?? [];
    const p = input.sshPairs?.get(c.pair.name);
    return p
      ? [
          `# ${c.pair.name}: SSH ${p.side === 'server' ? `from ${c.peer.name}` : `to ${c.peer.name}`}, port ${p.port}`,
          ...pathPolicies(input.local, c.peer.address, p),
        ]
      : [];
  });
  const before = fileLines(found?.content);
  const wanted = fileLines(lines.join('\n'));
  if (wanted.length) {
    const content = `${headerLine(fleet)}\n# Kernel policies: the tool's SSH between these peers passes outside IPsec (ip -batch).\n${lines.join('\n')}\n`;
    const action = !found ? 'create' : found.content === content && found.mode === '644' ? 'noop' : 'update';
    files.push({ path, mode: '0644', action, kind: 'guard', content, ...(found?.content !== undefined ? { before: found.content } : {}) });
  } else if (ours) {
    files.push({ path, mode: '0644', action: 'delete', kind: 'guard', content: '', before: found!.content ?? '' });
  }
  const others = [...f.files.values()].some((x) => x.path.startsWith(`${GUARD_DIR}/ssh-`) && x.path.endsWith('.xfrm') && x.path !== path);
  const dropin = renderDropin();
  for (const d of SSH_PATH_DROPINS) {
    const has = f.files.get(d);
    if (has && has.owner.kind !== 'shared') continue;
    if (wanted.length) {
      const action = !has ? 'create' : has.content === dropin && has.mode === '644' ? 'noop' : 'update';
      files.push({ path: d, mode: '0644', action, kind: 'unit', content: dropin, ...(has?.content !== undefined ? { before: has.content } : {}) });
    } else if (has && !others) files.push({ path: d, mode: '0644', action: 'delete', kind: 'unit', content: '', before: has.content ?? '' });
  }
  // Applied when the file changes; a restart of the daemon applies them too (the drop-in).
  const add = files.some((x) => x.path === path && x.action !== 'noop' && x.action !== 'delete') ? wanted : [];
  const remove = before.filter((l) => !wanted.includes(l)).map(deleteLine);
  const reload = files.some((x) => x.kind === 'unit' && x.action !== 'noop');
  if (!add.length && !remove.length && !reload) return { files };
  return { files, plan: { add, remove, reloadUnits: reload } };
}

/** The lines of a path file by pair: each pair's comment line and the policy lines under it. */
function byPair(content: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let pair: string | undefined;
  for (const line of content.split('\n')) {
    const m = /^# (\S+): SSH /.exec(line);
    if (m) {
      pair = m[1]!;
      out.set(pair, [line]);
    } else if (pair && line.startsWith('xfrm policy update ')) out.get(pair)!.push(line);
  }
  return out;
}
