import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInventory } from '../../src/inventory/load.js';
import { offlineResolver, plan, type Resolver } from '../../src/plan/plan.js';
import { renderedFiles } from '../helpers/plan.js';

// One folder per case: inventory.yaml in, expected/<host>/<file> out. UPDATE_GOLDEN=1
// rewrites the expected files; review the diff before committing it.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'golden');
const update = process.env.UPDATE_GOLDEN === '1';

const resolvers: Record<string, Resolver> = {
  'libreswan-5': (h) => ({ ...offlineResolver(h), version: '5.2' }),
};

describe.each(readdirSync(root))('golden %s', (name) => {
  const dir = join(root, name);
  const p = plan(loadInventory(readFileSync(join(dir, 'inventory.yaml'), 'utf8'), 'inventory.yaml'), resolvers[name] ?? offlineResolver);
  const files = renderedFiles(p);
  const cases = [...files].flatMap(([host, fs]) => [...fs].map(([path, content]) => [host, path, content] as const));

  test.each(cases)('%s %s', (host, path, content) => {
    const expectedFile = join(dir, 'expected', host, path.replace(/^\/etc\/ipsec\.d\//, ''));
    if (update || !existsSync(expectedFile)) {
      if (!update) throw new Error(`no golden file ${expectedFile}; run with UPDATE_GOLDEN=1 and review it`);
      mkdirSync(dirname(expectedFile), { recursive: true });
      writeFileSync(expectedFile, content);
    }
    expect(content).toBe(readFileSync(expectedFile, 'utf8'));
  });

  test('no expected file is left without a rendered one', () => {
    const expectedDir = join(dir, 'expected');
    const expected = readdirSync(expectedDir).flatMap((h) => readdirSync(join(expectedDir, h)).map((f) => `${h}/${f}`));
    const rendered = cases.map(([h, p]) => `${h}/${p.replace(/^\/etc\/ipsec\.d\//, '')}`);
    expect(rendered.sort()).toEqual(expected.sort());
  });
});
