/** Quotes a value for a POSIX shell: every inventory value goes through this, never raw. */
export function quote(value: string): string {
  if (/^[A-Za-z0-9_./:@%+=,-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The shell line that runs `script` with sh, as root, bounded in time. */
export function wrap(script: string, opts: { sudo: boolean; timeoutSec: number }): string {
  const inner = `timeout -k 5 ${Math.max(1, Math.ceil(opts.timeoutSec))} sh -c ${quote(script)}`;
  return opts.sudo ? `sudo -n -- ${inner}` : inner;
}
