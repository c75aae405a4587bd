import { spawnSync } from 'node:child_process';

// The planner benchmark at a small size, so that it cannot break unnoticed again (it once
// stopped at its first import). It measures nothing here: `npm run bench` does, at full
// size. Needs dist (npm test builds it).

test('bench/plan-bench.mjs completes at a small size and prints its table, with every host planned', () => {
  const r = spawnSync('node', ['bench/plan-bench.mjs'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, BENCH_HOSTS: '60', BENCH_MESH_SIZE: '25', BENCH_FULL_MESH: '12', BENCH_RUNS: '1' },
  });
  expect({ code: r.status, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  // 60 hosts in meshes of 25, 25 and 10: 300 + 300 + 45 pairs; one mesh of 12: 66 pairs.
  expect(r.stdout).toMatch(/^\| 60 hosts, meshes of 25 \| 60 \| 645 \| \d+ \| \d+\.\d\d s \(\d+\.\d\d\) \| \d+ MiB \| \d+ MiB \|$/m);
  expect(r.stdout).toMatch(/^\| one mesh of 12 \| 12 \| 66 \| \d+ \| /m);
});
