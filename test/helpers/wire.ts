import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NETNS } from '../lab/control.js';

/**
 * What may pass between two paired servers outside IPsec: IKE (UDP 500, 4500), ESP itself,
 * and IPv6 neighbour solicitations and advertisements (ARP is not IP, and not counted).
 * Everything else between them is clear text, whatever its protocol.
 */
const ALLOWED = 'esp or udp port 500 or udp port 4500 or (icmp6 and (ip6[40] == 135 or ip6[40] == 136))';

/**
 * Records every packet on the lab's wire (all taps and the bridge, inside the lab's namespace:
 * outside the servers, where nothing a server does can hide a packet) until `stop`, which
 * returns the packets between any two of the given pairs' addresses that IPsec did not carry,
 * as tcpdump prints them.
 */
export function watchWire(tag: string): { stop(pairs: readonly (readonly [string, string])[]): string[] } {
  const file = join(tmpdir(), `wire-${tag}-${process.pid}.pcap`);
  const child = spawn('ip', ['netns', 'exec', NETNS, 'tcpdump', '-n', '-i', 'any', '-U', '-w', file], { stdio: 'ignore' });
  spawnSync('sleep', ['1']);
  return {
    stop(pairs) {
      child.kill('SIGINT');
      spawnSync('sleep', ['1']);
      const between = pairs.map(([a, b]) => `(host ${a} and host ${b})`).join(' or ');
      const r = spawnSync('tcpdump', ['-n', '-r', file, `(ip or ip6) and (${between}) and not (${ALLOWED})`], { encoding: 'utf8' });
      rmSync(file, { force: true });
      if (r.status !== 0) throw new Error(`reading the capture failed: ${r.stderr}`);
      return r.stdout.split('\n').filter(Boolean);
    },
  };
}
