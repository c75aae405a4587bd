import type { Args } from '../cli.js';
import type { Io } from '../report/view.js';
import type { Deps } from './live.js';

export async function teardownCommand(_args: Args, _io: Io, _deps: Deps): Promise<number> {
  throw new Error('provision teardown: not built yet');
}
