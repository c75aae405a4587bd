// The tool's own overhead on the lab: wall time of a no-op re-run, and SSH connections and
// remote commands per host. Needs root; boots a two-server lab unless one is running.
// Prints its figures; it is not a test.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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
    what: `no-op re-run${args.length ? ' ' + args.join(' ') : ''}`,
    wall: median(runs.map((r) => r.ms)),
    conns: last.stats.connections / last.stats.hosts,
    cmds: last.stats.commands / last.stats.hosts,
  });
}
console.log(`lab: ${first.json.hosts.length} servers, ${first.json.pairs.length} pair(s); no-op figures are medians of ${RUNS} runs`);
if (converged) {
  const st = first.json.stats;
  console.log(`  ${'first converge (one run)'.padEnd(30)} wall ${(first.ms / 1000).toFixed(2)} s   SSH connections/host ${st.connections / st.hosts}   remote commands/host ${st.commands / st.hosts}`);
}
for (const r of rows) {
  console.log(`  ${r.what.padEnd(30)} wall ${(r.wall / 1000).toFixed(2)} s   SSH connections/host ${r.conns}   remote commands/host ${r.cmds}`);
}
