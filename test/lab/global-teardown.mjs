// Removes the run's temporary folder (test/lab/global-setup.mjs made it), whatever the tests left there.
import { rmSync } from 'node:fs';
import { basename } from 'node:path';

export default function globalTeardown() {
  const dir = process.env.TMPDIR;
  if (dir && basename(dir).startsWith('provision-tests-')) rmSync(dir, { recursive: true, force: true });
}
