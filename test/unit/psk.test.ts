import { randomBytes } from 'node:crypto';
import { newPsk, redacted } from '../../src/core/psk.js';

test('a PSK is 32 random bytes written as 0s<base64>', () => {
  const psk = newPsk(randomBytes);
  expect(psk).toMatch(/^0s[A-Za-z0-9+/]{43}=$/);
  expect(Buffer.from(psk.slice(2), 'base64')).toHaveLength(32);
  expect(newPsk(randomBytes)).not.toBe(psk);
});

test('the randomness is injected, so a plan is reproducible in tests', () => {
  const fixed = (n: number) => new Uint8Array(n).fill(7);
  expect(newPsk(fixed)).toBe(newPsk(fixed));
});

test('the redacted marker says what kind of key it hides and nothing else', () => {
  expect(redacted('new')).toBe('<redacted: new 256-bit key>');
});
