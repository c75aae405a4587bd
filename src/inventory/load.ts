import { isIP } from 'node:net';
import type { z } from 'zod';
import { InventoryError, type Problem } from './errors.js';
import { parseYaml, type ParsedYaml, type Position } from './yaml.js';
import {
  inventorySchema, pairListSchema, pairObjectSchema, keysOf, sshSchema, ipsecSchema,
  hostSchema, meshSchema, type RawSsh,
} from './schema.js';
import type { HostSpec, Inventory, MeshDecl, PairDecl, ResponderMode, SshSettings } from './types.js';

/** Host names become parts of file names and conn names: keep them to a safe alphabet. */
export const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** Conn names are file names under /etc/ipsec.d and tokens in ipsec.conf. */
export const CONN_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export const DEFAULT_KNOWN_HOSTS = '~/.ssh/known_hosts';
const MAX_BYTES = 4 * 1024 * 1024;

/**
 * Reads an inventory. Pure: takes the text and the name to report it under. Throws
 * InventoryError listing every problem found, each with its line and column.
 */
export function loadInventory(text: string, file: string): Inventory {
  if (text.length > MAX_BYTES) {
    fail(file, { line: 1, column: 1 }, `the file is ${(text.length / 1048576).toFixed(1)} MiB; an inventory is at most 4 MiB`,
      'Check this is the inventory you meant; split a fleet that large into several inventories.');
  }
  if (text.includes('\uFFFD')) {
    const at = positionAtIndex(text, text.indexOf('\uFFFD'));
    fail(file, at, 'the file is not valid UTF-8', 'Save the inventory as UTF-8 text.');
  }
  if (text.split('\n').every((l) => /^\s*(#.*)?$/.test(l))) {
    fail(file, { line: 1, column: 1 }, 'the inventory is empty',
      'Add a `hosts:` mapping and at least one entry under `pairs:` or `meshes:`; see inventory.example.yaml.');
  }
  const yaml = parseYaml(text, file);
  const problems: Problem[] = [];
  const report = (path: readonly PropertyKey[], message: string, hint: string, key = false): void => {
    problems.push({ file, ...yaml.locate(path, key), message, hint });
  };

  if (yaml.value === undefined || yaml.value === null) {
    fail(file, { line: 1, column: 1 }, 'the inventory is empty',
      'Add a `hosts:` mapping and at least one entry under `pairs:` or `meshes:`; see inventory.example.yaml.');
  }
  const parsed = inventorySchema.safeParse(yaml.value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) reportIssue(yaml, issue, [], report);
    throw new InventoryError(problems);
  }
  const raw = parsed.data;

  const defaultSsh = raw.defaults?.ssh ?? {};
  const defaultBackend = raw.defaults?.ipsec?.backend ?? 'auto';
  const defaultResponder: ResponderMode = raw.defaults?.ipsec?.responder ?? 'route';
  if (defaultSsh.host !== undefined) {
    report(['defaults', 'ssh', 'host'], '`ssh.host` cannot be a default: each host has its own management address',
      'Move `host:` under the `ssh:` of each host that needs it.', true);
  }
  checkPort(defaultSsh, ['defaults', 'ssh'], report);

  const hosts = new Map<string, HostSpec>();
  const byAddress = new Map<string, string>();
  const hostEntries = Object.entries(raw.hosts);
  if (hostEntries.length === 0) {
    report(['hosts'], 'no hosts are defined', 'Add at least two hosts under `hosts:`, each with an `address:`.');
  }
  for (const [name, h] of hostEntries) {
    if (!HOST_NAME.test(name)) {
      report(['hosts', name], `host name ${shown(name)} is not safe in a file or conn name`,
        'Use letters, digits, dot, dash and underscore, starting with a letter or digit, at most 63 characters.', true);
    }
    const family = checkAddress(h.address, ['hosts', name, 'address'], report);
    const normalized = family ? normalizeAddress(h.address) : h.address;
    const other = byAddress.get(normalized);
    if (family && other) {
      report(['hosts', name, 'address'], `address ${h.address} is already used by host ${other}`,
        'Each host needs its own IPsec address; fix the copy-paste or remove the duplicate host.');
    }
    byAddress.set(normalized, name);
    checkPort(h.ssh ?? {}, ['hosts', name, 'ssh'], report);
    hosts.set(name, {
      name,
      address: h.address,
      family: family ?? 4,
      ssh: sshSettings(defaultSsh, h.ssh ?? {}, h.address),
      backend: h.ipsec?.backend ?? defaultBackend,
      at: yaml.locate(['hosts', name], true),
    });
  }

  const pairs: PairDecl[] = [];
  (raw.pairs ?? []).forEach((item, i) => {
    const decl = readPair(yaml, item, i, hosts, report);
    if (decl) pairs.push(decl);
  });

  const meshes: MeshDecl[] = [];
  (raw.meshes ?? []).forEach((m, i) => {
    if (!CONN_NAME.test(m.name)) {
      report(['meshes', i, 'name'], `mesh name ${shown(m.name)} is not a safe name`,
        'Use letters, digits, dot, dash and underscore, starting with a letter or digit.');
    }
    const seen = new Set<string>();
    m.hosts.forEach((h, j) => {
      checkHostRef(h, ['meshes', i, 'hosts', j], hosts, report);
      if (seen.has(h)) {
        report(['meshes', i, 'hosts', j], `host ${shown(h)} is listed twice in mesh ${shown(m.name)}`, 'List each host of a mesh once.');
      }
      seen.add(h);
    });
    meshes.push({ name: m.name, hosts: m.hosts, ...(m.responder ? { responder: m.responder } : {}), at: yaml.locate(['meshes', i]) });
  });

  if (hostEntries.length > 0 && pairs.length === 0 && meshes.length === 0 && problems.length === 0) {
    report([], 'no pairs or meshes: nothing would be secured',
      'Add `pairs: [[host-a, host-b]]` or `meshes: [{name: all, hosts: [...]}]`.');
  }
  if (problems.length > 0) throw new InventoryError(problems);
  return { file, hosts, pairs, meshes, defaultResponder };
}

type Report = (path: readonly PropertyKey[], message: string, hint: string, key?: boolean) => void;

function fail(file: string, at: Position, message: string, hint: string): never {
  throw new InventoryError([{ file, ...at, message, hint }]);
}

function readPair(yaml: ParsedYaml, item: unknown, i: number, hosts: Map<string, HostSpec>, report: Report): PairDecl | undefined {
  const at = yaml.locate(['pairs', i]);
  let decl: PairDecl;
  if (Array.isArray(item)) {
    const r = pairListSchema.safeParse(item);
    if (!r.success) {
      report(['pairs', i], item.length === 2 ? 'a pair lists two host names' : `a pair has exactly two hosts, this one has ${item.length}`,
        'Write `- [host-a, host-b]`; for more hosts use a mesh.');
      return undefined;
    }
    decl = { hosts: r.data, origin: 'pair', at };
  } else if (item !== null && typeof item === 'object') {
    const r = pairObjectSchema.safeParse(item);
    if (!r.success) {
      for (const issue of r.error.issues) reportIssue(yaml, issue, ['pairs', i], report);
      return undefined;
    }
    const p = r.data;
    decl = {
      hosts: p.hosts, origin: 'pair', at,
      ...(p.name !== undefined ? { name: p.name } : {}),
      ...(p.initiator !== undefined ? { initiator: p.initiator } : {}),
      ...(p.responder !== undefined ? { responder: p.responder } : {}),
    };
    if (p.name !== undefined && !CONN_NAME.test(p.name)) {
      report(['pairs', i, 'name'], `conn name ${shown(p.name)} is not safe in a file or conn name`,
        'Use letters, digits, dot, dash and underscore, starting with a letter or digit, at most 100 characters.');
    }
    if (p.initiator !== undefined && !p.hosts.includes(p.initiator)) {
      report(['pairs', i, 'initiator'], `initiator ${shown(p.initiator)} is not one of this pair's hosts (${p.hosts.map(shown).join(', ')})`,
        'Set `initiator:` to one of the two hosts, or remove it to let the first host initiate.');
    }
  } else {
    report(['pairs', i], 'a pair is a list of two hosts or a mapping with `hosts:`',
      'Write `- [host-a, host-b]` or `- {hosts: [host-a, host-b], initiator: host-b}`.');
    return undefined;
  }
  const path = Array.isArray(item) ? ['pairs', i] : ['pairs', i, 'hosts'];
  decl.hosts.forEach((h, j) => checkHostRef(h, [...path, j], hosts, report));
  if (decl.hosts[0] === decl.hosts[1]) {
    report([...path, 1], `host ${shown(decl.hosts[0])} is paired with itself`, 'A pair joins two different hosts; fix the second name.');
  }
  return decl;
}

function checkHostRef(name: string, path: readonly PropertyKey[], hosts: Map<string, HostSpec>, report: Report): void {
  if (hosts.has(name)) return;
  const near = nearest(name, [...hosts.keys()]);
  report(path, `unknown host ${shown(name)}`,
    near ? `Did you mean ${near}? Hosts must be defined under \`hosts:\`.` : 'Define it under `hosts:` first, or fix the name.');
}

function checkPort(ssh: RawSsh, path: readonly PropertyKey[], report: Report): void {
  if (ssh.port !== undefined && (ssh.port < 1 || ssh.port > 65535)) {
    report([...path, 'port'], `port ${ssh.port} is out of range`, 'An SSH port is between 1 and 65535; the default is 22.');
  }
}

function checkAddress(address: string, path: readonly PropertyKey[], report: Report): 4 | 6 | undefined {
  const family = isIP(address);
  if (family === 0) {
    let hint = 'Write an IPv4 or IPv6 address, such as 192.0.2.10 or 2001:db8::10.';
    if (/\/\d+$/.test(address)) hint = 'Write the address without a prefix length (drop the /NN).';
    else if (/[a-z]/i.test(address) && !address.includes(':')) {
      hint = 'IPsec peers are matched by IP address: put the IP in `address:` and the DNS name in `ssh.host:`.';
    }
    report(path, `${shown(address)} is not an IP address`, hint);
    return undefined;
  }
  const n = normalizeAddress(address);
  const bad =
    family === 4
      ? /^(0\.|127\.|22[4-9]\.|2[3-5]\d\.)/.test(n)
      : n === '::' || n === '::1' || n.startsWith('ff');
  if (bad) {
    report(path, `${address} cannot be an IPsec endpoint (unspecified, loopback, multicast or reserved)`,
      "Use the address the host's peers reach it on.");
    return undefined;
  }
  return family as 4 | 6;
}

/** Lower-case, compressed form, so that two spellings of one IPv6 address compare equal. */
export function normalizeAddress(address: string): string {
  if (!address.includes(':')) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address.toLowerCase();
  }
}

function sshSettings(defaults: RawSsh, own: RawSsh, address: string): SshSettings {
  const pick = <K extends keyof RawSsh>(k: K): RawSsh[K] => own[k] ?? defaults[k];
  const identityFile = pick('identityFile');
  const jump = pick('jump');
  return {
    host: own.host ?? address,
    port: pick('port') ?? 22,
    user: pick('user') ?? 'root',
    knownHostsFile: pick('knownHostsFile') ?? DEFAULT_KNOWN_HOSTS,
    ...(identityFile ? { identityFile } : {}),
    ...(jump ? { jump } : {}),
  };
}

// ------------------------------------------------------------- schema issues → problems

function allowedKeys(path: readonly PropertyKey[]): string[] {
  const p = path.map(String);
  if (p.length === 0) return keysOf(inventorySchema);
  if (p[0] === 'defaults') {
    if (p.length === 1) return ['ssh', 'ipsec'];
    return p[1] === 'ssh' ? keysOf(sshSchema) : keysOf(ipsecSchema);
  }
  if (p[0] === 'hosts') {
    if (p.length === 2) return keysOf(hostSchema);
    return p[2] === 'ssh' ? keysOf(sshSchema) : ['backend'];
  }
  if (p[0] === 'pairs') return keysOf(pairObjectSchema);
  if (p[0] === 'meshes') return keysOf(meshSchema);
  return [];
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the text ${shown(value)}`;
  return `${typeof value} ${String(value)}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k as string];
  }
  return v;
}

const EXPECTED: Record<string, string> = {
  string: 'text', number: 'a number', object: 'a mapping', array: 'a list', record: 'a mapping', tuple: 'a list',
};

function reportIssue(yaml: ParsedYaml, issue: z.core.$ZodIssue, prefix: readonly PropertyKey[], report: Report): void {
  const path = [...prefix, ...issue.path];
  const where = path.length ? `\`${path.join('.')}\`` : 'the top level';
  switch (issue.code) {
    case 'unrecognized_keys':
      for (const key of issue.keys) {
        const allowed = allowedKeys(path);
        const near = nearest(key, allowed);
        report([...path, key], `unknown key ${shown(key)} in ${where}`,
          near ? `Did you mean \`${near}\`? Allowed here: ${allowed.join(', ')}.` : `Allowed here: ${allowed.join(', ')}.`, true);
      }
      return;
    case 'invalid_type': {
      const got = valueAt(yaml.value, path);
      const expected = EXPECTED[issue.expected] ?? issue.expected;
      if (got === undefined) {
        report(path.slice(0, -1), `${where} is required`, `Add \`${String(path[path.length - 1])}:\` here.`);
        return;
      }
      let hint = `Write ${expected} here.`;
      if (issue.expected === 'string' && typeof got === 'number') hint = 'Quote the value so YAML reads it as text.';
      if (issue.expected === 'number' && typeof got === 'string') hint = 'Write the number without quotes.';
      report(path, `${where} should be ${expected}, not ${describe(got)}`, hint);
      return;
    }
    case 'invalid_value': {
      const got = valueAt(yaml.value, path);
      const options = issue.values.map(String);
      const near = typeof got === 'string' ? nearest(got, options) : undefined;
      report(path, `${where} is ${describe(got)}, which is not one of: ${options.join(', ')}`,
        near ? `Did you mean \`${near}\`?` : `Use one of: ${options.join(', ')}.`);
      return;
    }
    case 'too_small':
    case 'too_big': {
      const got = valueAt(yaml.value, path);
      if (Array.isArray(got)) {
        const bound = issue.code === 'too_small' ? `at least ${String(issue.minimum)}` : `at most ${String(issue.maximum)}`;
        report(path, `${where} has ${got.length} item(s); ${bound} needed`,
          path.includes('meshes') ? 'A mesh needs at least two hosts.' : 'A pair lists exactly two hosts.');
      } else {
        report(path, `${where} must not be empty`, 'Give it a value or remove the key.');
      }
      return;
    }
    default:
      report(path, `${where}: ${issue.message}`, 'See docs/inventory.md for the expected form.');
  }
}

/** A value as a message quotes it: JSON-escaped (so newlines and controls show), and cut short. */
export function shown(value: string): string {
  return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
}

/** The closest candidate within a small edit distance, for "did you mean". */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

function positionAtIndex(text: string, index: number): Position {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  return { line, column: index - before.lastIndexOf('\n') };
}
