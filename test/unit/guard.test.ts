import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/apply/run.js';
import { sshPathScript } from '../../src/apply/steps/guard.js';
import { loadInventory } from '../../src/inventory/load.js';
import { GUARD_UNIT, guardFile, guardPeers, guardSshTo, guardTable, renderGuard, renderGuardUnit } from '../../src/plan/guard.js';
import { planChanges } from '../../src/plan/plan.js';
import { deleteLine, pathPolicies, renderDropin, SSH_PATH_DROPINS, sshPathFile } from '../../src/plan/ssh-path.js';
import type { HostPlan } from '../../src/plan/types.js';
import { parseFacts, parseGuards } from '../../src/remote/facts.js';
import { renderPlan } from '../../src/report/plan-text.js';
import { fakeFleet, READY_FACTS, withFiles, withGuard } from '../helpers/fake-session.js';

// The fail-closed guard as planned and applied: who is in it, when they join and leave, and
// what keeps SSH reachable. The lab e2e proves on the wire that it holds through restarts.

const yaml = (extra = '') => `${extra}hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  c: {address: "fd00::3"}
  d: {address: "fd00::4"}
pairs:
  - [a, b]
  - [c, d]
`;
const fixed = (n: number) => new Uint8Array(n).fill(9);

function plan(text: string, facts: Record<string, string> = {}) {
  const inv = loadInventory(text, 'web.yaml');
  return planChanges(inv, new Map([...inv.hosts.keys()].map((h) => [h, parseFacts(facts[h] ?? READY_FACTS)])), {
    mode: 'live',
    prune: true,
    retireLegacy: false,
    tool: 't',
  });
}

describe('the guard file', () => {
  test('drops what leaves for a peer without IPsec and what comes from one unprotected; lets IKE, ESP and neighbour discovery through', () => {
    const g = renderGuard('web', { peers: ['10.0.0.2', 'fd00::4'], ssh: ['10.0.0.9'], sshPort: 2222 });
    expect(g).toMatch(/^table inet provision_web\ndelete table inet provision_web\ntable inet provision_web \{$/m);
    expect(g).toContain('set peers4 { type ipv4_addr; elements = { 10.0.0.2 }; }');
    expect(g).toContain('set peers6 { type ipv6_addr; elements = { fd00::4 }; }');
    expect(g).toContain('ip daddr @peers4 rt ipsec missing counter drop');
    expect(g).toContain('ip6 saddr @peers6 meta ipsec missing counter drop');
    expect(g).toContain('udp dport { 500, 4500 } accept');
    expect(g).toContain('meta l4proto esp accept');
    // Neighbour discovery passes outside IPsec: solicitations and advertisements sent on-link
    // only (hop limit 255); router solicitations and advertisements do not pass.
    const nd = g.split('\n').filter((l) => l.includes('icmpv6'));
    expect(nd.map((l) => l.trim())).toEqual(Array(2).fill('icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept'));
    expect(g).not.toMatch(/nd-router/);
    expect(g).toContain('ip saddr @ssh4 tcp dport 2222 accept');
    // Accepts come before the drops.
    expect(g.indexOf('tcp dport 2222 accept')).toBeLessThan(g.indexOf('meta ipsec missing counter drop'));
    expect(guardPeers(g)).toEqual(['10.0.0.2', 'fd00::4']);
  });

  test('table names take a fleet as it is when nftables allows it, else with a short hash', () => {
    expect(guardTable('web')).toBe('provision_web');
    expect(guardTable('web-eu.1')).toMatch(/^provision_web_eu_1_[0-9a-f]{4}$/);
    expect(guardTable('web_eu_1')).not.toBe(guardTable('web-eu.1'));
  });

  test('the boot unit loads before the network and the IKE daemons, and follows nftables.service', () => {
    const u = renderGuardUnit();
    expect(u).toMatch(/^Before=network-pre\.target ipsec\.service strongswan-starter\.service/m);
    expect(u).toMatch(/^DefaultDependencies=no$/m);
    expect(u).toMatch(/^PartOf=nftables\.service$/m);
    expect(u).toMatch(/^ReloadPropagatedFrom=nftables\.service$/m);
    expect(u).toMatch(/^WantedBy=sysinit\.target$/m);
    const exec = /^ExecStart=\/bin\/sh -c '(.*)'$/m.exec(u)![1]!;
    expect(spawnSync('sh', ['-n', '-c', exec]).status).toBe(0);
  });

  test("nft's listing: members of both sets (wrapped over lines) and the drop counters", () => {
    const lines = [
      '@table provision_web',
      'table inet provision_web {',
      '\tset peers4 {',
      '\t\ttype ipv4_addr',
      '\t\telements = { 10.0.0.2, 10.0.0.3,',
      '\t\t\t     10.0.0.4 }',
      '\t}',
      '\tset peers6 {',
      '\t\ttype ipv6_addr',
      '\t}',
      '\tset ssh4 {',
      '\t\ttype ipv4_addr',
      '\t\telements = { 10.0.0.9 }',
      '\t}',
      '\tchain output {',
      '\t\tip daddr @peers4 rt ipsec missing counter packets 7 bytes 588 drop',
      '\t\tip6 daddr @peers6 rt ipsec missing counter packets 1 bytes 88 drop',
      '\t}',
      '\tchain input {',
      '\t\tip saddr @peers4 meta ipsec missing counter packets 3 bytes 252 drop',
      '\t}',
      '}',
    ];
    expect(parseGuards(lines).get('provision_web')).toEqual({ peers: ['10.0.0.2', '10.0.0.3', '10.0.0.4'], droppedOut: 8, droppedIn: 3 });
  });
});

describe('who is in the guard', () => {
  test('a first converge loads the guard with the new peers before any daemon loads their pairs; a pair that fails to verify keeps them (fail closed)', async () => {
    const inv = loadInventory(yaml(), 'web.yaml');
    const fake = fakeFleet(inv, {
      respond: (c) =>
        c.host === 'd' && c.step.startsWith('verify') ? { stdout: '@@ping fd00::3\n5 packets transmitted, 0 received\n@@capture\n@@tcpdump\n' } : undefined,
    });
    const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: fixed, connect: fake.connect });
    const a = result.changeset!.hosts.find((h) => h.host === 'a')!;
    expect(a.guard).toMatchObject({ load: true, members: ['10.0.0.2'], joins: [{ pair: 'a--b', address: '10.0.0.2' }] });
    expect(a.files.find((f) => f.kind === 'guard')!.content).toContain('elements = { 10.0.0.2 }');
    expect(fake.steps('a').indexOf('guard')).toBeLessThan(fake.steps('a').indexOf('reload conns'));
    expect(fake.sent.some((s) => s.step === 'guard: join')).toBe(false);
    // c--d did not verify: each end still drops the other's clear traffic.
    expect(result.pairs.find((p) => p.name === 'c--d')!.status).toBe('failed');
    expect(result.hosts.get('c')).toMatchObject({ did: expect.arrayContaining(['guard loaded (1 peer; fd00::4 joined)']) });
    expect(result.hosts.get('d')).toMatchObject({ did: expect.arrayContaining(['guard loaded (1 peer; fd00::3 joined)']) });
  });

  test('a new pair that reached one end only is undone there, and that end does not take the other into its guard', async () => {
    const inv = loadInventory(yaml(), 'web.yaml');
    const fake = fakeFleet(inv, { respond: (c) => (c.host === 'd' && c.step === 'write' ? { code: 1, stderr: 'disk full' } : undefined) });
    const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: fixed, connect: fake.connect });
    expect(result.pairs.find((p) => p.name === 'c--d')!.status).toBe('skipped');
    const loaded = fake.sent.filter((s) => s.host === 'c' && s.step === 'guard');
    // The file is written again without d before it is loaded.
    expect(loaded.map((s) => s.stdin ?? '').join('')).toContain('set peers6 { type ipv6_addr; }');
    expect(result.hosts.get('c')).toMatchObject({ did: expect.arrayContaining(['guard loaded (0 peers)']) });
    expect(result.hosts.get('a')).toMatchObject({ did: expect.arrayContaining(['guard loaded (1 peer; 10.0.0.2 joined)']) });
  });

  test('a host reached over SSH from its peer (the controller or the jump host): that peer joins once verified, on both ends; the others before the daemons', async () => {
    // b's SSH session comes from a (a's address), say through a as jump host.
    const viaA = READY_FACTS.replace('10.0.0.100 50000 10.0.0.1 22', '10.0.0.1 50000 10.0.0.2 22');
    const inv = loadInventory(yaml(), 'web.yaml');
    const fake = fakeFleet(inv, { facts: (h) => (h === 'b' ? viaA : undefined) });
    const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: fixed, connect: fake.connect });
    const guards = Object.fromEntries(result.changeset!.hosts.map((h) => [h.host, h.guard]));
    expect(guards.a).toMatchObject({ members: [], joins: [], joinsVerified: [{ pair: 'a--b', address: '10.0.0.2' }] });
    expect(guards.b).toMatchObject({ members: [], joins: [], joinsVerified: [{ pair: 'a--b', address: '10.0.0.1' }], ssh: ['10.0.0.1'] });
    expect(guards.c).toMatchObject({ members: ['fd00::4'], joins: [{ pair: 'c--d', address: 'fd00::4' }], joinsVerified: [] });
    // Loaded empty before the daemons; joined once a--b verified, after the verification.
    expect(fake.steps('a').indexOf('guard: join')).toBeGreaterThan(fake.steps('a').findIndex((s) => s.startsWith('verify')));
    expect(
      fake.sent
        .filter((s) => s.host === 'b' && s.step === 'guard: join')
        .map((s) => s.script)
        .join(''),
    ).toContain('nft add element inet provision_web peers4 { 10.0.0.1 }');
    expect(result.hosts.get('a')).toMatchObject({
      did: expect.arrayContaining(['guard loaded (0 peers)', 'guard: 10.0.0.2 joined (verified; SSH runs between the two)']),
    });
    expect(renderPlan(result.changeset!)).toMatch(
      /guard: load table inet provision_web with no peer; 10\.0\.0\.2 joins once verified \(the tool's SSH runs between the two\)/,
    );
  });

  test('the jump host and its peer: their SSH passes outside IPsec, by kernel policies on both ends (before any daemon), the guard lets it by, and the plan says so', async () => {
    const viaA = READY_FACTS.replace('10.0.0.100 50000 10.0.0.1 22', '10.0.0.1 50000 10.0.0.2 2222');
    const inv = loadInventory(yaml(), 'web.yaml');
    const fake = fakeFleet(inv, { facts: (h) => (h === 'b' ? viaA : undefined) });
    const result = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: fixed, connect: fake.connect });
    const hosts = Object.fromEntries(result.changeset!.hosts.map((h) => [h.host, h]));
    expect(hosts.b!.sshPath).toEqual({
      reloadUnits: true,
      remove: [],
      add: [
        'xfrm policy update src 10.0.0.1/32 dst 10.0.0.2/32 proto 6 dport 2222 dir in priority 1 action allow',
        'xfrm policy update src 10.0.0.2/32 dst 10.0.0.1/32 proto 6 sport 2222 dir out priority 1 action allow',
      ],
    });
    expect(hosts.a!.sshPath!.add).toEqual([
      'xfrm policy update src 10.0.0.1/32 dst 10.0.0.2/32 proto 6 dport 2222 dir out priority 1 action allow',
      'xfrm policy update src 10.0.0.2/32 dst 10.0.0.1/32 proto 6 sport 2222 dir in priority 1 action allow',
    ]);
    expect(hosts.c!.sshPath).toBeUndefined();
    expect(hosts.a!.files.filter((f) => f.kind === 'unit' || f.path.endsWith('.xfrm')).map((f) => [f.path, f.action])).toEqual([
      [GUARD_UNIT, 'create'],
      [sshPathFile('web'), 'create'],
      [SSH_PATH_DROPINS[0], 'create'],
      [SSH_PATH_DROPINS[1], 'create'],
    ]);
    expect(hosts.c!.files.some((f) => f.path.endsWith('.xfrm') || (SSH_PATH_DROPINS as readonly string[]).includes(f.path))).toBe(false);
    // a's guard lets its SSH to b by; b's lets SSH from a in.
    expect(hosts.a!.guard!.sshTo).toEqual([{ address: '10.0.0.2', port: 2222 }]);
    const guardA = hosts.a!.files.find((f) => f.kind === 'guard' && f.path.endsWith('.nft'))!.content;
    expect(guardA).toContain('set sshto4 { type ipv4_addr . inet_service; elements = { 10.0.0.2 . 2222 }; }');
    expect(guardA).toContain('ip daddr . tcp dport @sshto4 accept');
    expect(guardA).toContain('ip saddr . tcp sport @sshto4 accept');
    // Before the guard and the daemons, after the write.
    for (const h of ['a', 'b']) {
      const steps = fake.steps(h);
      expect(steps.indexOf('ssh path')).toBeGreaterThan(steps.indexOf('write'));
      expect(steps.indexOf('ssh path')).toBeLessThan(steps.indexOf('guard'));
      expect(steps.indexOf('ssh path')).toBeLessThan(steps.findIndex((x) => /^(restart|reload)/.test(x)));
    }
    expect(fake.steps('c')).not.toContain('ssh path');
    const text = renderPlan(result.changeset!);
    expect(text).toMatch(
      /ssh path: kernel policies pass the tool's SSH with its peer outside IPsec, so the pair being down cannot cut it \(10\.0\.0\.2\); systemd reloads/,
    );
    expect(text).toMatch(/SSH to 10\.0\.0\.2 port 2222 stays open/);
  });

  test('the SSH path script, run with sh: the drop-in reloaded, old policies removed (gone ones tolerated), new ones added in one batch', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sshpath-'));
    for (const bin of ['ip', 'systemctl'])
      writeFileSync(
        join(dir, bin),
        `#!/bin/sh\necho "${bin} $*" >> ${dir}/calls\n[ "$1" = -batch ] && cat >> ${dir}/batch\n[ "$1" = -force ] && { cat >> ${dir}/batch; exit 1; }\nexit 0\n`,
        { mode: 0o755 },
      );
    const add = pathPolicies('10.0.0.1', '10.0.0.2', { side: 'client', port: 22 });
    const old = pathPolicies('10.0.0.1', '10.0.0.9', { side: 'client', port: 22 });
    const host = { host: 'a', sshPath: { add, remove: old.map(deleteLine), reloadUnits: true } } as unknown as HostPlan;
    const r = spawnSync('sh', ['-c', sshPathScript(host)], { env: { PATH: `${dir}:/usr/bin:/bin` }, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(readFileSync(join(dir, 'calls'), 'utf8')).toBe('systemctl daemon-reload\nip -force -batch -\nip -batch -\n');
    expect(readFileSync(join(dir, 'batch'), 'utf8')).toBe(`${[...old.map(deleteLine), ...add].join('\n')}\n`);
    expect(old.map(deleteLine)).toEqual([
      'xfrm policy delete src 10.0.0.1/32 dst 10.0.0.9/32 proto 6 dport 22 dir out',
      'xfrm policy delete src 10.0.0.9/32 dst 10.0.0.1/32 proto 6 sport 22 dir in',
    ]);
    expect(renderDropin()).toContain('ExecStartPost=-/bin/sh -c \'for f in /etc/provision/ssh-*.xfrm; do [ -e "$f" ] && /sbin/ip -batch "$f"; done; exit 0\'');
  });

  test('a path whose other end is not read this time (a failed login, --limit) is left as it is: dropping one half would cut the SSH', () => {
    const inv = loadInventory(yaml(), 'web.yaml');
    // The file as a run through a (b's SSH from a) wrote it.
    const viaA = READY_FACTS.replace('10.0.0.100 50000 10.0.0.1 22', '10.0.0.1 50000 10.0.0.2 22');
    const first = planChanges(
      inv,
      new Map([
        ['a', parseFacts(READY_FACTS)],
        ['b', parseFacts(viaA)],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 't' },
    );
    const content = first.hosts.find((h) => h.host === 'a')!.files.find((f) => f.path === sshPathFile('web'))!.content;
    expect(content).toContain('# a--b: SSH to b, port 22\n');
    const files = [{ path: sshPathFile('web'), mode: '644', content }, ...SSH_PATH_DROPINS.map((path) => ({ path, mode: '644', content: renderDropin() }))];
    // Now b is not read (its login failed): only a's facts.
    const cs = planChanges(inv, new Map([['a', parseFacts(withFiles(READY_FACTS, files))]]), { mode: 'live', prune: true, retireLegacy: false, tool: 't' });
    const a = cs.hosts.find((h) => h.host === 'a')!;
    expect(a.sshPath).toBeUndefined();
    // The guard keeps letting a's SSH to b by too.
    expect(guardSshTo(first.hosts.find((h) => h.host === 'a')!.files.find((f) => f.path === guardFile('web'))!.content)).toEqual([
      { address: '10.0.0.2', port: 22 },
    ]);
    const guardA = first.hosts.find((h) => h.host === 'a')!.files.find((f) => f.path === guardFile('web'))!;
    const again = planChanges(
      inv,
      new Map([
        ['a', parseFacts(withGuard(withFiles(READY_FACTS, [...files, { path: guardFile('web'), mode: '600', content: guardA.content }]), 'provision_web', []))],
      ]),
      { mode: 'live', prune: true, retireLegacy: false, tool: 't' },
    );
    expect(again.hosts.find((h) => h.host === 'a')!.guard!.sshTo).toEqual([{ address: '10.0.0.2', port: 22 }]);
    expect(a.files.filter((f) => f.path.endsWith('.xfrm') || (SSH_PATH_DROPINS as readonly string[]).includes(f.path)).map((f) => f.action)).toEqual([
      'noop',
      'noop',
      'noop',
    ]);
  });

  test('a path no longer taken: its policies are removed and its file and the drop-ins go; a no-op changes nothing', () => {
    const inv = loadInventory(yaml(), 'web.yaml');
    const content = (side: 'client' | 'server') =>
      `# managed by provision for fleet web: edits are overwritten\n${pathPolicies('10.0.0.1', '10.0.0.2', { side, port: 22 }).join('\n')}\n`;
    const files = [
      { path: sshPathFile('web'), mode: '644', content: content('client') },
      ...SSH_PATH_DROPINS.map((path) => ({ path, mode: '644', content: renderDropin() })),
    ];
    // From the controller now, not through a: no path.
    const gone = planChanges(inv, new Map([...inv.hosts.keys()].map((h) => [h, parseFacts(h === 'a' ? withFiles(READY_FACTS, files) : READY_FACTS)])), {
      mode: 'live',
      prune: true,
      retireLegacy: false,
      tool: 't',
    });
    const a = gone.hosts.find((h) => h.host === 'a')!;
    expect(a.sshPath).toEqual({ add: [], reloadUnits: true, remove: pathPolicies('10.0.0.1', '10.0.0.2', { side: 'client', port: 22 }).map(deleteLine) });
    expect(a.files.filter((f) => f.action === 'delete').map((f) => f.path)).toEqual([sshPathFile('web'), ...SSH_PATH_DROPINS]);
  });

  test('a member stays while its pair is in the inventory, failing or not; nothing changes on a no-op', () => {
    const facts = withGuard(
      withFiles(READY_FACTS, [
        { path: guardFile('web'), mode: '600', content: renderGuard('web', { peers: ['10.0.0.2'], ssh: [], sshPort: 22 }) },
        { path: GUARD_UNIT, mode: '644', content: renderGuardUnit() },
      ]),
      'provision_web',
      ['10.0.0.2'],
    );
    const cs = plan(yaml(), { a: facts });
    expect(cs.hosts.find((h) => h.host === 'a')!.guard).toMatchObject({ load: false, members: ['10.0.0.2'], joins: [], leaves: [], enableUnit: false });
  });

  test('a retired pair leaves the guard; a host with no guarded pair left has its table removed', () => {
    const facts = withGuard(
      withFiles(READY_FACTS, [{ path: guardFile('web'), mode: '600', content: renderGuard('web', { peers: ['10.0.0.2', '10.0.0.7'], ssh: [], sshPort: 22 }) }]),
      'provision_web',
      ['10.0.0.2', '10.0.0.7'],
    );
    const a = plan(yaml(), { a: facts }).hosts.find((h) => h.host === 'a')!;
    expect(a.guard).toMatchObject({ load: true, members: ['10.0.0.2'], leaves: ['10.0.0.7'] });
    const alone = plan('hosts:\n  a: {address: 10.0.0.1}\n  x: {address: 10.0.0.8}\n  y: {address: 10.0.0.9}\npairs: [[x, y]]\n', { a: facts });
    const gone = alone.hosts.find((h) => h.host === 'a')!;
    expect(gone.guard).toMatchObject({ remove: true, table: 'provision_web' });
    expect(gone.files.map((f) => [f.path, f.action])).toEqual([[guardFile('web'), 'delete']]);
    expect(renderPlan(alone)).toMatch(/guard: remove table inet provision_web \(had 10\.0\.0\.2, 10\.0\.0\.7\)/);
  });

  test('`guard: off` for a pair, a host or everyone: no table, and an existing one removed', () => {
    const pairOff = plan(yaml().replace('  - [a, b]', '  - {hosts: [a, b], guard: off}'));
    expect(pairOff.hosts.find((h) => h.host === 'a')!.guard).toBeUndefined();
    expect(pairOff.hosts.find((h) => h.host === 'c')!.guard).toBeDefined();
    const hostOff = plan(yaml().replace('a: {address: 10.0.0.1}', 'a: {address: 10.0.0.1, ipsec: {guard: off}}'));
    expect(hostOff.hosts.find((h) => h.host === 'a')!.guard).toBeUndefined();
    expect(hostOff.hosts.find((h) => h.host === 'b')!.guard).toBeDefined();
    const facts = withGuard(
      withFiles(READY_FACTS, [{ path: guardFile('web'), mode: '600', content: renderGuard('web', { peers: ['10.0.0.2'], ssh: [], sshPort: 22 }) }]),
      'provision_web',
      ['10.0.0.2'],
    );
    const allOff = plan(yaml('defaults: {ipsec: {guard: false}}\n'), { a: facts });
    expect(allOff.hosts.find((h) => h.host === 'a')!.guard).toMatchObject({ remove: true });
  });

  test('SSH coming from a peer (the controller or a jump host is one) stays open through the guard', () => {
    const viaB = READY_FACTS.replace('10.0.0.100 50000 10.0.0.1 22', '10.0.0.2 50000 10.0.0.1 2222');
    const a = plan(yaml(), { a: viaB }).hosts.find((h) => h.host === 'a')!;
    expect(a.guard).toMatchObject({ ssh: ['10.0.0.2'], sshPort: 2222 });
    expect(a.files.find((f) => f.kind === 'guard')!.content).toContain('set ssh4 { type ipv4_addr; elements = { 10.0.0.2 }; }');
  });

  test('nftables joins the install where it is missing', () => {
    const noNft = READY_FACTS.replace('nftables ii  1.0.6-2+deb12u2\n', '').replace('@@candidates\n', '@@candidates\nnftables 1.0.6-2+deb12u2\n');
    expect(plan(yaml(), { a: noNft }).hosts.find((h) => h.host === 'a')!.install).toEqual({ packages: ['nftables'], aptUpdate: false });
  });
});
