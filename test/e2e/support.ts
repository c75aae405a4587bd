// What the end-to-end scenarios share: inventories for the running lab, the tool run inside
// the lab's namespace, and looks at the servers from outside the tool.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostIp, hostIp6, IDENTITY, inLab, KNOWN_HOSTS, onServer, REPO, type Result } from '../lab/control.js';

export const BIN = join(REPO, 'bin', 'provision.js');
export const dir = mkdtempSync(join(tmpdir(), 'provision-e2e-'));

export interface HostLine {
  /** 1 for server-01. */
  i: number;
  backend?: 'libreswan' | 'strongswan' | 'auto';
  /** Reach the host on its IPv6 address, and pair it over IPv6. */
  v6?: boolean;
  extra?: string;
}

/** An inventory for lab servers: their addresses, the lab's key and known_hosts, and `body` (pairs, meshes). */
export function inventory(name: string, hosts: HostLine[], body: string, opts: { fleet?: string; knownHosts?: string; defaults?: string } = {}): string {
  const file = join(dir, name);
  writeFileSync(file, inventoryText(hosts, body, opts));
  return file;
}

export function inventoryText(hosts: HostLine[], body: string, opts: { fleet?: string; knownHosts?: string; defaults?: string } = {}): string {
  const line = (h: HostLine): string => {
    const address = h.v6 ? `"${hostIp6(h.i)}"` : hostIp(h.i);
    const parts = [`address: ${address}`];
    if (h.backend && h.backend !== 'auto') parts.push(`ipsec: {backend: ${h.backend}}`);
    if (h.extra) parts.push(h.extra);
    return `  server-${String(h.i).padStart(2, '0')}: {${parts.join(', ')}}\n`;
  };
  return `${opts.fleet ? `fleet: ${opts.fleet}\n` : ''}defaults:
  ssh:
    user: root
    identityFile: ${IDENTITY}
    knownHostsFile: ${opts.knownHosts ?? KNOWN_HOSTS}
${opts.defaults ?? ''}hosts:
${hosts.map(line).join('')}${body}`;
}

/**
 * The tool, inside the lab's namespace. Two labs on two cores make a guest's SSH handshake
 * take longer than the default 15 s at times ("Timed out while waiting for handshake"), so
 * the tests give it 60, as an operator with slow hosts would.
 */
export function provision(...args: string[]): Result {
  return inLab(['node', BIN, ...args, '--connect-timeout', '60'], undefined, 1_200_000);
}

export function json(r: Result): any {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

/**
 * `{code, pairs: [[name, status], ...]}` of a --json run, with the reasons of pairs that did
 * not verify; and, only when some host failed, `hosts` with their errors (so that a failing
 * comparison shows why).
 */
export function outcome(r: Result): { code: number; pairs: [string, string][]; hosts?: string[] } {
  const j = json(r);
  const failed = j.hosts
    .filter((h: any) => !['changed', 'unchanged', 'planned'].includes(h.status))
    .map((h: any) => `${h.name} ${h.status} ${h.step ?? ''}: ${h.error ?? ''} ${h.tail ?? ''}`);
  return {
    code: r.code,
    pairs: j.pairs.map((p: any) => [p.name, p.status === 'verified' ? 'verified' : `${p.status}: ${p.reason ?? ''}`]),
    ...(failed.length ? { hosts: failed } : {}),
  };
}

/** mtime of every file of provision's, and when ipsec last (re)started, per server. */
export function snapshot(names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    out[n] = onServer(
      n,
      'stat -c "%n %Y.%y" /etc/ipsec.d/*.conf /etc/ipsec.d/*.secrets /etc/ipsec.conf /etc/ipsec.secrets /etc/provision/*.nft 2>/dev/null; ' +
        'systemctl show ipsec -p ExecMainStartTimestampMonotonic -p ActiveState',
    ).stdout;
  }
  return out;
}

/** The key in a pair's secrets file on a server. */
export function keyOf(host: string, pair: string): string {
  return /PSK (\S+)/.exec(onServer(host, `cat /etc/ipsec.d/${pair}.secrets`).stdout)?.[1] ?? '';
}

/**
 * From outside the tool: on `from`, tcpdump watches what leaves for `to` while `from` pings
 * it; returns how many ESP packets and how many clear ICMP echo requests were seen.
 */
export function wireCheck(from: string, to: string): { esp: number; clear: number; replies: number } {
  const v6 = to.includes(':');
  const r = onServer(
    from,
    `
    timeout 12 tcpdump -n -p -i eth0 -c 4 "esp and dst host ${to}" > /tmp/wire.esp 2>/dev/null & e=$!
    timeout 12 tcpdump -n -p -i eth0 "${v6 ? 'icmp6 and ip6[40] == 128' : 'icmp[icmptype] == icmp-echo'} and dst host ${to}" > /tmp/wire.clear 2>/dev/null & c=$!
    sleep 2; ping -c 4 -i 0.3 -W 2 ${to} > /tmp/wire.ping 2>&1; sleep 1
    kill $c 2>/dev/null; wait $e
    echo "esp $(grep -c ESP /tmp/wire.esp) clear $(grep -c ICMP /tmp/wire.clear) replies $(sed -n 's/.* \\([0-9]*\\) received.*/\\1/p' /tmp/wire.ping)"`,
    undefined,
    60_000,
  );
  const m = /esp (\d+) clear (\d+) replies (\d+)/.exec(r.stdout);
  if (!m) throw new Error(`wire check on ${from}: ${r.stdout} ${r.stderr}`);
  return { esp: Number(m[1]), clear: Number(m[2]), replies: Number(m[3]) };
}

/** Installs the recording ForceCommand on servers: every command line a client sends is logged. */
export function recordCommands(names: string[]): void {
  const wrapper = readFileSync(join(REPO, 'test', 'lab', 'record-ssh'), 'utf8');
  for (const n of names) {
    const r = onServer(
      n,
      'cat > /usr/local/sbin/record-ssh && chmod 755 /usr/local/sbin/record-ssh && ' +
        "echo 'ForceCommand /usr/local/sbin/record-ssh' > /etc/ssh/sshd_config.d/record.conf && systemctl reload ssh",
      wrapper,
    );
    if (r.code !== 0) throw new Error(`recording wrapper on ${n}: ${r.stderr}`);
  }
}

/** Waits without busy-looping (the tests are synchronous). */
export function spin(sec: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, sec * 1000);
}
