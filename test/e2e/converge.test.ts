import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { watchWire } from '../helpers/wire.js';
import type { Result } from '../lab/control.js';
import { describeLab, hostIp, labDown, labUp, onServer } from '../lab/control.js';
import { dir, inventory, json, keyOf, outcome, provision, recordCommands, snapshot, wireCheck } from './support.js';

// Converging real servers (Debian 12 guests, nothing installed at first): from nothing, a
// no-op, a dry run, a saved plan, a mesh with strongSwan and its status, two fleets on one
// host, and no key on any wire the tool uses. Each scenario brings the servers to the state it
// needs (a converge is idempotent), so one failure does not cascade.

const S = ['server-01', 'server-02', 'server-03'];
// One fleet, "lab", whatever file says it: the seed pair grows into the mesh.
const seed = () => inventory('seed.yaml', [{ i: 1 }, { i: 2 }], 'pairs:\n  - [server-01, server-02]\n', { fleet: 'lab' });
/** The seed pair with the responder on `add`: the same fleet, another file. */
const seedAdd = () => inventory('seed-add.yaml', [{ i: 1 }, { i: 2 }], 'pairs:\n  - {hosts: [server-01, server-02], responder: add}\n', { fleet: 'lab' });
const mesh = () =>
  inventory('mesh.yaml', [{ i: 1 }, { i: 2 }, { i: 3, backend: 'strongswan' }], 'meshes:\n  - {name: lab, hosts: [server-01, server-02, server-03]}\n', {
    fleet: 'lab',
  });
const seenKeys = new Set<string>();
const collectKeys = (): void => {
  for (const n of S) for (const m of onServer(n, 'cat /etc/ipsec.d/*.secrets 2>/dev/null').stdout.matchAll(/PSK (0s\S+)/g)) seenKeys.add(m[1]!);
};

describeLab('converging real servers', () => {
  beforeAll(() => {
    labUp(3);
    recordCommands(S);
  }, 900_000);
  afterAll(() => labDown(), 120_000);

  test('(a) the seed pair from nothing: installed, written, guarded, ESP verified by the tool and from outside, no clear packet on the wire', () => {
    const wire = watchWire('seed');
    const r = provision('--inventory', seed(), '--json');
    expect(wire.stop([[hostIp(1), hostIp(2)]])).toEqual([]);
    const j = json(r);
    expect({ code: r.code, stderr: r.code ? r.stderr.slice(-2000) : '' }).toEqual({ code: 0, stderr: '' });
    expect(j.hosts.map((h: any) => [h.name, h.status])).toEqual([
      ['server-01', 'changed'],
      ['server-02', 'changed'],
    ]);
    expect(j.hosts[0].did.join('; ')).toMatch(/installed libreswan/);
    expect(j.hosts[0].did).toContain(`guard loaded (1 peer; ${hostIp(2)} joined)`);
    const pair = j.pairs.find((p: any) => p.name === 'server-01--server-02');
    expect(pair.status).toBe('verified');
    for (const d of pair.directions) expect(d.counts).toMatchObject({ clearOut: 0, espOut: expect.any(Number) });
    const files = onServer(
      'server-02',
      'stat -c "%a %U %n" /etc/ipsec.d/server-01--server-02.* /etc/provision/guard-lab.nft; head -n 1 /etc/ipsec.d/server-01--server-02.conf; nft list set inet provision_lab peers4 | grep -c elements',
    );
    expect(files.stdout).toBe(
      `644 root /etc/ipsec.d/server-01--server-02.conf\n600 root /etc/ipsec.d/server-01--server-02.secrets\n600 root /etc/provision/guard-lab.nft\n# managed by provision for fleet lab: edits are overwritten\n1\n`,
    );
    expect(wireCheck('server-01', hostIp(2))).toMatchObject({ esp: 4, clear: 0, replies: 4 });
    expect(onServer('server-01', 'systemctl is-enabled provision-guard').stdout.trim()).toBe('enabled');
    collectKeys();
  }, 1_200_000);

  test('(b) a re-run changes nothing: no file rewritten, ipsec not restarted; two commands per host', () => {
    provision('--inventory', seed(), '--no-verify');
    const before = snapshot(['server-01', 'server-02']);
    const r = provision('--inventory', seed(), '--json');
    const j = json(r);
    expect(r.code).toBe(0);
    expect(j.hosts.map((h: any) => h.status)).toEqual(['unchanged', 'unchanged']);
    expect(j.hosts.flatMap((h: any) => h.files.map((f: any) => f.action))).toEqual(Array(j.hosts.flatMap((h: any) => h.files).length).fill('noop'));
    expect(j.pairs[0].status).toBe('verified');
    // Facts, then the proof on the wire: one command each, on one connection per host.
    expect(j.stats).toMatchObject({ hosts: 2, connections: 2, commands: 4 });
    expect(snapshot(['server-01', 'server-02'])).toEqual(before);
  }, 600_000);

  test('(c) --dry-run after an inventory change shows the diff and changes nothing; --detailed-exitcode says 5', () => {
    provision('--inventory', seed(), '--no-verify');
    const before = snapshot(['server-01', 'server-02']);
    const r = provision('--inventory', seedAdd(), '--dry-run', '--detailed-exitcode');
    expect(r.code).toBe(5);
    expect(r.stdout).toMatch(/~ \/etc\/ipsec\.d\/server-01--server-02\.conf {2}\(update, 0644\)/);
    expect(r.stdout).toMatch(/^ {6}- {4}auto=route$/m);
    expect(r.stdout).toMatch(/^ {6}\+ {4}auto=add$/m);
    expect(r.stdout).toMatch(/then: reload server-01--server-02/);
    expect(r.stdout).not.toMatch(/secrets {2}\(update/);
    expect(r.stdout).not.toMatch(/0s[A-Za-z0-9+/]{20}/);
    expect(r.stdout).toMatch(/0 files to create, 1 to update, 0 to delete, 1 conn to reload on 1 of 2 hosts; 1 host unchanged\. Nothing was changed\./);
    expect(snapshot(['server-01', 'server-02'])).toEqual(before);
    expect(provision('--inventory', seed(), '--dry-run', '--detailed-exitcode').code).toBe(0);
  }, 600_000);

  test('(c) a saved plan is applied exactly; a host changed since is refused (exit 4) and nothing is applied to it', () => {
    provision('--inventory', seed(), '--no-verify');
    const plan = join(dir, 'plan.json');
    const made = provision('--inventory', seedAdd(), '--dry-run', '--out', plan);
    expect(made.code).toBe(0);
    expect(readFileSync(plan, 'utf8')).not.toMatch(/PSK 0s/);
    const applied = provision('apply', plan, '--json');
    expect(outcome(applied)).toEqual({ code: 0, pairs: [['server-01--server-02', 'verified']] });
    expect(onServer('server-02', 'grep auto= /etc/ipsec.d/server-01--server-02.conf').stdout.trim()).toBe('auto=add');
    // Back to route, plan again, then someone edits a file on server-02 before the apply.
    provision('--inventory', seed(), '--no-verify');
    expect(provision('--inventory', seedAdd(), '--dry-run', '--out', plan).code).toBe(0);
    expect(onServer('server-02', "sed -i 's/dpd/ dpd/; $ a # edited' /etc/ipsec.d/server-01--server-02.conf").code).toBe(0);
    const before = snapshot(['server-01']);
    const refused = provision('apply', plan);
    expect(refused.code).toBe(4);
    expect(refused.stdout).toMatch(/server-02 +STALE PLAN +changed since the plan was made: \/etc\/ipsec\.d\/server-01--server-02\.conf changed/);
    // Its pair is skipped on the other end too: server-01 was not changed.
    expect(refused.stdout).toMatch(/server-01 +unchanged/);
    expect(snapshot(['server-01'])).toEqual(before);
    expect(provision('--inventory', seed()).code).toBe(0);
  }, 900_000);

  test('(d) the seed pair grows into a mesh with a strongSwan server (a reload, not a restart, where the tunnel was); status: a healthy mesh exits 0, a stopped daemon names exactly its pairs, a key edited disagrees, a file edited is drift', () => {
    provision('--inventory', seed(), '--no-verify');
    const r = provision('--inventory', mesh(), '--json');
    expect(outcome(r)).toEqual({
      code: 0,
      pairs: [
        ['server-01--server-02', 'verified'],
        ['server-01--server-03', 'verified'],
        ['server-02--server-03', 'verified'],
      ],
    });
    expect(json(r).hosts.find((h: any) => h.name === 'server-01').service).toBe('reload');
    expect(wireCheck('server-03', hostIp(1))).toMatchObject({ clear: 0, replies: 4 });
    collectKeys();
    const healthy = provision('status', '--inventory', mesh(), '--json');
    expect({ code: healthy.code, pairs: json(healthy).pairs.map((p: any) => [p.name, p.status, p.keys]) }).toEqual({
      code: 0,
      pairs: [
        ['server-01--server-02', 'up', 'agree'],
        ['server-01--server-03', 'up', 'agree'],
        ['server-02--server-03', 'up', 'agree'],
      ],
    });
    expect(onServer('server-03', 'systemctl stop ipsec').code).toBe(0);
    const down = provision('status', '--inventory', mesh(), '--json');
    expect({ code: down.code, pairs: json(down).pairs.map((p: any) => [p.name, p.status]) }).toEqual({
      code: 1,
      pairs: [
        ['server-01--server-02', 'up'],
        ['server-01--server-03', 'down'],
        ['server-02--server-03', 'down'],
      ],
    });
    expect(provision('status', '--inventory', mesh(), '--nagios').code).toBe(2);
    expect(provision('--inventory', mesh()).code).toBe(0);
    const edit = onServer(
      'server-02',
      "sed -i 's/PSK 0s.*/PSK 0sc3RhbGUgc3RhbGUgc3RhbGUgc3RhbGUgc3RhbGUgc3Q=/' /etc/ipsec.d/server-01--server-02.secrets; echo '# edited' >> /etc/ipsec.d/server-02--server-03.conf",
    );
    expect(edit.code).toBe(0);
    const bad = provision('status', '--inventory', mesh(), '--json');
    const pairs = Object.fromEntries(json(bad).pairs.map((p: any) => [p.name, p]));
    expect(pairs['server-01--server-02']).toMatchObject({ status: 'up', keys: 'disagree' });
    expect(pairs['server-02--server-03'].drift).toEqual(['server-02: /etc/ipsec.d/server-02--server-03.conf (differs)']);
    expect(bad.code).toBe(1);
    const prom = provision('status', '--inventory', mesh(), '--format', 'prometheus');
    expect(prom.stdout).toMatch(/^provision_pair_keys_agree\{fleet="lab",pair="server-01--server-02",initiator="server-01",responder="server-02"\} 0$/m);
    expect(prom.stdout).toMatch(/^provision_guard_loaded\{fleet="lab",host="server-03"\} 1$/m);
    // A run repairs both.
    expect(outcome(provision('--inventory', mesh(), '--json')).code).toBe(0);
    expect(provision('status', '--inventory', mesh(), '--verify').code).toBe(0);
    collectKeys();
  }, 1_800_000);

  test('(d) rotation by age: a plain run under rotation.maxAge rotates exactly the pair whose key is past it, records the new time on both ends, and a re-run changes nothing', () => {
    expect(provision('--inventory', mesh()).code).toBe(0);
    const pair = 'server-01--server-03';
    const file = `/etc/ipsec.d/${pair}.secrets`;
    const keyOn = (h: string) => /PSK (\S+)/.exec(onServer(h, `cat ${file}`).stdout)![1];
    const createdOn = (h: string, f = file) => /^# Key created (\S+)\.$/m.exec(onServer(h, `cat ${f}`).stdout)?.[1];
    const old = keyOn('server-01');
    for (const h of ['server-01', 'server-03']) expect(onServer(h, `sed -i 's/^# Key created .*/# Key created 2026-01-01T00:00:00Z./' ${file}`).code).toBe(0);
    const other = createdOn('server-01', '/etc/ipsec.d/server-01--server-02.secrets');
    const aged = inventory(
      'mesh-age.yaml',
      [{ i: 1 }, { i: 2 }, { i: 3, backend: 'strongswan' }],
      'meshes:\n  - {name: lab, hosts: [server-01, server-02, server-03]}\nrotation: {maxAge: 30d}\n',
      {
        fleet: 'lab',
      },
    );
    const before = json(provision('status', '--inventory', aged, '--json'));
    expect(before.pairs.filter((p: any) => p.keyPastMaxAge).map((p: any) => p.name)).toEqual([pair]);
    const r = provision('--inventory', aged, '--json');
    const j = json(r);
    expect(outcome(r).code).toBe(0);
    expect(j.pairs.map((p: any) => [p.name, p.key, p.status])).toEqual([
      ['server-01--server-02', 'unchanged', 'verified'],
      [pair, 'rotated', 'verified'],
      ['server-02--server-03', 'unchanged', 'verified'],
    ]);
    expect(j.pairs[1].rotateWhy).toMatch(/^\d+ days old, past rotation.maxAge 30d$/);
    // The new key and its time, the same on both ends; the other pairs keep theirs.
    expect(keyOn('server-01')).toBe(keyOn('server-03'));
    expect(keyOn('server-01')).not.toBe(old);
    expect(createdOn('server-01')).toBe(createdOn('server-03'));
    expect(Date.now() - Date.parse(createdOn('server-01')!)).toBeLessThan(3_600_000);
    expect(createdOn('server-01', '/etc/ipsec.d/server-01--server-02.secrets')).toBe(other);
    collectKeys();
    const again = json(provision('--inventory', aged, '--json'));
    expect(again.hosts.flatMap((h: any) => h.files.map((f: any) => f.action)).every((a: string) => a === 'noop')).toBe(true);
    const after = json(provision('status', '--inventory', aged, '--json'));
    expect(after.pairs.filter((p: any) => p.keyPastMaxAge)).toEqual([]);
    expect(after.healthy).toBe(true);
  }, 900_000);

  test('(e) two inventories sharing server-01 run in turn: both pairs stay in place and verified', () => {
    const a = inventory('a.yaml', [{ i: 1 }, { i: 2 }], 'pairs:\n  - [server-01, server-02]\n');
    const b = inventory('b.yaml', [{ i: 1 }, { i: 3, backend: 'strongswan' }], 'pairs:\n  - [server-01, server-03]\n');
    // Start from files of these fleets only: retire what other scenarios left.
    provision('teardown', '--inventory', mesh());
    expect(outcome(provision('--inventory', a, '--json')).code).toBe(0);
    const rb = provision('--inventory', b, '--json');
    expect(outcome(rb)).toEqual({ code: 0, pairs: [['server-01--server-03', 'verified']] });
    expect(json(rb).retired).toEqual([]);
    const ra = provision('--inventory', a, '--json');
    expect(outcome(ra)).toEqual({ code: 0, pairs: [['server-01--server-02', 'verified']] });
    expect(json(ra).hosts.map((h: any) => h.status)).toEqual(['unchanged', 'unchanged']);
    expect(
      onServer('server-01', 'head -qn 1 /etc/ipsec.d/server-01--server-02.conf /etc/ipsec.d/server-01--server-03.conf; nft list tables | grep provision | sort')
        .stdout,
    ).toBe(
      '# managed by provision for fleet a: edits are overwritten\n# managed by provision for fleet b: edits are overwritten\ntable inet provision_a\ntable inet provision_b\n',
    );
    expect(wireCheck('server-01', hostIp(2))).toMatchObject({ clear: 0, replies: 4 });
    expect(wireCheck('server-01', hostIp(3))).toMatchObject({ clear: 0, replies: 4 });
  }, 1_200_000);

  test('the controller never reads a key: everything the hosts answered to a status, a no-op, a dry run and a rotation holds none; no output, JSON or command line of any run above does', () => {
    // Fleet a (server-01--server-02) is in place from (e).
    const a = inventory('a.yaml', [{ i: 1 }, { i: 2 }], 'pairs:\n  - [server-01, server-02]\n');
    collectKeys();
    const old = keyOf('server-01', 'server-01--server-02');
    const traces = mkdtempSync(join(tmpdir(), 'trace-'));
    const traced = (name: string, ...args: string[]): Result & { trace: string } => {
      const file = join(traces, name);
      const r = provision(...args, '--trace', file);
      return { ...r, trace: readFileSync(file, 'utf8') };
    };
    const runs = [
      traced('status', 'status', '--inventory', a, '--json'),
      traced('noop', '--inventory', a, '--json'),
      traced('dry-run', '--inventory', a, '--dry-run', '--rotate-psk', 'server-01--server-02', '--json'),
      traced('rotation', '--inventory', a, '--rotate-psk', 'server-01--server-02', '--json'),
    ];
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    expect(json(runs[3]!).pairs[0]).toMatchObject({ name: 'server-01--server-02', status: 'verified' });
    // What came back is in the traces: the facts with the keys masked, and their MACs.
    expect(runs[0]!.trace).toMatch(/@@keys\n\/etc\/ipsec\.d\/server-01--server-02\.secrets [0-9a-f]{32}\n/);
    expect(runs[3]!.trace).toMatch(/=== server-02: write \(exit 0, [\d.]+ s, \d+ bytes of stdin not recorded\)/);
    collectKeys();
    const rotated = keyOf('server-01', 'server-01--server-02');
    expect({ rotated: rotated !== old, same: keyOf('server-02', 'server-01--server-02') === rotated }).toEqual({ rotated: true, same: true });
    const keys = [...seenKeys];
    expect(keys).toEqual(expect.arrayContaining([old, rotated]));
    const forms = (k: string): string[] => {
      const raw = Buffer.from(k.slice(2), 'base64');
      const hashes = [k, raw].map((x) => createHash('sha256').update(x).digest('hex'));
      return [k, k.slice(2), raw.toString('hex'), ...hashes, ...hashes.map((h) => h.slice(0, 32)), ...hashes.map((h) => h.slice(0, 16))];
    };
    const outputs = [...runs, provision('--inventory', mesh(), '--dry-run', '--json'), provision('status', '--inventory', mesh(), '--json')];
    for (const o of outputs) {
      const seen = [o.stdout, o.stderr, 'trace' in o ? o.trace : ''].join('\n');
      for (const k of keys) for (const f of forms(k)) expect(seen.includes(f) ? `${f} in ${o.stdout.slice(0, 80)}` : '').toBe('');
    }
    for (const n of S) {
      const log = onServer(n, 'cat /var/log/ssh-commands.log').stdout;
      expect(log).toMatch(/timeout -k 5 \d+ sh -c/);
      for (const k of keys) {
        expect(log).not.toContain(k);
        expect(log).not.toContain(k.replace(/^0s/, ''));
      }
    }
    // The copies a rotation kept to put the old key back went with it.
    for (const n of ['server-01', 'server-02']) expect(onServer(n, 'ls -A /run/provision | grep -c undo || true').stdout.trim()).toBe('0');
  }, 900_000);
});
