import { FACTS_SCRIPT } from '../../src/remote/facts.js';
import type { ExecResult, Session } from '../../src/remote/session.js';

export interface Sent {
  host: string;
  script: string;
  stdin?: string;
}

/** Facts of a host with libreswan installed and running, and no managed files yet. */
export const READY_FACTS = `@@os\ndebian 12\n@@init\nsystemd\n@@installed\nlibreswan ii  4.10-2+deb12u1\n@@candidates\nlibreswan 4.10-2+deb12u1\n@@lists\n1\n@@version\nLibreswan 4.10\n@@running\nactive\n@@includes\npresent /etc/ipsec.conf\npresent /etc/ipsec.secrets\n@@files\n@@end\n`;

export interface FakeFile {
  path: string;
  /** Octal, without the leading 0: "600". */
  mode: string;
  /** Set for a managed file (the facts script reads only those). */
  content?: string;
}

/** `facts` with its (empty) files section replaced by these files, as the facts script prints them. */
export function withFiles(facts: string, files: FakeFile[]): string {
  const size = (f: FakeFile): number => Buffer.byteLength(f.content ?? 'operator file\n');
  const managed = files.filter((f) => f.content !== undefined);
  const section = `@@files\n${files.map((f) => `${f.mode} ${size(f)} ${f.path}\n`).join('')}` +
    `@@managed\n${managed.map((f) => `${f.path}\n`).join('')}` +
    `@@content\n${Buffer.from(managed.map((f) => f.content).join('')).toString('base64')}\n`;
  return facts.replace('@@files\n', section);
}

export type Responder = (host: string, script: string, stdin?: string, address?: string) => Partial<ExecResult> | undefined;

/** Answers like a healthy host: facts, successful writes and restarts, ESP both ways. */
export const healthy: Responder = (_host, script, _stdin, me) => {
  if (script === FACTS_SCRIPT) return { stdout: READY_FACTS };
  const v = /tcpdump -n -p -l -i any 'host (\S+) and/.exec(script);
  if (v) {
    const peer = v[1];
    return {
      stdout: `@@ping\n5 packets transmitted, 5 received, 0% packet loss\n@@capture\n` +
        `t eth0 Out IP ${me} > ${peer}: ESP(spi=0x1,seq=0x1), length 100\nt eth0 In IP ${peer} > ${me}: ESP(spi=0x2,seq=0x1), length 100\n@@tcpdump\n`,
    };
  }
  return { stdout: '' };
};

/** A session that records what it is sent; `respond` decides the answers, `healthy` by default. */
export function fakeSessions(respond: Responder = healthy) {
  const sent: Sent[] = [];
  const connect = async (host: { name: string; address: string }): Promise<Session> => {
    let commands = 0;
    return {
      host: host.name,
      get commands() {
        return commands;
      },
      async run(script, opts = {}) {
        commands++;
        sent.push({ host: host.name, script, ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}) });
        const r = respond(host.name, script, opts.stdin, host.address) ?? healthy(host.name, script, opts.stdin, host.address) ?? {};
        return { code: 0, stdout: '', stderr: '', timedOut: false, ...r };
      },
      async close() {},
    };
  };
  return { sent, connect };
}
