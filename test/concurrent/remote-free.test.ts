/**
 * Remote-free exhaustion tests, after snmalloc's: in a heap or allocator
 * of small, fixed capacity, worker A allocates and hands every block to
 * worker B through a single-producer/single-consumer ring, and B frees it.
 * A keeps going for many times the capacity. Every block is freed by an
 * agent that did not allocate it, so if any remote free were lost (left in
 * a list nobody reads, counted wrongly, or pushed onto a depot A cannot
 * pop from) A would run out and alloc would return 0, which fails the
 * test. B checks every block's cookie (which includes its sequence number)
 * before freeing it.
 *
 * The sizing is worked out below so that a correct allocator cannot run
 * out: the objects outside the depot at any moment are bounded by the ring
 * plus a few caches, far below the capacity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUCKET_SIZES, Heap, MAX_SMALL, type Allocator } from '../../src/index.js';
import { slabGeometry } from '../../src/alloc/sizeclass.js';
import { assertDestroyClean, assertHeapValid, liveObjects } from '../util/checks.js';
import { seedNote, testSeed } from '../util/prng.js';
import type { ConsumerResult, ProducerJob, ProducerResult, RemoteJob } from '../util/remote-protocol.js';
import { SpscRing } from '../util/spsc-ring.js';
import { runWorkerGroup } from '../util/workers.js';

const PRODUCER = new URL('./workers/remote-producer.js', import.meta.url);
const CONSUMER = new URL('./workers/remote-consumer.js', import.meta.url);
const MARKS = { lowWatermark: 2, highWatermark: 8, batch: 4, prefill: 1 } as const;
const TIMEOUT_MS = 30_000;
const DEADLINE_MS = 20_000;

/**
 * Most objects of one class outside the depot at any moment: the ring,
 * one block in each worker's hands, and three caches (producer, consumer,
 * and the main thread's prefill), each holding fewer than high + batch
 * objects (a cache is trimmed synchronously when it reaches high + batch).
 */
function maxOutside(ringCapacity: number): number {
  return ringCapacity + 2 + 3 * (MARKS.highWatermark + MARKS.batch);
}

/**
 * Slab pages a class can need: a new slab is carved only when the depot
 * is empty, that is, when every object of the existing slabs is outside
 * it; one more slab per class covers a pop that lost the depot's try-lock
 * to the consumer's prefill.
 */
function maxSlabPages(unit: number, pageSize: number, ringCapacity: number): number {
  const slab = slabGeometry(pageSize, unit);
  return (Math.floor(maxOutside(ringCapacity) / slab.perSlab) + 2) * slab.pages;
}

interface RemoteRun {
  producer: ProducerResult;
  consumer: ConsumerResult;
  ms: number;
}

async function runRemoteFree(
  heap: Heap,
  a: Allocator,
  ring: SpscRing,
  producerJob: Omit<ProducerJob, keyof RemoteJob>,
  seed: number,
  note: string,
): Promise<RemoteRun> {
  const handles = [heap.reserveSlot(), heap.reserveSlot()] as const;
  const common = { alloc: a.handle, ring: ring.buffer, seed, deadlineMs: DEADLINE_MS };
  const producer: ProducerJob = { ...common, ...producerJob, heap: handles[0] };
  const consumer: RemoteJob = { ...common, heap: handles[1] };
  const started = performance.now();
  // One group: if either worker fails, the other is stopped at once.
  const out = await runWorkerGroup<ProducerResult | ConsumerResult>(
    [
      { script: PRODUCER, data: producer, name: 'producer' },
      { script: CONSUMER, data: consumer, name: 'consumer' },
    ],
    { timeoutMs: TIMEOUT_MS },
  );
  if (out.failures.length > 0) {
    for (const i of out.failed) heap.releaseSlot(handles[i]!.slot, handles[i]!.gen);
    assert.fail(`${note}:\n  ${out.failures.join('\n  ')}`);
  }
  return {
    producer: out.results[0] as ProducerResult,
    consumer: out.results[1] as ConsumerResult,
    ms: performance.now() - started,
  };
}

function checkAfterRun(heap: Heap, a: Allocator, ring: SpscRing, run: RemoteRun, note: string): void {
  const { producer, consumer } = run;
  assert.equal(consumer.frees, producer.allocs, `${note}: the consumer freed every block the producer made`);
  assert.equal(consumer.bytes, producer.bytes, `${note}: bytes freed vs bytes allocated`);
  assert.ok(producer.maxInFlight <= ring.capacity, `${note}: in-flight blocks bounded by the ring`);
  assert.equal(ring.pushed, producer.allocs, `${note}: every block went through the ring`);
  assert.equal(ring.popped, consumer.frees, `${note}: the ring is empty`);
  assertHeapValid(heap, note);
  const hs = heap.stats();
  assert.equal(hs.slotsAttached, 1, `${note}: both workers detached`);
  assert.equal(hs.slotsReserved, 0, `${note}: no reserved slot left`);
  const st = a.stats();
  assert.equal(st.failures, 0, `${note}: no allocation failed`);
  assert.equal(liveObjects(a), 0, `${note}: nothing live`);
  assertDestroyClean(a, note);
  assertHeapValid(heap, `${note}, after destroy`);
  assert.equal(heap.stats().usedPages, 0, `${note}: every page went back`);
}

test('remote free: a fixed-size allocator capped by limitBytes serves 500x its capacity', async () => {
  const seed = testSeed();
  const note = `fixed, ${seedNote(seed)}`;
  const pageSize = 8 << 10;
  const unit = 64;
  const ringCapacity = 64;
  const perSlab = slabGeometry(pageSize, unit).perSlab;
  const limitPages = 3;
  const capacity = limitPages * perSlab; // 360 objects in three one-page slabs
  assert.ok(maxSlabPages(unit, pageSize, ringCapacity) <= limitPages, 'the limit must hold the worst case of a correct allocator');

  const heap = Heap.create({ maxBytes: 16 << 20, pageSize, maxWorkers: 4 });
  const a = heap.createAllocator({ unitSize: unit, limitBytes: limitPages * pageSize, ...MARKS });
  const ring = SpscRing.create(ringCapacity);
  const run = await runRemoteFree(
    heap,
    a,
    ring,
    { minAllocs: 500 * capacity, minBytes: 0, fixedUnit: unit, largeChance: 0, pageSize },
    seed,
    note,
  );
  const st = a.stats();
  assert.ok(run.producer.allocs >= 2 * capacity, `${note}: ran for at least twice the capacity`);
  assert.ok(st.peakChargedBytes <= limitPages * pageSize, `${note}: peak ${st.peakChargedBytes} bytes within the limit`);
  const objects = st.classes[0]!.objects;
  assert.ok(objects <= capacity, `${note}: ${objects} objects carved, capacity ${capacity}`);
  assert.ok(run.producer.allocs >= 2 * objects, `${note}: every object was reused (${run.producer.allocs} allocs of ${objects} objects)`);
  checkAfterRun(heap, a, ring, run, note);
  console.log(
    `remote free, fixed: ${run.producer.allocs} allocs through ${objects} objects (capacity ${capacity}), ` +
      `ring full ${run.producer.ringFull} times, consumer napped ${run.consumer.naps} times, ${run.ms.toFixed(0)} ms, ${seedNote(seed)}`,
  );
});

test('remote free: a small bucketed heap (all buckets, some large runs) serves 64x its size', async () => {
  const seed = testSeed();
  const note = `bucketed, ${seedNote(seed)}`;
  const pageSize = 16 << 10;
  const ringCapacity = 32;
  // Worst case of a correct allocator: every class's slabs, plus the pages
  // of each large block in flight (at most MAX_SMALL + pageSize bytes), plus
  // the meta pages and the allocator region; the heap is that big.
  const slabPages = BUCKET_SIZES.reduce((n, unit) => n + maxSlabPages(unit, pageSize, ringCapacity), 0);
  const largePages = maxOutside(ringCapacity) * Math.ceil((MAX_SMALL + pageSize) / pageSize);
  const probe = Heap.create({ maxBytes: 64 << 20, pageSize, maxWorkers: 4, maxAllocators: 4 });
  probe.createAllocator({ ...MARKS });
  const maxPages = slabPages + largePages + probe.stats().usedPages + probe.stats().metaPages + 4;
  const heap = Heap.create({ maxBytes: maxPages * pageSize, pageSize, maxWorkers: 4, maxAllocators: 4 });
  const a = heap.createAllocator({ ...MARKS });

  const ring = SpscRing.create(ringCapacity);
  const run = await runRemoteFree(
    heap,
    a,
    ring,
    { minAllocs: 4000, minBytes: 64 * maxPages * pageSize, fixedUnit: 0, largeChance: 0.05, pageSize },
    seed,
    note,
  );
  const hs = heap.stats();
  assert.ok(run.producer.bytes >= 2 * maxPages * pageSize, `${note}: allocated at least twice the heap's bytes`);
  assert.ok(run.producer.largeAllocs > 0, `${note}: some large runs went through the page heap`);
  assert.ok(hs.peakUsedPages <= maxPages, `${note}: peak pages within the heap`);
  assert.equal(hs.growFailures, 0, `${note}: the heap never failed to grow`);
  checkAfterRun(heap, a, ring, run, note);
  console.log(
    `remote free, bucketed: ${run.producer.allocs} allocs, ${run.producer.bytes} bytes (${run.producer.largeAllocs} large) ` +
      `through a ${maxPages * pageSize}-byte heap (peak ${hs.peakUsedPages} of ${maxPages} pages), ` +
      `ring full ${run.producer.ringFull} times, ${run.ms.toFixed(0)} ms, ${seedNote(seed)}`,
  );
});
