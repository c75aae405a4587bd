// npm run bench: the planner on a 1,000-host mesh (499,500 pairs). Goal: under 3 s and 1 GiB.
// Prints its figures; it is not a test. Run `npm run build` first (npm run bench does).
import { loadInventory } from '../dist/inventory/load.js';
import { plan, offlineResolver, confContent, secretsContent } from '../dist/plan/plan.js';

const N = Number(process.env.BENCH_HOSTS ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

function inventory(n) {
  const lines = ['hosts:'];
  const names = [];
  for (let i = 0; i < n; i++) {
    const name = `h${String(i).padStart(4, '0')}`;
    names.push(name);
    lines.push(`  ${name}: {address: 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}}`.replace('10.0.', '198.18.'));
  }
  lines.push('meshes:', `  - name: all`, `    hosts: [${names.join(', ')}]`);
  return lines.join('\n') + '\n';
}

const text = inventory(N);
const times = [];
let peakRss = 0;
let heapAfter = 0;
let pairs = 0;
let files = 0;
let bytes = 0;
const renderTimes = [];
for (let r = 0; r < RUNS; r++) {
  globalThis.gc?.();
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
  const t0 = process.hrtime.bigint();
  const p = plan(loadInventory(text, 'bench.yaml'), offlineResolver);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  heapAfter = Math.max(heapAfter, process.memoryUsage().heapUsed);
  pairs = p.pairs.length;
  files = p.hosts.reduce((n, h) => n + h.conns.length * 2, 0);
  times.push(ms);
  // Contents are rendered on demand, host by host, as a run does; measure rendering them all.
  const r0 = process.hrtime.bigint();
  bytes = 0;
  for (const hp of p.hosts) {
    for (const c of hp.conns) bytes += confContent(hp, c).length + secretsContent(hp, c, '<redacted>').length;
  }
  renderTimes.push(Number(process.hrtime.bigint() - r0) / 1e6);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}
renderTimes.sort((a, b) => a - b);
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const mib = (b) => (b / 1048576).toFixed(0);
console.log(`planner: ${N}-host mesh, ${pairs} pairs, ${files} files planned`);
console.log(`  wall time  median ${(median / 1000).toFixed(2)} s  (runs: ${times.map((t) => (t / 1000).toFixed(2)).join(', ')} s)  goal < 3 s`);
console.log(`  rendering every file once: median ${(renderTimes[Math.floor(renderTimes.length / 2)] / 1000).toFixed(2)} s, ${mib(bytes)} MiB of text (not part of the plan goal)`);
console.log(`  memory     peak RSS ${mib(peakRss)} MiB, heap after plan ${mib(heapAfter)} MiB  goal < 1024 MiB`);
console.log(`  node ${process.version}, ${(await import('node:os')).cpus()[0]?.model ?? 'unknown cpu'}`);
