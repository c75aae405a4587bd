import { loadInventory } from '../../src/inventory/load.js';
import type { Inventory } from '../../src/inventory/types.js';
import { type PlanOptions, planChanges } from '../../src/plan/plan.js';
import type { Changeset } from '../../src/plan/types.js';
import { offlineFacts } from '../../src/remote/facts.js';
import { shownContent } from '../../src/report/plan-text.js';

/** The offline changeset of an inventory: every host as if nothing were installed. */
export function planInventory(inv: Inventory, opts: Partial<PlanOptions> = {}): Changeset {
  return planChanges(inv, new Map([...inv.hosts.keys()].map((h) => [h, offlineFacts()])), {
    mode: 'offline',
    prune: true,
    retireLegacy: false,
    tool: 'test',
    ...opts,
  });
}

export function planText(yaml: string, file = 'test.yaml'): Changeset {
  return planInventory(loadInventory(yaml, file));
}

/** Every file the plan writes, host → path → content, keys redacted as in a dry run. */
export function renderedFiles(cs: Changeset): Map<string, Map<string, string>> {
  return new Map(cs.hosts.map((h) => [h.host, new Map(h.files.filter((f) => f.action !== 'delete').map((f) => [f.path, shownContent(f)]))]));
}
