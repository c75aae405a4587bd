import { readFileSync } from 'node:fs';

/** A mistake on the command line: the CLI maps it to exit code 2, before any host is contacted. */
export class UsageError extends Error {}

/**
 * yargs reads `--dry-run=yes` as false: a dry run that applies for real. A boolean flag
 * takes no value, or exactly `true` or `false`; anything else is refused.
 */
export function checkBooleanForms(argv: readonly string[], booleans: readonly string[]): void {
  const names = new Set(booleans);
  for (const arg of argv) {
    if (arg === '--') break;
    const m = /^--(no-)?([^=]+)=(.*)$/s.exec(arg);
    if (!m || !names.has(m[2]!)) continue;
    if (m[3] !== 'true' && m[3] !== 'false') {
      throw new UsageError(`--${m[1] ?? ''}${m[2]} takes no value (or true or false), not ${JSON.stringify(m[3])}`);
    }
  }
}

/** yargs turns a flag given twice into a list; only list flags may be repeated. */
export function checkSingles(args: Record<string, unknown>, singles: readonly string[]): void {
  for (const name of singles) {
    const v = args[name];
    if (Array.isArray(v)) throw new UsageError(`--${name} was given ${v.length} times; give it once`);
  }
}

export function positiveSeconds(name: string, value: unknown, typed: unknown = value): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`--${name} takes a number of seconds above 0, not ${JSON.stringify(String(typed))}`);
  }
  return value;
}

export function wholeAtLeastOne(name: string, value: unknown, typed: unknown = value): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new UsageError(`--${name} takes a whole number of at least 1, not ${JSON.stringify(String(typed))}`);
  }
  return value;
}

/** The version in package.json (one folder above src/ and dist/). */
export function toolVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
