// npm run bench (first part): the planner alone, pure, on an offline plan as `--dry-run
// --offline` makes it: load the inventory, expand it, plan every host's files (contents
// rendered) and the changeset. Two shapes of 1,000 hosts: 40 meshes of 25 (12,000 pairs, what
// a large fleet looks like) and, with BENCH_FULL_MESH=N, one mesh of N hosts. Goal: a plan of
// the 1,000 hosts under 1 s, the process under 1 GiB. Prints its figures; it is not a test.
// Run `npm run build` first (npm run bench does). CI runs it small (BENCH_HOSTS=50 BENCH_RUNS=1).
import { cpus } from 'node:os';
import { loadInventory } from '../dist/inventory/load.js';
import { planChanges } from '../dist/plan/plan.js';
import { offlineFacts } from '../dist/remote/facts.js';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const MESH = Number(process.env.BENCH_MESH_SIZE ?? 25);
const FULL = Number(process.env.BENCH_FULL_MESH ?? 0);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const address = (i) => `198.18.${(i >> 8) & 255}.${i & 255}`;
const hostName = (i) => `h${String(i).padStart(4, '0')}`;

/** N hosts in meshes of `size` (the last one smaller when N is not a multiple). */
function inventory(n, size) {
  const lines = ['fleet: bench', 'hosts:'];
  for (let i = 0; i < n; i++) lines.push(`  ${hostName(i)}: {address: ${address(i)}}`);
  lines.push('meshes:');
  for (let m = 0; m * size < n; m++) {
    const members = [];
    for (let i = m * size; i < Math.min(n, (m + 1) * size); i++) members.push(hostName(i));
    if (members.length > 1) lines.push(`  - {name: m${m}, hosts: [${members.join(', ')}]}`);
  }
  return `${lines.join('\n')}\n`;
}

function measure(label, text) {
  const times = [];
  let peakRss = 0;
  let shape = {};
  for (let r = 0; r < RUNS; r++) {
    globalThis.gc?.();
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
    const t0 = process.hrtime.bigint();
    const inv = loadInventory(text, 'bench.yaml');
    const cs = planChanges(inv, new Map([...inv.hosts.keys()].map((h) => [h, offlineFacts()])), {
      mode: 'offline',
      prune: true,
      retireLegacy: false,
      tool: 'bench',
    });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const files = cs.hosts.flatMap((h) => h.files);
    shape = { hosts: cs.hosts.length, pairs: cs.pairs.length, files: files.length, bytes: files.reduce((n, f) => n + f.content.length, 0) };
    if (shape.hosts !== inv.hosts.size || cs.hosts.some((h) => h.status !== 'planned')) throw new Error(`${label}: not every host was planned`);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const mib = (b) => (b / 1048576).toFixed(0);
  return {
    label,
    ...shape,
    median: (median / 1000).toFixed(2),
    runs: times.map((t) => (t / 1000).toFixed(2)).join(', '),
    text: mib(shape.bytes),
    peak: mib(peakRss),
  };
}

const rows = [measure(`${HOSTS} hosts, meshes of ${MESH}`, inventory(HOSTS, MESH))];
if (FULL) rows.push(measure(`one mesh of ${FULL}`, inventory(FULL, FULL)));
console.log(`planner (offline plan), node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'}, median of ${RUNS}`);
console.log('| inventory | hosts | pairs | files | plan, median (runs) | file text | peak RSS |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.label} | ${r.hosts} | ${r.pairs} | ${r.files} | ${r.median} s (${r.runs}) | ${r.text} MiB | ${r.peak} MiB |`);
