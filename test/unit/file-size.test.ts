import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

// No file in src/ over 300 lines: a module that grows past it is doing two things. Cycles and
// layers are checked by `npm run lint` (dependency-cruiser).

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('no file in src/ over 300 lines', () => {
  const files = sources('src');
  expect(files.length).toBeGreaterThan(50);
  expect(files.map((f) => [f, readFileSync(f, 'utf8').split('\n').length - 1] as const).filter(([, n]) => n > 300)).toEqual([]);
});
