/** A duration as an inventory writes it ("90d": hours, days or weeks), in seconds. */
export function durationSec(text: string): number {
  return Number(text.slice(0, -1)) * { h: 3600, d: 86400, w: 604800 }[text.slice(-1) as 'h' | 'd' | 'w'];
}

/** Seconds as people read an age: "97 days", "5 hours", "40 minutes". */
export function ageText(sec: number): string {
  const [n, unit] = sec >= 2 * 86400 ? [sec / 86400, 'day'] : sec >= 2 * 3600 ? [sec / 3600, 'hour'] : [sec / 60, 'minute'];
  const whole = Math.floor(n);
  return `${whole} ${unit}${whole === 1 ? '' : 's'}`;
}
