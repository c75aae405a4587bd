import ora from 'ora';
import type { Hooks, HostOutcome, PairOutcome } from '../apply/outcome.js';
import { printable } from '../core/text.js';

function outcomeWord(o: HostOutcome): string {
  switch (o.status) {
    case 'changed':
      return `changed: ${o.did.join('; ')}`;
    case 'failed':
      return `FAILED at ${o.step}: ${printable(o.error)}`;
    case 'unreachable':
      return `UNREACHABLE: ${printable(o.error)}`;
    case 'refused':
      return `REFUSED: ${printable(o.error)}`;
    case 'stale':
      return `STALE PLAN: ${printable(o.error)}`;
    case 'interrupted':
      return `INTERRUPTED${o.did.length ? ` after: ${o.did.join('; ')}` : ''}`;
    default:
      return o.status;
  }
}

function pairWord(p: PairOutcome): string {
  if (p.status === 'verified') {
    const [a, b] = p.directions;
    return `ESP verified (${a!.from} out ${a!.counts.espOut}/in ${a!.counts.espIn}, ${b!.from} out ${b!.counts.espOut}/in ${b!.counts.espIn})`;
  }
  if (p.status === 'rolled-back') return `ROLLED BACK: ${printable(p.reason)}; ${printable(p.restored)}`;
  return p.status === 'failed' ? `FAILED: ${printable(p.reason)}` : `${p.status}: ${printable(p.reason)}`;
}

/** On a terminal, hosts (and pairs) that went well get a line of their own up to this many hosts. */
export const SUCCESS_LINES = 50;

/** How much progress: none (--quiet), a spinner or lines (default), lines always (--verbose). */
export type Verbosity = 'quiet' | 'normal' | 'verbose';

/**
 * A spinner only on a terminal that says how wide it is: ora divides by the width, and a
 * terminal reporting 0 columns (some CI runners, `stty cols 0`) made it loop for ever.
 */
export function spinnerFits(stream: NodeJS.WriteStream | NodeJS.WritableStream): boolean {
  const s = stream as Partial<NodeJS.WriteStream>;
  return s.isTTY === true && typeof s.columns === 'number' && Number.isFinite(s.columns) && s.columns > 0;
}

/**
 * Progress on stderr: a spinner with hosts done of total and the current step on a
 * terminal; one plain line per event otherwise (logs, CI, pipes).
 */
export function progressHooks(
  stream: NodeJS.WriteStream | NodeJS.WritableStream,
  total: number,
  level: Verbosity = 'normal',
): Hooks & { stop(): void; pause(): void; resume(): void } {
  if (level === 'quiet') return { stop: () => undefined, pause: () => undefined, resume: () => undefined };
  // --verbose: a line per event, as in a log, even on a terminal.
  const tty = level === 'normal' && spinnerFits(stream);
  let done = 0;
  const current = new Map<string, string>();
  if (!tty) {
    const line = (s: string): void => void stream.write(`${s}\n`);
    return {
      onStep: (host, step) => line(`${host}: ${step}`),
      onHostDone: (host, o) => line(`${host}: ${outcomeWord(o)} [${++done}/${total}]`),
      onPairDone: (p) => line(`pair ${p.name}: ${pairWord(p)}`),
      onNote: (m) => line(printable(m)),
      stop: () => undefined,
      pause: () => undefined,
      resume: () => undefined,
    };
  }
  const spinner = ora({ stream: stream as NodeJS.WriteStream, text: `0/${total} hosts` }).start();
  // Past SUCCESS_LINES hosts, a host that went well is a count on the spinner's line, not a
  // line of its own: a thousand hosts leave the failures on screen, not a thousand lines.
  const counted = total > SUCCESS_LINES;
  let failed = 0;
  let verified = 0;
  const render = (): void => {
    const steps = [...current]
      .slice(0, 3)
      .map(([h, s]) => `${h}: ${s}`)
      .join(', ');
    const tally = counted ? ` (${failed} failed${verified ? `, ${verified} pairs verified` : ''})` : '';
    spinner.text = `${done}/${total} hosts done${tally}${steps ? ` · ${steps}${current.size > 3 ? ` (+${current.size - 3})` : ''}` : ''}`;
  };
  const persist = (symbol: 'succeed' | 'fail' | 'info', text: string): void => {
    spinner[symbol](text);
    spinner.start();
    render();
  };
  return {
    onStep: (host, step) => {
      current.set(host, step);
      render();
    },
    onHostDone: (host, o) => {
      current.delete(host);
      done++;
      const bad = ['failed', 'unreachable', 'refused', 'stale'].includes(o.status);
      if (bad) failed++;
      if (bad || !counted) persist(bad ? 'fail' : 'succeed', `${host}: ${outcomeWord(o)}`);
      else render();
    },
    onPairDone: (p) => {
      if (p.status === 'verified') verified++;
      if (p.status !== 'verified' || !counted) persist(p.status === 'verified' ? 'succeed' : 'fail', `pair ${p.name}: ${pairWord(p)}`);
      else render();
    },
    onNote: (m) => persist('info', m),
    stop: () => spinner.stop(),
    // While a person reads the plan and answers: the spinner would redraw over both.
    pause: () => spinner.stop(),
    resume: () => {
      spinner.start();
      render();
    },
  };
}
