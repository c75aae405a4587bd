import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The scale benchmark at a small size (6 bench hosts in meshes of 3), so that it cannot
// break unnoticed: bench/hosts, a first converge and a no-op. It measures nothing here:
// `npm run bench:scale` does, at 1,000 hosts. Needs root (namespaces, mounts) and dist.
// Then the same with two controllers at once whose fleets share hosts (BENCH_FLEETS=2).

/** scale-bench.mjs at a small size, in a bench of its own (state folder and namespace). */
function bench(env: Record<string, string>) {
  return spawnSync('node', ['bench/scale-bench.mjs'], {
    encoding: 'utf8',
    timeout: 900_000,
    env: {
      ...process.env,
      BENCH_SHAPE: 'meshes:3',
      BENCH_CONCURRENCY: '16',
      PROVISION_BENCH_STATE: mkdtempSync(join(tmpdir(), 'scale-bench-')),
      PROVISION_BENCH_NETNS: 'provision-bench-smoke',
      ...env,
    },
  });
}

test('bench/scale-bench.mjs completes at a small size and prints its table, every host converged', () => {
  const r = bench({ BENCH_HOSTS: '6', BENCH_RUNS: '1' });
  expect({ code: r.status, stderr: r.status ? r.stderr.slice(-3000) : '' }).toEqual({ code: 0, stderr: '' });
  expect(r.stdout).toMatch(/^6 bench hosts \(meshes:3, stub daemon\), 6 pairs/m);
  expect(r.stdout).toMatch(/^\| first converge \| [\d.]+ s \| \d+ MiB \| [\d.]+ s \| [\d.]+ s \| 6 \| \d+ \| 6 changed \|$/m);
  expect(r.stdout).toMatch(/^\| no-op, --concurrency 16 \| [\d.]+ s \| \d+ MiB \| [\d.]+ s \| [\d.]+ s \| 6 \| 6 \| 6 unchanged \|$/m);
}, 900_000);

test('with BENCH_FLEETS=2, two controllers at once, whose fleets share hosts: both converge, then both change nothing, and every shared host has each include line once', () => {
  const r = bench({ BENCH_HOSTS: '10', BENCH_FLEETS: '2' });
  expect({ code: r.status, stderr: r.status ? r.stderr.slice(-3000) : '' }).toEqual({ code: 0, stderr: '' });
  expect(r.stdout).toMatch(/^10 bench hosts \(meshes:3, stub daemon\), 6 \+ 8 pairs in two fleets sharing 2 hosts/m);
  for (const fleet of ['east', 'west']) {
    expect(r.stdout).toMatch(
      new RegExp(
        `^\\| first converge, ${fleet} \\(both at once\\) \\| [\\d.]+ s \\| \\d+ MiB \\| [\\d.]+ s \\| [\\d.]+ s \\| 6 \\| \\d+ \\| 6 changed \\|$`,
        'm',
      ),
    );
    expect(r.stdout).toMatch(
      new RegExp(`^\\| no-op, ${fleet} \\(both at once\\) \\| [\\d.]+ s \\| \\d+ MiB \\| [\\d.]+ s \\| [\\d.]+ s \\| 6 \\| 6 \\| 6 unchanged \\|$`, 'm'),
    );
  }
  expect(r.stdout).toMatch(/^shared hosts: 2 hosts in both fleets; on all 10 hosts, each include line once and each fleet's conns as planned$/m);
}, 900_000);
