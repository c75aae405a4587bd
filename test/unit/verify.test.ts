import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { judge, parseVerify, VERIFY, verifyScript } from '../../src/verify/esp.js';

// One host's verification: its probes to every peer at once, judged per peer.
const capture = (peers: string[], lines: string[], replies = 5): string =>
  peers.map((p) => `@@sa ${p} yes\n`).join('') +
  peers.map((p) => `@@ping ${p}\n5 packets transmitted, ${replies} received, ${replies ? 0 : 100}% packet loss\n`).join('') +
  `@@capture\n${lines.join('\n')}\n@@tcpdump\n`;

describe('ESP verification, one command per host', () => {
  test('recorded: libreswan to strongSwan, ESP both ways, every ping answered', () => {
    const out = readFileSync(join('test', 'fixtures', 'verify-libreswan-to-strongswan.txt'), 'utf8');
    const c = parseVerify(out, '10.77.0.11', ['10.77.0.13']).counts.get('10.77.0.13')!;
    expect(c).toEqual({ espOut: 5, espIn: 5, clearOut: 0, replies: 5, sent: 5 });
    expect(judge(c)).toBe('encrypted');
  });

  test('several peers: each judged on its own', () => {
    const r = parseVerify(
      capture(
        ['10.0.0.2', '10.0.0.3'],
        [
          't eth0 Out IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x1,seq=0x1), length 1244',
          't eth0 In  IP 10.0.0.2 > 10.0.0.1: ESP(spi=0x2,seq=0x1), length 1244',
          't eth0 Out IP 10.0.0.1 > 10.0.0.3: ICMP echo request, id 9, seq 1, length 1208',
        ],
      ),
      '10.0.0.1',
      ['10.0.0.2', '10.0.0.3'],
    );
    expect(judge(r.counts.get('10.0.0.2')!)).toBe('encrypted');
    expect(judge(r.counts.get('10.0.0.3')!)).toBe('clear-text');
  });

  test('decrypted incoming probes are not counted as clear text leaving', () => {
    const c = parseVerify(
      capture(
        ['10.0.0.2'],
        [
          't eth0 Out IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x1,seq=0x1), length 1244',
          't eth0 In  IP 10.0.0.2 > 10.0.0.1: ESP(spi=0x2,seq=0x1), length 1244',
          't eth0 In  IP 10.0.0.2 > 10.0.0.1: ICMP echo reply, id 9, seq 1, length 1208',
        ],
      ),
      '10.0.0.1',
      ['10.0.0.2'],
    ).counts.get('10.0.0.2')!;
    expect(judge(c)).toBe('encrypted');
  });

  test('NAT-T: ESP in UDP 4500 counts; IKE on 4500 does not', () => {
    const c = parseVerify(
      capture(
        ['10.0.0.2'],
        [
          't eth0 Out IP 10.0.0.1.4500 > 10.0.0.2.4500: UDP-encap: ESP(spi=0x1,seq=0x1), length 1252',
          't eth0 In  IP 10.0.0.2.4500 > 10.0.0.1.4500: UDP-encap: ESP(spi=0x2,seq=0x1), length 1252',
          't eth0 Out IP 10.0.0.1.4500 > 10.0.0.2.4500: NONESP-encap: isakmp: child_sa  inf2',
        ],
      ),
      '10.0.0.1',
      ['10.0.0.2'],
    ).counts.get('10.0.0.2')!;
    expect(c).toMatchObject({ espOut: 1, espIn: 1, clearOut: 0 });
  });

  test('IPv6 addresses, written differently in the inventory and by tcpdump', () => {
    const r = parseVerify(
      capture(
        ['2001:db8::2'],
        [
          't eth0 Out IP6 2001:db8::1 > 2001:db8::2: ESP(spi=0x1,seq=0x1), length 1244',
          't eth0 In  IP6 2001:db8::2 > 2001:db8::1: ESP(spi=0x2,seq=0x1), length 1244',
        ],
      ),
      '2001:DB8:0::1',
      ['2001:db8:0:0::2'],
    );
    expect(judge(r.counts.get('2001:db8::2')!)).toBe('encrypted');
  });

  test('ESP one way only, and ESP without replies, are failures; a peer without SAs is named', () => {
    const oneWay = parseVerify(capture(['10.0.0.2'], ['t eth0 Out IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x1,seq=0x1), length 1244'], 0), '10.0.0.1', ['10.0.0.2']);
    expect(judge(oneWay.counts.get('10.0.0.2')!)).toBe('no-esp');
    const noReply = parseVerify(
      capture(
        ['10.0.0.2'],
        ['t eth0 Out IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x1,seq=0x1), length 1244', 't eth0 In IP 10.0.0.2 > 10.0.0.1: ESP(spi=0x2,seq=0x1), length 1244'],
        0,
      ),
      '10.0.0.1',
      ['10.0.0.2'],
    );
    expect(judge(noReply.counts.get('10.0.0.2')!)).toBe('no-reply');
    expect(parseVerify('@@sa 10.0.0.2 no\n@@capture\n@@tcpdump\n', '10.0.0.1', ['10.0.0.2']).withoutSas).toEqual(new Set(['10.0.0.2']));
  });

  test('the script parses with sh, captures only probes (by pattern and by size), bounded in count', () => {
    const s = verifyScript('10.0.0.1', ['10.0.0.2', '10.0.0.3']);
    expect(spawnSync('sh', ['-n', '-c', s]).status).toBe(0);
    expect(s).toContain(`icmp[24:4] = 0x${VERIFY.pattern}`);
    expect(s).toMatch(/tcpdump -n -p -l -c 168 -i any '\(host 10\.0\.0\.2 or host 10\.0\.0\.3\) and \(esp or udp port 4500\) and greater \d+ and less \d+'/);
    expect(s).toContain(`-s ${VERIFY.size} -p ${VERIFY.pattern}`);
  });

  test('one `ip xfrm state` per poll: a peer with SAs both ways is ready, one with an SA one way only is not (IPv6 written as ip prints it)', () => {
    const bin = mkdtempSync(join(tmpdir(), 'verify-bin-'));
    const fake = (name: string, body: string): void => {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    try {
      fake(
        'ip',
        `echo x >> ${bin}/ip.calls
printf 'src 10.0.0.1 dst 10.0.0.2\\n\\tproto esp spi 0x1 reqid 1 mode transport\\n'
printf 'src 10.0.0.2 dst 10.0.0.1\\n\\tproto esp spi 0x2 reqid 1 mode transport\\n'
printf 'src 10.0.0.1 dst fd00::3\\n\\tproto esp spi 0x3 reqid 2 mode transport\\n'
printf 'src fd00::4 dst 10.0.0.1\\n\\tproto esp spi 0x4 reqid 3 mode transport\\n'
printf 'src 10.0.0.1 dst fd00::4\\n\\tproto esp spi 0x5 reqid 3 mode transport\\n'`,
      );
      fake('sleep', 'exit 0');
      fake('tcpdump', 'echo "listening on any" >&2');
      fake('ping', 'echo "1 packets transmitted, 1 received, 0% packet loss"');
      const r = spawnSync('sh', ['-c', verifyScript('10.0.0.1', ['10.0.0.2', 'fd00:0::3', 'FD00::4'], { waitSec: 3 })], {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` },
      });
      expect(r.stdout.split('\n').filter((l) => l.startsWith('@@sa'))).toEqual(['@@sa 10.0.0.2 yes', '@@sa fd00::3 no', '@@sa fd00::4 yes']);
      expect(readFileSync(join(bin, 'ip.calls'), 'utf8').split('\n').filter(Boolean)).toHaveLength(3);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
