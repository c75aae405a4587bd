import { readFileSync } from 'node:fs';
import { applyCommand } from './cli/apply-command.js';
import {
  type ApplyArgs,
  type Args,
  BOOLEAN_FLAGS,
  COMMANDS,
  EXIT,
  KNOWN_FLAGS,
  parser,
  type RunArgs,
  SINGLE_FLAGS,
  type StatusArgs,
  type TeardownArgs,
} from './cli/args.js';
import { completionScript } from './cli/completion.js';
import { checkBooleanForms, checkSingles, positiveSeconds, UsageError, wholeAtLeastOne } from './cli/flags.js';
import { type Deps, terminalAsk } from './cli/live.js';
import { runCommand } from './cli/run-command.js';
import { statusCommand } from './cli/status-command.js';
import { teardownCommand } from './cli/teardown-command.js';
import { formatProblem, InventoryError } from './inventory/errors.js';
import { nearest } from './inventory/issues.js';
import { connect } from './remote/session.js';
import type { Io } from './report/view.js';

export type { Args } from './cli/args.js';
export { EXIT } from './cli/args.js';
export { UsageError } from './cli/flags.js';
export type { Deps } from './cli/live.js';
export { exitCode } from './cli/run-command.js';
export { parseRotate } from './cli/scope.js';
export type { Io } from './report/view.js';

/**
 * "Unknown argument: dry-rn" → adds "did you mean --dry-run?"; a flag of another command says
 * so ("--dry-run is not an option of `provision status`").
 */
function withSuggestion(message: string, argv: readonly string[]): string {
  const m = /^Unknown arguments?: (.+)$/.exec(message);
  if (!m) return message;
  const command = COMMANDS.find((c) => argv[0] === c);
  const hints = m[1]!
    .split(', ')
    .filter((a) => !/[A-Z]/.test(a))
    .map((a) => {
      if ((KNOWN_FLAGS as readonly string[]).includes(a)) return `--${a} is not an option of \`provision${command ? ` ${command}` : ''}\``;
      const flag = nearest(a, KNOWN_FLAGS);
      const cmd = nearest(a, COMMANDS);
      return flag ? `--${a}: did you mean --${flag}?` : cmd ? `${a}: did you mean \`provision ${cmd}\`?` : '';
    })
    .filter(Boolean);
  return hints.length ? `${message} (${hints.join('; ')})` : message;
}

/** What the command line said for a flag, as typed (yargs turns "abc" into NaN for numbers). */
function typed(argv: readonly string[], name: string, parsed: unknown): unknown {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}`) return argv[i + 1] ?? parsed;
    if (argv[i]!.startsWith(`--${name}=`)) return argv[i]!.slice(name.length + 3);
  }
  return parsed;
}

/** With --nagios, bad input is the plugin's UNKNOWN (3), not CRITICAL. */
function badInput(argv: readonly string[]): number {
  return argv[0] === 'status' && argv.includes('--nagios') ? 3 : EXIT.badInput;
}

function defaultDeps(): Deps {
  const ask = terminalAsk();
  return { connect, ...(ask ? { ask } : {}) };
}

export async function main(argv: string[], io: Io = process, deps: Deps = defaultDeps()): Promise<number> {
  let args: Args;
  try {
    checkBooleanForms(argv, BOOLEAN_FLAGS);
    const parsed = await new Promise<{ args: Args; output: string }>((resolve, reject) => {
      parser().parse(argv, {}, (err, a, output) => (err ? reject(new UsageError(withSuggestion(err.message, argv))) : resolve({ args: a as Args, output })));
    });
    if (parsed.args.help || parsed.args.version) {
      io.stdout.write(parsed.output.endsWith('\n') ? parsed.output : `${parsed.output}\n`);
      return EXIT.ok;
    }
    args = parsed.args;
    checkSingles(args, SINGLE_FLAGS);
    if (args.connectTimeout !== undefined) positiveSeconds('connect-timeout', args.connectTimeout, typed(argv, 'connect-timeout', args.connectTimeout));
    if (args.concurrency !== undefined) wholeAtLeastOne('concurrency', args.concurrency, typed(argv, 'concurrency', args.concurrency));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`error: ${err.message}\nRun 'provision --help' for the options.\n`);
    return badInput(argv);
  }

  try {
    switch (args._[0]) {
      case 'schema':
        // Shipped in the package beside dist/: an installed copy prints its own.
        io.stdout.write(readFileSync(new URL('../docs/provision.schema.json', import.meta.url), 'utf8'));
        return EXIT.ok;
      case 'completion':
        io.stdout.write(completionScript(String(args.shell ?? 'bash')));
        return EXIT.ok;
      // yargs has checked each command's flags against its definition (args.ts): types, choices, defaults.
      case 'apply':
        return await applyCommand(args as unknown as ApplyArgs, io, deps);
      case 'status':
        return await statusCommand(args as unknown as StatusArgs, io, deps);
      case 'teardown':
        return await teardownCommand(args as unknown as TeardownArgs, io, deps);
      default:
        return await runCommand(args as unknown as RunArgs, io, deps);
    }
  } catch (err) {
    if (err instanceof InventoryError) {
      const n = err.problems.length;
      io.stderr.write(`error: ${err.problems[0]?.file ?? 'the inventory'} has ${n} problem${n === 1 ? '' : 's'}; nothing was done.\n`);
      for (const p of err.problems) io.stderr.write(`${formatProblem(p)}\n`);
      // With --json, a program reads stdout: it gets the problems as data too.
      if (args.json) io.stdout.write(`${JSON.stringify({ error: 'inventory', problems: err.problems }, null, 2)}\n`);
      return badInput(argv);
    }
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${err.message}\n`);
      if (args.json) io.stdout.write(`${JSON.stringify({ error: 'usage', message: err.message }, null, 2)}\n`);
      return badInput(argv);
    }
    throw err;
  }
}
