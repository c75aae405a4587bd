import { readFile } from 'node:fs/promises';
import yargs from 'yargs';
import { InventoryError, formatProblem } from './inventory/errors.js';
import { loadInventory } from './inventory/load.js';
import { offlineResolver, plan } from './plan/plan.js';
import { planToJson } from './report/plan-json.js';
import { renderPlanText } from './report/plan-text.js';

/** Exit codes, as documented in the README. */
export const EXIT = { ok: 0, failed: 1, badInput: 2, hostKey: 3 } as const;

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export class UsageError extends Error {}

export async function main(argv: string[], io: Io = process): Promise<number> {
  let args;
  try {
    args = await yargs(argv)
      .scriptName('provision')
      .usage('$0 --inventory FILE [options]\n\nSecure traffic between the hosts of an inventory with IPsec transport mode.')
      .option('inventory', { alias: 'i', type: 'string', demandOption: true, describe: 'the YAML inventory of hosts, pairs and meshes' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'show what would change, change nothing' })
      .option('offline', { type: 'boolean', default: false, describe: 'with --dry-run: plan without contacting any host' })
      .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout' })
      .strict()
      .version(false)
      .help()
      .fail((msg, err) => {
        throw err ?? new UsageError(msg);
      })
      .parseAsync();
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\nRun 'provision --help' for the options.\n`);
    return EXIT.badInput;
  }
  if (args.help) return EXIT.ok;

  const file = args.inventory;
  try {
    if (args.offline && !args.dryRun) {
      throw new UsageError('--offline plans without contacting any host, so it needs --dry-run');
    }
    const text = await readInventoryText(file);
    const inventory = loadInventory(text, file);
    if (!args.offline) {
      throw new UsageError('contacting hosts is not built yet: only `--dry-run --offline` works in this version');
    }
    const p = plan(inventory, offlineResolver);
    io.stdout.write(args.json ? JSON.stringify(planToJson(p, file), null, 2) + '\n' : renderPlanText(p, file));
    return EXIT.ok;
  } catch (err) {
    if (err instanceof InventoryError) {
      const n = err.problems.length;
      io.stderr.write(`error: ${file} has ${n} problem${n === 1 ? '' : 's'}; nothing was done.\n`);
      for (const p of err.problems) io.stderr.write(formatProblem(p) + '\n');
      return EXIT.badInput;
    }
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${err.message}\n`);
      return EXIT.badInput;
    }
    throw err;
  }
}

async function readInventoryText(file: string): Promise<string> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    throw new UsageError(`cannot read the inventory ${file}: ${why}`);
  }
  // Decoding marks bad bytes with U+FFFD; the loader reports where the first one is.
  return new TextDecoder('utf-8', { fatal: false }).decode(buf);
}
