import { BACKENDS } from '../backends/index.js';
import { some } from '../core/text.js';
import type { Changeset, PairPlan } from '../plan/types.js';

/**
 * What the plan says after its hosts: the retired pairs; then, in full, the keys and every
 * pair, or else the skipped pairs counted by reason.
 */
export function trailer(cs: Changeset, full: boolean): string[] {
  const out: string[] = [];
  if (cs.retired.length) {
    out.push('', 'Retired (no longer in the inventory: files deleted, conns taken down)');
    for (const r of cs.retired) out.push(`  ${r.name}: on ${r.hosts.join(', ')}`);
  }
  if (!full) {
    // Skipped pairs by reason: at --limit one of 200 hosts, one line, not 199.
    const byReason = new Map<string, string[]>();
    // The reason without the host it names ("h7 is outside --limit"): one line per kind.
    for (const p of cs.pairs.filter((x) => x.skipped)) {
      const why = `one end ${p.skipped!.replace(/^\S+ /, '')}`;
      byReason.set(why, [...(byReason.get(why) ?? []), p.name]);
    }
    if (byReason.size) out.push('', 'Skipped pairs');
    for (const [why, names] of byReason) out.push(`  ${names.length} skipped (${why}): ${some(names)}`);
    return out;
  }
  const keyed = cs.pairs.filter((p) => !p.skipped && (p.key !== 'unchanged' || p.notRotated));
  if (keyed.length && cs.mode === 'live') {
    out.push('', 'Keys');
    for (const p of keyed) out.push(`  ${p.name}: ${keyLine(cs, p)}`);
  }
  if (cs.pairs.length) {
    out.push('', 'Pairs');
    const width = Math.max(...cs.pairs.map((p) => p.name.length), 4);
    for (const p of cs.pairs) {
      out.push(
        `  ${p.name.padEnd(width)}  ${p.initiator} (auto=start) -> ${p.responder} (auto=${p.responderMode})${p.skipped ? `  skipped: ${p.skipped}` : ''}`,
      );
    }
  }
  return out;
}

function mbb(cs: Changeset, host: string | undefined): boolean {
  const h = cs.hosts.find((x) => x.host === host);
  return Boolean(h && BACKENDS[h.backend.id].makeBeforeBreak);
}

function keyLine(cs: Changeset, p: PairPlan): string {
  const why = p.rotateWhy ? `the key is ${p.rotateWhy}: ` : '';
  return why + keyAction(cs, p);
}

function keyAction(cs: Changeset, p: PairPlan): string {
  if (p.notRotated) return `${p.notRotated}; run without --rotate-psk to see why it is down`;
  switch (p.key) {
    case 'new':
      return 'new pair, new key';
    case 'repaired':
      return `${p.agreement === 'weak' ? 'a weak key (under 256 bits)' : p.agreement === 'disagree' ? 'peers disagree' : 'one end lacks the key'}: repaired with a new key; ${p.reauthBy ?? p.initiator} re-authenticates`;
    case 'rotated':
      return `rotate${p.rotateMode ? ` by ${p.rotateMode} (${p.rotateModeWhy})` : ''}: ${rotation(cs, p)}`;
    default:
      return 'key kept';
  }
}

function rotation(cs: Changeset, p: PairPlan): string {
  switch (p.proof) {
    case 'keys compared': {
      const proof = p.probeBy
        ? `, and ${p.probeBy} authenticates it with a probe IKE SA beside the running one${p.reauthIfNoProbe ? ' (if the probe cannot run, it re-authenticates the pair, make-before-break)' : ''}`
        : ' (no new authentication now: the next one uses it, docs/rotation.md)';
      return `new key on both peers, reread; the two ends' keys are compared${proof}; the pair's SAs are kept; ESP is verified; the old key comes back if that fails`;
    }
    default:
      if (!p.reauthBy) return "new key on both peers, with the pair's changed conn, which is replaced and brought up; then ESP is verified";
      return `new key on both peers, ${p.reauthBy} re-authenticates ${p.reauthBy !== p.initiator || mbb(cs, p.reauthBy) ? 'make-before-break (the new SAs are up before the old ones go)' : '(its SAs are replaced: break-before-make)'}, then ESP is verified; the old key comes back if that fails`;
  }
}
