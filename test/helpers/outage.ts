import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostIp, NETNS, onServer } from '../lab/control.js';

/** What one direction saw: pings sent and lost, and the longest time without an answer. */
export interface DirectionSeen {
  from: string;
  to: string;
  sent: number;
  /**
   * Pings not answered, up to the last one that was: a ping still in flight when the pinger
   * stopped is not lost (on a loaded machine a reply can take longer than the 50 ms interval).
   */
  lost: number;
  /** Seconds: the longest gap between two answered pings. */
  longestGap: number;
  /** Epoch seconds of the first answer after that gap: when traffic resumed. */
  resumedAt: number;
}

export interface OutageSeen {
  directions: DirectionSeen[];
  /** Clear ICMP between the two, as seen on the wire (each server's tap, outside it), by sender. */
  clear: Record<string, number[]>;
}

const sleep = (s: number): void => void spawnSync('sleep', [String(s)]);

/**
 * Watch traffic between two lab servers while something happens to them: each pinger
 * (20/s, timestamps on) pings the other, and tcpdump on both servers' taps (in the lab's
 * namespace, so it sees what a rebooting server cannot) records every clear ICMP echo
 * request or reply between them: our pings, had they left unencrypted. (A server whose IKE
 * daemon is down also answers the peer's IKE packets with ICMP port unreachable; that
 * carries no payload and is not counted.) `stop()` returns what was seen.
 */
export function watchPair(a: number, b: number, pingers: number[] = [a, b]): { waitFlowing(after: number, maxSec: number): boolean; stop(): OutageSeen } {
  const name = (i: number): string => `server-${String(i).padStart(2, '0')}`;
  const tag = `outage-${a}-${b}`;
  const captures = [a, b].map((i) => {
    const file = join(tmpdir(), `${tag}-tap${i}-${process.pid}.txt`);
    const fd = openSync(file, 'w');
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        NETNS,
        'tcpdump',
        '-n',
        '-p',
        '-l',
        '-tt',
        '-i',
        `tap${i}`,
        `(icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply) and host ${hostIp(a)} and host ${hostIp(b)}`,
      ],
      { stdio: ['ignore', fd, 'ignore'] },
    );
    closeSync(fd);
    child.unref();
    return { file, child, server: name(i) };
  });
  for (const i of pingers) {
    const peer = i === a ? b : a;
    const r = onServer(name(i), `rm -f /tmp/${tag}.*; (nohup ping -D -i 0.05 ${hostIp(peer)} > /tmp/${tag}.ping 2>&1 & echo $! > /tmp/${tag}.pid)`);
    if (r.code !== 0) throw new Error(`ping on ${name(i)}: ${r.stderr}`);
  }
  sleep(2);
  return {
    /** Polls until every pinger has had answers within the last second, from `after` on; false at `maxSec`. */
    waitFlowing(after: number, maxSec: number): boolean {
      const deadline = Date.now() / 1000 + maxSec;
      while (Date.now() / 1000 < deadline) {
        sleep(2);
        const now = Date.now() / 1000;
        const ok = pingers.every((i) => {
          const last = /\[(\d+\.\d+)\] \d+ bytes from[^\n]*\n?$/.exec(onServer(name(i), `tail -n 1 /tmp/${tag}.ping`).stdout);
          return last && Number(last[1]) > after && Number(last[1]) > now - 1.5;
        });
        if (ok && now > after + 3) return true;
      }
      return false;
    },
    stop(): OutageSeen {
      const directions = pingers.map((i) => {
        const peer = i === a ? b : a;
        const out = onServer(name(i), `kill -INT $(cat /tmp/${tag}.pid); sleep 1; cat /tmp/${tag}.ping`).stdout;
        const replies = [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)/gm)];
        const times = replies.map((m) => Number(m[1]));
        const answered = new Set(replies.map((m) => Number(m[2])));
        const lastAnswered = Math.max(0, ...answered);
        let longestGap = 0;
        let resumedAt = times[0] ?? 0;
        for (let k = 1; k < times.length; k++) {
          if (times[k]! - times[k - 1]! > longestGap) {
            longestGap = times[k]! - times[k - 1]!;
            resumedAt = times[k]!;
          }
        }
        const st = /(\d+) packets transmitted/.exec(out);
        return { from: name(i), to: name(peer), sent: Number(st?.[1] ?? 0), lost: lastAnswered - answered.size, longestGap, resumedAt };
      });
      for (const c of captures) c.child.kill('SIGINT');
      sleep(1);
      const clear: Record<string, number[]> = { [name(a)]: [], [name(b)]: [] };
      // Each packet crosses both taps: count what each server sent on its own tap only.
      for (const c of captures) {
        for (const line of readFileSync(c.file, 'utf8').split('\n')) {
          const m = /^(\d+\.\d+) IP (\S+) > (\S+): ICMP echo/.exec(line);
          if (m && m[2] === hostIp(c.server === name(a) ? a : b)) clear[c.server]!.push(Number(m[1]));
        }
      }
      return { directions, clear };
    },
  };
}
