// Before any jest worker starts: build the lab's cache (every release's base, mirror and
// preinstalled layers, and the kernel's modules) once, so that two workers booting their
// labs at the same time never both build it. A no-op when the cache is there; where the lab
// cannot run (not root, no user-mode-linux), the lab suites say so themselves.
// Also gives the run a temporary folder of its own.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export default function globalSetup() {
  // Every temporary file of this run in one folder, which test/lab/global-teardown.mjs removes
  // (the workers inherit TMPDIR).
  process.env.TMPDIR = mkdtempSync(join(tmpdir(), 'provision-tests-'));
  const lab = join(dirname(fileURLToPath(import.meta.url)), 'lab');
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/linux.uml') || !existsSync('/usr/sbin/debootstrap')) return;
  const started = Date.now();
  const r = spawnSync(lab, ['base', '--preinstall', 'libreswan,strongswan'], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`test/lab/lab base failed (exit ${r.status}):\n${(r.stderr ?? '').split('\n').slice(-20).join('\n')}`);
  const sec = Math.round((Date.now() - started) / 1000);
  if (sec > 5) process.stderr.write(`\nlab cache built in ${sec} s\n`);
}
