import { readdirSync, statSync } from 'node:fs';
import { DPKG_LOCK_WAIT } from '../../src/apply/context.js';
import { restartScript } from '../../src/apply/scripts.js';
import { guardScript, joinScript, sshPathScript } from '../../src/apply/steps/guard.js';
import { installScript, NO_CANDIDATE } from '../../src/apply/steps/install.js';
import { reloadScript } from '../../src/apply/steps/service.js';
import { BACKENDS } from '../../src/backends/index.js';
import { libreswanDropStates } from '../../src/backends/pluto.js';
import { loadInventory } from '../../src/inventory/load.js';
import { guardFile, renderGuard } from '../../src/plan/guard.js';
import { planChanges } from '../../src/plan/plan.js';
import type { HostPlan } from '../../src/plan/types.js';
import { parseFacts } from '../../src/remote/facts.js';
import { describeIsolated, FakeHost, onHost } from '../helpers/fake-host.js';
import { FRESH_FACTS, READY_FACTS, withConns, withFiles, withGuard } from '../helpers/fake-session.js';

// The scripts of an apply's steps (install, guard, restart, reload, bring up, re-authenticate,
// probe), run by sh against fake apt-get, apt-cache, systemctl, nft, ip, ipsec and swanctl that
// log their arguments; what each step asks of the host is read from that log.

const header = '# managed by provision for fleet web: edits are overwritten\n';

/** Host `host`'s plan, planned live from these facts (READY_FACTS where none is given). */
function planOf(yaml: string, host: string, facts: Record<string, string> = {}): HostPlan {
  const inv = loadInventory(yaml, 'web.yaml');
  const cs = planChanges(inv, new Map([...inv.hosts.keys()].map((h) => [h, parseFacts(facts[h] ?? READY_FACTS)])), {
    mode: 'live',
    prune: true,
    retireLegacy: false,
    tool: 't',
  });
  return cs.hosts.find((h) => h.host === host)!;
}

const PAIR = 'hosts:\n  a: {address: 10.0.0.1}\n  b: {address: 10.0.0.2}\npairs: [[a, b]]\n';

describe('the install script', () => {
  const apt = `apt-get -q -o DPkg::Lock::Timeout=${DPKG_LOCK_WAIT}`;
  const install = `${apt} -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install -y`;
  // apt-cache answers from `cand` ("package version" lines); apt-get update puts `cand.after` there.
  const aptHost = (before: string[], after: string[] | undefined, opts: { updateErr?: string; installCode?: number } = {}): FakeHost => {
    const host = new FakeHost();
    const d = host.dir;
    host.plant('/cand', before.map((p) => `${p} 1.0-1\n`).join(''));
    if (after) host.plant('/cand.after', after.map((p) => `${p} 1.0-1\n`).join(''));
    host.plant('/tmp', undefined);
    host.fake(
      'apt-cache',
      `shift; for p; do v=$(sed -n "s/^$p //p" ${d}/root/cand); printf '%s:\\n  Installed: (none)\\n  Candidate: %s\\n' "$p" "\${v:-(none)}"; done`,
    );
    host.fake(
      'apt-get',
      `case " $* " in
  *' update '*) [ ! -f ${d}/root/cand.after ] || cp ${d}/root/cand.after ${d}/root/cand; printf '%s' '${opts.updateErr ?? ''}' >&2 ;;
  *' install '*) [ ${opts.installCode ?? 0} = 0 ] || echo 'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 812 (apt-get)' >&2; exit ${opts.installCode ?? 0} ;;
esac`,
    );
    return host;
  };
  const fixed = planOf(`${PAIR.replace('10.0.0.2}', '10.0.0.2, ipsec: {backend: libreswan}}')}`, 'b', { b: FRESH_FACTS }).install!;
  const auto = planOf(PAIR, 'b', { b: FRESH_FACTS }).install!;

  test('candidates known: no update; one install of the planned packages, keeping the operator config files', () => {
    expect(fixed.packages).toEqual(['libreswan', 'nftables']);
    onHost(aptHost(['libreswan', 'nftables'], undefined), (host) => {
      const r = host.run(installScript(fixed));
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: 'installing libreswan nftables\n' });
      expect(host.calls()).toEqual(['apt-cache policy libreswan', 'apt-cache policy nftables', `${install} libreswan nftables`]);
    });
  });

  test('no candidate until the lists are updated: update (a failing source does not stop it), then install', () => {
    onHost(aptHost([], ['libreswan', 'nftables'], { updateErr: 'E: Failed to fetch http://example.org/dists/x/InRelease\n' }), (host) => {
      const r = host.run(installScript(fixed));
      expect(r.code).toBe(0);
      expect(host.calls()).toEqual([
        'apt-cache policy libreswan',
        `${apt} update`,
        'apt-cache policy libreswan',
        'apt-cache policy nftables',
        `${install} libreswan nftables`,
      ]);
    });
  });

  test(`no candidate even after the update: exit ${NO_CANDIDATE} with the last lines of the update's errors; nothing installed, no temp file left`, () => {
    onHost(aptHost([], ['nftables'], { updateErr: 'W: one\nE: two\nE: three\nE: Unable to locate sources\n' }), (host) => {
      const r = host.run(installScript(fixed), { env: { TMPDIR: host.path('/tmp') } });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: NO_CANDIDATE, stderr: 'E: two\nE: three\nE: Unable to locate sources\n' });
      expect(host.calls().filter((c) => c.includes('install'))).toEqual([]);
      expect(readdirSync(host.path('/tmp'))).toEqual([]);
    });
  });

  test('backend auto: after the update, the first set apt has every package of (openswan, then libreswan, then strongSwan)', () => {
    expect(auto.choose!.map((c) => c.backend)).toEqual(['openswan', 'libreswan', 'strongswan']);
    onHost(aptHost([], ['nftables', 'strongswan-starter', 'strongswan-charon', 'strongswan-swanctl']), (host) => {
      const r = host.run(installScript(auto));
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: 'installing strongswan-starter strongswan-charon strongswan-swanctl nftables\n' });
      expect(host.calls().filter((c) => c.startsWith('apt-get'))).toEqual([
        `${apt} update`,
        `${install} strongswan-starter strongswan-charon strongswan-swanctl nftables`,
      ]);
      expect(host.calls()).toContain('apt-cache policy openswan');
    });
  });

  test("apt-get install failing (the dpkg lock held): its exit code and its words, for the executor's diagnosis", () => {
    onHost(aptHost(['libreswan', 'nftables'], undefined, { installCode: 100 }), (host) => {
      const r = host.run(installScript(fixed));
      expect(r.code).toBe(100);
      expect(r.stderr).toMatch(/Could not get lock/);
    });
  });
});

describe('the guard script', () => {
  const nftHost = (nft: string): FakeHost => new FakeHost().fake('nft', nft).fake('systemctl');
  const loaded = withGuard(
    withFiles(READY_FACTS, [{ path: guardFile('web'), mode: '600', content: renderGuard('web', { peers: ['10.0.0.2'], ssh: [], sshPort: 22 }) }]),
    'provision_web',
    ['10.0.0.2'],
  );

  test('a first guard: systemd learns the unit and enables it, nft checks the file, then loads it', () => {
    const plan = planOf(PAIR, 'a');
    expect(plan.guard).toMatchObject({ load: true, enableUnit: true, remove: false });
    onHost(nftHost('exit 0'), (host) => {
      expect(host.run(guardScript(plan, 'web')).code).toBe(0);
      expect(host.calls()).toEqual([
        'systemctl daemon-reload',
        'systemctl enable --quiet provision-guard.service',
        `nft -c -f ${guardFile('web')}`,
        `nft -f ${guardFile('web')}`,
      ]);
    });
  });

  test('a file nft refuses (a kernel without nft_xfrm): the script fails and nothing is loaded', () => {
    onHost(nftHost('[ "$1" = -c ] && { echo "Error: Could not process rule: No such file or directory" >&2; exit 1; }; exit 0'), (host) => {
      const r = host.run(guardScript(planOf(PAIR, 'a'), 'web'));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/Could not process rule/);
      expect(host.calls().filter((c) => c.startsWith('nft'))).toEqual([`nft -c -f ${guardFile('web')}`]);
    });
  });

  test('`guard: off`: the table is deleted, and a table already gone is no failure', () => {
    const plan = planOf(`defaults: {ipsec: {guard: off}}\n${PAIR}`, 'a', { a: loaded });
    expect(plan.guard).toMatchObject({ remove: true, load: false });
    onHost(nftHost('exit 1'), (host) => {
      expect(host.run(guardScript(plan, 'web')).code).toBe(0);
      expect(host.calls()).toEqual(['nft delete table inet provision_web']);
    });
  });

  test('peers join the loaded table by family, one nft command each; a refused element fails the script', () => {
    onHost(nftHost('exit 0'), (host) => {
      expect(host.run(joinScript('provision_web', ['10.0.0.2', 'fd00::2', '10.0.0.3'])).code).toBe(0);
      expect(host.calls()).toEqual([
        'nft add element inet provision_web peers4 { 10.0.0.2, 10.0.0.3 }',
        'nft add element inet provision_web peers6 { fd00::2 }',
      ]);
    });
    onHost(nftHost('[ "$5" = peers4 ] && exit 1; exit 0'), (host) => {
      expect(host.run(joinScript('provision_web', ['10.0.0.2', 'fd00::2'])).code).toBe(1);
      expect(host.calls()).toEqual(['nft add element inet provision_web peers4 { 10.0.0.2 }']);
    });
  });

  test('the SSH path script fails when the kernel refuses the new policies', () => {
    const viaA = READY_FACTS.replace('10.0.0.100 50000 10.0.0.1 22', '10.0.0.1 50000 10.0.0.2 22');
    const plan = planOf(PAIR, 'b', { b: viaA });
    expect(plan.sshPath!.add).toHaveLength(2);
    onHost(new FakeHost().fake('systemctl').fake('ip', 'cat >/dev/null; echo "RTNETLINK answers: Invalid argument" >&2; exit 1'), (host) => {
      const r = host.run(sshPathScript(plan));
      expect(r.code).toBe(1);
      expect(host.calls()).toEqual(['systemctl daemon-reload', 'ip -batch -']);
    });
  });
});

describe('the restart script', () => {
  // ipsec status fails `n` times before the daemon answers.
  const daemon = (n: number, restart = 'exit 0'): FakeHost => {
    const host = new FakeHost().fake('sleep').fake('service');
    host.fake('systemctl', `[ "$1" = restart ] && { ${restart}; }; [ "$1" = status ] && echo 'ipsec.service: Failed with result exit-code.'; exit 0`);
    return host.fake('ipsec', `[ "$1" = status ] || exit 0; k=$(cat ${host.dir}/k 2>/dev/null || echo 0); echo $((k + 1)) > ${host.dir}/k; [ "$k" -ge ${n} ]`);
  };
  const after = BACKENDS.libreswan.commands({ version: '4.10' }).afterRestart([
    { name: 'a--b', auto: 'start' },
    { name: 'a--c', auto: 'route' },
  ]);

  test('systemd: enabled, restarted, polled until the daemon answers, then the after-restart step (the initiator routes its conns)', () => {
    onHost(daemon(2), (host) => {
      expect(host.run(restartScript('systemd', after)).code).toBe(0);
      expect(host.calls()).toEqual([
        'systemctl enable --quiet ipsec',
        'systemctl restart ipsec',
        'ipsec status',
        'sleep 0.5',
        'ipsec status',
        'sleep 0.5',
        'ipsec status',
        'ipsec auto --route a--b',
      ]);
    });
  });

  test('SysV: service ipsec restart', () => {
    onHost(daemon(0), (host) => {
      expect(host.run(restartScript('sysv')).code).toBe(0);
      expect(host.calls()).toEqual(['service ipsec restart', 'ipsec status']);
    });
  });

  test("a restart that fails: exit 1 with systemd's account of it; the daemon is not polled", () => {
    onHost(daemon(0, 'exit 1'), (host) => {
      const r = host.run(restartScript('systemd', after));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/Failed with result exit-code/);
      expect(host.calls().at(-1)).toBe('systemctl status ipsec --no-pager -n 15');
      expect(host.calls()).not.toContain('ipsec status');
    });
  });

  test('a daemon that never answers: exit 1 after 180 polls (90 s), saying so; the after-restart step does not run', () => {
    onHost(daemon(1000), (host) => {
      const r = host.run(restartScript('systemd', after));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ipsec did not answer 90 s after the restart/);
      expect(host.calls().filter((c) => c === 'ipsec status')).toHaveLength(180);
      expect(host.calls().some((c) => c.includes('--route'))).toBe(false);
    });
  });
});

describe('the reload script', () => {
  // a holds the files of a retired pair a--x; it initiates a--b and answers a--c with auto=add.
  const retired = [
    { path: '/etc/ipsec.d/a--x.conf', mode: '644', content: `${header}conn a--x\n    left=10.0.0.1\n    right=10.0.0.9\n` },
    { path: '/etc/ipsec.d/a--x.secrets', mode: '600', content: `${header}10.0.0.1 10.0.0.9 : PSK 0sAAAA\n` },
  ];
  const yaml = 'hosts:\n  a: {address: 10.0.0.1}\n  b: {address: 10.0.0.2}\n  c: {address: 10.0.0.3}\npairs: [[a, b], {hosts: [c, a], responder: add}]\n';
  const plan = planOf(yaml, 'a', { a: withConns(withFiles(READY_FACTS, retired), [{ name: 'a--x', file: '/etc/ipsec.d/a--x.conf' }]) });
  const ipsecHost = (fail = ''): FakeHost => new FakeHost().fake('pkill').fake('ipsec', fail ? `case "$*" in ${fail}) exit 3 ;; esac; exit 0` : 'exit 0');

  test('libreswan 4.x: the retired conn deleted, the secrets reread, each changed conn replaced (and routed unless auto=add)', () => {
    expect({ unload: plan.unload, reload: plan.reload }).toEqual({
      unload: ['a--x'],
      reload: [
        { name: 'a--b', auto: 'start' },
        { name: 'a--c', auto: 'add' },
      ],
    });
    onHost(ipsecHost(), (host) => {
      expect(host.run(reloadScript(plan, true)).code).toBe(0);
      expect(host.calls()).toEqual([
        'ipsec auto --delete a--x',
        'ipsec auto --rereadsecrets',
        'ipsec auto --replace a--b',
        'ipsec auto --route a--b',
        'ipsec auto --replace a--c',
      ]);
    });
  });

  test("libreswan 5.x's verbs; strongSwan: charon's settings reloaded when its file changed, conns taken down, ipsec update", () => {
    onHost(ipsecHost(), (host) => {
      expect(host.run(reloadScript({ ...plan, backend: { ...plan.backend, version: '5.2' } }, false)).code).toBe(0);
      expect(host.calls()).toEqual(['ipsec delete a--x', 'ipsec replace a--b', 'ipsec route a--b', 'ipsec replace a--c']);
    });
    const strongswan = { ...plan, backend: { id: 'strongswan' as const, package: 'strongswan-starter', version: '5.9.8', assumed: false } };
    onHost(ipsecHost(), (host) => {
      const files = [{ ...plan.files[0]!, kind: 'daemon' as const, action: 'create' as const }];
      expect(host.run(reloadScript({ ...strongswan, files }, true)).code).toBe(0);
      expect(host.calls()).toEqual(['pkill -HUP -x charon', 'ipsec unroute a--x', 'ipsec down a--x', 'ipsec rereadsecrets', 'ipsec update']);
    });
  });

  test('a reread the daemon refuses fails the script before any conn is replaced', () => {
    onHost(ipsecHost("'auto --rereadsecrets'"), (host) => {
      expect(host.run(reloadScript(plan, true)).code).toBe(3);
      expect(host.calls().at(-1)).toBe('ipsec auto --rereadsecrets');
    });
  });

  // Known bug: `replace && route` is an AND list, whose failure `set -e` ignores unless it is the
  // script's last line; the reload of a--b is then reported done. Drop `.failing` once fixed.
  test('a replace the daemon refuses fails the script, on any line, not only the last', () => {
    onHost(ipsecHost("'auto --replace a--b'"), (host) => {
      expect(host.run(reloadScript(plan, false)).code).not.toBe(0);
    });
  });
});

describe('bringing conns up and re-authenticating', () => {
  test('bring up unless established: only a conn the daemon has no state of is started (libreswan, strongSwan)', () => {
    const states = `000 #3: "a--b":500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA);\n`;
    onHost(new FakeHost().fake('ipsec', `[ "$*" = 'whack --showstates' ] && printf '%s' '${states}'; exit 0`), (host) => {
      const cmd = BACKENDS.libreswan.commands({ version: '4.10' });
      expect(host.run(`${['a--b', 'a--c'].map((n) => cmd.upUnlessEstablished(n)).join('\n')}\n`).code).toBe(0);
      expect(host.calls().filter((c) => !c.includes('showstates'))).toEqual(['ipsec auto --asynchronous --up a--c']);
    });
    const status = '    a--b[1]: ESTABLISHED 3 seconds ago, 10.0.0.1[10.0.0.1]...10.0.0.2[10.0.0.2]\n';
    onHost(new FakeHost().fake('ipsec', `[ "$1" = status ] && [ "$2" = a--b ] && printf '%s' '${status}'; exit 0`), (host) => {
      const cmd = BACKENDS.strongswan.commands({ version: '5.9.8' });
      // `wait`: the up runs in the background.
      expect(host.run(`${['a--b', 'a--c'].map((n) => cmd.upUnlessEstablished(n)).join('\n')}\nwait\n`).code).toBe(0);
      expect(host.calls().filter((c) => !c.startsWith('ipsec status'))).toEqual(['ipsec up a--c']);
    });
  });

  test('strongSwan re-authentication: done once a newer IKE SA is established; a peer that refuses the key is exit 1, after 35 s', () => {
    // After the rekey the listing holds a newer established IKE SA (#12); with `stuck` it never does.
    const swanctl = (stuck: boolean) =>
      new FakeHost().fake('sleep').fake(
        'swanctl',
        `d=$(dirname "$0")/..; case "$1" in
  --rekey) touch $d/rekeyed ;;
  --list-sas) echo 'a--b: #4, ESTABLISHED, IKEv2'; [ -f $d/rekeyed ] && ${stuck ? 'false' : 'true'} && echo 'a--b: #12, ESTABLISHED, IKEv2'; echo 'a--b: #13, CONNECTING, IKEv2' ;;
esac; exit 0`,
      );
    const reauth = BACKENDS.strongswan.commands({ version: '5.9.8' }).reauth('a--b');
    onHost(swanctl(false), (host) => {
      expect(host.run(reauth).code).toBe(0);
      expect(host.calls()).toEqual(['swanctl --list-sas --ike a--b', 'swanctl --rekey --ike a--b --reauth', 'swanctl --list-sas --ike a--b']);
    });
    onHost(swanctl(true), (host) => {
      const r = host.run(reauth);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/no new IKE SA for a--b within 35 s/);
      expect(host.calls().filter((c) => c.startsWith('sleep'))).toHaveLength(70);
    });
  });

  test("openswan re-authentication: down, then up; a refusal is exit 1 with pluto's last lines", () => {
    const reauth = BACKENDS.openswan.commands({ version: '2.6' }).reauth('a--b');
    onHost(
      new FakeHost().fake(
        'ipsec',
        '[ "$2" = --up ] && { echo 104 "#2: STATE_MAIN_I1"; echo "032 #2: STATE_MAIN_I4: AUTHENTICATION_FAILED"; exit 36; }; exit 0',
      ),
      (host) => {
        const r = host.run(reauth);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/AUTHENTICATION_FAILED/);
        expect(host.calls()).toEqual(['ipsec auto --down a--b', 'ipsec auto --up a--b']);
      },
    );
  });

  test("libreswan's stray states: each kernel SA deleted (one already gone is no failure), then each state", () => {
    onHost(new FakeHost().fake('ip', 'exit 2').fake('ipsec'), (host) => {
      const r = host.run(libreswanDropStates({ serials: [5, 9], sas: ['esp.54d9cabe@10.0.0.2', 'esp.79a2f6e1@fd00::1'] }));
      expect(r.code).toBe(0);
      expect(host.calls()).toEqual([
        'ip xfrm state delete dst 10.0.0.2 proto esp spi 0x54d9cabe',
        'ip xfrm state delete dst fd00::1 proto esp spi 0x79a2f6e1',
        'ipsec whack --asynchronous --deletestate 5',
        'ipsec whack --asynchronous --deletestate 9',
      ]);
    });
  });
});

describeIsolated('scripts that write on the host, at their real paths (a mount namespace of its own)', () => {
  /** What is in the host's /etc and /run beside the machine's: planted or written (the namespace's own mount points aside). */
  const written = (host: FakeHost): string[] =>
    [
      ...(readdirSync(host.path('/'), { recursive: true }) as string[]).filter((p) => !['etc', 'run', 'etc/ipsec.d'].includes(p)).map((p) => `/${p}`),
      ...(readdirSync(host.path('/etc/ipsec.d'), { recursive: true }) as string[]).map((p) => `/etc/ipsec.d/${p}`),
    ].sort();
  const probe = BACKENDS.strongswan.probe!({ name: 'a--b', local: '10.0.0.1', peer: '10.0.0.2' });
  const swanctl = `ls /etc/swanctl/conf.d | sed 's/^/  /' >> $(dirname "$0")/../calls; exit 0`;

  test("the strongSwan key probe as sent: root's 0700 lock folder in /run, its conn file in /etc/swanctl/conf.d only while it runs", () => {
    const host = new FakeHost().fake('swanctl', swanctl).plant('/etc/swanctl/conf.d/provision-probe-old.conf', 'left by a killed probe\n');
    onHost(host, () => {
      const r = host.run(probe, { isolated: true });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(host.calls()).toEqual([
        'swanctl --load-conns',
        '  provision-probe-a--b.conf',
        'swanctl --initiate --ike provision-probe-a--b --timeout 25',
        '  provision-probe-a--b.conf',
        'swanctl --terminate --ike provision-probe-a--b --timeout 5',
        '  provision-probe-a--b.conf',
        'swanctl --load-conns',
      ]);
      expect(written(host)).toEqual(['/etc/swanctl', '/etc/swanctl/conf.d', '/run/provision', '/run/provision/probe.lock']);
      expect(statSync(host.path('/run/provision')).mode & 0o777).toBe(0o700);
    });
  });

  test('a lock folder that is not root-only 0700: exit 2, nothing loaded', () => {
    onHost(new FakeHost().fake('swanctl', swanctl).plant('/run/provision', undefined, 0o755), (host) => {
      const r = host.run(probe, { isolated: true });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/\/run\/provision is not root's own 0700 folder/);
      expect(host.calls()).toEqual([]);
    });
  });

  test('the guard and SSH path scripts write no file (the write step did): only nft, systemctl and ip are asked', () => {
    const b = planOf(PAIR, 'b', { b: READY_FACTS.replace('10.0.0.100 50000 10.0.0.1 22', '10.0.0.1 50000 10.0.0.2 22') });
    onHost(new FakeHost().fake('nft').fake('systemctl').fake('ip', 'cat >/dev/null'), (host) => {
      expect(host.run(`${sshPathScript(b)}${guardScript(b, 'web')}`, { isolated: true }).code).toBe(0);
      expect(host.calls()).toHaveLength(6);
      expect(written(host)).toEqual([]);
    });
  });
});
