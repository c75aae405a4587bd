import type { ConnLoad } from '../backends/index.js';
import { normalizeAddress } from '../core/address.js';
import { ownerWord } from '../core/ownership.js';
import { pairOfFile } from '../core/paths.js';
import { redactFound } from '../core/redact.js';
import type { Facts } from '../remote/facts.js';
import { pskOf } from '../remote/facts.js';
import { pairFiles } from './desired.js';
import type { HostInput } from './host-input.js';
import { createdOf, type FileChange, KEY_SLOT, withCreated } from './types.js';

/** The host's own pairs planned: their files, and what the daemon does about each conn. */
interface PairsPlan {
  files: FileChange[];
  problems: { problem: string; hint: string }[];
  reload: ConnLoad[];
  bringUp: string[];
  reauth: string[];
  conns: ConnLoad[];
  secretsChanged: boolean;
  /** Every pair file path the inventory wants on this host, in this run or not. */
  planned: Set<string>;
}

/**
 * Each pair's conn and secrets files against what the host has: create, update or keep,
 * and whether the conn is reloaded and brought up, or its initiator re-authenticates.
 * A file of the operator's or another fleet's where ours goes, a conn name already in use,
 * or the same two addresses paired by another fleet, is a problem instead.
 */
export function planPairs(input: HostInput): PairsPlan {
  const { facts: f, backend, fleet } = input;
  const problems: { problem: string; hint: string }[] = [];
  const files: FileChange[] = [];
  const reload: ConnLoad[] = [];
  const bringUp: string[] = [];
  const reauth: string[] = [];
  const conns: ConnLoad[] = [];
  let secretsChanged = false;
  const planned = new Set<string>();

  for (const c of input.conns) {
    const desired = pairFiles(fleet, input.host, c, backend, { version: input.version });
    for (const d of desired) planned.add(d.path);
    const name = c.pair.name;
    const auto = c.role === 'initiator' ? 'start' : c.pair.responderMode;
    const key = input.keys.get(name);
    if (key === undefined) {
      // Not in this run (its peer is outside --limit, say): left as it is.
      if (f.files.has(desired[0]!.path)) conns.push({ name, auto });
      continue;
    }
    conns.push({ name, auto });
    for (const other of f.conns.filter((x) => x.name === name && x.file !== desired[0]!.path)) {
      problems.push({
        problem: `conn ${name} is already defined in ${other.file}`,
        hint: `Give the pair another name with \`name:\` in the inventory, or rename the operator's conn in ${other.file}.`,
      });
    }
    const twin = pairedElsewhere(f, fleet, c.peer.address, desired[0]!.path);
    if (twin) {
      // Two conns for one pair of addresses fight over the same kernel policy, and the two
      // secrets lines for it hold different keys: one of them would silently lose.
      problems.push({
        problem: `${input.host.name} and ${c.peer.name} (${c.peer.address}) are already paired by fleet ${twin.fleet} in ${twin.path}`,
        hint: `Two addresses are paired by one inventory: drop the pair from this one, or from ${twin.fleet}'s (and run that).`,
      });
      continue;
    }
    let confChanged = false;
    let keyChanged = false;
    for (const d of desired) {
      const found = f.files.get(d.path);
      if (found && found.owner.kind === 'operator') {
        problems.push({
          problem: `${d.path} exists and was not written by provision`,
          hint: "Rename the pair with `name:` in the inventory, or move the operator's file away if it is obsolete.",
        });
        continue;
      }
      if (found?.owner.kind === 'fleet' && found.owner.fleet !== fleet) {
        problems.push({
          problem: `${d.path} belongs to ${ownerWord(found.owner)}, another inventory`,
          hint: input.fleetFromFile
            ? `This inventory sets no \`fleet:\`, so its fleet is its file's name, ${fleet}. If it is fleet ${found.owner.fleet}'s inventory under a new name, add \`fleet: ${found.owner.fleet}\` at its top; if not, a pair is managed by one inventory: remove it from one of the two.`
            : `A pair is managed by one inventory: remove it from ${found.owner.fleet}'s inventory (and run that) or from this one.`,
        });
        continue;
      }
      // What the file would hold with the key it keeps (and that key's creation line), compared
      // as the host sent it: masked.
      const keeps = d.kind === 'secrets' && key === 'unchanged';
      const content = keeps ? withCreated(d.content, createdOf(found?.content)) : d.content;
      const kept = keeps ? pskOf(found?.content) : undefined;
      const wanted = kept ? content.replace(KEY_SLOT, kept) : content;
      const sameContent = found?.content === wanted;
      const action = !found
        ? 'create'
        : key !== 'unchanged' && d.kind === 'secrets'
          ? 'update'
          : !sameContent || found.mode !== d.mode.slice(1)
            ? 'update'
            : 'noop';
      const why =
        found?.owner.kind === 'legacy'
          ? 'adopted: written by provision before fleets'
          : action === 'update' && sameContent
            ? `mode 0${found!.mode} → ${d.mode}`
            : undefined;
      if (action !== 'noop' && d.kind === 'secrets') {
        secretsChanged = true;
        if (key !== 'unchanged') keyChanged = true;
      } else if (action !== 'noop' && (!found?.content || meaningful(found.content) !== meaningful(wanted))) {
        // A conn whose comments alone change (a header adopted from before fleets) is
        // rewritten, not replaced: replacing would take its SAs down.
        confChanged = true;
      }
      files.push({
        path: d.path,
        mode: d.mode,
        action,
        pair: name,
        kind: d.kind,
        content,
        ...(found?.content !== undefined ? { before: d.kind === 'secrets' ? redactFound(found.content) : found.content } : {}),
        ...(d.kind === 'secrets' ? { keyState: key } : {}),
        ...(why ? { why } : {}),
      });
    }
    // A changed conn is replaced (its SAs go with it) and brought up again. A changed key
    // alone keeps the SAs: both peers reread secrets, then the initiator re-authenticates.
    if (confChanged) {
      reload.push({ name, auto });
      if (c.role === 'initiator') bringUp.push(name);
    } else if (keyChanged && c.role === 'initiator' && !(key === 'rotated' && input.rereadPairs?.has(name))) {
      reauth.push(name);
    }
  }
  return { files, problems, reload, bringUp, reauth, conns, secretsChanged, planned };
}

/** Another fleet's conn file on this host, under another name, whose peer is `address`, if any. */
function pairedElsewhere(f: Facts, fleet: string, address: string, except: string): { path: string; fleet: string } | undefined {
  const want = normalizeAddress(address);
  for (const found of f.files.values()) {
    if (found.path === except || found.owner.kind !== 'fleet' || found.owner.fleet === fleet || pairOfFile(found.path)?.kind !== 'conf' || !found.content)
      continue;
    const ends = [...found.content.matchAll(/^\s*(?:left|right)=(\S+)\s*$/gm)].map((m) => normalizeAddress(m[1]!));
    if (ends.includes(want)) return { path: found.path, fleet: found.owner.fleet };
  }
  return undefined;
}

function meaningful(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('\n');
}
