import { normalizeAddress } from '../core/address.js';
import { quote } from '../core/shell.js';

/** What one host saw on the wire while it pinged one peer. */
export interface WireCount {
  /** ESP (or ESP in UDP 4500) of probe size from this host to the peer. */
  espOut: number;
  /** ESP of probe size from the peer to this host. */
  espIn: number;
  /** This host's probes seen leaving for the peer unencrypted: must be zero. */
  clearOut: number;
  /** Echo replies received by ping. */
  replies: number;
  sent: number;
}

/**
 * The probes: pings of an odd size with a fixed pattern, so that the captures keep only
 * them (a busy pair's other ESP is left out, and the output stays small): clear probes are
 * recognised by their pattern, encrypted ones by their size.
 */
export const VERIFY = { waitSec: 25, warmupSec: 15, pings: 5, size: 1200, pattern: 'a5e1f0c3' } as const;
/** Captured length (link header, IP header and ESP payload) of an encrypted probe, with room for every cipher suite and NAT-T. */
const ESP_LEN = { min: VERIFY.size + 60, max: VERIFY.size + 160 } as const;

/**
 * One command per host proves all its pairs at once. It waits, bounded, until its kernel
 * holds ESP states both ways with each peer, sending nothing meanwhile: a packet reaching an
 * auto=route responder would start a second negotiation that crosses the initiator's.
 * Then two captures run (clear probes by pattern, encrypted probes by size; each bounded
 * in count) while it pings every peer at once.
 */
export function verifyScript(local: string, peers: readonly string[], opts: { pings?: number; waitSec?: number } = {}): string {
  const pings = opts.pings ?? VERIFY.pings;
  const wait = opts.waitSec ?? VERIFY.waitSec;
  // Written as `ip xfrm` prints them, so that the SA check is a string match in the shell.
  const me = normalizeAddress(local);
  const ps = peers.map(normalizeAddress);
  const list = ps.map(quote).join(' ');
  const hosts = ps.map((p) => `host ${p}`).join(' or ');
  const v4off = 8 + 16; // ICMP header, then the timestamp ping puts first
  const clear = `(${hosts}) and ((icmp and icmp[${v4off}:4] = 0x${VERIFY.pattern}) or (icmp6 and ip6[${40 + v4off}:4] = 0x${VERIFY.pattern}))`;
  const esp = `(${hosts}) and (esp or udp port 4500) and greater ${ESP_LEN.min} and less ${ESP_LEN.max}`;
  const limit = ps.length * (pings + VERIFY.warmupSec) * 4 + 8;
  // One \`ip xfrm state\` per second for all peers: a process costs a tenth of a second and
  // more on a small or busy server, and a host with many peers would spend seconds on them.
  return `set -u
export LC_ALL=C
d=$(mktemp -d); trap 'kill $cp $ep 2>/dev/null; rm -rf "$d"' EXIT
nl='
'
sa() { case "$have" in *"$nl$1 $2$nl"*) return 0 ;; esac; return 1; }
i=0; left=${quote(ps.join(' '))}
while :; do
  have="$nl$(ip xfrm state list proto esp 2>/dev/null | sed -n 's/^src \\([^ ]*\\) dst \\([^ ]*\\).*/\\1 \\2/p')$nl"
  wait_for=''
  for p in $left; do sa ${quote(me)} "$p" && sa "$p" ${quote(me)} || wait_for="$wait_for $p"; done
  left=$wait_for
  [ -z "$left" ] && break
  i=$((i+1)); [ $i -ge ${wait} ] && break
  sleep 1
done
for p in ${list}; do case " $left " in *" $p "*) echo "@@sa $p no" ;; *) echo "@@sa $p yes" ;; esac; done
tcpdump -n -p -l -c ${limit} -i any ${quote(clear)} > "$d/clear" 2> "$d/clear.err" & cp=$!
tcpdump -n -p -l -c ${limit} -i any ${quote(esp)} > "$d/esp" 2> "$d/esp.err" & ep=$!
j=0; until grep -q 'listening on' "$d/clear.err" 2>/dev/null && grep -q 'listening on' "$d/esp.err" 2>/dev/null; do j=$((j+1)); [ $j -ge 50 ] && break; sleep 0.1; done
k=0; pids=''
for p in ${list}; do
  k=$((k+1))
  # Warm up first, until the peer answers (${VERIFY.warmupSec} s at most): one end can hold its SAs seconds
  # before the other does (the responder installs them before the initiator), and the
  # probes would only measure that gap. The captures already watch for clear text.
  ( w=0; until ping -c 1 -W 1 -s ${VERIFY.size} -p ${VERIFY.pattern} "$p" >/dev/null 2>&1; do w=$((w+1)); [ $w -ge ${VERIFY.warmupSec} ] && break; done
    ping -c ${pings} -i 0.2 -W 1 -s ${VERIFY.size} -p ${VERIFY.pattern} "$p" > "$d/ping$k" 2>&1 ) & pids="$pids $!"
done
wait $pids
sleep 0.5
kill $cp $ep 2>/dev/null; wait $cp $ep 2>/dev/null
k=0
for p in ${list}; do k=$((k+1)); echo "@@ping $p"; tail -n 2 "$d/ping$k"; done
echo '@@capture'; cat "$d/clear" "$d/esp"
echo '@@tcpdump'; cat "$d/clear.err" "$d/esp.err" | grep -v 'listening on\\|packets captured\\|packets received\\|packets dropped\\|verbose output\\|data link type' | head -n 3
`;
}

function stripPort(addr: string, udp: boolean): string {
  // tcpdump writes a port as a last ".N" on both IPv4 and IPv6 addresses.
  return udp ? addr.replace(/\.\d+$/, '') : addr;
}

export interface HostCapture {
  counts: Map<string, WireCount>;
  /** Peers whose SAs did not appear in time. */
  withoutSas: Set<string>;
  tcpdumpError?: string;
}

/** One host's verification output, per peer (addresses as the inventory writes them, normalized). */
export function parseVerify(stdout: string, local: string, peers: readonly string[]): HostCapture {
  const me = normalizeAddress(local);
  const counts = new Map(peers.map((p) => [normalizeAddress(p), { espOut: 0, espIn: 0, clearOut: 0, replies: 0, sent: 0 }]));
  const withoutSas = new Set<string>();
  let section = '';
  let peer = '';
  let tcpdumpError = '';
  for (const line of stdout.split('\n')) {
    const s = /^@@(\w+)(?: (\S+))?(?: (\S+))?$/.exec(line);
    if (s) {
      section = s[1]!;
      peer = s[2] ? normalizeAddress(s[2]) : '';
      if (section === 'sa' && s[3] === 'no') withoutSas.add(peer);
      continue;
    }
    if (section === 'ping') {
      const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(line);
      const c = counts.get(peer);
      if (m && c) {
        c.sent = Number(m[1]);
        c.replies = Number(m[2]);
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
      if (src === me && counts.has(dst)) {
        if (esp) counts.get(dst)!.espOut++;
        else if (icmp) counts.get(dst)!.clearOut++;
      } else if (dst === me && counts.has(src) && esp) {
        counts.get(src)!.espIn++;
      }
    } else if (section === 'tcpdump' && line.trim()) {
      tcpdumpError += (tcpdumpError ? ' | ' : '') + line.trim();
    }
  }
  return { counts, withoutSas, ...(tcpdumpError ? { tcpdumpError } : {}) };
}

export type DirectionVerdict = 'encrypted' | 'clear-text' | 'no-esp' | 'no-reply' | 'error';

/** Encrypted: ESP left and arrived, no clear probe left, and the pings were answered. */
export function judge(c: WireCount, tcpdumpError?: string): DirectionVerdict {
  if (c.clearOut > 0) return 'clear-text';
  if (c.espOut > 0 && c.espIn > 0) return c.replies > 0 ? 'encrypted' : 'no-reply';
  if (tcpdumpError && c.espOut === 0 && c.espIn === 0) return 'error';
  return 'no-esp';
}
