import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { judge, parseVerify } from '../../src/verify/esp.js';

describe('ESP verification', () => {
  test('recorded: libreswan to strongSwan, ESP both ways, every ping answered', () => {
    const out = readFileSync(join('test', 'fixtures', 'verify-libreswan-to-strongswan.txt'), 'utf8');
    const c = parseVerify(out, '10.77.0.11', '10.77.0.13');
    expect(c).toEqual({ espOut: 5, espIn: 5, clearOut: 0, replies: 5, sent: 5 });
    expect(judge(c)).toBe('encrypted');
  });

  const capture = (lines: string[], ping = '5 packets transmitted, 5 received, 0% packet loss'): string =>
    `@@ping\n${ping}\n@@capture\n${lines.join('\n')}\n@@tcpdump\n`;

  test('clear ICMP leaving for the peer fails, whatever else is seen', () => {
    const c = parseVerify(capture([
      '12:00:00.1 eth0  Out IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 9, seq 1, length 64',
      '12:00:00.2 eth0  Out IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x1,seq=0x1), length 100',
      '12:00:00.3 eth0  In  IP 10.0.0.2 > 10.0.0.1: ESP(spi=0x2,seq=0x1), length 100',
    ]), '10.0.0.1', '10.0.0.2');
    expect(c.clearOut).toBe(1);
    expect(judge(c)).toBe('clear-text');
  });

  test('decrypted incoming ICMP is not counted as clear text leaving', () => {
    const c = parseVerify(capture([
      '12:00:00.2 eth0  Out IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x1,seq=0x1), length 100',
      '12:00:00.3 eth0  In  IP 10.0.0.2 > 10.0.0.1: ESP(spi=0x2,seq=0x1), length 100',
      '12:00:00.3 eth0  In  IP 10.0.0.2 > 10.0.0.1: ICMP echo reply, id 9, seq 1, length 64',
    ]), '10.0.0.1', '10.0.0.2');
    expect(judge(c)).toBe('encrypted');
  });

  test('NAT-T: ESP in UDP 4500 counts; IKE on 4500 does not', () => {
    const c = parseVerify(capture([
      '12:00:00.2 eth0  Out IP 10.0.0.1.4500 > 10.0.0.2.4500: UDP-encap: ESP(spi=0x1,seq=0x1), length 116',
      '12:00:00.3 eth0  In  IP 10.0.0.2.4500 > 10.0.0.1.4500: UDP-encap: ESP(spi=0x2,seq=0x1), length 116',
      '12:00:00.4 eth0  Out IP 10.0.0.1.4500 > 10.0.0.2.4500: NONESP-encap: isakmp: child_sa  inf2',
    ]), '10.0.0.1', '10.0.0.2');
    expect(c).toMatchObject({ espOut: 1, espIn: 1, clearOut: 0 });
  });

  test('IPv6 addresses, written differently in the inventory and by tcpdump', () => {
    const c = parseVerify(capture([
      '12:00:00.2 eth0  Out IP6 2001:db8::1 > 2001:db8::2: ESP(spi=0x1,seq=0x1), length 100',
      '12:00:00.3 eth0  In  IP6 2001:db8::2 > 2001:db8::1: ESP(spi=0x2,seq=0x1), length 100',
    ]), '2001:DB8:0::1', '2001:db8::2');
    expect(judge(c)).toBe('encrypted');
  });

  test('ESP one way only, and ESP without replies, are failures', () => {
    const oneWay = parseVerify(capture(['12:00 eth0 Out IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x1,seq=0x1), length 100'], '5 packets transmitted, 0 received'), '10.0.0.1', '10.0.0.2');
    expect(judge(oneWay)).toBe('no-esp');
    const noReply = parseVerify(capture([
      '12:00 eth0 Out IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x1,seq=0x1), length 100',
      '12:00 eth0 In IP 10.0.0.2 > 10.0.0.1: ESP(spi=0x2,seq=0x1), length 100',
    ], '5 packets transmitted, 0 received, 100% packet loss'), '10.0.0.1', '10.0.0.2');
    expect(judge(noReply)).toBe('no-reply');
  });
});
