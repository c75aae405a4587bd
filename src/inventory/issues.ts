import type { z } from 'zod';
import { groupSchema, hostSchema, inventorySchema, ipsecSchema, keysOf, meshSchema, pairObjectSchema, sshSchema } from './schema.js';
import type { ParsedYaml } from './yaml.js';

export type Report = (path: readonly PropertyKey[], message: string, hint: string, key?: boolean) => void;

// Schema issues → problems with a position, a plain-words message and a hint.

function allowedKeys(path: readonly PropertyKey[]): string[] {
  const p = path.map(String);
  if (p.length === 0) return keysOf(inventorySchema);
  if (p[0] === 'defaults') {
    if (p.length === 1) return ['ssh', 'ipsec'];
    return p[1] === 'ssh' ? keysOf(sshSchema) : keysOf(ipsecSchema);
  }
  if (p[0] === 'hosts') {
    if (p.length === 2) return keysOf(hostSchema);
    return p[2] === 'ssh' ? keysOf(sshSchema) : keysOf(ipsecSchema);
  }
  if (p[0] === 'groups') {
    if (p.length === 2) return keysOf(groupSchema);
    return p[2] === 'ssh' ? keysOf(sshSchema) : keysOf(ipsecSchema);
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
  string: 'text',
  number: 'a number',
  object: 'a mapping',
  array: 'a list',
  record: 'a mapping',
  tuple: 'a list',
};

export function reportIssue(yaml: ParsedYaml, issue: z.core.$ZodIssue, prefix: readonly PropertyKey[], report: Report): void {
  const path = [...prefix, ...issue.path];
  const where = path.length ? `\`${path.join('.')}\`` : 'the top level';
  switch (issue.code) {
    case 'unrecognized_keys':
      for (const key of issue.keys) {
        const allowed = allowedKeys(path);
        const near = nearest(key, allowed);
        report(
          [...path, key],
          `unknown key ${shown(key)} in ${where}`,
          near ? `Did you mean \`${near}\`? Allowed here: ${allowed.join(', ')}.` : `Allowed here: ${allowed.join(', ')}.`,
          true,
        );
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
      report(
        path,
        `${where} is ${describe(got)}, which is not one of: ${options.join(', ')}`,
        near ? `Did you mean \`${near}\`?` : `Use one of: ${options.join(', ')}.`,
      );
      return;
    }
    case 'too_small':
    case 'too_big': {
      const got = valueAt(yaml.value, path);
      if (Array.isArray(got)) {
        const bound = issue.code === 'too_small' ? `at least ${String(issue.minimum)}` : `at most ${String(issue.maximum)}`;
        report(
          path,
          `${where} has ${got.length} item(s); ${bound} needed`,
          path.includes('meshes') ? 'A mesh needs at least two hosts.' : 'A pair lists exactly two hosts.',
        );
      } else if (typeof got === 'number') {
        const bound = issue.code === 'too_small' ? `at least ${String(issue.minimum)}` : `at most ${String(issue.maximum)}`;
        report(path, `${where} is ${got}; it must be ${bound}`, 'An SSH port is between 1 and 65535; the default is 22.');
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
