import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { main } from '../../src/cli.js';
import { loadInventory } from '../../src/inventory/load.js';
import type { HostSpec } from '../../src/inventory/types.js';
import { parseDaemon } from '../../src/status/script.js';
import { convergedFacts } from '../helpers/converged.js';
import { type Call, fakeFleet, TEST_CREATED } from '../helpers/fake-session.js';

// provision status against fake hosts: what it reads (one command per host), what it
// concludes per pair, and how it says it to people, JSON and Prometheus.

const dir = mkdtempSync(join(tmpdir(), 'status-'));
const file = join(dir, 'web.yaml');
const text = `hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  c: {address: 10.0.0.3}
pairs:
  - [a, b]
  - [a, c]
`;
writeFileSync(file, text);
const inv = loadInventory(text, file);
const KEY = `0s${Buffer.alloc(32, 5).toString('base64')}`;

/** Each host's facts after a converged run: files, SAs up, the guard loaded. */
const converged = (): Promise<Map<string, string>> => convergedFacts(inv, { random: () => new Uint8Array(32).fill(5), dropped: { out: 4, in: 1 } });

class Sink extends Writable {
  text = '';
  override _write(c: Buffer, _e: string, cb: () => void): void {
    this.text += c.toString();
    cb();
  }
}

async function status(
  facts: Map<string, string>,
  argv: string[] = [],
  macs: (host: string, path: string) => string = () => 'ab'.repeat(16),
  daemon: (h: string) => string = () => '',
  policies: (h: string) => string = () => '',
  inventory = file,
) {
  const sent: Call[] = [];
  const fake = fakeFleet(inv, {
    respond: (c) => {
      sent.push(c);
      if (c.step !== 'status') return undefined;
      const f = facts.get(c.host)!.replace('@@end\n', '');
      const keys = [...f.matchAll(/^\d+ \d+ (\/etc\/ipsec\.d\/\S+\.secrets)$/gm)].map((m) => `${m[1]} ${macs(c.host, m[1]!)}\n`).join('');
      return { stdout: `${f}@@keys\n${keys}@@daemon\n${daemon(c.host)}@@policies\n${policies(c.host)}@@end\n` };
    },
  });
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await main(
    ['status', '-i', inventory, ...argv],
    { stdout, stderr },
    { connect: (name: string) => fake.connect(inv.hosts.get(name) as HostSpec) },
  );
  return { code, stdout: stdout.text, stderr: stderr.text, sent };
}

describe('provision status', () => {
  test("each pair's key age; under rotation.maxAge a key past it is not healthy, and says a run rotates it", async () => {
    const withPolicy = join(dir, 'policy.yaml');
    writeFileSync(withPolicy, `fleet: web\n${text}rotation: {maxAge: 1d}\n`);
    const facts = await converged();
    const age = Math.round((Date.now() - Date.parse(TEST_CREATED)) / 1000);
    const plain = await status(facts, ['--json']);
    expect(plain.code).toBe(0);
    for (const p of JSON.parse(plain.stdout).pairs) expect(Math.abs(p.keyAgeSec - age)).toBeLessThan(60);
    const j = await status(facts, ['--json'], undefined, undefined, undefined, withPolicy);
    expect(j.code).toBe(1);
    const report = JSON.parse(j.stdout);
    expect(report.pairs.map((p: { keyPastMaxAge?: boolean }) => p.keyPastMaxAge)).toEqual([true, true]);
    expect(new Ajv2020({ strict: false }).compile(JSON.parse(readFileSync('docs/provision.schema.json', 'utf8')))(report)).toBe(true);
    const t = await status(facts, [], undefined, undefined, undefined, withPolicy);
    expect(t.stdout).toMatch(/^ {2}a--b +up, keys agree, key \d+ d PAST rotation\.maxAge/m);
    expect(t.stdout).toMatch(/a--b: next: the key is \d+ days old, past rotation.maxAge 1d: a run of provision rotates it\./);
    const prom = await status(facts, ['--format', 'prometheus'], undefined, undefined, undefined, withPolicy);
    expect(prom.stdout).toMatch(/^provision_pair_key_age_seconds\{fleet="web",pair="a--b"[^}]*\} \d+$/m);
    expect(prom.stdout).toMatch(/^provision_pair_key_past_max_age\{fleet="web",pair="a--b"[^}]*\} 1$/m);
    const nagios = await status(facts, ['--nagios'], undefined, undefined, undefined, withPolicy);
    expect(nagios.code).toBe(1);
  });

  test('a healthy fleet: every pair up, keys agree, exit 0; one command per host, nothing written', async () => {
    const r = await status(await converged(), ['--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.pairs.map((p: { name: string; hosts: string[]; status: string; keys: string }) => [p.name, p.hosts, p.status, p.keys])).toEqual([
      ['a--b', ['a', 'b'], 'up', 'agree'],
      ['a--c', ['a', 'c'], 'up', 'agree'],
    ]);
    expect(j.healthy).toBe(true);
    const validate = new Ajv2020({ strict: false }).compile(JSON.parse(readFileSync('docs/provision.schema.json', 'utf8')));
    expect(validate(j)).toBe(true);
    expect(r.sent.map((c) => `${c.host}:${c.step}`).sort()).toEqual(['a:status', 'b:status', 'c:status']);
    expect(r.sent.every((c) => c.stdin === undefined)).toBe(true);
    // The MACs are of a fresh challenge: it is in the script, different each run.
    const again = await status(await converged());
    const challenge = (s: string) => /printf '%s\\n%s' '?([0-9a-f]{32})/.exec(s)![1];
    expect(challenge(r.sent[0]!.script)).not.toBe(challenge(again.sent[0]!.script));
  });

  test('a host whose daemon stopped: exactly its pairs are down, exit 1; --nagios says CRITICAL (2)', async () => {
    const facts = await converged();
    facts.set('c', facts.get('c')!.replace(/@@sas\n[^@]*/, '@@sas\n'));
    facts.set('a', facts.get('a')!.replace('10.0.0.1 10.0.0.3\n10.0.0.3 10.0.0.1\n', ''));
    const r = await status(facts);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ {2}a--b +up, keys agree/m);
    expect(r.stdout).toMatch(/^ {2}a--c +DOWN, keys agree/m);
    expect(r.stdout).toMatch(/a--c: next: neither end holds SAs/);
    expect((await status(facts, ['--nagios'])).code).toBe(2);
  });

  test('keys that disagree are shown as such without any key or hash of one in the output', async () => {
    const r = await status(await converged(), ['--json'], (h, p) => (h === 'c' && p.endsWith('a--c.secrets') ? 'cd'.repeat(16) : 'ab'.repeat(16)));
    const j = JSON.parse(r.stdout);
    expect(j.pairs.find((p: { name: string }) => p.name === 'a--c')).toMatchObject({ status: 'up', keys: 'disagree' });
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('abababab');
    expect(r.stdout).not.toContain(KEY);
    expect((await status(await converged(), ['--nagios'], (h, p) => (h === 'c' && p.endsWith('a--c.secrets') ? 'cd'.repeat(16) : 'ab'.repeat(16)))).code).toBe(
      1,
    );
  });

  test('a file edited on a host is drift', async () => {
    const facts = await converged();
    facts.set(
      'b',
      facts
        .get('b')!
        .replace(/^644 (\d+) \/etc\/ipsec\.d\/a--b\.conf$/m, (_m, n) => `644 ${Number(n) + 1} /etc/ipsec.d/a--b.conf`)
        .replace(
          /@@content\n(.*)\n/,
          (_m, b64) => `@@content\n${Buffer.from(Buffer.from(b64, 'base64').toString().replace('auto=route', 'auto=routeX')).toString('base64')}\n`,
        ),
    );
    const r = await status(facts, ['--json']);
    const j = JSON.parse(r.stdout);
    expect(j.pairs.find((p: { name: string }) => p.name === 'a--b').drift).toEqual(['b: /etc/ipsec.d/a--b.conf (differs)']);
    expect(r.code).toBe(1);
  });

  test('Prometheus text format, for the textfile collector', async () => {
    const r = await status(await converged(), ['--format', 'prometheus'], undefined, (h) =>
      h === 'b' ? '006 #4: "a--b", type=ESP, add_time=1000, inBytes=2048, outBytes=4096, maxBytes=2^63B, id=\'10.0.0.1\'\n' : '',
    );
    expect(r.stdout).toMatch(/^# TYPE provision_pair_up gauge$/m);
    expect(r.stdout).toMatch(/^provision_pair_up\{fleet="web",pair="a--b",initiator="a",responder="b"\} 1$/m);
    expect(r.stdout).toMatch(/^provision_pair_keys_agree\{fleet="web",pair="a--c",initiator="a",responder="c"\} 1$/m);
    expect(r.stdout).toMatch(/^provision_sa_bytes\{fleet="web",pair="a--b",host="b",direction="in"\} 2048$/m);
    expect(r.stdout).toMatch(/^provision_guard_dropped_packets_total\{fleet="web",host="a",direction="out"\} 4$/m);
    expect(r.stdout).toMatch(/^provision_host_readable\{fleet="web",host="c"\} 1$/m);
    expect(r.stdout).toMatch(/^provision_status_timestamp_seconds\{fleet="web"\} \d+$/m);
  });

  // Three ways a pair whose SAs are all there still sends or takes clear text: none is `up`.
  test('an end whose outbound SA carries nothing while its inbound one carries traffic is exposed, not up; --nagios CRITICAL', async () => {
    const sas = (h: string) => (h === 'b' ? '006 #4: "a--b", type=ESP, add_time=1000, inBytes=24576, outBytes=0, maxBytes=2^63B, id=\'10.0.0.1\'\n' : '');
    const r = await status(await converged(), ['--json'], undefined, sas);
    const ab = JSON.parse(r.stdout).pairs.find((p: { name: string }) => p.name === 'a--b');
    expect(ab).toMatchObject({
      status: 'exposed',
      exposures: ['b: its outbound SA carried 0 bytes while its inbound one carried 24576: its traffic to 10.0.0.1 goes outside IPsec'],
    });
    expect(r.code).toBe(1);
    const text = await status(await converged(), [], undefined, sas);
    expect(text.stdout).toMatch(/^ {2}a--b +EXPOSED, keys agree/m);
    expect(text.stdout).toContain('a--b: EXPOSED: b: its outbound SA carried 0 bytes');
    expect((await status(await converged(), ['--nagios'], undefined, sas)).code).toBe(2);
    expect((await status(await converged(), ['--format', 'prometheus'], undefined, sas)).stdout).toMatch(
      /^provision_pair_exposed\{fleet="web",pair="a--b",initiator="a",responder="b"\} 1$/m,
    );
  });

  test("a peer missing from a guarded end's guard is exposed", async () => {
    const facts = await converged();
    // c's guard is loaded, without a as a peer.
    facts.set('c', facts.get('c')!.replace('\t\telements = { 10.0.0.1 }\n', ''));
    const j = JSON.parse((await status(facts, ['--json'])).stdout);
    expect(j.pairs.map((p: { name: string; status: string; exposures: string[] }) => [p.name, p.status, p.exposures])).toEqual([
      ['a--b', 'up', []],
      ['a--c', 'exposed', ['c: 10.0.0.1 is not in guard table provision_web: nothing drops clear traffic to or from it']],
    ]);
  });

  test("a passthrough policy that outranks the pair's own is exposed; one it outranks is not", async () => {
    const own =
      'src 10.0.0.1/32 dst 10.0.0.2/32 \n\tdir out priority 268927 ptype main \n\ttmpl src 0.0.0.0 dst 0.0.0.0\n\t\tproto esp reqid 1 mode transport\n';
    const wide = (prio: number) => `src 0.0.0.0/0 dst 0.0.0.0/0 \n\tdir out priority ${prio} ptype main \n`;
    const j = JSON.parse((await status(await converged(), ['--json'], undefined, undefined, (h) => (h === 'a' ? own + wide(199999) : ''))).stdout);
    expect(j.pairs.map((p: { name: string; status: string; exposures: string[] }) => [p.name, p.status, p.exposures])).toEqual([
      ['a--b', 'exposed', ["a: a passthrough policy outranks the pair's own: src 0.0.0.0/0 dst 0.0.0.0/0 (any protocol) out, priority 199999"]],
      // a--c has no policy of its own on a in this listing: the passthrough is all there is.
      ['a--c', 'exposed', ["a: a passthrough policy outranks the pair's own: src 0.0.0.0/0 dst 0.0.0.0/0 (any protocol) out, priority 199999"]],
    ]);
    const below = JSON.parse((await status(await converged(), ['--json'], undefined, undefined, (h) => (h === 'a' ? own + wide(400000) : ''))).stdout);
    expect(below.pairs.find((p: { name: string }) => p.name === 'a--b')).toMatchObject({ status: 'up', exposures: [] });
  });

  test('--verify adds the proof on the wire, one more command per host', async () => {
    const r = await status(await converged(), ['--verify', '--json']);
    const j = JSON.parse(r.stdout);
    expect(j.pairs.map((p: { wire: { verdict: string } }) => p.wire.verdict)).toEqual(['verified', 'verified']);
    expect(
      r.sent
        .filter((c) => c.step.startsWith('verify'))
        .map((c) => c.host)
        .sort(),
    ).toEqual(['a', 'b', 'c']);
  });
});

describe("the daemons' views of their SAs", () => {
  test('libreswan traffic status and strongSwan statusall', () => {
    const lib = parseDaemon(['006 #3: "a--b", type=ESP, add_time=1732700000, inBytes=1234, outBytes=5678, maxBytes=2^63B, id=\'10.0.0.2\''], 1732700060_000);
    expect(lib.get('a--b')).toEqual({ ageSec: 60, bytesIn: 1234, bytesOut: 5678 });
    const ss = parseDaemon(
      [
        'a--c[1]: ESTABLISHED 3 minutes ago, 10.0.0.3[10.0.0.3]...10.0.0.1[10.0.0.1]',
        'a--c{1}:  AES_GCM_16_256, 840 bytes_i (10 pkts, 5s ago), 1680 bytes_o (20 pkts, 5s ago), rekeying in 44 minutes',
      ],
      0,
    );
    expect(ss.get('a--c')).toEqual({ ageSec: 180, bytesIn: 840, bytesOut: 1680 });
  });
});
