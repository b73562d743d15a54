/**
 * Compile-time only: the benchmark loads anyalloc at run time through the
 * small interfaces in anyalloc.ts. This assignment makes the build fail
 * when the real API stops matching them. Nothing here runs.
 */
import type { Heap } from '../../src/index.js';
import type { AnyHeapStatic } from './anyalloc.js';

export type AnyallocApiMatches = typeof Heap extends AnyHeapStatic ? true : never;
export const anyallocApiMatches: AnyallocApiMatches = true;
