/**
 * Consumer of the remote-free test (see ../remote-free.test.ts): pops the
 * producer's blocks in order, checks each block's cookie (block k carries
 * stamp k, so order and exclusive ownership are checked too) and frees it
 * from this worker: every free is a remote free. Detaching at the end
 * hands its cached objects back to the global pool.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Heap } from '../../../src/index.js';
import { checkCookie } from '../../util/cookie.js';
import { seedNote } from '../../util/prng.js';
import type { ConsumerResult, RemoteJob } from '../../util/remote-protocol.js';
import { SpscRing } from '../../util/spsc-ring.js';

const job = workerData as RemoteJob;
const where = `remote-free consumer, ${seedNote(job.seed)}`;
const ring = new SpscRing(job.ring);
const heap = Heap.attach(job.heap);
const a = heap.attachAllocator(job.alloc);
const deadline = performance.now() + job.deadlineMs;

function fail(msg: string): never {
  throw new Error(`${msg} [${where}]`);
}

const result: ConsumerResult = { frees: 0, bytes: 0, naps: 0 };

while (!ring.drained()) {
  const n = ring.available();
  if (n === 0) {
    if (performance.now() > deadline) fail(`no block from the producer before the deadline (after ${result.frees})`);
    result.naps++;
    ring.napUntilData();
    continue;
  }
  // Blocks may lie in memory the producer grew the heap into.
  heap.refresh();
  for (let k = 0; k < n; k++) {
    const index = result.frees;
    const p = ring.pointerAt(index);
    const size = ring.sizeAt(index);
    if (p === 0 || p % 16 !== 0) fail(`block ${index}: bad pointer ${p}`);
    const bad = checkCookie(heap.i32, heap.u8, p, size, index);
    if (bad !== null) fail(`block ${index}: cookie broken before free: ${bad}`);
    result.bytes += a.usableSize(p);
    a.free(p);
    result.frees++;
    ring.release(1);
  }
}
a.detach();
heap.detach();
parentPort!.postMessage(result);
