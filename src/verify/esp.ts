import { normalizeAddress } from '../inventory/load.js';
import { quote } from '../remote/shell.js';

/** What one host saw on the wire while it pinged its peer. */
export interface WireCount {
  /** ESP (or ESP in UDP 4500) from this host to the peer. */
  espOut: number;
  /** ESP from the peer to this host. */
  espIn: number;
  /** Clear ICMP from this host to the peer: must be zero. */
  clearOut: number;
  /** Echo replies received by ping. */
  replies: number;
  sent: number;
}

export const VERIFY = { settleSec: 25, pings: 5 } as const;

/**
 * Waits, bounded, until this host's kernel holds ESP states both ways with the peer (a ping
 * reply alone could come in clear). It sends no traffic meanwhile: the initiator negotiates
 * by itself, and a packet reaching an auto=route responder would make it start a second
 * negotiation that crosses the first. Exits 1 if the states did not appear in time.
 */
export function settleScript(local: string, peer: string, settleSec: number = VERIFY.settleSec): string {
  const p = quote(peer);
  const l = quote(local);
  return `sa() { ip xfrm state list src "$1" dst "$2" proto esp 2>/dev/null | grep -q .; }
i=0; until sa ${l} ${p} && sa ${p} ${l}; do i=$((i+1)); [ $i -ge ${settleSec} ] && exit 1; sleep 1; done
`;
}

/**
 * Captures every packet between the two hosts while pinging the peer; run on both ends
 * once both have settled. Prints the ping summary and tcpdump's lines.
 */
export function verifyScript(peer: string, pings: number = VERIFY.pings): string {
  const p = quote(peer);
  const filter = quote(`host ${peer} and (esp or udp port 4500 or icmp or icmp6)`);
  return `set -u
export LC_ALL=C
d=$(mktemp -d)
tcpdump -n -p -l -i any ${filter} > "$d/cap" 2> "$d/err" &
tp=$!
j=0; until grep -q 'listening on' "$d/err" 2>/dev/null; do j=$((j+1)); [ $j -ge 50 ] && break; sleep 0.1; done
ping -c ${pings} -i 0.3 -W 1 ${p} > "$d/ping" 2>&1
sleep 0.5
kill $tp 2>/dev/null; wait $tp 2>/dev/null
echo "@@ping"; tail -n 2 "$d/ping"
echo "@@capture"; cat "$d/cap"
echo "@@tcpdump"; grep -v 'listening on\\|packets captured\\|packets received\\|packets dropped\\|verbose output\\|data link type' "$d/err" | head -n 3
rm -rf "$d"
`;
}

function stripPort(addr: string, udp: boolean): string {
  // tcpdump writes a port as a last ".N" on both IPv4 and IPv6 addresses.
  return udp ? addr.replace(/\.\d+$/, '') : addr;
}

export function parseVerify(stdout: string, local: string, peer: string): WireCount & { tcpdumpError?: string } {
  const me = normalizeAddress(local);
  const them = normalizeAddress(peer);
  const count: WireCount = { espOut: 0, espIn: 0, clearOut: 0, replies: 0, sent: 0 };
  let section = '';
  let tcpdumpError = '';
  for (const line of stdout.split('\n')) {
    const s = /^@@(\w+)$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    if (section === 'ping') {
      const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(line);
      if (m) {
        count.sent = Number(m[1]);
        count.replies = Number(m[2]);
      }
    } else if (section === 'capture') {
      const m = /\bIP6? (\S+) > (\S+): (.*)$/.exec(line);
      if (!m) continue;
      const rest = m[3]!;
      const udp = /UDP-encap|NONESP-encap|UDP,|\.4500 /.test(line);
      const src = normalizeAddress(stripPort(m[1]!, udp));
      const dst = normalizeAddress(stripPort(m[2]!.replace(/:$/, ''), udp));
      const esp = /^ESP\(|^UDP-encap: ESP/.test(rest);
      const icmp = /^ICMP6?\b|^ICMP6,/.test(rest);
      if (src === me && dst === them) {
        if (esp) count.espOut++;
        else if (icmp) count.clearOut++;
      } else if (src === them && dst === me && esp) {
        count.espIn++;
      }
    } else if (section === 'tcpdump' && line.trim()) {
      tcpdumpError += (tcpdumpError ? ' | ' : '') + line.trim();
    }
  }
  return tcpdumpError ? { ...count, tcpdumpError } : count;
}

export type DirectionVerdict = 'encrypted' | 'clear-text' | 'no-esp' | 'no-reply' | 'error';

/** Encrypted: ESP left and arrived, no clear ICMP left, and the pings were answered. */
export function judge(c: WireCount & { tcpdumpError?: string }): DirectionVerdict {
  if (c.clearOut > 0) return 'clear-text';
  if (c.espOut > 0 && c.espIn > 0) return c.replies > 0 ? 'encrypted' : 'no-reply';
  if (c.tcpdumpError && c.espOut === 0 && c.espIn === 0) return 'error';
  return 'no-esp';
}
