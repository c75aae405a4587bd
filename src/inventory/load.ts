import { basename, extname } from 'node:path';
import { z } from 'zod';
import { normalizeAddress } from '../core/address.js';
import { CONN_NAME, checkAddress, checkHostRef, checkSsh, FLEET_NAME, HOST_NAME } from './checks.js';
import { durationSec } from './duration.js';
import { InventoryError, type Problem } from './errors.js';
import { fromGroups, readGroups, readMeshes } from './groups.js';
import { type Report, reportIssue, shown } from './issues.js';
import { expandPairs } from './pairs.js';
import type { RawDefaults, RawHost, RawSsh } from './schema.js';
import * as schema from './schema.js';
import type { HostSpec, Inventory, PairDecl, SshSettings } from './types.js';
import { type ParsedYaml, type Position, parseYaml } from './yaml.js';

export const DEFAULT_KNOWN_HOSTS = '~/.ssh/known_hosts';
/** Read no more than this: an inventory of 10,000 hosts is well under 2 MiB. */
export const MAX_INVENTORY_BYTES = 4 * 1024 * 1024;
const EMPTY_HINT = 'Add a `hosts:` mapping and at least one entry under `pairs:` or `meshes:`; see inventory.example.yaml.';

/**
 * Reads an inventory. Pure: takes the text and the name to report it under. Every check
 * runs here, pairs and meshes expanded included, and every problem of the file is reported
 * at once: a wrong type in one place does not hide the checks of the others. Throws
 * InventoryError listing them, each with its line and column.
 */
export function loadInventory(text: string, file: string): Inventory {
  if (text.length > MAX_INVENTORY_BYTES) {
    fail(
      file,
      { line: 1, column: 1 },
      `the file is over ${MAX_INVENTORY_BYTES / 1048576} MiB; an inventory is at most that`,
      'Check this is the inventory you meant; split a fleet that large into several inventories.',
    );
  }
  if (text.includes('\uFFFD')) {
    fail(file, positionAtIndex(text, text.indexOf('\uFFFD')), 'the file is not valid UTF-8', 'Save the inventory as UTF-8 text.');
  }
  if (text.split('\n').every((l) => /^\s*(#.*)?$/.test(l))) fail(file, { line: 1, column: 1 }, 'the inventory is empty', EMPTY_HINT);
  const yaml = parseYaml(text, file);
  if (yaml.value === undefined || yaml.value === null) fail(file, { line: 1, column: 1 }, 'the inventory is empty', EMPTY_HINT);

  const problems: Problem[] = [];
  const report: Report = (path, message, hint, key = false) => problems.push({ file, ...yaml.locate(path, key), message, hint });
  const section = <T>(shape: z.ZodType<T>, value: unknown, path: readonly PropertyKey[]): T | undefined => {
    const r = shape.safeParse(value);
    if (r.success) return r.data;
    for (const issue of r.error.issues) reportIssue(yaml, issue, path, report);
    return undefined;
  };

  const top = schema.inventorySchema.safeParse(yaml.value);
  if (!top.success) {
    for (const issue of top.error.issues) reportIssue(yaml, issue, [], report);
    // Not a mapping at all: nothing below can be read.
    if (typeof yaml.value !== 'object' || Array.isArray(yaml.value)) throw new InventoryError(problems);
  }
  const raw = yaml.value as Record<string, unknown>;
  const fleet = readFleet(raw.fleet, file, report);
  const defaults: RawDefaults = section(schema.defaultsSchema, raw.defaults ?? {}, ['defaults']) ?? {};
  const rotation = raw.rotation === undefined ? undefined : section(schema.rotationSchema, raw.rotation, ['rotation']);
  const defaultSsh = defaults.ssh ?? {};
  if (defaultSsh.host !== undefined) {
    report(
      ['defaults', 'ssh', 'host'],
      '`ssh.host` cannot be a default: each host has its own management address',
      'Move `host:` under the `ssh:` of each host that needs it.',
      true,
    );
  }

  // Host names first: references to a host whose own entry is wrong are not "unknown".
  const rawHosts = section(z.record(z.string(), z.unknown()), raw.hosts, ['hosts']) ?? {};
  const names = new Set(Object.keys(rawHosts));
  const entries: [string, RawHost][] = [];
  for (const [name, value] of Object.entries(rawHosts)) {
    if (!HOST_NAME.test(name)) {
      report(
        ['hosts', name],
        `host name ${shown(name)} is not safe in a file or conn name`,
        'Use letters, digits, dot, dash and underscore, starting with a letter or digit, at most 63 characters.',
        true,
      );
    }
    const h = section(schema.hostSchema, value, ['hosts', name]);
    if (h) entries.push([name, h]);
  }
  if (Object.keys(rawHosts).length === 0 && raw.hosts !== undefined && typeof raw.hosts === 'object' && !Array.isArray(raw.hosts)) {
    report(['hosts'], 'no hosts are defined', 'Add at least two hosts under `hosts:`, each with an `address:`.');
  }
  checkSsh(defaultSsh, ['defaults', 'ssh'], names, report);
  for (const [name, h] of entries) {
    if (h.ssh?.config !== undefined) {
      report(
        ['hosts', name, 'ssh', 'config'],
        '`ssh.config` is read for every host',
        'Set `config:` under `defaults.ssh`, or give this host its settings in the inventory.',
        true,
      );
    }
  }

  const groups = readGroups(raw.groups, names, section, report);
  const hosts = new Map<string, HostSpec>();
  const byAddress = new Map<string, string>();
  for (const [name, h] of entries) {
    const family = checkAddress(h.address, ['hosts', name, 'address'], report);
    const other = family ? byAddress.get(normalizeAddress(h.address)) : undefined;
    if (other) {
      report(
        ['hosts', name, 'address'],
        `address ${h.address} is already used by host ${other}`,
        'Each host needs its own IPsec address; fix the copy-paste or remove the duplicate host.',
      );
    }
    if (family) byAddress.set(normalizeAddress(h.address), name);
    checkSsh(h.ssh ?? {}, ['hosts', name, 'ssh'], names, report);
    const mine = [...groups].filter(([, g]) => g.hosts.includes(name));
    const inherited = fromGroups(name, mine, report);
    const layers = [defaultSsh, inherited.ssh, h.ssh ?? {}];
    const ssh = sshSettings(layers, h.address);
    if (ssh.jump === name) report(['hosts', name, 'ssh', 'jump'], `host ${name} is its own jump host`, 'Remove `jump:`, or name another host.');
    hosts.set(name, {
      name,
      address: h.address,
      family: family ?? 4,
      ssh,
      sshSet: explicitSsh(layers),
      backend: h.ipsec?.backend ?? inherited.backend ?? defaults.ipsec?.backend ?? 'auto',
      guard: h.ipsec?.guard ?? inherited.guard ?? defaults.ipsec?.guard ?? true,
      groups: mine.map(([g]) => g),
      at: yaml.locate(['hosts', name], true),
    });
  }
  for (const h of hosts.values()) {
    const jump = h.ssh.jump ? hosts.get(h.ssh.jump) : undefined;
    if (jump?.ssh.jump) {
      report(
        ['hosts', h.name],
        `host ${h.name} goes through ${jump.name}, which has a jump host of its own`,
        `Chains of jump hosts are not supported: reach ${jump.name} directly, or give ${h.name} the last hop as its jump.`,
        true,
      );
    }
  }

  const decls: PairDecl[] = [];
  const rawPairs = section(z.array(z.unknown()), raw.pairs ?? [], ['pairs']) ?? [];
  rawPairs.forEach((item, i) => {
    const decl = readPair(yaml, item, i, names, report);
    if (decl) decls.push(decl);
  });
  const meshes = readMeshes(yaml, raw.meshes, names, groups, section, report);

  if (names.size > 0 && decls.length === 0 && meshes.length === 0 && problems.length === 0) {
    report([], 'no pairs or meshes: nothing would be secured', 'Add `pairs: [[host-a, host-b]]` or `meshes: [{name: all, hosts: [...]}]`.');
  }
  // Pairs among hosts that are themselves wrong would only repeat their problems.
  const usable = (hs: readonly string[]): boolean => hs.every((n) => hosts.has(n));
  const expanded = expandPairs(
    file,
    hosts,
    decls.filter((d) => usable(d.hosts)),
    meshes.map((m) => ({ ...m, hosts: m.hosts.filter((n) => hosts.has(n)) })),
    { responder: defaults.ipsec?.responder ?? 'route', guard: defaults.ipsec?.guard ?? true },
  );
  problems.push(...expanded.problems);
  if (problems.length > 0) throw new InventoryError(problems);
  return {
    file,
    fleet: fleet!,
    ...(raw.fleet === undefined ? { fleetFromFile: true as const } : {}),
    hosts,
    groups: new Map([...groups].map(([g, v]) => [g, v.hosts])),
    pairs: expanded.pairs,
    ...(defaultSsh.config ? { sshConfig: defaultSsh.config } : {}),
    ...(rotation ? { rotation: { maxAge: rotation.maxAge, maxAgeSec: durationSec(rotation.maxAge) } } : {}),
  };
}

function fail(file: string, at: Position, message: string, hint: string): never {
  throw new InventoryError([{ file, ...at, message, hint }]);
}

function readFleet(value: unknown, file: string, report: Report): string | undefined {
  if (value !== undefined) {
    if (typeof value === 'string' && FLEET_NAME.test(value)) return value;
    report(
      ['fleet'],
      `fleet ${typeof value === 'string' ? shown(value) : 'name'} is not a safe name`,
      'Use letters, digits, dot, dash and underscore, starting with a letter or digit, at most 40 characters.',
    );
    return undefined;
  }
  const name = basename(file, extname(file));
  if (FLEET_NAME.test(name)) return name;
  report(
    [],
    `the file name ${shown(basename(file))} cannot name this inventory's fleet`,
    "Add a top-level `fleet: NAME` (letters, digits, dot, dash, underscore): it marks every file this inventory manages, so that other inventories' files on the same hosts are left alone.",
  );
  return undefined;
}

function readPair(yaml: ParsedYaml, item: unknown, i: number, names: ReadonlySet<string>, report: Report): PairDecl | undefined {
  const at = yaml.locate(['pairs', i]);
  let decl: PairDecl;
  if (Array.isArray(item)) {
    const r = schema.pairListSchema.safeParse(item);
    if (!r.success) {
      report(
        ['pairs', i],
        item.length === 2 ? 'a pair lists two host names' : `a pair has exactly two hosts, this one has ${item.length}`,
        'Write `- [host-a, host-b]`; for more hosts use a mesh.',
      );
      return undefined;
    }
    decl = { hosts: r.data, origin: 'pair', at };
  } else if (item !== null && typeof item === 'object') {
    const r = schema.pairObjectSchema.safeParse(item);
    if (!r.success) {
      for (const issue of r.error.issues) reportIssue(yaml, issue, ['pairs', i], report);
      return undefined;
    }
    const p = r.data;
    decl = {
      hosts: p.hosts,
      origin: 'pair',
      at,
      ...(p.name !== undefined ? { name: p.name } : {}),
      ...(p.initiator !== undefined ? { initiator: p.initiator } : {}),
      ...(p.responder !== undefined ? { responder: p.responder } : {}),
      ...(p.guard !== undefined ? { guard: p.guard } : {}),
    };
    if (p.name !== undefined && !CONN_NAME.test(p.name)) {
      report(
        ['pairs', i, 'name'],
        `conn name ${shown(p.name)} is not safe in a file or conn name`,
        'Use letters, digits, dot, dash and underscore, starting with a letter or digit, at most 100 characters.',
      );
    }
    if (p.initiator !== undefined && !p.hosts.includes(p.initiator)) {
      report(
        ['pairs', i, 'initiator'],
        `initiator ${shown(p.initiator)} is not one of this pair's hosts (${p.hosts.map(shown).join(', ')})`,
        'Set `initiator:` to one of the two hosts, or remove it to let the first host initiate.',
      );
    }
  } else {
    report(
      ['pairs', i],
      'a pair is a list of two hosts or a mapping with `hosts:`',
      'Write `- [host-a, host-b]` or `- {hosts: [host-a, host-b], initiator: host-b}`.',
    );
    return undefined;
  }
  const path = Array.isArray(item) ? ['pairs', i] : ['pairs', i, 'hosts'];
  for (const [j, h] of decl.hosts.entries()) checkHostRef(h, [...path, j], names, report);
  if (decl.hosts[0] === decl.hosts[1]) {
    report([...path, 1], `host ${shown(decl.hosts[0])} is paired with itself`, 'A pair joins two different hosts; fix the second name.');
    return undefined;
  }
  return decl;
}

/** What the inventory's own layers set, last layer winning; no built-in defaults. */
function explicitSsh(layers: RawSsh[]): Partial<SshSettings> {
  const out: Partial<SshSettings> = {};
  for (const l of layers) {
    for (const k of ['host', 'port', 'user', 'identityFile', 'knownHostsFile', 'jump'] as const)
      if (l[k] !== undefined) (out as Record<string, unknown>)[k] = l[k];
  }
  return out;
}

/** Host settings over group settings over defaults. */
function sshSettings(layers: RawSsh[], address: string): SshSettings {
  const pick = <K extends keyof RawSsh>(k: K): RawSsh[K] => layers.reduce<RawSsh[K]>((v, l) => l[k] ?? v, undefined);
  const identityFile = pick('identityFile');
  const jump = pick('jump');
  return {
    host: pick('host') ?? address,
    port: pick('port') ?? 22,
    user: pick('user') ?? 'root',
    knownHostsFile: pick('knownHostsFile') ?? DEFAULT_KNOWN_HOSTS,
    ...(identityFile ? { identityFile } : {}),
    ...(jump ? { jump } : {}),
  };
}

function positionAtIndex(text: string, index: number): Position {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  return { line, column: index - before.lastIndexOf('\n') };
}
