/** Jobs and results shared by the map tests and test/workers/map-worker.ts. */
import type { HashMapHandle, HeapHandle } from '../../src/index.js';

/** Keys the linearizability histories use. */
export const LIN_KEYS = 8;

interface Base {
  heap: HeapHandle;
  map: HashMapHandle;
}

export type MapJob =
  | (Base & { kind: 'parallel-insert' | 'parallel-delete'; index: number; workers: number; keys: number })
  /**
   * stop: Int32Array words [stop flag, readers started, readers that found a key].
   * The writer starts once `readers` readers have started, and goes on past
   * maxRounds until each of them has found a key (or 10 s have passed).
   */
  | (Base & { kind: 'reuse-writer'; stop: SharedArrayBuffer; maxRounds: number; readers: number })
  | (Base & { kind: 'reuse-reader'; stop: SharedArrayBuffer })
  | (Base & { kind: 'linear'; clock: SharedArrayBuffer; seed: number; index: number; workers: number; ops: number })
  | (Base & { kind: 'churn'; seed: number; ops: number; keys: number })
  | (Base & { kind: 'per-worker-count'; seed: number; ops: number; keys: number });

/** One completed map operation of a history; inv/res are logical times. */
export interface LinOp {
  kind: 'update' | 'delete' | 'lookup';
  key: number;
  flag: number;
  /** update: the value written; lookup: the value read (when found). */
  value: number;
  status: number;
  found: boolean;
  inv: number;
  res: number;
}

/** Checksum of a reuse-test value: ties the generation to the key. */
export function reuseChecksum(key: number, gen: number): number {
  return (Math.imul(key ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(gen, 0x85ebca6b)) >>> 0;
}
