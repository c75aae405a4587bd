// The order jest starts test files in. The lab files first, largest lab first, so that the
// two workers' labs overlap as little as possible in guests: the six-server matrix runs
// beside the three-server converge and faults, and the four-server guard (whose restart
// and reboot timings suffer most from a loaded machine) only once the matrix is done. Unit
// and package tests fill in after.
import Sequencer from '@jest/test-sequencer';

const ORDER = ['matrix', 'converge', 'faults', 'guard'];
const rank = (path) => {
  const i = ORDER.findIndex((name) => path.endsWith(`/e2e/${name}.test.ts`));
  return i === -1 ? ORDER.length : i;
};

export default class LabFirst extends (Sequencer.default ?? Sequencer) {
  sort(tests) {
    return [...tests].sort((a, b) => rank(a.path) - rank(b.path) || a.path.localeCompare(b.path));
  }
}
