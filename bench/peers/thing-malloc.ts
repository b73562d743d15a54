/**
 * @thi.ng/malloc: `MemPool`, a first-fit free-list allocator whose state
 * lives in the buffer. No Atomics, so one thread at a time. Default options
 * (8-byte alignment, block splitting and compaction on). The pool sits on a
 * SharedArrayBuffer like every other shared-memory variant here.
 *
 * Two variants:
 * - `thing-malloc`: alloc+free pair on an otherwise empty pool;
 * - `thing-malloc-1000`: 1000 blocks stay live in a ring; each iteration
 *   frees the oldest and allocates a new one (FIFO churn). Its free()
 *   searches the list of used blocks, so it costs O(live blocks).
 */
import { MemPool } from '@thi.ng/malloc';
import type { PairFactory, PairVariant } from './types.js';

const POOL_BYTES = 32 << 20;
export const LIVE = 1000;

function newPool(): MemPool {
  return new MemPool({ buf: new SharedArrayBuffer(POOL_BYTES) });
}

export const createEmpty: PairFactory = (): PairVariant => {
  let pool = newPool();
  return {
    prepare(): void {
      pool = newPool();
    },
    run(size: number, iters: number): number {
      const mp = pool;
      let acc = 0;
      for (let i = 0; i < iters; i++) {
        const p = mp.malloc(size);
        if (p === 0) throw new Error('MemPool.malloc failed');
        acc = (acc + p) | 0;
        mp.free(p);
      }
      return acc;
    },
  };
};

export const createChurn: PairFactory = (): PairVariant => {
  let pool = newPool();
  const ring = new Int32Array(LIVE);
  let head = 0;
  return {
    prepare(size: number): void {
      pool = newPool();
      for (let i = 0; i < LIVE; i++) {
        const p = pool.malloc(size);
        if (p === 0) throw new Error('MemPool.malloc failed while filling');
        ring[i] = p;
      }
      head = 0;
    },
    run(size: number, iters: number): number {
      const mp = pool;
      const r = ring;
      let h = head;
      let acc = 0;
      for (let i = 0; i < iters; i++) {
        mp.free(r[h]);
        const p = mp.malloc(size);
        if (p === 0) throw new Error('MemPool.malloc failed');
        r[h] = p;
        acc = (acc + p) | 0;
        h = h + 1 === LIVE ? 0 : h + 1;
      }
      head = h;
      return acc;
    },
    dispose(): void {
      for (let i = 0; i < LIVE; i++) pool.free(ring[i]);
    },
  };
};
