import { randomBytes } from 'node:crypto';
import { BACKENDS } from '../../backends/index.js';
import { pairFile } from '../../core/paths.js';
import { quote } from '../../core/shell.js';
import type { HostPlan, PairPlan } from '../../plan/types.js';
import { keyMacs, parseKeys } from '../../remote/secrets.js';
import { type Ctx, phase, runStep, step } from '../context.js';

/** Prints a MAC of a fresh challenge and each named secrets file's key: the key stays on the host. */
export function keyMacScript(challenge: string, paths: readonly string[]): string {
  return `set --\nfor f in ${paths.map(quote).join(' ')}; do [ -f "$f" ] && set -- "$@" "$f"; done\n${keyMacs(challenge)}\n`;
}

/**
 * `--rotate-mode reread`: both ends of each pair hold the same new key, compared by a MAC
 * of a fresh challenge on each host (no key, nor a hash of one, leaves a host). Returns why
 * a pair fails, by pair.
 */
export async function compareKeys(ctx: Ctx, pairs: readonly PairPlan[]): Promise<Map<string, string>> {
  const challenge = randomBytes(16).toString('hex');
  const byHost = new Map<string, string[]>();
  for (const p of pairs) for (const h of [p.initiator, p.responder]) byHost.set(h, [...(byHost.get(h) ?? []), pairFile(p.name, 'secrets')]);
  const macs = new Map<string, Map<string, string>>();
  await phase(ctx, [...byHost], async ([host, paths]) => {
    const r = await runStep(ctx, host, step('compare-keys', 'compare keys'), keyMacScript(challenge, paths));
    if (r.ok) macs.set(host, new Map([...parseKeys(r.stdout.split('\n'))].map(([path, k]) => [path, k.mac])));
  });
  const out = new Map<string, string>();
  for (const p of pairs) {
    const path = pairFile(p.name, 'secrets');
    const [a, b] = [macs.get(p.initiator)?.get(path), macs.get(p.responder)?.get(path)];
    if (!a || !b) out.set(p.name, `the keys of ${p.name} could not be compared on ${!a ? p.initiator : p.responder}`);
    else if (a !== b) out.set(p.name, `after the reread, ${p.initiator} and ${p.responder} hold different keys for ${p.name}`);
  }
  return out;
}

type ProbeResult = { ok: true } | { ok: false; refused: boolean; reason: string };

/**
 * `--rotate-mode reread` where one end can probe (PairPlan.probeBy): a new IKE SA without a
 * Child SA authenticates the new key now, beside the pair's running SAs, which carry on.
 * `refused`: an end did not take the key (the rotation rolls back); otherwise the probe
 * could not run, which says nothing about the key.
 */
export async function probeKey(ctx: Ctx, by: string, plan: HostPlan, pair: string, local: string, peer: string): Promise<ProbeResult> {
  const script = BACKENDS[plan.backend.id].probe?.({ name: pair, local, peer });
  if (!script) return { ok: false, refused: false, reason: `${plan.backend.package} on ${by} cannot probe` };
  const r = await runStep(ctx, by, step('probe', `probe the new key of ${pair}`), script);
  if (!r.ok) return { ok: false, refused: false, reason: r.outcome.status === 'failed' ? r.outcome.error : `${by} ${r.outcome.status}` };
  if (r.code === 0) return { ok: true };
  const said = r.stderr.trim().split('\n').slice(-3).join(' | ');
  return { ok: false, refused: r.code === 1, reason: said || `exit ${r.code}` };
}
