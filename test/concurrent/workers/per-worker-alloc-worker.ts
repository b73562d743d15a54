/**
 * Worker of test/concurrent/per-worker-alloc.test.ts. In steps that start
 * together on a barrier:
 *   count: increments this worker's own copy (mine()) of every object the
 *     main thread allocated, `rounds` times, with plain writes: a uint32 at
 *     offset 0 and a float64 (+0.5) at offset 8;
 *   allocate: allocates `own` objects, checks that every copy is zero,
 *     stamps its own copy and publishes them in the shared table; and
 *     `leftForMain` more, stamped the same way, returned to the main thread;
 *   free: checks the next worker's published objects (its stamp in its
 *     slot's copy, zeros elsewhere) and frees them here, half of them
 *     deferred: objects allocated in one agent, freed in another.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Heap, PerWorkerAllocator, type HeapHandle, type PerWorkerAllocatorHandle } from '../../../src/index.js';
import { Barrier } from '../../util/barrier.js';

/** What the test posts to each worker. */
export interface PerWorkerJob {
  heap: HeapHandle;
  pw: PerWorkerAllocatorHandle;
  /** This worker's index (0..workers-1). */
  index: number;
  workers: number;
  /** Every worker's slot, by index. */
  slots: number[];
  /** The main thread's objects (Int32Array). */
  objects: SharedArrayBuffer;
  rounds: number;
  /** Objects each worker publishes for the next worker to free (Int32Array of workers x own). */
  table: SharedArrayBuffer;
  own: number;
  leftForMain: number;
  barrier: SharedArrayBuffer;
}

/** What each worker posts back. */
export interface PerWorkerResult {
  slot: number;
  increments: number;
  /** Objects of the next worker freed here. */
  freedHere: number;
  /** Objects allocated here for the main thread to check and free, with the stamp in this worker's copy. */
  leftForMain: { p: number; stamp: number }[];
}

/** The stamp a worker writes into its own copy of the i-th object it allocates. */
function stampOf(index: number, i: number): number {
  return index * 1_000_000 + i + 1;
}

const BARRIER_MS = 30_000;
const job = workerData as PerWorkerJob;
const heap = Heap.attach(job.heap);
const pw = PerWorkerAllocator.attach(heap, job.pw);
heap.refresh();
const barrier = new Barrier(job.barrier, job.workers);
const objects = new Int32Array(job.objects);
const table = new Int32Array(job.table);

function fail(msg: string): never {
  throw new Error(`worker ${job.index} (slot ${heap.slot}): ${msg}`);
}

// Count.
barrier.arrive(BARRIER_MS);
const u32 = heap.u32;
const f64 = heap.f64;
let increments = 0;
for (let r = 0; r < job.rounds; r++) {
  for (let i = 0; i < objects.length; i++) {
    const c = pw.mine(objects[i]!);
    u32[c >>> 2]++;
    f64[(c + 8) >>> 3]! += 0.5;
    increments++;
  }
}
barrier.arrive(BARRIER_MS);

// Allocate, check the zeroing, stamp our copy.
function allocStamped(i: number): number {
  const p = pw.alloc();
  if (p === 0) fail(`alloc returned 0 (object ${i})`);
  const u8 = heap.u8;
  for (let b = p; b < p + pw.objectBytes; b++) if (u8[b] !== 0) fail(`byte ${b - p} of a new object is ${u8[b]}, not 0`);
  heap.u32[pw.mine(p) >>> 2] = stampOf(job.index, i);
  return p;
}
for (let i = 0; i < job.own; i++) Atomics.store(table, job.index * job.own + i, allocStamped(i));
const leftForMain: { p: number; stamp: number }[] = [];
for (let i = 0; i < job.leftForMain; i++) leftForMain.push({ p: allocStamped(job.own + i), stamp: stampOf(job.index, job.own + i) });
barrier.arrive(BARRIER_MS);

// Check and free the next worker's objects.
const next = (job.index + 1) % job.workers;
heap.refresh(); // the next worker may have grown the heap
let freedHere = 0;
for (let i = 0; i < job.own; i++) {
  const p = Atomics.load(table, next * job.own + i);
  for (let s = 0; s < pw.slots; s++) {
    const want = s === job.slots[next] ? stampOf(next, i) : 0;
    const got = heap.u32[pw.copyOf(p, s) >>> 2];
    if (got !== want) fail(`object ${i} of worker ${next}: slot ${s}'s copy holds ${got}, want ${want}`);
  }
  if ((i & 1) === 0) pw.free(p);
  else pw.freeDeferred(p);
  freedHere++;
}
for (let i = 0; i < 1000 && pw.allocator.collectDeferred(true) > 0; i++);
pw.detach();
heap.detach();
const result: PerWorkerResult = { slot: job.slots[job.index]!, increments, freedHere, leftForMain };
parentPort!.postMessage(result);
