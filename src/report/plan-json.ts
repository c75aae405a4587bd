import type { Plan } from '../plan/plan.js';
import { confContent, confPath, secretsContent, secretsPath } from '../plan/plan.js';
import { redacted } from '../psk.js';

export const JSON_VERSION = 1;

/** The offline plan as data. Keys appear only as the redacted marker. */
export function planToJson(plan: Plan, inventory: string): object {
  return {
    version: JSON_VERSION,
    mode: 'offline',
    inventory,
    hosts: plan.hosts.map((hp) => ({
      name: hp.host.name,
      address: hp.host.address,
      backend: {
        choice: hp.host.backend,
        id: hp.backend.id,
        package: hp.backend.package,
        version: hp.resolved.version,
        assumed: hp.resolved.assumed,
      },
      files: hp.conns.flatMap((c) => [
        { path: confPath(c), mode: '0644', owner: 'root', action: 'create', pair: c.pair.name, content: confContent(hp, c) },
        { path: secretsPath(c), mode: '0600', owner: 'root', action: 'create', pair: c.pair.name, content: secretsContent(hp, c, redacted('new')) },
      ]),
      includes: hp.includes.map((i) => ({ path: i.path, line: i.line, action: 'ensure' })),
    })),
    pairs: plan.pairs.map((p) => ({
      name: p.name,
      hosts: [p.left, p.right],
      initiator: p.initiator,
      responder: p.responder,
      auto: { [p.initiator]: 'start', [p.responder]: p.responderMode },
    })),
    warnings: plan.warnings,
  };
}
