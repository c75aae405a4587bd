// provision and an Ansible playbook doing the same job, on the same lightweight hosts
// (bench/hosts: sshd + pluto in a network namespace and chroot each, no kernel ESP, so both
// run without verification). For each fleet size: a first converge of a full mesh, then
// no-op re-runs (median of BENCH_RUNS). Prints a table; it is not a test.
// Needs root, debootstrap and ansible-core (installed with apt when missing).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..');
const hosts = join(repo, 'bench', 'hosts');
const state = join(repo, '.bench');
const inventory = join(state, 'inventory.yaml');
const bin = join(repo, 'bin', 'provision.js');
const SIZES = (process.env.BENCH_SIZES ?? '8,16,32,64').split(',').map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
// Ansible's runs are long (minutes from 16 hosts on 2 cores): no-op re-runs are a median of
// RUNS up to 8 hosts and one run above, and fleets above 32 hosts measure provision only.
const ANSIBLE_MAX = Number(process.env.BENCH_ANSIBLE_MAX_HOSTS ?? 32);
const ansibleRuns = (n) => Number(process.env.BENCH_ANSIBLE_RUNS ?? (n <= 8 ? RUNS : 1));
const FORKS = 16; // provision's default --concurrency

if (process.getuid?.() !== 0) {
  console.log('fleet benchmark: skipped (needs root for namespaces and mounts)');
  process.exit(0);
}

function must(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${(r.stdout ?? '').slice(-2000)}\n${(r.stderr ?? '').slice(-2000)}`);
  return r;
}
const timed = (fn) => {
  const t0 = process.hrtime.bigint();
  const out = fn();
  return { s: Number(process.hrtime.bigint() - t0) / 1e9, out };
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (spawnSync('sh', ['-c', 'command -v ansible-playbook']).status !== 0) {
  console.error('fleet benchmark: installing ansible-core (apt)');
  must('apt-get', ['install', '-y', '-q', 'ansible-core'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}
const ansibleVersion = must('ansible-playbook', ['--version']).stdout.split('\n')[0];

function tool(...args) {
  const { s, out } = timed(() => must(hosts, ['exec', 'node', bin, '--inventory', inventory, '--no-verify', '--json', ...args]));
  return { s, json: JSON.parse(out.stdout) };
}

/** Ansible's inventory and host_vars: the files provision's offline plan renders, with a key per pair. */
function writeAnsibleFiles() {
  const plan = JSON.parse(must('node', [bin, '--inventory', inventory, '--dry-run', '--offline', '--json']).stdout);
  const dir = join(state, 'ansible');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'host_vars'), { recursive: true });
  const keys = new Map(plan.pairs.map((p) => [p.name, `0s${randomBytes(32).toString('base64')}`]));
  const initiator = new Map(plan.pairs.map((p) => [p.name, p.initiator]));
  const lines = ['[bench]'];
  for (const h of plan.hosts) {
    lines.push(`${h.name} ansible_host=${h.address}`);
    const files = h.files.map((f) => ({
      path: f.path,
      mode: f.mode,
      pair: f.pair,
      secret: f.mode === '0600',
      initiator: initiator.get(f.pair) === h.name,
      content: f.content.replace(/<redacted: new 256-bit key>/, keys.get(f.pair)),
    }));
    writeFileSync(join(dir, 'host_vars', `${h.name}.yml`), JSON.stringify({ files }));
  }
  lines.push(
    '',
    '[bench:vars]',
    'ansible_user=root',
    `ansible_ssh_private_key_file=${join(process.env.PROVISION_LAB_CACHE ?? '/var/cache/provision-lab', 'id_ed25519')}`,
    `ansible_ssh_common_args='-o UserKnownHostsFile=${join(state, 'known_hosts')}'`,
  );
  writeFileSync(join(dir, 'hosts.ini'), `${lines.join('\n')}\n`);
  return join(dir, 'hosts.ini');
}

function ansible(inv) {
  const { s, out } = timed(() =>
    must(hosts, ['exec', 'ansible-playbook', '-i', inv, '-f', String(FORKS), join(repo, 'bench', 'ansible', 'site.yml')], {
      env: { ...process.env, ANSIBLE_CONFIG: join(repo, 'bench', 'ansible', 'ansible.cfg') },
    }),
  );
  const changed = [...out.stdout.matchAll(/changed=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  return { s, changed };
}

const rows = [];
for (const n of SIZES) {
  const pairs = (n * (n - 1)) / 2;
  console.error(`fleet benchmark: ${n} hosts, ${pairs} pairs`);
  must(hosts, ['up', String(n)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const first = tool();
  if (first.json.hosts.some((h) => h.status !== 'changed'))
    throw new Error(`first converge: ${JSON.stringify(first.json.hosts.filter((h) => h.status !== 'changed'))}`);
  const noops = Array.from({ length: RUNS }, () => tool());
  const last = noops.at(-1).json;
  if (last.hosts.some((h) => h.status !== 'unchanged')) throw new Error('a re-run changed something: not a no-op');

  let aFirst = { s: NaN };
  let aNoops = [{ s: NaN }];
  if (n <= ANSIBLE_MAX) {
    must(hosts, ['up', String(n)], { stdio: ['ignore', 'ignore', 'inherit'] });
    const inv = writeAnsibleFiles();
    aFirst = ansible(inv);
    aNoops = Array.from({ length: ansibleRuns(n) }, () => ansible(inv));
    if (aNoops.at(-1).changed !== 0) throw new Error(`the Ansible re-run changed ${aNoops.at(-1).changed} things: not a no-op`);
  }
  console.error(
    `  provision ${first.s.toFixed(1)} s first, ${median(noops.map((r) => r.s)).toFixed(1)} s no-op; Ansible ${aFirst.s.toFixed(1)} s first, ${median(aNoops.map((r) => r.s)).toFixed(1)} s no-op`,
  );

  rows.push({
    n,
    pairs,
    toolFirst: first.s,
    toolNoop: median(noops.map((r) => r.s)),
    ansibleFirst: aFirst.s,
    ansibleNoop: median(aNoops.map((r) => r.s)),
    cmdsFirst: first.json.stats.commands / n,
    cmdsNoop: last.stats.commands / n,
    conns: last.stats.connections / n,
    ansibleRuns: n <= ANSIBLE_MAX ? ansibleRuns(n) : 0,
  });
}
spawnSync(hosts, ['down']);

const f = (x) => x.toFixed(1);
const sec = (x) => (Number.isNaN(x) ? 'not run' : `${x.toFixed(1)} s`);
const ratio = (a, b) => (Number.isNaN(a) ? '' : `${(a / b).toFixed(1)}x`);
console.log(
  `\nFleet benchmark: full mesh on bench/hosts (--no-verify), concurrency/forks ${FORKS}, provision no-op: median of ${RUNS} runs; ${ansibleVersion}`,
);
console.log(
  '| hosts | pairs | provision first | Ansible first | ratio | provision no-op | Ansible no-op | ratio | provision per host: first, no-op | commands/host first, no-op | SSH connections/host |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(
    `| ${r.n} | ${r.pairs} | ${sec(r.toolFirst)} | ${sec(r.ansibleFirst)} | ${ratio(r.ansibleFirst, r.toolFirst)} | ${sec(r.toolNoop)} | ${sec(r.ansibleNoop)}${r.ansibleRuns > 1 ? ` (median of ${r.ansibleRuns})` : r.ansibleRuns === 1 ? ' (one run)' : ''} | ${ratio(r.ansibleNoop, r.toolNoop)} | ${(r.toolFirst / r.n).toFixed(2)} s, ${(r.toolNoop / r.n).toFixed(3)} s | ${f(r.cmdsFirst)}, ${f(r.cmdsNoop)} | ${f(r.conns)} |`,
  );
}
