import { PSK_BYTES, newPsk, type RandomBytes } from '../psk.js';
import type { KeyAgreement, KeyState } from './types.js';

/** Bits of key material in a PSK as ipsec.secrets writes it: 0s base64, 0x hex; anything else counts 0. */
export function keyBits(psk: string): number {
  if (/^0s[A-Za-z0-9+/]+=*$/.test(psk)) return Buffer.from(psk.slice(2), 'base64').length * 8;
  if (/^0x[0-9A-Fa-f]+$/.test(psk)) return (psk.length - 2) * 4;
  return 0;
}

/** Keys shorter than the 256 random bits provision draws are replaced, even when both ends agree. */
export const MIN_KEY_BITS = PSK_BYTES * 8;

export interface KeyDecision {
  state: KeyState;
  agreement: KeyAgreement;
  /** Why the key changes, for display: "weak key", "peers disagree", "one end lacks it". */
  why?: string;
  notRotated?: string;
}

/**
 * A pair keeps its key while both ends hold the same one and it is strong; a rotation asked
 * for replaces it only while the pair is up (its old SAs are what keeps traffic flowing, and
 * what a failed proof falls back to).
 */
export function decideKey(a: string | undefined, b: string | undefined, opts: { rotate: boolean; upBefore: boolean; initiator: string; responder: string }): KeyDecision {
  if (a && a === b) {
    if (keyBits(a) < MIN_KEY_BITS) return { state: 'repaired', agreement: 'weak', why: 'weak key' };
    if (!opts.rotate) return { state: 'unchanged', agreement: 'agree' };
    if (opts.upBefore) return { state: 'rotated', agreement: 'agree' };
    return { state: 'unchanged', agreement: 'agree', notRotated: `not rotated: ${opts.initiator} holds no ESP SAs with ${opts.responder}, so the pair is down` };
  }
  if (a && b) return { state: 'repaired', agreement: 'disagree', why: 'peers disagree' };
  if (a || b) return { state: 'repaired', agreement: 'missing', why: `${a ? opts.responder : opts.initiator} lacks the key` };
  return { state: 'new', agreement: 'missing' };
}

/** The keys a run writes: the one on the hosts where it is kept, else a new one. */
export function drawKeys(pairs: readonly { name: string; key: KeyState }[], current: ReadonlyMap<string, string>, random: RandomBytes): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of pairs) {
    const kept = current.get(p.name);
    if (p.key === 'unchanged' && kept) out.set(p.name, kept);
    else if (p.key !== 'unchanged') out.set(p.name, newPsk(random));
  }
  return out;
}
