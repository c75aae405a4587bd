import { loadInventory } from '../../src/inventory/load.js';
import { confContent, confPath, offlineResolver, plan, secretsContent, secretsPath, type Plan } from '../../src/plan/plan.js';
import { redacted } from '../../src/psk.js';

export function planText(yaml: string, file = 'test.yaml'): Plan {
  return plan(loadInventory(yaml, file), offlineResolver);
}

/** Every file the plan writes, host → path → content, keys redacted as in a dry run. */
export function renderedFiles(p: Plan): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const hp of p.hosts) {
    const files = new Map<string, string>();
    for (const c of hp.conns) {
      files.set(confPath(c), confContent(hp, c));
      files.set(secretsPath(c), secretsContent(hp, c, redacted('new')));
    }
    out.set(hp.host.name, files);
  }
  return out;
}
