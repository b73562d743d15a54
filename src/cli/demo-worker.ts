/**
 * Worker side of `anyalloc demo`: allocates messages in the shared heap,
 * swaps them into a shared mailbox, and frees the ones it takes out, most
 * of which another worker allocated.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Heap, type AllocatorHandle, type HeapHandle } from '../index.js';

interface DemoJob {
  heap: HeapHandle;
  alloc: AllocatorHandle;
  mailbox: number;
  mailboxSlots: number;
  ops: number;
  id: number;
  seed: number;
}

const job = workerData as DemoJob;
const heap = Heap.attach(job.heap);
const a = heap.attachAllocator(job.alloc);
let seed = job.seed >>> 0 || 1;
function rand(): number {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>>= 0);
}

// Message layout: [writer id u32][sequence u32][length u32][checksum u32][payload ...]
function checksum(u8: Uint8Array, p: number, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ u8[p + i]!, 0x01000193);
  return h >>> 0;
}

let sent = 0;
let received = 0;
let fromOthers = 0;
let failures = 0;
for (let i = 0; i < job.ops; i++) {
  const len = 16 + (rand() % 1000);
  const p = a.alloc(16 + len);
  if (p === 0) {
    failures++;
    continue;
  }
  const u8 = heap.u8;
  const u32 = heap.u32;
  for (let j = 0; j < len; j++) u8[p + 16 + j] = rand() & 255;
  u32[p >>> 2] = job.id;
  u32[(p >>> 2) + 1] = i;
  u32[(p >>> 2) + 2] = len;
  u32[(p >>> 2) + 3] = checksum(u8, p + 16, len);
  sent++;
  const slot = rand() % job.mailboxSlots;
  const old = Atomics.exchange(heap.u32, (job.mailbox >>> 2) + slot, p) >>> 0;
  if (old !== 0) {
    heap.refresh();
    const v = heap.u32;
    const n = v[(old >>> 2) + 2]!;
    if (checksum(heap.u8, old + 16, n) !== v[(old >>> 2) + 3]) throw new Error(`message at ${old} is corrupt`);
    if (v[old >>> 2] !== job.id) fromOthers++;
    received++;
    a.free(old);
  }
}
a.detach();
heap.detach();
parentPort!.postMessage({ id: job.id, sent, received, fromOthers, failures });
