import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// The shape of src/: no import cycle, no folder importing one above it, no file over 300
// lines. Read from the import lines themselves (every import of ours is relative, with its
// .js suffix): a tool for it (madge) wants TypeScript 5, and dependency-cruiser Node.js 22.

/** Lowest first: a folder may import only from folders before it (and itself). */
const LAYERS = ['core', 'inventory', 'backends', 'remote', 'plan', 'verify', 'apply', 'status', 'report', 'cli'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const files = sources('src');
const imports = new Map(files.map((f) => [f, [...readFileSync(f, 'utf8').matchAll(/^(?:import|export)\s[^'"]*?from\s+'(\.{1,2}\/[^']+)'/gm)]
  .map((m) => relative('.', resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts'))))]));

function cycles(): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of imports.get(f) ?? []) {
      if (state.get(d) === 'open') found.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  return found;
}

const layerOf = (f: string): string => (f.split('/').length > 2 ? f.split('/')[1]! : 'cli');

test('every relative import names a file that exists (the check below reads them all)', () => {
  const missing = [...imports].flatMap(([f, ds]) => ds.filter((d) => !files.includes(d)).map((d) => `${f} -> ${d}`));
  expect(missing).toEqual([]);
  expect(files.length).toBeGreaterThan(50);
});

test('no import cycle in src/', () => {
  expect(cycles().map((c) => c.join(' > '))).toEqual([]);
});

test('no folder imports one above it (core, inventory, backends, remote, plan, verify, apply, status, report, cli)', () => {
  const up = [...imports].flatMap(([f, ds]) => ds.filter((d) => LAYERS.indexOf(layerOf(d)) > LAYERS.indexOf(layerOf(f))).map((d) => `${f} -> ${d}`));
  expect(up).toEqual([]);
});

test('no file in src/ over 300 lines', () => {
  expect(files.map((f) => [f, readFileSync(f, 'utf8').split('\n').length - 1] as const).filter(([, n]) => n > 300)).toEqual([]);
});
