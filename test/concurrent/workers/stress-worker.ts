/**
 * One worker of the stress test (see ../stress.test.ts and
 * ../../util/stress-protocol.ts). It runs a seeded random mix of
 *   - allocations of random sizes, every block filled with its cookie,
 *   - frees of its own blocks, each checked against its cookie first,
 *   - swaps of a private block with a random shared slot (Atomics.exchange),
 *     so many blocks are freed by a worker other than their allocator,
 * then frees all its private blocks, empties about half of its share of
 * the shared slots (the rest survive into the next round's workers), and
 * detaches. Any broken check throws: the main thread sees the error, with
 * the worker, the round and the seed.
 */
import { workerData, parentPort } from 'node:worker_threads';
import { Heap, BUCKET_SIZES, type Allocator } from '../../../src/index.js';
import { checkCookie, fillCookie } from '../../util/cookie.js';
import { Prng, deriveSeed, seedNote } from '../../util/prng.js';
import {
  MAX_BLOCK_SIZE,
  blockPointer,
  blockSize,
  blockStamp,
  makeStamp,
  packBlock,
  stampOrigin,
  type StressJob,
  type StressResult,
} from '../../util/stress-protocol.js';

const job = workerData as StressJob;
const where = `stress worker ${job.worker}, round ${job.round}, ${seedNote(job.seed)}`;

function fail(msg: string): never {
  throw new Error(`${msg} [${where}]`);
}

const rng = new Prng(deriveSeed(job.seed, job.round, job.worker));
const heap = Heap.attach(job.heap);
let a: Allocator = heap.attachAllocator(job.alloc, { nowait: job.nowait });
const slots = new BigInt64Array(job.slots);
const myOrigin = job.round * job.workers + job.worker;

const result: StressResult = {
  worker: job.worker,
  allocs: 0,
  largeAllocs: 0,
  frees: 0,
  remoteFrees: 0,
  earlierRoundFrees: 0,
  received: 0,
  yields: 0,
  reattaches: 0,
  nowaitZeros: 0,
  perClass: new Array<number>(job.fixedUnit === 0 ? BUCKET_SIZES.length + 1 : 1).fill(0),
};

/** Private blocks, packed as in the shared slots (0n = empty). */
const local: bigint[] = new Array<bigint>(job.localBlocks).fill(0n);

/** A size from a uniformly chosen bucket (so all eleven run), sometimes large. */
function pickSize(): number {
  if (job.fixedUnit !== 0) return rng.chance(0.5) ? job.fixedUnit : rng.between(1, job.fixedUnit);
  if (rng.chance(job.largeChance)) return rng.between(5000, 70000);
  return sizeInBucket(rng.below(BUCKET_SIZES.length));
}

function sizeInBucket(b: number): number {
  const lo = b === 0 ? 1 : BUCKET_SIZES[b - 1]! + 1;
  return rng.between(lo, BUCKET_SIZES[b]!);
}

function classIndex(size: number): number {
  if (job.fixedUnit !== 0) return 0;
  const b = BUCKET_SIZES.findIndex((u) => u >= size);
  return b < 0 ? BUCKET_SIZES.length : b;
}

/**
 * Allocates a block of `size` bytes and fills it with its cookie. Returns
 * 0n only when a nowait attachment found the cache empty (then see
 * allocRetry). Synchronous on purpose: the loop awaits only at its
 * explicit yields, so the synchronous refill and trim paths run as well as
 * the deferred ones.
 */
function allocBlock(size: number): bigint {
  if (size > MAX_BLOCK_SIZE) fail(`size ${size} does not fit the slot encoding`);
  // Fixed mode: alloc() and alloc(size <= unit) must both work.
  const p = job.fixedUnit !== 0 && size === job.fixedUnit ? a.alloc() : a.alloc(size);
  if (p === 0) {
    if (!job.nowait) fail(`alloc(${size}) returned 0 (the heap is far from full)`);
    result.nowaitZeros++;
    return 0n;
  }
  if (p % 16 !== 0) fail(`alloc(${size}) returned ${p}, not 16-byte aligned`);
  const usable = a.usableSize(p);
  if (usable < size) fail(`alloc(${size}) returned ${p} with usableSize ${usable}`);
  // The views are renewed by alloc when it meets memory past them; a block
  // outside them would take the caller's writes nowhere.
  if (p + size > heap.viewBytes) {
    fail(`alloc(${size}) returned ${p}, beyond this agent's views (${heap.viewBytes} bytes; the buffer has ${heap.u8.buffer.byteLength})`);
  }
  const stamp = makeStamp(myOrigin, result.allocs);
  fillCookie(heap.i32, heap.u8, p, size, stamp);
  result.allocs++;
  result.perClass[classIndex(size)]!++;
  if (size > 4096 && job.fixedUnit === 0) result.largeAllocs++;
  return packBlock(p, size, stamp);
}

/** nowait found an empty cache: the refill runs in a microtask, so await one and retry. */
async function allocRetry(size: number): Promise<bigint> {
  for (let retry = 0; retry < 3; retry++) {
    await null;
    const v = allocBlock(size);
    if (v !== 0n) return v;
  }
  fail(`nowait alloc(${size}) still returned 0 after three microtask refills`);
}

/** Checks a block's cookie and frees it. */
function freeBlock(v: bigint, how: string): void {
  const p = blockPointer(v);
  const size = blockSize(v);
  const stamp = blockStamp(v);
  if (p + size > heap.viewBytes) heap.refresh();
  const bad = checkCookie(heap.i32, heap.u8, p, size, stamp);
  if (bad !== null) fail(`${how}: cookie broken before free (allocated by origin ${stampOrigin(stamp)}): ${bad}`);
  a.free(p);
  result.frees++;
  const origin = stampOrigin(stamp);
  if (origin !== myOrigin) result.remoteFrees++;
  if (Math.floor(origin / job.workers) !== job.round) result.earlierRoundFrees++;
}

async function run(): Promise<void> {
  for (let it = 0; it < job.iterations; it++) {
    const r = rng.below(100);
    const i = rng.below(local.length);
    if (r < 40) {
      const old = local[i]!;
      local[i] = 0n;
      if (old !== 0n) freeBlock(old, 'replace');
      const size = pickSize();
      local[i] = allocBlock(size) || (await allocRetry(size));
    } else if (r < 60) {
      const old = local[i]!;
      local[i] = 0n;
      if (old !== 0n) freeBlock(old, 'free');
    } else if (r < 61) {
      // A burst of one size drains that cache (a nowait worker then sees 0).
      const size = job.fixedUnit !== 0 ? job.fixedUnit : sizeInBucket(rng.below(BUCKET_SIZES.length));
      const n = rng.between(8, 24);
      for (let k = 0; k < n; k++) {
        const at = (i + k) % local.length;
        const old = local[at]!;
        local[at] = 0n;
        if (old !== 0n) freeBlock(old, 'burst');
        local[at] = allocBlock(size) || (await allocRetry(size));
      }
    } else {
      // Swap with a shared slot: what comes back was most likely
      // allocated by another worker (or in an earlier round).
      // (Draw before the swap, so the stream of random numbers does not
      // depend on what the other workers left in the slot.)
      const j = rng.below(slots.length);
      const freeNow = rng.chance(0.5);
      const got = Atomics.exchange(slots, j, local[i]!);
      local[i] = 0n;
      if (got !== 0n) {
        result.received++;
        heap.refresh();
        if (freeNow) {
          freeBlock(got, `received from slot ${j}`);
        } else {
          // Kept for later; check on arrival too, so a corrupted hand-over
          // is reported where it happened.
          const bad = checkCookie(heap.i32, heap.u8, blockPointer(got), blockSize(got), blockStamp(got));
          if (bad !== null) fail(`received from slot ${j}: ${bad}`);
          local[i] = got;
        }
      }
    }
    if (rng.below(64) === 0) {
      // Let the deferred refill/trim microtask run (the non-synchronous path).
      await null;
      result.yields++;
    }
    if (rng.below(4096) === 0) {
      // Give the caches back and attach again: flush and prefill paths.
      a.detach();
      a = heap.attachAllocator(job.alloc, { nowait: job.nowait });
      result.reattaches++;
    }
  }
  for (let i = 0; i < local.length; i++) {
    const v = local[i]!;
    local[i] = 0n;
    if (v !== 0n) freeBlock(v, 'end of run');
  }
  // About half of this worker's share of the shared slots is freed; the
  // rest survives into the next round.
  for (let j = job.worker; j < slots.length; j += job.workers) {
    if (!rng.chance(0.5)) continue;
    const v = Atomics.exchange(slots, j, 0n);
    if (v !== 0n) freeBlock(v, `end of round, slot ${j}`);
  }
}

await run();
a.detach();
heap.detach();
parentPort!.postMessage(result);
