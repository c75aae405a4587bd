import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { nearest } from '../inventory/issues.js';
import { loadInventory } from '../inventory/load.js';
import type { HostSpec, Inventory, PlannedPair, SshSettings } from '../inventory/types.js';
import { expandHome } from '../remote/session.js';
import { applySshConfig } from '../remote/ssh-config.js';
import type { ScopeArgs } from './args.js';
import { UsageError } from './flags.js';
import { readBoundedText } from './inventory-file.js';
import { readSshConfig } from './ssh-config-file.js';

export interface Scope {
  inventory: Inventory;
  /** Jump hosts that are ssh config aliases, not inventory hosts: their settings from the config. */
  jumps: Map<string, Partial<SshSettings>>;
  /** The inventory file's text, as read (a saved plan keeps it). */
  text: string;
  limit?: Set<string>;
  rotate?: Set<string>;
  /** The hosts acted on, in inventory order. */
  inScope: HostSpec[];
}

/** The inventory and what the flags select in it; every check made before any connection. */
export async function loadScope(args: ScopeArgs, fromText?: { text: string; file: string }): Promise<Scope> {
  const file = fromText?.file ?? String(args.inventory);
  const text = fromText?.text ?? (await readBoundedText(file));
  const loaded = loadInventory(text, file);
  // An offline plan contacts no host, so it needs no ssh config and reads none.
  const configPath = args.offline ? undefined : sshConfigPath(args.sshConfig, loaded.sshConfig);
  const { inventory, jumps } = configPath
    ? applySshConfig(loaded, await readSshConfig(configPath), userInfo().username)
    : { inventory: loaded, jumps: new Map() };
  const limit = resolveLimit(args.limit, inventory);
  const rotate = args.rotatePsk === undefined ? undefined : parseRotate(args.rotatePsk, inventory, limit);
  const inScope = [...inventory.hosts.values()].filter((h) => !limit || limit.has(h.name));
  return { inventory, text, inScope, jumps, ...(limit ? { limit } : {}), ...(rotate ? { rotate } : {}) };
}

/** --ssh-config, else the inventory's `defaults.ssh.config`, else ~/.ssh/config when there is one. */
function sshConfigPath(flag: string | undefined, fromInventory: string | undefined): string | undefined {
  const given = flag ?? fromInventory;
  const path = expandHome(given ?? '~/.ssh/config');
  return given || existsSync(path) ? path : undefined;
}

function glob(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .replace(/[.+^${}()|\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
}

/**
 * The hosts --limit names: host names, group names, and globs over host names
 * (`--limit 'web-*'`), comma-separated or repeated. Each item must match something.
 */
export function resolveLimit(values: readonly string[] | undefined, inv: Inventory): Set<string> | undefined {
  if (!values || values.length === 0) return undefined;
  const items = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  const out = new Set<string>();
  const unknown: string[] = [];
  for (const item of items) {
    if (inv.hosts.has(item)) out.add(item);
    else if (inv.groups.has(item)) for (const h of inv.groups.get(item)!) out.add(h);
    else if (/[*?]/.test(item)) {
      const re = glob(item);
      const hits = [...inv.hosts.keys()].filter((h) => re.test(h));
      if (hits.length === 0) unknown.push(`${item} (matches no host)`);
      for (const h of hits) out.add(h);
    } else {
      const near = nearest(item, [...inv.hosts.keys(), ...inv.groups.keys()]);
      unknown.push(near ? `${item} (did you mean ${near}?)` : item);
    }
  }
  if (unknown.length) throw new UsageError(`--limit names host(s) not in the inventory: ${unknown.join(', ')}`);
  return out;
}

/**
 * The pairs --rotate-psk names, as conn names: every pair in scope when it names none. A
 * pair is named by its conn name or by its two hosts, "a,b" in either order.
 */
export function parseRotate(values: readonly string[], inv: Inventory, limit: ReadonlySet<string> | undefined): Set<string> {
  const pairs = inv.pairs;
  const inScope = (p: PlannedPair): boolean => !limit || (limit.has(p.initiator) && limit.has(p.responder));
  const names = values.map((v) => v.trim()).filter(Boolean);
  if (names.length === 0) return new Set(pairs.filter(inScope).map((p) => p.name));
  const out = new Set<string>();
  for (const n of names) {
    const hosts = n.split(',').map((h) => h.trim());
    const found =
      hosts.length === 2
        ? pairs.find((p) => (p.left === hosts[0] && p.right === hosts[1]) || (p.left === hosts[1] && p.right === hosts[0]))
        : pairs.find((p) => p.name === n);
    if (!found) {
      const known =
        pairs
          .slice(0, 5)
          .map((p) => p.name)
          .join(', ') + (pairs.length > 5 ? ', ...' : '');
      throw new UsageError(
        `--rotate-psk: no pair ${JSON.stringify(n)} in the inventory (pairs: ${known || 'none'}); name a pair by its conn name or as "host-a,host-b"`,
      );
    }
    if (!inScope(found)) throw new UsageError(`--rotate-psk ${n}: rotating needs both ${found.initiator} and ${found.responder}, but --limit leaves one out`);
    out.add(found.name);
  }
  return out;
}
