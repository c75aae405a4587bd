import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobType, fingerprint, hostKeyAlgorithms, judgeHostKey, keysFor, knownHostsLine } from '../../src/remote/known-hosts.js';
import { KnownHostsStore } from '../../src/remote/known-hosts-store.js';

// Real key blobs: the two lab servers' ed25519 keys would do; these are fixed test keys.
const KEY_A = 'AAAAC3NzaC1lZDI1NTE5AAAAIHp0b3RhbGx5LWEtdGVzdC1rZXktZm9yLWhvc3QtYQ==';
const KEY_B = 'AAAAC3NzaC1lZDI1NTE5AAAAIHRvdGFsbHktYW5vdGhlci10ZXN0LWtleS1mb3ItYg==';
const blobA = Buffer.from(KEY_A, 'base64');
const blobB = Buffer.from(KEY_B, 'base64');

function hashed(name: string): string {
  const salt = Buffer.from('0123456789abcdefghij');
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('known_hosts', () => {
  test('plain, comma lists and [host]:port entries', () => {
    const file = `# comment\nweb1,192.0.2.1 ssh-ed25519 ${KEY_A}\n[192.0.2.1]:2222 ssh-ed25519 ${KEY_B}\n`;
    expect(keysFor(file, '192.0.2.1', 22).map((k) => k.blob)).toEqual([blobA]);
    expect(keysFor(file, '192.0.2.1', 2222).map((k) => k.blob)).toEqual([blobB]);
    expect(keysFor(file, 'web1', 22)).toHaveLength(1);
    expect(keysFor(file, '192.0.2.9', 22)).toEqual([]);
  });

  test('hashed entries (HashKnownHosts yes), on port 22 and others', () => {
    const file = `${hashed('192.0.2.1')} ssh-ed25519 ${KEY_A}\n${hashed('[192.0.2.1]:2222')} ssh-ed25519 ${KEY_B}\n`;
    expect(keysFor(file, '192.0.2.1', 22)[0]!.blob).toEqual(blobA);
    expect(keysFor(file, '192.0.2.1', 2222)[0]!.blob).toEqual(blobB);
    expect(keysFor(file, '192.0.2.2', 22)).toEqual([]);
  });

  test('wildcards and negation', () => {
    const file = `192.0.2.*,!192.0.2.7 ssh-ed25519 ${KEY_A}\n`;
    expect(keysFor(file, '192.0.2.5', 22)).toHaveLength(1);
    expect(keysFor(file, '192.0.2.7', 22)).toEqual([]);
  });

  test('verdicts: known, unknown, changed (with both fingerprints), revoked', () => {
    expect(judgeHostKey(keysFor(`h ssh-ed25519 ${KEY_A}`, 'h', 22), blobA)).toEqual({ kind: 'known' });
    expect(judgeHostKey([], blobA)).toEqual({ kind: 'unknown', offered: fingerprint(blobA) });
    expect(judgeHostKey(keysFor(`h ssh-ed25519 ${KEY_A}`, 'h', 22), blobB)).toEqual({
      kind: 'changed',
      offered: fingerprint(blobB),
      known: [`ssh-ed25519 ${fingerprint(blobA)}`],
    });
    expect(judgeHostKey(keysFor(`@revoked h ssh-ed25519 ${KEY_A}`, 'h', 22), blobA).kind).toBe('revoked');
  });

  test('a fingerprint is printed as ssh-keygen -l does', () => {
    expect(fingerprint(blobA)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  test('known key types are offered first, so a host with an ed25519 entry is not asked for ecdsa', () => {
    expect(hostKeyAlgorithms(keysFor(`h ssh-ed25519 ${KEY_A}`, 'h', 22))).toEqual(['ssh-ed25519']);
    expect(hostKeyAlgorithms([])[0]).toBe('ssh-ed25519');
  });

  test('the line recorded for a new host', () => {
    expect(blobType(blobA)).toBe('ssh-ed25519');
    expect(knownHostsLine('192.0.2.1', 2222, blobA)).toBe(`[192.0.2.1]:2222 ssh-ed25519 ${KEY_A}\n`);
  });
});

describe('known_hosts as OpenSSH reads it', () => {
  test('host names compare without case, hashed entries included', () => {
    const file = `Web1.Example.ORG ssh-ed25519 ${KEY_A}\n${hashed('db1.example.org')} ssh-ed25519 ${KEY_B}\n`;
    expect(keysFor(file, 'web1.example.org', 22).map((k) => k.blob)).toEqual([blobA]);
    expect(keysFor(file, 'WEB1.example.org', 22).map((k) => k.blob)).toEqual([blobA]);
    expect(keysFor(file, 'DB1.Example.Org', 22).map((k) => k.blob)).toEqual([blobB]);
    expect(knownHostsLine('Web1.Example.ORG', 22, blobA)).toBe(`web1.example.org ssh-ed25519 ${KEY_A}\n`);
  });
});

describe("the run's known_hosts store", () => {
  const dir = mkdtempSync(join(tmpdir(), 'known-hosts-'));

  test("the system-wide file is read as well as the user's", async () => {
    const global = join(dir, 'ssh_known_hosts');
    writeFileSync(global, `192.0.2.5 ssh-ed25519 ${KEY_A}\n`);
    const store = new KnownHostsStore(global);
    expect((await store.keys(join(dir, 'absent'), '192.0.2.5', 22)).map((k) => k.blob)).toEqual([blobA]);
    expect(await store.keys(join(dir, 'absent'), '192.0.2.6', 22)).toEqual([]);
  });

  test('a recorded key starts on a new line, even when the file does not end with one', async () => {
    const file = join(dir, 'no-newline');
    writeFileSync(file, `192.0.2.1 ssh-ed25519 ${KEY_A}`, { mode: 0o600 });
    await new KnownHostsStore(join(dir, 'none')).record(file, '192.0.2.2', 22, blobB);
    expect(readFileSync(file, 'utf8')).toBe(`192.0.2.1 ssh-ed25519 ${KEY_A}\n192.0.2.2 ssh-ed25519 ${KEY_B}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  test('one key asked to be recorded by many hosts at once (a shared jump host) is written once', async () => {
    const file = join(dir, 'shared');
    const store = new KnownHostsStore(join(dir, 'none'));
    await Promise.all(Array.from({ length: 20 }, () => store.record(file, 'bastion', 22, blobA)));
    await store.record(file, 'other', 2222, blobB);
    expect(readFileSync(file, 'utf8')).toBe(`bastion ssh-ed25519 ${KEY_A}\n[other]:2222 ssh-ed25519 ${KEY_B}\n`);
    // A second run does not write it again either.
    await new KnownHostsStore(join(dir, 'none')).record(file, 'bastion', 22, blobA);
    expect(
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('bastion')),
    ).toHaveLength(1);
  });
});
