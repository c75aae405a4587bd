import type { BackendId } from '../inventory/types.js';
import { libreswan } from './libreswan.js';
import { openswan } from './openswan.js';
import { strongswan } from './strongswan.js';
import type { Backend } from './types.js';

export const BACKENDS: Record<BackendId, Backend> = { openswan, libreswan, strongswan };

/** What `auto` tries, in order: the first one apt has a candidate for wins. */
export const AUTO_ORDER: readonly BackendId[] = ['openswan', 'libreswan', 'strongswan'];

export type { Backend, ConnLoad, ConnSpec, Target } from './types.js';
