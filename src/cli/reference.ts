import { EXIT_TEXT, parser } from './args.js';

async function help(argv: string[]): Promise<string> {
  return new Promise((resolve) => parser().parse([...argv, '--help'], {}, (_err, _a, out) => resolve(out.trimEnd())));
}

/**
 * docs/cli.md: every command's --help, as the tool prints it. A test checks the file against
 * this, so the reference cannot drift from the code (`npm run cli-doc` rewrites it).
 */
export async function cliReference(): Promise<string> {
  const parts = ['# Command-line reference', '', 'Generated from `provision --help` (`npm run cli-doc`); a test keeps it in step with the code.', ''];
  for (const [title, argv] of [
    ['provision', []],
    ['provision apply', ['apply']],
    ['provision status', ['status']],
    ['provision teardown', ['teardown']],
    ['provision schema', ['schema']],
    ['provision completion', ['completion']],
  ] as const) {
    parts.push(`## ${title}`, '', '```', await help([...argv]), '```', '');
  }
  return parts.join('\n');
}

/** Text as roff reads it literally: backslashes doubled, a leading dot or quote escaped. */
function roff(text: string): string {
  return text
    .split('\n')
    .map((l) => l.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1'))
    .join('\n');
}

/**
 * man/provision.1: the same --help of every command, as a manual page (`man provision` once
 * the package is installed). Generated with docs/cli.md; a test keeps it in step.
 */
export async function manPage(version: string): Promise<string> {
  const out = [
    `.TH PROVISION 1 "" "provision ${version}" "User Commands"`,
    '.SH NAME',
    'provision \\- secure traffic between Linux servers with IPsec transport mode, for a whole fleet, over SSH',
    '.SH SYNOPSIS',
    '.B provision',
    '\\-i \\fIinventory.yaml\\fR [\\fB\\-\\-dry\\-run\\fR [\\fB\\-\\-offline\\fR]] [\\fIoptions\\fR]',
    '.br',
    '.B provision apply',
    '\\fIplan.json\\fR | \\fBstatus\\fR | \\fBteardown\\fR \\-i \\fIinventory.yaml\\fR | \\fBcompletion\\fR \\fIshell\\fR',
    '.SH DESCRIPTION',
    "provision plans each server's IPsec configuration from a YAML inventory of servers and the pairs (or meshes) that must talk privately, then, over SSH and on every server at once, installs the IPsec stack, writes the conn and pre-shared-key files, restarts or reloads the daemon, and proves the result on the wire. A re-run changes nothing when nothing changed; a dry run shows every change first.",
  ];
  for (const [title, argv] of [
    ['PROVISION', []],
    ['PROVISION APPLY', ['apply']],
    ['PROVISION STATUS', ['status']],
    ['PROVISION TEARDOWN', ['teardown']],
    ['PROVISION SCHEMA', ['schema']],
    ['PROVISION COMPLETION', ['completion']],
  ] as const) {
    out.push(`.SH ${title}`, '.nf', roff(await help([...argv])), '.fi');
  }
  out.push(
    '.SH EXIT STATUS',
    '.nf',
    roff(EXIT_TEXT),
    '.fi',
    '.SH FILES',
    "/etc/ipsec.d/\\fIpair\\fR.conf, /etc/ipsec.d/\\fIpair\\fR.secrets, /etc/provision/guard\\-\\fIfleet\\fR.nft, /etc/provision/ssh\\-\\fIfleet\\fR.xfrm on each server: provision's own, each with a header naming its fleet.",
    '.SH SEE ALSO',
    "The documentation in the package's docs/ folder: inventory.md, output.md, security.md, rotation.md, troubleshooting.md.",
    '',
  );
  return out.join('\n');
}
