import { newPsk, PSK_BYTES, type RandomBytes } from '../core/psk.js';
import { ageText } from '../inventory/duration.js';
import type { KeyAgreement, KeyState } from './types.js';

/**
 * Bits of key material in a PSK as ipsec.secrets writes it, 0s base64 or 0x hex, from its
 * masked form (each character a '*': only the prefix, the length and '=' padding are known);
 * anything else counts 0.
 */
export function keyBits(masked: string): number {
  if (/^0[sS][A-Za-z0-9+/*]+=*$/.test(masked)) return Math.floor(((masked.replace(/=+$/, '').length - 2) * 6) / 8) * 8;
  if (/^0[xX][0-9A-Fa-f*]+$/.test(masked)) return (masked.length - 2) * 4;
  return 0;
}

/** A pair end's key as the planner knows it: a MAC of the run's challenge, and its strength. */
export interface KeyRead {
  mac: string;
  bits: number;
}

/** Keys shorter than the 256 random bits provision draws are replaced, even when both ends agree. */
const MIN_KEY_BITS = PSK_BYTES * 8;

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
export function decideKey(
  a: KeyRead | undefined,
  b: KeyRead | undefined,
  opts: { rotate: boolean; upBefore: boolean; initiator: string; responder: string },
): KeyDecision {
  if (a && b && a.mac === b.mac) {
    if (a.bits < MIN_KEY_BITS) return { state: 'repaired', agreement: 'weak', why: 'weak key' };
    if (!opts.rotate) return { state: 'unchanged', agreement: 'agree' };
    if (opts.upBefore) return { state: 'rotated', agreement: 'agree' };
    return {
      state: 'unchanged',
      agreement: 'agree',
      notRotated: `not rotated: ${opts.initiator} holds no ESP SAs with ${opts.responder}, so the pair is down`,
    };
  }
  if (a && b) return { state: 'repaired', agreement: 'disagree', why: 'peers disagree' };
  if (a || b) return { state: 'repaired', agreement: 'missing', why: `${a ? opts.responder : opts.initiator} lacks the key` };
  return { state: 'new', agreement: 'missing' };
}

/**
 * The new keys a run writes, by pair: drawn here, on their way to the pair's two hosts. A
 * kept key is never on the controller: a secrets file rewritten with it takes it from the
 * host's own file (CURRENT_KEY).
 */
export function drawKeys(pairs: readonly { name: string; key: KeyState }[], random: RandomBytes): Map<string, string> {
  return new Map(pairs.filter((p) => p.key !== 'unchanged').map((p) => [p.name, newPsk(random)]));
}

/** Seconds since the older of the two ends' recorded creation times; undefined if neither end recorded one. */
export function keyAge(created: readonly (string | undefined)[], now: number): number | undefined {
  const times = created.filter((t) => t !== undefined).map((t) => Date.parse(t));
  return times.length ? Math.max(0, Math.round((now - Math.min(...times)) / 1000)) : undefined;
}

/** Why `rotation.maxAge` rotates a key of this age (unknown: written before ages were recorded); undefined if it does not. */
export function ageRotation(ageSec: number | undefined, policy: { maxAge: string; maxAgeSec: number }): string | undefined {
  if (ageSec === undefined) return `its age is unknown (written before provision recorded key ages), and rotation.maxAge is ${policy.maxAge}`;
  return ageSec > policy.maxAgeSec ? `${ageText(ageSec)} old, past rotation.maxAge ${policy.maxAge}` : undefined;
}
