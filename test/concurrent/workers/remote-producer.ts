/**
 * Producer of the remote-free test (see ../remote-free.test.ts): allocates
 * blocks, fills each with its cookie and pushes it to the consumer, which
 * frees it. Its allocator has a small fixed capacity, so the producer only
 * keeps going if every remote free really returns memory it can reuse: a
 * lost remote free shows up as alloc returning 0.
 *
 * The alloc path never waits. When the ring is full the producer spins a
 * little, then naps briefly on the ring (bounded), and fails at its
 * deadline if the consumer stops draining.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BUCKET_SIZES, Heap, MAX_SMALL } from '../../../src/index.js';
import { fillCookie } from '../../util/cookie.js';
import { Prng, deriveSeed, seedNote } from '../../util/prng.js';
import type { ProducerJob, ProducerResult } from '../../util/remote-protocol.js';
import { SpscRing } from '../../util/spsc-ring.js';

const job = workerData as ProducerJob;
const where = `remote-free producer, ${seedNote(job.seed)}`;
const rng = new Prng(deriveSeed(job.seed, 1));
const ring = new SpscRing(job.ring);
const heap = Heap.attach(job.heap);
const a = heap.attachAllocator(job.alloc);
const deadline = performance.now() + job.deadlineMs;
const SPINS = 256;

function fail(msg: string): never {
  throw new Error(`${msg} [${where}]`);
}

function pickSize(): number {
  if (job.fixedUnit !== 0) return rng.chance(0.5) ? job.fixedUnit : rng.between(1, job.fixedUnit);
  if (rng.chance(job.largeChance)) return rng.between(MAX_SMALL + 1, MAX_SMALL + job.pageSize);
  const b = rng.below(BUCKET_SIZES.length);
  return rng.between(b === 0 ? 1 : BUCKET_SIZES[b - 1]! + 1, BUCKET_SIZES[b]!);
}

/** What the allocator holds, for the message when alloc fails. */
function describeAllocator(): string {
  const st = a.stats();
  const classes = st.classes
    .filter((c) => c.slabPages > 0)
    .map((c) => `${c.unit}B: ${c.slabPages} slabs, ${c.live} live, ${c.cached} cached, ${c.depot} in depot`);
  return `charged ${st.chargedBytes} of limit ${st.limitBytes}; large live ${st.large.live}; ${classes.join('; ')}`;
}

const result: ProducerResult = { allocs: 0, bytes: 0, largeAllocs: 0, ringFull: 0, maxInFlight: 0 };

while (result.allocs < job.minAllocs || result.bytes < job.minBytes) {
  const size = pickSize();
  const p = job.fixedUnit !== 0 && size === job.fixedUnit ? a.alloc() : a.alloc(size);
  if (p === 0) {
    fail(
      `alloc(${size}) returned 0 at block ${result.allocs} with ${ring.pushed - ring.popped} blocks in flight ` +
        `(a remote free was lost?): ${describeAllocator()}`,
    );
  }
  if (p % 16 !== 0) fail(`alloc(${size}) returned ${p}, not 16-byte aligned`);
  if (p + size > heap.viewBytes) fail(`alloc(${size}) returned ${p}, beyond this agent's views (${heap.viewBytes} bytes)`);
  fillCookie(heap.i32, heap.u8, p, size, result.allocs);
  result.bytes += a.usableSize(p);
  if (size > 4096 && job.fixedUnit === 0) result.largeAllocs++;
  result.allocs++;
  if (!ring.tryPush(p, size)) {
    result.ringFull++;
    for (let spin = 0; !ring.tryPush(p, size); spin++) {
      if (spin >= SPINS) ring.napUntilSpace();
      if (performance.now() > deadline) fail(`the consumer stopped draining the ring (block ${result.allocs - 1})`);
    }
  }
  const inFlight = ring.pushed - ring.popped;
  if (inFlight > result.maxInFlight) result.maxInFlight = inFlight;
}
ring.close();
a.detach();
heap.detach();
parentPort!.postMessage(result);
