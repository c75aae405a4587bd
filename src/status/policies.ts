import { BlockList } from 'node:net';
import { addressFamily, normalizeAddress } from '../core/address.js';
import type { Facts } from '../remote/facts.js';

/** One kernel IPsec policy, as `ip xfrm policy` prints it (no keys: selectors and templates only). */
export interface XfrmPolicy {
  src: string;
  dst: string;
  /** The selector's protocol, a number (0: any). */
  proto: number;
  /** ICMP type, when the selector has one. */
  type?: number;
  /** Ports, when the selector has them. */
  sport?: number;
  dport?: number;
  dir: 'in' | 'out' | 'fwd' | 'socket';
  priority: number;
  /** `block` drops; `allow` with templates requires IPsec; `allow` without them passes in clear. */
  action: 'allow' | 'block';
  ipsec: boolean;
}

const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, esp: 50, ah: 51, 'ipv6-icmp': 58, icmpv6: 58 };

/** Parses `ip xfrm policy` (and `ip -6 xfrm policy`) output. Unknown lines are skipped. */
export function parseXfrmPolicies(text: string): XfrmPolicy[] {
  const out: XfrmPolicy[] = [];
  let cur: XfrmPolicy | undefined;
  for (const line of text.split('\n')) {
    const sel = /^src (\S+) dst (\S+)(.*)$/.exec(line);
    if (sel) {
      if (cur) out.push(cur);
      const rest = sel[3]!;
      const proto = /\bproto (\S+)/.exec(rest)?.[1];
      const num = (k: string): number | undefined => {
        const m = new RegExp(`\\b${k} (\\d+)`).exec(rest);
        return m ? Number(m[1]) : undefined;
      };
      cur = {
        src: sel[1]!,
        dst: sel[2]!,
        proto: proto === undefined ? 0 : /^\d+$/.test(proto) ? Number(proto) : (PROTOCOLS[proto] ?? -1),
        ...optional({ type: num('type'), sport: num('sport'), dport: num('dport') }),
        dir: 'out',
        priority: 0,
        action: 'allow',
        ipsec: false,
      };
      continue;
    }
    if (!cur) continue;
    const dir = /^\s+(?:dir (in|out|fwd)|(socket) (?:in|out))(?: action \S+)? priority (\d+)/.exec(line);
    if (dir) {
      cur.dir = (dir[1] ?? dir[2]) as XfrmPolicy['dir'];
      cur.priority = Number(dir[3]);
      if (/\baction block\b/.test(line)) cur.action = 'block';
    } else if (/^\s+tmpl /.test(line)) cur.ipsec = true;
  }
  if (cur) out.push(cur);
  return out;
}

function optional<T extends Record<string, number | undefined>>(o: T): Partial<Record<keyof T, number>> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<Record<keyof T, number>>;
}

/** IPv6 neighbour solicitation or advertisement, exactly: the one clear passthrough IPsec needs. */
function isNeighbourDiscovery(p: XfrmPolicy): boolean {
  return p.proto === 58 && (p.type === 135 || p.type === 136) && p.sport === undefined && p.dport === undefined;
}

/** Policies that let traffic pass outside IPsec, other than neighbour discovery (sockets' own bypasses aside). */
export function clearPassthroughs(policies: readonly XfrmPolicy[]): XfrmPolicy[] {
  return policies.filter((p) => p.dir !== 'socket' && p.action === 'allow' && !p.ipsec && !isNeighbourDiscovery(p));
}

function covers(prefix: string, address: string): boolean {
  const [net, bits] = prefix.split('/');
  const family = addressFamily(net ?? '');
  if (!net || family !== addressFamily(address)) return false;
  const list = new BlockList();
  list.addSubnet(net, bits === undefined ? (family === 4 ? 32 : 128) : Number(bits), family === 4 ? 'ipv4' : 'ipv6');
  return list.check(normalizeAddress(address), family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * What on one end lets the pair's traffic leave or enter in clear: a passthrough (other than
 * neighbour discovery) that matches traffic between `local` and `peer` and outranks the
 * pair's own policy (or a block) in that direction: the kernel takes the lowest priority
 * number. With no policy of the pair in a direction, any passthrough matching it counts.
 */
export function bypasses(policies: readonly XfrmPolicy[], local: string, peer: string): XfrmPolicy[] {
  const found: XfrmPolicy[] = [];
  for (const dir of ['out', 'in'] as const) {
    const [from, to] = dir === 'out' ? [local, peer] : [peer, local];
    const matching = policies.filter((p) => p.dir === dir && covers(p.src, from) && covers(p.dst, to));
    // What the kernel would do instead: protect (the pair's own policy) or drop (a block).
    const closed = matching.filter((p) => p.ipsec || p.action === 'block').map((p) => p.priority);
    const best = closed.length ? Math.min(...closed) : Infinity;
    found.push(...clearPassthroughs(matching).filter((p) => p.priority < best));
  }
  return found;
}

/** One line for people: `src ::/0 dst ::/0 (any protocol) out, priority 199999`. */
export function describePolicy(p: XfrmPolicy): string {
  const proto =
    p.proto === 0 ? 'any protocol' : `protocol ${p.proto}${p.type !== undefined ? ` type ${p.type}` : ''}${p.dport !== undefined ? ` port ${p.dport}` : ''}`;
  return `src ${p.src} dst ${p.dst} (${proto}) ${p.dir}, priority ${p.priority}`;
}

/**
 * The policies a path file of provision's declares (plan/ssh-path.ts): TCP to or from one
 * sshd port between two addresses, passed in clear on purpose. They are the tool's way in,
 * not an exposure.
 */
export function declaredPolicies(content: string): XfrmPolicy[] {
  return parseXfrmPolicies(
    content
      .split('\n')
      .filter((l) => l.startsWith('xfrm policy update '))
      .map((l) => {
        const m = /^xfrm policy update (src \S+ dst \S+ proto \d+ [sd]port \d+) dir (in|out) priority (\d+) action allow$/.exec(l);
        return m ? `${m[1]}\n\tdir ${m[2]} priority ${m[3]} ptype main` : '';
      })
      .join('\n'),
  );
}

/** Whether `p` is one of `declared` (same selector and direction, in clear). */
export function isDeclared(p: XfrmPolicy, declared: readonly XfrmPolicy[]): boolean {
  return (
    !p.ipsec &&
    p.action === 'allow' &&
    declared.some(
      (d) =>
        d.dir === p.dir &&
        d.proto === p.proto &&
        d.sport === p.sport &&
        d.dport === p.dport &&
        normalizeAddress(d.src.split('/')[0]!) === normalizeAddress(p.src.split('/')[0]!) &&
        normalizeAddress(d.dst.split('/')[0]!) === normalizeAddress(p.dst.split('/')[0]!) &&
        d.src.split('/')[1] === p.src.split('/')[1] &&
        d.dst.split('/')[1] === p.dst.split('/')[1],
    )
  );
}

/** A host's policies without those its SSH-path files declare: read once per host, not per pair. */
export function undeclared(policies: readonly XfrmPolicy[], facts: Facts): XfrmPolicy[] {
  const declared = [...facts.files.values()]
    .filter((f) => /^\/etc\/provision\/ssh-[^/]+\.xfrm$/.test(f.path) && f.owner.kind === 'fleet')
    .flatMap((f) => declaredPolicies(f.content ?? ''));
  return declared.length ? policies.filter((p) => !isDeclared(p, declared)) : [...policies];
}
