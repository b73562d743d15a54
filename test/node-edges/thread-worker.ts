/**
 * Worker of threads.test.ts. Modes (workerData.mode):
 *   hold    attach, keep objects in this thread's caches, say 'attached', idle until terminated
 *   detach  attach, allocate and free, detach cleanly, say 'detached', end
 *   nest    attach, start a 'hold' worker of its own with its own watch's
 *           handle, say 'nested' once the child attached, idle until terminated
 *   window  what attachInWorker does up to Heap.attach (a PENDING row, then
 *           the slot with this thread's owner tag), but never records the
 *           slot: a thread terminated inside that window; say 'attached',
 *           idle until terminated
 */
import { Worker, parentPort, threadId, workerData } from 'node:worker_threads';
import { attachInWorker, releaseExitedWorkers, type ThreadsHandle } from '../../src/node/index.js';
import { THREAD_ROW } from '../../src/node/threads.js';
import { Heap, type AllocatorHandle } from '../../src/index.js';

interface Job {
  mode: 'hold' | 'detach' | 'nest' | 'window';
  heap: ThreadsHandle;
  alloc: AllocatorHandle;
  waitMs?: number;
}

const job = workerData as Job;

/** A PENDING row for this thread, then the slot, never recorded (mode 'window'). */
function attachInTheWindow(handle: ThreadsHandle): Heap {
  const t = new Int32Array(handle.threads);
  for (let r = 0; r < t.length; r += THREAD_ROW.WORDS) {
    if (Atomics.compareExchange(t, r + THREAD_ROW.STATE, THREAD_ROW.FREE, THREAD_ROW.PENDING) !== THREAD_ROW.FREE) continue;
    Atomics.store(t, r + THREAD_ROW.THREAD, threadId);
    return Heap.attach(handle, { owner: threadId + 1 });
  }
  throw new Error('thread table full');
}

const heap = job.mode === 'window' ? attachInTheWindow(job.heap) : attachInWorker(job.heap, job.waitMs === undefined ? {} : { waitMs: job.waitMs });
const a = heap.attachAllocator(job.alloc);
const port = parentPort!;

function churn(): void {
  const ps: number[] = [];
  for (let i = 0; i < 200; i++) ps.push(a.alloc(16 + ((i * 37) % 900)));
  for (const p of ps) a.free(p);
}

switch (job.mode) {
  case 'hold':
  case 'window':
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
