import { createHash } from 'node:crypto';
import type { HostSpec, Inventory } from '../../src/inventory/types.js';
import { CREATED_SLOT, KEY_SLOT } from '../../src/plan/types.js';
import { maskSecrets } from '../../src/remote/secrets.js';
import type { ExecResult, Session } from '../../src/remote/session.js';
import { VERIFY } from '../../src/verify/esp.js';

/** One command a host was sent: the step's id and label, the script, and what went over stdin. */
export interface Call {
  host: string;
  id: string;
  step: string;
  script: string;
  stdin?: string;
}

/** Facts of a host with libreswan 4.10 installed and running, and no files of ours yet. */
export const READY_FACTS = `@@os\ndebian 12\n@@init\nsystemd\n@@installed\nlibreswan ii  4.10-2+deb12u1\nnftables ii  1.0.6-2+deb12u2\n@@candidates\n@@lists\n1\n@@version\nLibreswan 4.10\n@@running\nactive\n@@includes\npresent /etc/ipsec.conf\npresent /etc/ipsec.secrets\n@@conns\n@@sas\n@@stale\n@@ssh\n10.0.0.100 50000 10.0.0.1 22\n@@files\n@@end\n`;

/** A fresh Debian 12 host: nothing installed, no package lists yet. */
export const FRESH_FACTS = `@@os\ndebian 12\n@@init\nsystemd\n@@installed\n@@candidates\nopenswan (none)\nlibreswan (none)\n@@lists\n0\n@@version\n@@running\ninactive\n@@includes\nmissing /etc/ipsec.conf\nmissing /etc/ipsec.secrets\n@@conns\n@@sas\n@@stale\n@@ssh\n@@files\n@@end\n`;

export interface FakeFile {
  path: string;
  /** Octal, without the leading 0: "600". */
  mode: string;
  /** Set for a file of ours (its first line is our header): the facts script reads only those. */
  content?: string;
}

/** A MAC as the facts script computes it, under a fixed test challenge: equal keys, equal MACs. */
export function testMac(key: string): string {
  return createHash('sha256').update(`${TEST_CHALLENGE}\n${key}`).digest('hex').slice(0, 32);
}
export const TEST_CHALLENGE = '0123456789abcdef0123456789abcdef';

/**
 * `facts` with its files section replaced by these files, as the facts script prints them:
 * keys masked in the content, and each secrets file's key as a MAC (testMac).
 */
export function withFiles(facts: string, files: FakeFile[]): string {
  const size = (f: FakeFile): number => Buffer.byteLength(f.content ?? 'operator file\n');
  const managed = files.filter((f) => f.content !== undefined);
  const keys = managed
    .filter((f) => f.path.endsWith('.secrets'))
    .map((f) => [f.path, /:[ \t]*PSK[ \t]+(.*)/.exec(f.content!)?.[1]] as const)
    .filter(([, k]) => k !== undefined)
    .map(([path, k]) => `${path} ${testMac(k!)}\n`);
  const section =
    `@@files\n${files.map((f) => `${f.mode} ${size(f)} ${f.path}\n`).join('')}` +
    `@@managed\n${managed.map((f) => `${f.path}\n`).join('')}` +
    `@@content\n${Buffer.from(maskSecrets(managed.map((f) => f.content).join(''))).toString('base64')}\n@@keys\n${keys.join('')}`;
  return facts.replace('@@files\n', section);
}

/** `facts` with these conns defined in the daemon's config, each in its file. */
export function withConns(facts: string, conns: { name: string; file: string }[]): string {
  return facts.replace('@@conns\n', `@@conns\n${conns.map((c) => `${c.name} ${c.file}\n`).join('')}`);
}

/** `facts` with ESP SAs both ways between `me` and each peer. */
export function withSas(facts: string, me: string, peers: string[]): string {
  return facts.replace('@@sas\n', `@@sas\n${peers.flatMap((p) => [`${me} ${p}`, `${p} ${me}`]).join('\n')}\n`);
}

/** What a healthy host's verification prints: ESP both ways with every peer, every probe answered. */
function healthyVerify(me: string, peers: string[]): string {
  const n = VERIFY.pings;
  return (
    peers.map((p) => `@@sa ${p} yes\n`).join('') +
    peers.map((p) => `@@ping ${p}\n${n} packets transmitted, ${n} received, 0% packet loss\n`).join('') +
    '@@capture\n' +
    peers.map((p) => `t eth0 Out IP ${me} > ${p}: ESP(spi=0x1,seq=0x1), length 1244\nt eth0 In IP ${p} > ${me}: ESP(spi=0x2,seq=0x1), length 1244\n`).join('') +
    '@@tcpdump\n'
  );
}

/** `facts` with the fleet's guard table loaded with these peers, and its boot unit enabled. */
export function withGuard(facts: string, table: string, peers: string[], dropped = { out: 0, in: 0 }): string {
  const v4 = peers.filter((p) => !p.includes(':'));
  const v6 = peers.filter((p) => p.includes(':'));
  const set = (name: string, type: string, els: string[]) =>
    `\tset ${name} {\n\t\ttype ${type}\n${els.length ? `\t\telements = { ${els.join(', ')} }\n` : ''}\t}\n`;
  const listing =
    `@table ${table}\ntable inet ${table} {\n${set('peers4', 'ipv4_addr', v4)}${set('peers6', 'ipv6_addr', v6)}` +
    `\tchain output {\n\t\tip daddr @peers4 rt ipsec missing counter packets ${dropped.out} bytes 0 drop\n\t}\n` +
    `\tchain input {\n\t\tip saddr @peers4 meta ipsec missing counter packets ${dropped.in} bytes 0 drop\n\t}\n}\n`;
  return facts.replace('@@files\n', `@@nft\n${listing}@@unit\nenabled\n@@files\n`);
}

export type Responder = (call: Call) => Partial<ExecResult> | undefined;

/**
 * Fake sessions for the hosts of an inventory, answering by step: facts (READY_FACTS
 * unless `facts` says otherwise), verification (healthy, from the inventory's pairs), and
 * exit 0 for everything else, unless `respond` answers first.
 */
export function fakeFleet(
  inv: Inventory,
  opts: { facts?: (host: string) => string | undefined; respond?: Responder; connectFail?: Record<string, Error> } = {},
) {
  const sent: Call[] = [];
  const address = (h: string): string => inv.hosts.get(h)!.address;
  const peersOf = (h: string): string[] => inv.pairs.flatMap((p) => (p.left === h ? [p.right] : p.right === h ? [p.left] : [])).map(address);
  const connect = async (host: HostSpec): Promise<Session> => {
    const fail = opts.connectFail?.[host.name];
    if (fail) throw fail;
    let commands = 0;
    return {
      host: host.name,
      get commands() {
        return commands;
      },
      async run(script, o = {}) {
        commands++;
        const call: Call = { host: host.name, id: o.id ?? '?', step: o.step ?? '?', script, ...(o.stdin !== undefined ? { stdin: o.stdin } : {}) };
        sent.push(call);
        const own = opts.respond?.(call);
        const r =
          own ??
          (call.id === 'facts'
            ? { stdout: opts.facts?.(host.name) ?? READY_FACTS }
            : call.id === 'verify'
              ? { stdout: healthyVerify(address(host.name), peersOf(host.name)) }
              : {});
        return { code: 0, stdout: '', stderr: '', timedOut: false, ...r };
      },
      async close() {},
    };
  };
  return { sent, connect, steps: (host?: string) => sent.filter((c) => !host || c.host === host).map((c) => c.step) };
}

/** When test keys were made, as a write records it beside them. */
export const TEST_CREATED = '2026-12-01T00:00:00Z';

/** A planned file's content as the write leaves it on the host: with this key, made at `created`. */
export function written(content: string, key: string, created = TEST_CREATED): string {
  return content.replace(KEY_SLOT, key).replace(CREATED_SLOT, created);
}
