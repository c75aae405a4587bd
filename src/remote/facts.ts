import { createHash } from 'node:crypto';
import { PROBES } from './fact-probes.js';
import type { Facts, Section } from './fact-types.js';

export { FactsRaceError, PACKAGES, parseGuards, parseIpsecVersion } from './fact-probes.js';
export type { Facts } from './fact-types.js';

/**
 * One script, one round trip: each section's `echo '@@name'` and its shell, in order, then
 * `@@end`. Keys are compared by MACs of `challenge`, which must be fresh for each run.
 */
export function sectionsScript(list: readonly Section[], challenge: string): string {
  return `set +e\nexport LC_ALL=C\n${list.map((s) => `echo '@@${s.name}'\n${s.script(challenge)}\n`).join('')}echo '@@end'\n`;
}

/** The facts script: read-only (a dry run runs exactly this and nothing else). */
export const factsScript = (challenge: string): string => sectionsScript(PROBES, challenge);

export function sections(stdout: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of stdout.split('\n')) {
    const m = /^@@(\w+)$/.exec(line);
    if (m) {
      current = [];
      out.set(m[1]!, current);
    } else if (current && line.trim()) {
      current.push(line);
    }
  }
  return out;
}

export function parseFacts(stdout: string): Facts {
  const s = sections(stdout);
  if (!s.has('end')) throw new Error('the facts script did not finish');
  return Object.assign({}, ...PROBES.map((p) => p.parse(s))) as Facts;
}

/** A host as an offline plan sees it: nothing installed, no package lists, no files. */
export function offlineFacts(): Facts {
  return Object.assign({}, ...PROBES.map((p) => p.offline())) as Facts;
}

/**
 * A digest of what the plan depends on in a host's facts (each probe's `digest`): packages,
 * versions, daemon state, includes, conns, and the files with their owners and modes. Keys
 * are left out (a saved plan records agreement, never a key or a hash of one), and so are
 * the kernel's SAs, which come and go with rekeys.
 */
export function digest(f: Facts): string {
  const canonical = JSON.stringify(PROBES.flatMap((p) => (p.digest ? [p.digest(f)] : [])));
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** Whether `a` holds ESP SAs to and from `b`: the pair is up as far as `a` can tell. */
export function saUp(facts: Facts, a: string, b: string): boolean {
  return facts.sas.has(`${a} ${b}`) && facts.sas.has(`${b} ${a}`);
}

/** The (masked) key in a secrets file of ours, if it has exactly one PSK line. */
export function pskOf(content: string | undefined): string | undefined {
  if (!content) return undefined;
  const keys = content
    .split('\n')
    .map((l) => /^\S+\s+\S+\s*:\s*PSK\s+(\S+)\s*$/.exec(l)?.[1])
    .filter(Boolean);
  return keys.length === 1 ? keys[0] : undefined;
}
