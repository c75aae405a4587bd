import yargs, { type Argv } from 'yargs';
import { toolVersion } from './flags.js';

/** The parsed command line, as yargs gives it. */
export type Args = Record<string, unknown> & { _: (string | number)[] };

/** The flags of every command that reaches hosts (connectOptions), as yargs checked them. */
export interface ConnectArgs {
  concurrency: number;
  acceptNewHostKeys: boolean;
  connectTimeout: number;
  sshConfig?: string;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  trace?: string;
  color?: boolean;
}

/** What selects the inventory and its hosts (scopeOptions). */
export interface ScopeArgs {
  inventory?: string;
  limit?: string[];
  rotatePsk?: string[];
  offline?: boolean;
  sshConfig?: string;
}

/** `provision -i FILE`, the default command. */
export interface RunArgs extends ConnectArgs, ScopeArgs {
  inventory: string;
  dryRun: boolean;
  yes: boolean;
  offline: boolean;
  out?: string;
  detailedExitcode: boolean;
  summary: boolean;
  detail?: 'summary' | 'hosts' | 'full';
  prune: boolean;
  retireLegacy: boolean;
  verify: boolean;
  rotateMode?: 'reauth' | 'reread';
}

export interface ApplyArgs extends ConnectArgs {
  plan: string;
  verify: boolean;
}

export interface StatusArgs extends ConnectArgs, ScopeArgs {
  inventory: string;
  verify: boolean;
  format: 'text' | 'json' | 'prometheus';
  nagios: boolean;
}

export interface TeardownArgs extends ConnectArgs, ScopeArgs {
  inventory: string;
  dryRun: boolean;
}

/** Exit codes, as documented in --help, the README and docs/cli.md. */
export const EXIT = {
  ok: 0,
  failed: 1,
  badInput: 2,
  hostKey: 3,
  stale: 4,
  changesPending: 5,
  interrupted: 130,
} as const;

export const EXIT_TEXT = `Exit codes:
  0    everything went as planned (every pair in scope verified)
  1    a host failed or was unreachable, or a pair failed, was rolled back or not rotated
  2    bad input: an inventory mistake (file:line:column) or a wrong flag; nothing was contacted
  3    a host's SSH key was refused (unknown or changed); takes precedence over 1
  4    provision apply: a host changed since the plan was made; nothing was applied to it
  5    --dry-run --detailed-exitcode: the run would change something (0: nothing to change)
  130  interrupted by Ctrl-C (re-run to converge)
  provision status: see \`provision status --help\`.`;

function connectOptions(y: Argv): Argv {
  return y
    .option('concurrency', { type: 'number', default: 16, requiresArg: true, describe: 'hosts worked on, and SSH connections open, at once' })
    .option('accept-new-host-keys', {
      type: 'boolean',
      default: false,
      describe: 'record the keys of hosts not yet in known_hosts (a changed key is still refused)',
    })
    .option('connect-timeout', { type: 'number', default: 15, requiresArg: true, describe: 'seconds to wait for an SSH connection' })
    .option('ssh-config', { type: 'string', requiresArg: true, describe: 'an OpenSSH client config to read (default ~/.ssh/config; inventory values win)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the plan or the result as JSON on stdout (its schema: provision schema)' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress on stderr (the result and errors still)' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'progress as a line per event, even on a terminal' })
    .option('trace', {
      type: 'string',
      requiresArg: true,
      describe: 'write every command sent to the hosts and all they answered to this file (0600), for troubleshooting; no key is in it',
    });
}

function scopeOptions(y: Argv): Argv {
  return y
    .option('inventory', { alias: 'i', type: 'string', demandOption: true, requiresArg: true, describe: 'the YAML inventory of hosts, pairs and meshes' })
    .option('limit', {
      type: 'string',
      array: true,
      requiresArg: true,
      describe: "act only on these hosts: names, groups or globs ('web-*'), comma-separated or repeated",
    });
}

/** The command line: one definition for parsing, --help, completion and docs/cli.md. */
export function parser(): Argv {
  return yargs()
    .scriptName('provision')
    .usage('Secure traffic between the hosts of an inventory with IPsec transport mode, over SSH.')
    .command('$0', 'plan, apply and verify the inventory (the default command)', (y) =>
      connectOptions(scopeOptions(y))
        .option('dry-run', { type: 'boolean', default: false, describe: 'show what would change, change nothing' })
        .option('yes', {
          alias: 'y',
          type: 'boolean',
          default: false,
          describe: 'apply without asking (on a terminal, provision shows the plan and asks first)',
        })
        .option('offline', { type: 'boolean', default: false, describe: 'with --dry-run: plan without contacting any host' })
        .option('out', { type: 'string', requiresArg: true, describe: 'with --dry-run: save the plan to this file, for `provision apply`' })
        .option('detailed-exitcode', { type: 'boolean', default: false, describe: 'with --dry-run: exit 5 when something would change, 0 when nothing would' })
        .option('summary', { type: 'boolean', default: false, describe: 'counts per host and per action, no file bodies (--detail hosts)' })
        .option('color', { type: 'boolean', describe: "colour the plan's diffs (--no-color: never); default: on a terminal, unless NO_COLOR is set" })
        .option('detail', {
          choices: ['summary', 'hosts', 'full'] as const,
          requiresArg: true,
          describe:
            'how much of the plan to show: summary (the totals, and the pairs a run retires or skips), hosts (also a line per host), full (also every file as a diff); default: full up to 10 hosts, hosts beyond',
        })
        .option('prune', { type: 'boolean', default: true, describe: 'remove the files of pairs no longer in the inventory (--no-prune keeps them)' })
        .option('retire-legacy', {
          type: 'boolean',
          default: false,
          describe: 'also remove files written before fleets (no identity) that this inventory does not plan',
        })
        .option('verify', { type: 'boolean', default: true, describe: 'prove each pair on the wire with ping and tcpdump (--no-verify skips it)' })
        .option('rotate-psk', {
          type: 'string',
          array: true,
          describe: 'give pairs a new key: all in scope, or the named ones (conn name or "a,b"; repeatable)',
        })
        .option('rotate-mode', {
          choices: ['reauth', 'reread'] as const,
          describe:
            "how a new key is proved. Default, per pair: reread where an end can probe its peer, reauth elsewhere. reread: load it on both ends, compare them, and authenticate it with a probe IKE SA where an end can; the pair's SAs are kept. reauth: a new IKE SA replaces the pair's and its SAs (make-before-break from a strongSwan end), the response to a leaked key (docs/rotation.md)",
        })
        .example('$0 -i hosts.yaml --dry-run --offline', 'the plan, every file in full; no host contacted')
        .example('$0 -i hosts.yaml --dry-run', 'read the hosts, show the diff; change nothing')
        .example('$0 -i hosts.yaml', 'apply and verify')
        .example("$0 -i hosts.yaml --limit 'web-*'", 'only these hosts; their pairs with others are skipped')
        .example('$0 -i hosts.yaml --rotate-psk', 'new keys for every pair, proved, rolled back on failure'),
    )
    .command('apply <plan>', 'apply a plan saved by --dry-run --out, exactly, to hosts unchanged since', (y) =>
      connectOptions(y)
        .positional('plan', { type: 'string', describe: 'the file --out wrote' })
        .option('verify', { type: 'boolean', default: true, describe: 'prove each pair on the wire (--no-verify skips it)' })
        .example('$0 -i hosts.yaml --dry-run --out plan.json && $0 apply plan.json', 'review, then apply what was reviewed'),
    )
    .command('status', 'fleet health for people and monitoring: SAs, keys, drift, guard; read-only', (y) =>
      connectOptions(scopeOptions(y))
        .option('verify', { type: 'boolean', default: false, describe: 'also prove every pair on the wire (one command per host)' })
        .option('format', {
          choices: ['text', 'json', 'prometheus'] as const,
          default: 'text',
          describe: 'text for people, json, or the Prometheus text format',
        })
        .option('nagios', { type: 'boolean', default: false, describe: 'exit as a Nagios plugin: 0 ok, 1 warning, 2 critical, 3 unknown' })
        .example('$0 status -i hosts.yaml', 'every pair: up, down, keys, drift')
        .example('$0 status -i hosts.yaml --format prometheus > /var/lib/node_exporter/ipsec.prom', "for node_exporter's textfile collector")
        .epilogue(
          'Exit codes: 0 every pair up; 1 some pair is not up or a host could not be read; 2 bad input; 3 a host key was refused.\nWith --nagios: 0 OK, 1 WARNING (drift or keys disagree), 2 CRITICAL (a pair down), 3 UNKNOWN (a host unreadable, or bad input such as an inventory mistake).',
        ),
    )
    .command('teardown', "take the inventory's pairs down and remove provision's files (never an operator's)", (y) =>
      connectOptions(scopeOptions(y))
        .option('dry-run', { type: 'boolean', default: false, describe: 'show what would be removed, change nothing' })
        .example('$0 teardown -i hosts.yaml --dry-run', 'what would go')
        .example('$0 teardown -i hosts.yaml --limit db-1', 'a host leaves: its pairs go, on its peers too'),
    )
    .command('schema', 'print the JSON Schema of --json output (plans, runs, status)', (y) => y.example('$0 schema > provision.schema.json', ''))
    .command('completion [shell]', 'print a completion script for bash, zsh or fish', (y) =>
      y
        .positional('shell', { choices: ['bash', 'zsh', 'fish'] as const, default: 'bash' })
        .example('$0 completion bash > /etc/bash_completion.d/provision', '')
        .example('$0 completion fish > ~/.config/fish/completions/provision.fish', ''),
    )
    .epilogue(EXIT_TEXT)
    .strict()
    .version(toolVersion())
    .help()
    .alias('h', 'help')
    .wrap(100)
    .exitProcess(false);
}

/** Every long flag the commands know, for "did you mean". */
export const KNOWN_FLAGS = [
  'inventory',
  'limit',
  'concurrency',
  'accept-new-host-keys',
  'connect-timeout',
  'ssh-config',
  'json',
  'dry-run',
  'offline',
  'out',
  'detailed-exitcode',
  'summary',
  'prune',
  'no-prune',
  'retire-legacy',
  'verify',
  'no-verify',
  'rotate-psk',
  'rotate-mode',
  'format',
  'nagios',
  'detail',
  'yes',
  'trace',
  'color',
  'no-color',
  'quiet',
  'verbose',
  'help',
  'version',
] as const;

export const BOOLEAN_FLAGS = [
  'dry-run',
  'offline',
  'json',
  'prune',
  'verify',
  'accept-new-host-keys',
  'retire-legacy',
  'summary',
  'detailed-exitcode',
  'nagios',
  'yes',
  'color',
  'quiet',
  'verbose',
  'help',
  'version',
] as const;
export const SINGLE_FLAGS = ['inventory', 'concurrency', 'connect-timeout', 'out', 'ssh-config', 'format', 'rotate-mode', 'trace', 'detail'] as const;
export const COMMANDS = ['apply', 'status', 'teardown', 'schema', 'completion'] as const;
