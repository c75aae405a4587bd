import { Writable } from 'node:stream';
import { printable, tail } from '../../src/core/text.js';
import { progressHooks, spinnerFits } from '../../src/report/progress.js';
import { renderSummary } from '../../src/report/summary.js';

class Tty extends Writable {
  text = '';
  constructor(
    readonly isTTY: boolean,
    readonly columns: number | undefined,
  ) {
    super();
  }
  override _write(chunk: Buffer, _e: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
  // What ora moves a terminal's cursor with: here the text alone is kept.
  cursorTo(): boolean {
    return true;
  }
  clearLine(): boolean {
    return true;
  }
  moveCursor(): boolean {
    return true;
  }
}

describe('progress on a terminal', () => {
  test('a terminal that reports 0 columns gets plain lines, not a spinner (ora would loop)', () => {
    const s = new Tty(true, 0);
    expect(spinnerFits(s as never)).toBe(false);
    const p = progressHooks(s as never, 1);
    p.onStep?.('server-01', 'facts');
    p.onHostDone?.('server-01', { status: 'unchanged' });
    p.stop();
    expect(s.text).toBe('server-01: facts\nserver-01: unchanged [1/1]\n');
  });

  test('past 50 hosts, the hosts that went well are counts on the spinner line; a failed host still gets its own line', () => {
    const lines = (total: number) => {
      const s = new Tty(true, 120);
      const p = progressHooks(s as never, total);
      for (let i = 0; i < total - 1; i++) p.onHostDone?.(`h${i}`, { status: 'unchanged' });
      p.onHostDone?.('bad', { status: 'unreachable', error: 'no route', hint: '' });
      p.stop();
      // ora redraws its line in place: the lines that stay are those it ends with a newline.
      return s.text.split('\n').filter((l) => /h\d+: unchanged|bad: UNREACHABLE/.test(l));
    };
    expect(lines(10)).toHaveLength(10);
    const big = lines(1000);
    expect(big).toHaveLength(1);
    expect(big[0]).toMatch(/bad: UNREACHABLE: no route/);
  });

  test('no columns at all, or not a TTY: plain lines', () => {
    expect(spinnerFits(new Tty(true, undefined) as never)).toBe(false);
    expect(spinnerFits(new Tty(false, 80) as never)).toBe(false);
    expect(spinnerFits(new Tty(true, 80) as never)).toBe(true);
  });
});

describe('text from hosts is printed inert', () => {
  test('control characters and escape sequences are shown as \\xNN', () => {
    expect(printable('ok\x1b[2J\x1b]0;pwned\x07\r\nnext: rm -rf /')).toBe('ok\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x0anext: rm -rf /');
    expect(printable(printable('a\x1bb'))).toBe('a\\x1bb');
    expect(printable('bidi \u202e evil')).toBe('bidi \\u202e evil');
    expect(tail('line 1\n\x1b[31mred\x1b[0m\n')).toBe('line 1 | \\x1b[31mred\\x1b[0m');
  });

  test('the summary and the progress lines escape a host error', () => {
    const evil = 'apt said \x1b[2J\x1b[Hall fine';
    const summary = renderSummary({
      dryRun: false,
      interrupted: false,
      pairs: [],
      warnings: [],
      hosts: new Map([['server-01', { status: 'failed', step: 'install', error: evil, hint: 'look' }]]),
      stats: { hosts: 1, connections: 1, commands: 1, wallMs: 1 },
    });
    expect(summary).not.toContain('\x1b');
    expect(summary).toContain('apt said \\x1b[2J\\x1b[Hall fine');
    const s = new Tty(false, undefined);
    const p = progressHooks(s as never, 1);
    p.onHostDone?.('server-01', { status: 'failed', step: 'install', error: evil, hint: 'look' });
    expect(s.text).not.toContain('\x1b');
  });
});

describe('big fleets read well', () => {
  test('beyond 20 pairs, verified pairs are counted in one line; the others are named', () => {
    const pairs = Array.from({ length: 30 }, (_, i) => ({ name: `p${i}`, initiator: 'a', responder: 'b', status: 'verified' as const, directions: [] }));
    const text = renderSummary({
      dryRun: false,
      interrupted: false,
      warnings: [],
      pairs: [...pairs, { name: 'bad', initiator: 'a', responder: 'c', status: 'failed', reason: 'no ESP', directions: [] }],
      hosts: new Map([['a', { status: 'unchanged' }]]),
      stats: { hosts: 1, connections: 1, commands: 1, wallMs: 1 },
    });
    expect(text).toMatch(/^ {2}30 pairs +ESP verified +\(each in --json\)$/m);
    expect(text).toMatch(/^ {2}bad +FAILED +no ESP$/m);
    expect(text).not.toMatch(/^ {2}p7 /m);
  });
});
