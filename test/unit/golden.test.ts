import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInventory } from '../../src/inventory/load.js';
import { planChanges } from '../../src/plan/plan.js';
import { offlineFacts, parseFacts } from '../../src/remote/facts.js';
import { toJson } from '../../src/report/json.js';
import { renderedFiles } from '../helpers/plan.js';

// One folder per case: inventory.yaml and, optionally, facts/<host>.txt (the facts script's
// output, recorded on lab servers) in; expected/changeset.json and expected/<host>/<file>
// out. Hosts without recorded facts are planned as the offline plan sees them (nothing
// installed). UPDATE_GOLDEN=1 rewrites the expected files; review the diff before committing.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'golden');
const update = process.env.UPDATE_GOLDEN === '1';

function check(file: string, actual: string): void {
  if (update || !existsSync(file)) {
    if (!update) throw new Error(`no golden file ${file}; run with UPDATE_GOLDEN=1 and review it`);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
  }
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

describe.each(readdirSync(root))('golden %s', (name) => {
  const dir = join(root, name);
  const inv = loadInventory(readFileSync(join(dir, 'inventory.yaml'), 'utf8'), 'inventory.yaml');
  const factsDir = join(dir, 'facts');
  const recorded = existsSync(factsDir);
  const facts = new Map(
    [...inv.hosts.keys()].map((h) => {
      const f = join(factsDir, `${h}.txt`);
      return [h, existsSync(f) ? parseFacts(readFileSync(f, 'utf8')) : offlineFacts()];
    }),
  );
  const cs = planChanges(inv, facts, { mode: recorded ? 'live' : 'offline', prune: true, retireLegacy: false, tool: 'golden' });
  const files = renderedFiles(cs);
  const cases = [...files].flatMap(([host, fs]) => [...fs].map(([path, content]) => [host, path, content] as const));

  test('the changeset', () => {
    check(join(dir, 'expected', 'changeset.json'), `${JSON.stringify(toJson(cs), null, 2)}\n`);
  });

  test.each(cases)('%s %s', (host, path, content) => {
    check(join(dir, 'expected', host, path.split('/').pop()!), content);
  });

  test('no expected file is left without a rendered one', () => {
    const expectedDir = join(dir, 'expected');
    const expected = readdirSync(expectedDir)
      .filter((h) => h !== 'changeset.json')
      .flatMap((h) => readdirSync(join(expectedDir, h)).map((f) => `${h}/${f}`));
    const rendered = cases.map(([h, p]) => `${h}/${p.split('/').pop()}`);
    expect(rendered.sort()).toEqual(expected.sort());
  });
});
