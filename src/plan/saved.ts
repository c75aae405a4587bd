import { z } from 'zod';
import type { Changeset, HostPlan, PairPlan } from './types.js';

/**
 * A plan saved by `--dry-run --out`, for `provision apply`: the changeset as reviewed, the
 * inventory it came from (its text: an inventory holds no secret), and the options. It holds
 * no key and no hash of a key: keys are drawn when applied; pairs record only whether their
 * ends agreed. `apply` reads the hosts again, plans again, and applies only to hosts whose
 * plan came out the same: what was reviewed is what is applied.
 */
export interface SavedPlan {
  kind: 'provision-plan';
  version: 2;
  tool: string;
  inventory: { file: string; fleet: string; text: string };
  /** keyAgesAt: when the plan counted key ages from (ms), so that applying it decides as it did. */
  options: { limit?: string[]; rotate?: string[]; rotateMode?: 'reauth' | 'reread'; prune: boolean; retireLegacy: boolean; keyAgesAt?: number };
  changeset: Changeset;
}

const envelope = z.object({
  kind: z.literal('provision-plan'),
  version: z.literal(2),
  tool: z.string(),
  inventory: z.object({ file: z.string(), fleet: z.string(), text: z.string() }),
  options: z.object({
    limit: z.array(z.string()).optional(),
    rotate: z.array(z.string()).optional(),
    rotateMode: z.enum(['reauth', 'reread']).optional(),
    prune: z.boolean(),
    retireLegacy: z.boolean(),
    keyAgesAt: z.number().optional(),
  }),
  changeset: z
    .object({
      version: z.literal(2),
      mode: z.literal('live'),
      hosts: z.array(z.object({ host: z.string() }).passthrough()),
      pairs: z.array(z.object({ name: z.string() }).passthrough()),
    })
    .passthrough(),
});

export function savePlan(cs: Changeset, inventoryText: string, options: SavedPlan['options']): string {
  const saved: SavedPlan = { kind: 'provision-plan', version: 2, tool: cs.tool, inventory: { ...cs.inventory, text: inventoryText }, options, changeset: cs };
  return `${JSON.stringify(saved, null, 2)}\n`;
}

/** A saved plan's envelope checked; what it says is compared against a fresh plan, never executed as is. */
export function readSavedPlan(text: string): SavedPlan | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `it is not JSON (${(err as Error).message})`;
  }
  const r = envelope.safeParse(value);
  if (!r.success)
    return `it is not a plan saved by provision --dry-run --out (${r.error.issues[0]?.path.join('.') || 'top level'}: ${r.error.issues[0]?.message})`;
  return value as SavedPlan;
}

const comparable = (h: HostPlan): object => ({ ...h, facts: undefined, guard: h.guard ? { ...h.guard, dropped: undefined } : undefined });

/**
 * What differs between the plan reviewed for a host and the plan made now, in words; empty
 * when they are the same. A host whose facts changed is named by what changed.
 */
export function hostDrift(saved: HostPlan, now: HostPlan | undefined, pairsSaved: readonly PairPlan[], pairsNow: readonly PairPlan[]): string[] {
  if (!now) return ['it is no longer in the inventory'];
  const out: string[] = [];
  if (saved.facts !== now.facts) {
    if (saved.backend.version !== now.backend.version || saved.backend.id !== now.backend.id)
      out.push(`${saved.backend.package} ${saved.backend.version} then, ${now.backend.package} ${now.backend.version} now`);
    const before = new Map(saved.files.map((f) => [f.path, f]));
    for (const f of now.files) {
      const b = before.get(f.path);
      if (!b || b.action !== f.action || b.content !== f.content || b.before !== f.before) out.push(`${f.path} changed`);
    }
    for (const f of saved.files) if (!now.files.some((x) => x.path === f.path)) out.push(`${f.path} changed`);
    if (saved.service !== now.service) out.push(`the daemon: ${saved.serviceReason} then, ${now.serviceReason} now`);
    if (!out.length) out.push('its state (packages, daemon, includes or files) changed');
  } else if (JSON.stringify(comparable(saved)) !== JSON.stringify(comparable(now))) {
    out.push('its plan differs from the one saved');
  }
  const mine = (ps: readonly PairPlan[]) => ps.filter((p) => p.initiator === saved.host || p.responder === saved.host);
  for (const p of mine(pairsSaved)) {
    const n = pairsNow.find((x) => x.name === p.name);
    if (!n) out.push(`pair ${p.name} is no longer in the inventory`);
    else if (n.agreement !== p.agreement)
      out.push(
        `the keys of ${p.name} were ${p.agreement === 'agree' ? 'in agreement' : p.agreement}, now ${n.agreement === 'agree' ? 'in agreement' : n.agreement}`,
      );
    else if (n.key !== p.key || n.upBefore !== p.upBefore) out.push(`pair ${p.name} was ${p.upBefore ? 'up' : 'down'}, now ${n.upBefore ? 'up' : 'down'}`);
  }
  return [...new Set(out)];
}
