import type { Problem } from '../inventory/errors.js';
import { InventoryError } from '../inventory/errors.js';
import { DEFAULT_KNOWN_HOSTS } from '../inventory/load.js';
import type { HostSpec, Inventory, SshSettings } from '../inventory/types.js';
import type { ConfigFile, ConfigLine } from './ssh-config-parse.js';

/**
 * OpenSSH's client config, applied as ssh would apply it for the name a host is reached by
 * (its `ssh.host`, else its inventory name), and never beyond what the tool can honour
 * exactly. Reading it runs nothing: `Match exec` is never evaluated, and a config that needs
 * something the tool would otherwise drop (ProxyCommand, a multi-hop ProxyJump, ...) is
 * refused, naming the file and line. Pure: the files are read by cli/ssh-config-file.ts and
 * split into lines by ssh-config-parse.ts.
 *
 * Precedence, as ssh's: the inventory's own values (host, group, defaults) win, as the
 * command line does for ssh; then the first value the config gives; then the built-in
 * defaults (the IPsec address, port 22, root, ~/.ssh/known_hosts).
 */

/** What the config says for one name. */
interface Resolved {
  hostName?: string;
  user?: string;
  port?: number;
  identityFile?: string;
  /** One hop, or "none". */
  proxyJump?: string;
  /** Where proxyJump was set. */
  proxyJumpAt?: ConfigLine;
  knownHostsFile?: string;
  acceptNew?: boolean;
}

/** Who asks: the name ssh would be given, and what the inventory already sets (it wins). */
export interface Target {
  name: string;
  user?: string;
  localUser: string;
}

// Keywords the tool honours; every other keyword not refused below changes nothing of where
// the tool connects or whom it trusts (ciphers, timeouts, forwarding, multiplexing, ...).
const REFUSED: Record<string, string> = {
  proxycommand: 'provision runs no local command to connect: reach the host directly or through one jump host (ProxyJump)',
  knownhostscommand: 'provision runs no local command to find host keys: list them in a known_hosts file (UserKnownHostsFile)',
  localcommand: 'provision runs no local command after connecting',
  hostkeyalias: "provision looks a host key up under the host's own address: record it under that address in known_hosts",
  certificatefile: 'provision authenticates with plain keys (IdentityFile), not certificates',
  pkcs11provider: 'provision authenticates with key files (IdentityFile), not a PKCS#11 token',
  securitykeyprovider: 'provision authenticates with key files (IdentityFile), not a security key',
  bindaddress: "provision connects from the controller's default address; the guard exempts SSH from that address",
  bindinterface: "provision connects from the controller's default address; the guard exempts SSH from that address",
};
// Match criteria that provision cannot decide without running something or knowing more than
// the config: exec runs a command; the others depend on canonicalization, the controller's
// networks or tags.
const MATCH_REFUSED: Record<string, string> = {
  exec: 'provision never runs a command to read a config (`Match exec`)',
  canonical: 'provision does not canonicalize host names (`Match canonical`)',
  final: 'provision reads the config once (`Match final`)',
  localnetwork: "provision does not match on the controller's networks (`Match localnetwork`)",
  tagged: 'provision sets no tags (`Match tagged`)',
};
const HINT =
  'Point --ssh-config (or defaults.ssh.config) at a config without it, or set what the host needs in the inventory (ssh: host, port, user, identityFile, jump, knownHostsFile).';

/** ssh's match_pattern: `*` and `?` globs, case-insensitive for host names. */
function globMatch(value: string, pattern: string, caseless: boolean): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    caseless ? 'i' : '',
  );
  return re.test(value);
}

/** A pattern list (`Host a b !c`, or `Match host a,b,!c`): no negated one matches, and some plain one does. */
function listMatch(value: string, patterns: readonly string[], caseless: boolean): boolean {
  let hit = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (globMatch(value, p.slice(1), caseless)) return false;
    } else if (globMatch(value, p, caseless)) {
      hit = true;
    }
  }
  return hit;
}

class Refusal {
  constructor(
    readonly at: ConfigLine,
    readonly message: string,
  ) {}
}

/** Every value the config gives `target`; a line the tool cannot honour, where it applies, is a Refusal. */
function evaluate(root: ConfigFile, target: Target): Resolved | Refusal {
  const seen = new Map<string, { line: ConfigLine; args: string[] }>();
  const first = (k: string) => seen.get(k)?.args;
  const matchHost = () => {
    const hn = first('hostname')?.[0];
    return hn ? expandHostName(hn, target.name) : target.name;
  };
  const walk = (file: ConfigFile, inherited: boolean, neverMatch: boolean): Refusal | undefined => {
    let active = inherited;
    for (const { line, included } of file.entries) {
      if (line.keyword === 'host') {
        active = !neverMatch && listMatch(target.name, line.args, true);
      } else if (line.keyword === 'match') {
        if (neverMatch) {
          active = false;
          continue;
        }
        const m = matchLine(line, {
          host: matchHost(),
          originalhost: target.name,
          user: target.user ?? first('user')?.[0] ?? 'root',
          localuser: target.localUser,
        });
        if (m instanceof Refusal) return m;
        active = m;
      } else if (line.keyword === 'include') {
        const r = included ? included.map((f) => walk(f, active, neverMatch || !active)).find(Boolean) : undefined;
        if (r) return r;
      } else if (active) {
        if (REFUSED[line.keyword]) return new Refusal(line, `${line.word} ${line.args.join(' ')}: ${REFUSED[line.keyword]}`);
        if (line.keyword === 'canonicalizehostname' && line.args[0]?.toLowerCase() !== 'no') {
          return new Refusal(line, `${line.word} ${line.args.join(' ')}: provision does not canonicalize host names`);
        }
        if (!seen.has(line.keyword)) seen.set(line.keyword, { line, args: line.args });
      }
    }
    return undefined;
  };
  const refused = walk(root, true, false);
  if (refused) return refused;

  const out: Resolved = {};
  const hostName = first('hostname')?.[0];
  if (hostName) out.hostName = expandHostName(hostName, target.name);
  if (first('user')?.[0]) out.user = first('user')![0]!;
  const port = seen.get('port');
  if (port) {
    const n = Number(port.args[0]);
    if (!Number.isInteger(n) || n < 1 || n > 65535) return new Refusal(port.line, `Port ${port.args[0] ?? ''} is not a port number`);
    out.port = n;
  }
  const identity = seen.get('identityfile');
  if (identity?.args[0]) {
    const expanded = expandTokens(identity.args[0], {
      h: out.hostName ?? target.name,
      n: target.name,
      r: target.user ?? out.user ?? 'root',
      u: target.localUser,
    });
    if (expanded === undefined) return new Refusal(identity.line, `IdentityFile ${identity.args[0]}: provision expands only %d, %h, %n, %r, %u and %% in it`);
    out.identityFile = expanded;
  }
  const jump = seen.get('proxyjump');
  if (jump) {
    const v = jump.args.join(' ');
    if (jump.args.length !== 1 || v.includes(',')) {
      return new Refusal(jump.line, `ProxyJump ${v}: provision connects through one jump host, not a chain`);
    }
    out.proxyJump = v.toLowerCase() === 'none' ? 'none' : v.replace(/^ssh:\/\//, '');
    out.proxyJumpAt = jump.line;
  }
  const known = seen.get('userknownhostsfile');
  if (known) {
    if (known.args.length !== 1)
      return new Refusal(known.line, `UserKnownHostsFile ${known.args.join(' ')}: provision checks host keys against one file; name one`);
    out.knownHostsFile = known.args[0]!;
  }
  if (first('stricthostkeychecking')?.[0]?.toLowerCase() === 'accept-new') out.acceptNew = true;
  return out;
}

/** A Match line's criteria, all of which must hold. */
function matchLine(line: ConfigLine, values: Record<'host' | 'originalhost' | 'user' | 'localuser', string>): boolean | Refusal {
  const words = line.args.flatMap((a) => {
    const eq = a.indexOf('=');
    return eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a];
  });
  let result = true;
  for (let i = 0; i < words.length; i++) {
    const negate = words[i]!.startsWith('!');
    const criterion = words[i]!.replace(/^!/, '').toLowerCase();
    if (MATCH_REFUSED[criterion]) return new Refusal(line, `Match ${line.args.join(' ')}: ${MATCH_REFUSED[criterion]}`);
    let hit: boolean;
    if (criterion === 'all') {
      hit = true;
    } else if (criterion in values) {
      const arg = words[++i];
      if (arg === undefined) return new Refusal(line, `Match ${criterion} needs a pattern list`);
      hit = listMatch(values[criterion as keyof typeof values], arg.split(','), criterion.endsWith('host'));
    } else {
      return new Refusal(line, `Match ${line.args.join(' ')}: unknown criterion ${criterion}`);
    }
    if (negate ? hit : !hit) result = false;
  }
  return result;
}

function expandHostName(value: string, name: string): string {
  return value.replace(/%([%h])/g, (_, c: string) => (c === 'h' ? name : '%'));
}

/** The % tokens ssh expands in IdentityFile, those that need no command or lookup; undefined for any other. */
function expandTokens(value: string, t: Record<'h' | 'n' | 'r' | 'u', string>): string | undefined {
  let bad = false;
  const out = value.replace(/%(.)/g, (_, c: string) => {
    if (c === '%') return '%';
    if (c === 'd') return '~';
    if (c in t) return t[c as keyof typeof t];
    bad = true;
    return '';
  });
  return bad ? undefined : out;
}

function problem(r: Refusal): Problem {
  return { file: r.at.file, line: r.at.line, column: r.at.column, message: r.message, hint: HINT };
}

/**
 * Every host's SSH settings with the config applied. A line the tool cannot honour, for any
 * host or jump host it would reach, stops the run before any connection (InventoryError).
 */
export function applySshConfig(inv: Inventory, config: ConfigFile, localUser: string): { inventory: Inventory; jumps: Map<string, Partial<SshSettings>> } {
  const problems = new Map<string, Problem>();
  const refuse = (r: Refusal) => problems.set(`${r.at.file}:${r.at.line}`, problem(r));
  const hosts = new Map<string, HostSpec>();
  const jumps = new Map<string, Partial<SshSettings>>();
  for (const [name, h] of inv.hosts) {
    const set = h.sshSet;
    const c = evaluate(config, { name: set.host ?? name, localUser, ...(set.user ? { user: set.user } : {}) });
    if (c instanceof Refusal) {
      refuse(c);
      continue;
    }
    const jump = set.jump ?? (c.proxyJump && c.proxyJump !== 'none' ? c.proxyJump : undefined);
    const identityFile = set.identityFile ?? c.identityFile;
    const ssh: SshSettings = {
      host: c.hostName ?? set.host ?? h.address,
      port: set.port ?? c.port ?? 22,
      user: set.user ?? c.user ?? 'root',
      knownHostsFile: set.knownHostsFile ?? c.knownHostsFile ?? DEFAULT_KNOWN_HOSTS,
      ...(identityFile ? { identityFile } : {}),
      ...(jump ? { jump } : {}),
      ...(c.acceptNew ? { acceptNew: true } : {}),
    };
    hosts.set(name, { ...h, ssh });
    // A jump host that is no inventory host: a config alias (its settings resolved here, now),
    // or `[user@]host[:port]`, read as written.
    if (jump && !inv.hosts.has(jump) && !/[@:[]/.test(jump) && !jumps.has(jump)) {
      const j = evaluate(config, { name: jump, localUser });
      if (j instanceof Refusal) {
        refuse(j);
      } else if (j.proxyJump && j.proxyJump !== 'none') {
        refuse(new Refusal(j.proxyJumpAt!, `ProxyJump ${j.proxyJump} for the jump host ${jump}: provision connects through one jump host, not a chain`));
      } else {
        jumps.set(jump, {
          host: j.hostName ?? jump,
          ...(j.user ? { user: j.user } : {}),
          ...(j.port ? { port: j.port } : {}),
          ...(j.identityFile ? { identityFile: j.identityFile } : {}),
          ...(j.knownHostsFile ? { knownHostsFile: j.knownHostsFile } : {}),
        });
      }
    }
  }
  if (problems.size) throw new InventoryError([...problems.values()]);
  return { inventory: { ...inv, hosts }, jumps };
}
