// One controller, many hosts: bench/hosts (sshd per host in its own namespace, the stub
// daemon: no IKE daemon runs, see bench/hosts) with an inventory of meshes, then a first
// converge and no-op re-runs, each with its wall time, the controller's peak RSS and CPU,
// and the CPU the hosts spent (sshd and the scripts it ran). Prints a table; not a test.
//   BENCH_HOSTS (default 1000), BENCH_SHAPE (meshes:25), BENCH_RUNS (no-ops, 2),
//   BENCH_CONCURRENCY (comma-separated, default 16,64: the no-op at each).
//   BENCH_FLEETS=2: instead, two controllers at once, whose fleets share a fifth of the hosts
//   (shared-fleets.mjs): a first converge and a no-op, each of both at the same time.
// Needs root and debootstrap (bench/hosts builds its base once).
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkShared, splitFleets } from './shared-fleets.mjs';

const repo = join(import.meta.dirname, '..');
const hosts = join(repo, 'bench', 'hosts');
const state = process.env.PROVISION_BENCH_STATE ?? join(repo, '.bench');
const inventory = join(state, 'inventory.yaml');
const bin = join(repo, 'bin', 'provision.js');
const N = Number(process.env.BENCH_HOSTS ?? 1000);
const SHAPE = process.env.BENCH_SHAPE ?? 'meshes:25';
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '16,64').split(',').map(Number);
const FLEETS = Number(process.env.BENCH_FLEETS ?? 1);

if (process.getuid?.() !== 0) {
  console.log('scale benchmark: skipped (needs root for namespaces and mounts)');
  process.exit(0);
}

function must(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${(r.stdout ?? '').slice(-2000)}\n${(r.stderr ?? '').slice(-3000)}`);
  return r;
}

/** CPU seconds the hosts' sshd servers and everything they ran have used (their reaped children's time). */
function hostsCpu() {
  const hz = 100;
  let ticks = 0;
  for (const d of readdirSync(join(state, 'hosts'))) {
    const pid = readFileSync(join(state, 'hosts', d, 'pids'), 'utf8').trim();
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the command name.
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return ticks / hz;
}

/** One run: wall time, the controller's peak RSS and CPU (GNU time), the run's own counts. */
function runOnce(label, inv, args) {
  const t0 = process.hrtime.bigint();
  const child = spawn(hosts, ['exec', '/usr/bin/time', '-f', '@@time %M %U %S', 'node', bin, '--inventory', inv, '--no-verify', '--yes', '--json', ...args]);
  const out = [];
  const err = [];
  child.stdout.on('data', (b) => out.push(b));
  child.stderr.on('data', (b) => err.push(b));
  // Not a failure when it exits 1: a run where some host failed still says which, in its table.
  return new Promise((resolve, reject) =>
    child.on('close', (code) => {
      const [stdout, stderr] = [Buffer.concat(out).toString(), Buffer.concat(err).toString()];
      if (!/@@time/.test(stderr)) return reject(new Error(`provision did not run (exit ${code}):\n${stderr.slice(-3000)}`));
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const [rss, user, sys] = /@@time (\d+) ([\d.]+) ([\d.]+)/.exec(stderr).slice(1).map(Number);
      const j = JSON.parse(stdout);
      const statuses = {};
      for (const h of j.hosts) statuses[h.status] = (statuses[h.status] ?? 0) + 1;
      const failed = j.hosts.filter((h) => h.status === 'failed').map((h) => `${h.name}: ${h.step}: ${h.error}`);
      resolve({ label, wall, rssMiB: rss / 1024, controllerCpu: user + sys, statuses, failed, stats: j.stats, pairs: j.pairs.length });
    }),
  );
}

/** Runs at the same time (one per inventory), with the CPU the hosts spent on all of them. */
async function measure(runs) {
  const before = hostsCpu();
  const rows = await Promise.all(runs.map(([label, inv, args]) => runOnce(label, inv, args)));
  const cpu = hostsCpu() - before;
  for (const r of rows) r.hostsCpu = cpu;
  return rows;
}

const t0 = Date.now();
const rows = [];
let upSec = 0;
let shared;
try {
  must(hosts, ['up', String(N), SHAPE, 'stub']);
  upSec = (Date.now() - t0) / 1000;
  if (FLEETS === 2) {
    const fleets = splitFleets(state, N, Number(SHAPE.replace('meshes:', '')) || N);
    const both = (label, args) => fleets.map((f) => [`${label}, ${f.fleet} (both at once)`, f.file, args]);
    rows.push(...(await measure(both('first converge', []))));
    shared = checkShared(state, fleets);
    rows.push(...(await measure(both('no-op', ['--concurrency', String(CONCURRENCY[0])]))));
  } else {
    rows.push(...(await measure([['first converge', inventory, []]])));
    for (const c of CONCURRENCY)
      for (let i = 0; i < RUNS; i++) rows.push(...(await measure([[`no-op, --concurrency ${c}`, inventory, ['--concurrency', String(c)]]])));
  }
} finally {
  spawnSync(hosts, ['down'], { stdio: 'inherit' });
}

const pairs = FLEETS === 2 ? `${rows[0].pairs} + ${rows[1].pairs} pairs in two fleets sharing ${shared.hosts} hosts` : `${rows[0].pairs} pairs`;
console.log(`\n${N} bench hosts (${SHAPE}, stub daemon), ${pairs}; hosts up in ${upSec.toFixed(0)} s\n`);
console.log('| run | wall | controller peak RSS | controller CPU | hosts CPU | SSH connections | commands | hosts |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
for (const r of rows) {
  const st = Object.entries(r.statuses)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  console.log(
    `| ${r.label} | ${r.wall.toFixed(1)} s | ${r.rssMiB.toFixed(0)} MiB | ${r.controllerCpu.toFixed(1)} s | ${r.hostsCpu.toFixed(1)} s | ${r.stats.connections} | ${r.stats.commands} | ${st} |`,
  );
}
if (shared) console.log(`\nshared hosts: ${shared.summary}`);
const bad = rows.filter((r) => Object.keys(r.statuses).some((s) => s !== 'changed' && s !== 'unchanged'));
if (bad.length || shared?.problems.length) {
  for (const r of bad) console.error(`scale benchmark: ${r.label}: some hosts failed: ${r.failed.slice(0, 5).join('; ')}`);
  for (const p of shared?.problems ?? []) console.error(`scale benchmark: ${p}`);
  process.exit(1);
}
