import { redacted } from './psk.js';

const PSK_LINE = /^(\S+\s+\S+\s*:\s*PSK\s+)\S+\s*$/;

/**
 * A secrets file as found on a host, safe to show: the key of a PSK line becomes a marker,
 * and any other line that is not a comment is hidden whole, in case it holds a key too.
 */
export function redactFound(content: string): string {
  return content
    .split('\n')
    .map((l) => {
      const m = PSK_LINE.exec(l);
      if (m) return `${m[1]}${redacted('current')}`;
      return l.trim() === '' || l.trimStart().startsWith('#') ? l : '<redacted line>';
    })
    .join('\n');
}
