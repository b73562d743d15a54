/**
 * Task file of the pool churn test (pool-churn.test.ts), for piscina and
 * tinypool alike. The thread attaches when it loads, as a pool thread
 * would, and never detaches: the pool terminates it when it has been idle.
 * Each task allocates objects of random sizes, fills, checks and frees
 * them; some stay in this thread's caches, which the release must give
 * back.
 */
import { threadId, workerData } from 'node:worker_threads';
import { attachInWorker, type ThreadsHandle } from '../../src/node/index.js';
import type { AllocatorHandle } from '../../src/index.js';

interface PoolData {
  heap: ThreadsHandle;
  alloc: AllocatorHandle;
}

// tinypool passes [its own data, the user's workerData]; piscina the user's.
const data = (Array.isArray(workerData) ? workerData[1] : workerData) as PoolData;
const heap = attachInWorker(data.heap);
const a = heap.attachAllocator(data.alloc);

export interface TaskResult {
  threadId: number;
  slot: number;
  allocs: number;
}

export default function task(seed: number): TaskResult {
  let s = seed >>> 0 || 1;
  const rand = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
  const held: number[] = [];
  const n = 32 + (rand() % 64);
  for (let i = 0; i < n; i++) {
    const size = rand() % 8 === 0 ? 4096 + (rand() % 20000) : 16 + (rand() % 2000);
    const p = a.alloc(size);
    if (p === 0) throw new Error(`alloc(${size}) failed in thread ${threadId}`);
    heap.u32[p >>> 2] = seed + i;
    heap.u32[(p >>> 2) + 1] = size;
    held.push(p);
  }
  heap.refresh();
  for (let i = 0; i < held.length; i++) {
    const p = held[i]!;
    if (heap.u32[p >>> 2] !== ((seed + i) >>> 0)) throw new Error(`object ${p} was overwritten`);
    a.free(p);
  }
  return { threadId, slot: heap.slot, allocs: n };
}
