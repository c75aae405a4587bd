// The tool's own overhead on the lab: wall time of a no-op re-run, and SSH connections and
// remote commands per host; then a one-pair key rotation by provision and by an Ansible
// playbook (bench/ansible/rotate.yml) on the same servers, which have kernel ESP.
// Needs root; boots a two-server lab unless one is running. Prints its figures; it is not a test.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..');
const lab = join(repo, 'test', 'lab', 'lab');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

if (process.getuid?.() !== 0) {
  console.log('lab benchmark: skipped (needs root for the lab)');
  process.exit(0);
}
if (!existsSync(join(repo, '.lab', 'count'))) {
  const up = spawnSync(lab, ['up', '2'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (up.status !== 0) process.exit(1);
}
const inventory = join(repo, '.lab', 'inventory.yaml');
function provision(...args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(lab, ['exec', 'node', join(repo, 'bin', 'provision.js'), '--inventory', inventory, '--json', ...args], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) {
    console.error(r.stdout, r.stderr);
    throw new Error(`provision exited ${r.status}`);
  }
  return { ms, json: JSON.parse(r.stdout) };
}

const first = provision();
const converged = first.json.hosts.some((h) => h.status === 'changed');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const args of [[], ['--no-verify']]) {
  const runs = Array.from({ length: RUNS }, () => provision(...args));
  const last = runs[runs.length - 1].json;
  if (last.hosts.some((h) => h.status !== 'unchanged')) throw new Error('a re-run changed something: not a no-op');
  rows.push({
    what: `no-op re-run${args.length ? ` ${args.join(' ')}` : ''}`,
    wall: median(runs.map((r) => r.ms)),
    conns: last.stats.connections / last.stats.hosts,
    cmds: last.stats.commands / last.stats.hosts,
  });
}
console.log(`lab: ${first.json.hosts.length} servers, ${first.json.pairs.length} pair(s); no-op figures are medians of ${RUNS} runs`);
if (converged) {
  const st = first.json.stats;
  console.log(
    `  ${'first converge (one run)'.padEnd(30)} wall ${(first.ms / 1000).toFixed(2)} s   SSH connections/host ${st.connections / st.hosts}   remote commands/host ${st.commands / st.hosts}`,
  );
}
for (const r of rows) {
  console.log(`  ${r.what.padEnd(30)} wall ${(r.wall / 1000).toFixed(2)} s   SSH connections/host ${r.conns}   remote commands/host ${r.cmds}`);
}

// A one-pair rotation. provision: --rotate-psk (new key on both ends, reread, the initiator
// re-authenticates; then ESP verification unless --no-verify). Ansible: rotate.yml, limited to
// the pair's two hosts, then a provision run checks that the pair still verifies.
function must(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${(r.stdout ?? '').slice(-2000)}\n${(r.stderr ?? '').slice(-2000)}`);
  return r;
}
const plan = JSON.parse(must('node', [join(repo, 'bin', 'provision.js'), '--inventory', inventory, '--dry-run', '--offline', '--json']).stdout);
const pair = plan.pairs[0];
const rotations = [];
for (const args of [[], ['--no-verify']]) {
  const runs = Array.from({ length: RUNS }, () => provision('--rotate-psk', pair.name, ...args));
  for (const r of runs) {
    const rotated = r.json.changes.flatMap((c) => c.files).filter((f) => f.pair === pair.name && f.key === 'rotated').length;
    if (rotated !== 2 || r.json.pairs.some((p) => p.status === 'failed' || p.status === 'rolled-back')) {
      throw new Error(`provision --rotate-psk ${pair.name} did not rotate: ${JSON.stringify(r.json.pairs)}`);
    }
  }
  rotations.push({
    what: `provision --rotate-psk ${pair.name}${args.length ? ` ${args.join(' ')}` : ''}`,
    wall: median(runs.map((r) => r.ms)),
    runs: runs.map((r) => r.ms),
  });
}

if (spawnSync('sh', ['-c', 'command -v ansible-playbook']).status !== 0) {
  console.error('lab benchmark: installing ansible-core (apt)');
  must('apt-get', ['install', '-y', '-q', 'ansible-core'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}
const key = join(process.env.PROVISION_LAB_CACHE ?? '/var/cache/provision-lab', 'id_ed25519');
const knownHosts = join(repo, '.lab', 'known_hosts');
for (const h of plan.hosts) {
  // Ansible's modules need python3 on the servers; the lab's mirror has it.
  must(lab, [
    'exec',
    'ssh',
    '-q',
    '-o',
    'BatchMode=yes',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-i',
    key,
    `root@${h.address}`,
    'command -v python3 >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3; } >/dev/null',
  ]);
}
const dir = join(repo, '.lab', 'ansible');
mkdirSync(join(dir, 'host_vars'), { recursive: true });
const hostsIni = join(dir, 'hosts.ini');
writeFileSync(
  hostsIni,
  `${[
    '[lab]',
    ...plan.hosts.map((h) => `${h.name} ansible_host=${h.address}`),
    '',
    '[lab:vars]',
    'ansible_user=root',
    `ansible_ssh_private_key_file=${key}`,
    `ansible_ssh_common_args='-o UserKnownHostsFile=${knownHosts}'`,
  ].join('\n')}\n`,
);
const ansibleRuns = [];
for (let i = 0; i < RUNS; i++) {
  const psk = `0s${randomBytes(32).toString('base64')}`;
  for (const h of plan.hosts.filter((x) => x.name === pair.initiator || x.name === pair.responder)) {
    const f = h.files.find((x) => x.pair === pair.name && x.mode === '0600');
    writeFileSync(
      join(dir, 'host_vars', `${h.name}.yml`),
      JSON.stringify({
        secrets: { path: f.path, content: f.content.replace(/<redacted: new 256-bit key>/, psk) },
        initiator: h.name === pair.initiator,
      }),
    );
  }
  const t0 = process.hrtime.bigint();
  const r = must(
    lab,
    [
      'exec',
      'ansible-playbook',
      '-i',
      hostsIni,
      '-f',
      '16',
      '--limit',
      `${pair.initiator},${pair.responder}`,
      '-e',
      `pair=${pair.name}`,
      join(repo, 'bench', 'ansible', 'rotate.yml'),
    ],
    { env: { ...process.env, ANSIBLE_CONFIG: join(repo, 'bench', 'ansible', 'ansible.cfg') } },
  );
  ansibleRuns.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (![...r.stdout.matchAll(/changed=(\d+)/g)].every((m) => Number(m[1]) > 0)) throw new Error(`rotate.yml changed nothing:\n${r.stdout}`);
  // The check: both ends hold the same new key and the pair carries ESP.
  const check = provision();
  if (check.json.pairs.some((p) => p.status !== 'verified') || check.json.hosts.some((h) => h.status !== 'unchanged')) {
    throw new Error(`after the Ansible rotation: ${JSON.stringify(check.json.pairs)} ${JSON.stringify(check.json.hosts)}`);
  }
}
rotations.push({ what: `Ansible rotate.yml --limit (the pair's hosts)`, wall: median(ansibleRuns), runs: ansibleRuns });
console.log(`one-pair key rotation on the lab (${pair.name}), medians of ${RUNS} runs:`);
for (const r of rotations) {
  console.log(`  ${r.what.padEnd(56)} wall ${(r.wall / 1000).toFixed(2)} s   (runs ${r.runs.map((x) => (x / 1000).toFixed(2)).join(', ')} s)`);
}
