/**
 * Worker of threads.test.ts. Modes (workerData.mode):
 *   hold    attach, keep objects in this thread's caches, say 'attached', idle until terminated
 *   detach  attach, allocate and free, detach cleanly, say 'detached', end
 *   nest    attach, start a 'hold' worker of its own with its own watch's
 *           handle, say 'nested' once the child attached, idle until terminated
 */
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { attachInWorker, releaseExitedWorkers, type ThreadsHandle } from '../../src/node/index.js';
import type { AllocatorHandle } from '../../src/index.js';

interface Job {
  mode: 'hold' | 'detach' | 'nest';
  heap: ThreadsHandle;
  alloc: AllocatorHandle;
  waitMs?: number;
}

const job = workerData as Job;
const heap = attachInWorker(job.heap, job.waitMs === undefined ? {} : { waitMs: job.waitMs });
const a = heap.attachAllocator(job.alloc);
const port = parentPort!;

function churn(): void {
  const ps: number[] = [];
  for (let i = 0; i < 200; i++) ps.push(a.alloc(16 + ((i * 37) % 900)));
  for (const p of ps) a.free(p);
}

switch (job.mode) {
  case 'hold':
    churn();
    port.postMessage({ kind: 'attached', slot: heap.slot });
    setInterval(() => {}, 1 << 30);
    break;
  case 'detach':
    churn();
    a.detach();
    heap.detach();
    port.postMessage({ kind: 'detached' });
    break;
  case 'nest': {
    churn();
    const watch = releaseExitedWorkers(heap);
    const child = new Worker(new URL(import.meta.url), { workerData: { mode: 'hold', heap: watch.handle, alloc: job.alloc } });
    child.once('message', (m: { slot: number }) => port.postMessage({ kind: 'nested', slot: heap.slot, childSlot: m.slot }));
    setInterval(() => {}, 1 << 30);
    break;
  }
}
