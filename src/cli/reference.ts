import { parser } from './args.js';

async function help(argv: string[]): Promise<string> {
  return new Promise((resolve) => parser().parse([...argv, '--help'], {}, (_err, _a, out) => resolve(out.trimEnd())));
}

/**
 * docs/cli.md: every command's --help, as the tool prints it. A test checks the file against
 * this, so the reference cannot drift from the code (`npm run cli-doc` rewrites it).
 */
export async function cliReference(): Promise<string> {
  const parts = ['# Command-line reference', '', 'Generated from `provision --help` (`npm run cli-doc`); a test keeps it in step with the code.', ''];
  for (const [title, argv] of [['provision', []], ['provision apply', ['apply']], ['provision status', ['status']], ['provision teardown', ['teardown']], ['provision completion', ['completion']]] as const) {
    parts.push(`## ${title}`, '', '```', await help([...argv]), '```', '');
  }
  return parts.join('\n');
}
