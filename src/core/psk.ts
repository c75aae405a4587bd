/** Pre-shared keys: 32 random bytes (256 bits), written as libreswan and strongSwan read them. */
export type RandomBytes = (n: number) => Uint8Array;

export const PSK_BYTES = 32;

export function newPsk(random: RandomBytes): string {
  return `0s${Buffer.from(random(PSK_BYTES)).toString('base64')}`;
}

/** What a run does with a pair's key (plan/types.ts re-exports it for the changeset). */
export type KeyState = 'new' | 'unchanged' | 'rotated' | 'repaired';

/** `current` marks a key that is on the host now. */
type KeyLabel = KeyState | 'current';

/** What stands in for a key wherever a person or a machine reads a plan. */
export function redacted(state: KeyLabel): string {
  return `<redacted: ${state} ${PSK_BYTES * 8}-bit key>`;
}
