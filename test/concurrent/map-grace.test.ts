/**
 * Grace periods of the hash map (elements freed with freeDeferred, reused
 * only once no reader can still hold them; see src/reclaim/epoch.ts).
 *
 * 1. Churn: two workers run a fixed number of random updates, deletes and
 *    lookups on 64 keys of a dynamic map; each samples how many of its
 *    frees wait for a grace period (deferredPending) and the map's memory.
 *    The bounds are stated below with their reasons. Afterwards every
 *    element has come back (elements out of the caches = count()).
 * 2. A reader pinned in read() on an element keeps it intact while another
 *    worker deletes that key and churns the others, and nothing retired
 *    meanwhile is freed; once the reader leaves, everything is.
 * 3. A reader that pinned and was terminated holds reclamation back until
 *    its slot is released; after heap.releaseSlot(slot, gen) deferred frees
 *    complete (map.collect() returns 0). Here with a real worker; with a
 *    second attachment in this thread pinned through epoch.ts pin() in
 *    test/unit/map-grace.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { MapFlag, MapStatus } from '../../src/index.js';
import { Barrier, pollWhileEquals } from '../util/barrier.js';
import { assertMapValid, graceMapHeap, liveElements, retire, runWorkers, u32Bytes } from '../util/map-checks.js';
import { type ChurnResult, type ChurnWhileHeldResult, GRACE, type GraceJob, type HoldResult, graceByte } from '../util/map-jobs.js';
import { seedNote, testSeed } from '../util/prng.js';

const WORKER = new URL('./workers/map-grace-worker.js', import.meta.url);
const SEED = testSeed();
const DEADLINE_MS = 20_000;

const CHURN_KEYS = 64;
const CHURN_OPS = 200_000;
const CACHE_ELEMENTS = 128 + 32; // the element allocator's high watermark + one batch (src/map/hashmap.ts)
/**
 * Most elements one agent may have waiting for a grace period. A
 * collection runs at every 64th deferred free and frees everything
 * retired before it once the other agents have left the read-side section
 * they were in. Readers pin for one lookup, so a collection fails only
 * while the other worker is inside a lookup, and then the limbo list grows
 * until it comes out: normally at the next collection, but if the OS
 * deschedules it inside the lookup, for a whole time slice, during which
 * this worker retires several hundred elements per millisecond (on this
 * 2-core machine, peaks of 2,000-6,000 were seen, each a climb of a few
 * thousand operations that dropped back to ~0 at once). 16384 allows a
 * stall of ~50 ms; one worker retires well over twice that many elements
 * in the run (checked below), so a scheme that stopped reclaiming would
 * pass the bound in its first half.
 */
const LIMBO_BOUND = 16_384;
/** Most of the time a limbo list holds less than two collection intervals. */
const LIMBO_MEDIAN_BOUND = 128;

function graceValue(key: number, size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => graceByte(key, i));
}

test(`grace periods under churn: 2 workers x ${CHURN_OPS} operations on ${CHURN_KEYS} keys; waiting memory stays bounded`, async (t) => {
  const note = seedNote(SEED);
  const { heap, map, used0 } = graceMapHeap(64, 1024, SEED);
  const barrier = Barrier.buffer();
  const specs = [0, 1].map((worker) => ({
    script: WORKER,
    name: `churn ${worker}`,
    data: { kind: 'churn', heap: heap.handle, map: map.handle, seed: SEED, worker, ops: CHURN_OPS, keys: CHURN_KEYS, sampleEvery: 256, barrier, deadlineMs: DEADLINE_MS } satisfies GraceJob,
  }));
  const results = await runWorkers<ChurnResult>(specs, DEADLINE_MS + 5_000, note);

  const unit = map.elementStats().unitSize;
  const perSlab = Math.floor((heap.pageSize - heap.pageSize / 16) / unit);
  const tableBytes = map.memoryBytes() - map.elementStats().chargedBytes;
  // Live keys, both limbo lists at their bound, both caches full, and one
  // slab of rounding per agent.
  const memoryBound = tableBytes + (Math.ceil((CHURN_KEYS + 2 * (LIMBO_BOUND + CACHE_ELEMENTS)) / perSlab) + 2) * heap.pageSize;
  for (const [w, r] of results.entries()) {
    const pending = r.samples.map((s) => s.pending).sort((a, b) => a - b);
    const median = pending[pending.length >> 1]!;
    const memory = Math.max(...r.samples.map((s) => s.memory));
    t.diagnostic(`worker ${w}: limbo peak ${r.maxPending}, median ${median}; map memory peak ${memory} bytes (bound ${memoryBound})`);
    assert.equal(r.undrained, 0, `${note}: worker ${w} could not run its deferred frees before detaching`);
    assert.deepEqual(Object.keys(r.statuses).filter((s) => Number(s) !== MapStatus.NOT_FOUND), [], `${note}: worker ${w} statuses ${JSON.stringify(r.statuses)}`);
    assert.ok(r.deleted > 2 * LIMBO_BOUND, `${note}: worker ${w} retired too few elements (${r.deleted} deletes) for the bound to mean anything`);
    assert.ok(r.maxPending <= LIMBO_BOUND, `${note}: worker ${w} had ${r.maxPending} elements waiting for a grace period (bound ${LIMBO_BOUND})`);
    assert.ok(median <= LIMBO_MEDIAN_BOUND, `${note}: worker ${w}'s limbo list held ${median} elements half the time (bound ${LIMBO_MEDIAN_BOUND})`);
    assert.ok(memory <= memoryBound, `${note}: worker ${w} saw the map take ${memory} bytes (bound ${memoryBound})`);
  }
  // Both workers drained their limbo lists and detached: every replaced or deleted element is back.
  assert.equal(map.collect(), 0, note);
  assert.equal(liveElements(map), map.count(), `${note}: elements out of the caches = elements in the map`);
  assertMapValid(map, heap, note);
  map.destroy();
  assert.equal(heap.stats().usedPages, used0, `${note}: destroy gives every page back`);
});

test('a reader pinned in read() keeps its element intact while another worker deletes it and churns; nothing retired meanwhile is freed', async () => {
  const note = seedNote(SEED);
  const VALUE = 64;
  const HELD = 1000;
  const { heap, map, used0 } = graceMapHeap(VALUE, 4096, SEED);
  assert.equal(map.update(u32Bytes(HELD), graceValue(HELD, VALUE), MapFlag.NOEXIST), MapStatus.OK);
  const control = new SharedArrayBuffer(GRACE.WORDS * 4);
  const base = { heap: heap.handle, map: map.handle, seed: SEED, control, key: HELD, deadlineMs: DEADLINE_MS };
  const [held, churned] = await runWorkers<HoldResult | ChurnWhileHeldResult>(
    [
      { script: WORKER, name: 'holder', data: { ...base, kind: 'hold', until: 'release' } satisfies GraceJob },
      { script: WORKER, name: 'churner', data: { ...base, kind: 'churn-while-held', ops: 20_000, keys: 256 } satisfies GraceJob },
    ],
    DEADLINE_MS + 5_000,
    note,
  );
  const h = held as HoldResult;
  const c = churned as ChurnWhileHeldResult;
  assert.ok(h.checks >= 2, `${note}: the holder checked its element ${h.checks} times`);
  assert.equal(h.bad, 0, `${note}: the held element changed ${h.bad} times while its reader was pinned`);
  assert.ok(c.retiredWhileHeld > 5_000, `${note}: only ${c.retiredWhileHeld} elements retired while the reader was pinned`);
  assert.ok(c.pendingWhileHeld >= c.retiredWhileHeld, `${note}: ${c.retiredWhileHeld} elements retired while the reader was pinned, only ${c.pendingWhileHeld} still waiting`);
  assert.equal(c.pendingAfter, 0, `${note}: once the reader left, every deferred free ran`);
  assert.equal(map.has(u32Bytes(HELD)), false);
  assert.equal(liveElements(map), map.count(), note);
  assertMapValid(map, heap, note);
  map.destroy();
  assert.equal(heap.stats().usedPages, used0, note);
});

test('a terminated worker that was pinned holds reclamation back until releaseSlot(slot, gen); then deferred frees complete', async () => {
  const note = seedNote(SEED);
  const VALUE = 32;
  const HELD = 7;
  const { heap, map, used0 } = graceMapHeap(VALUE, 1024, SEED);
  assert.equal(map.update(u32Bytes(HELD), graceValue(HELD, VALUE)), MapStatus.OK);
  const control = new SharedArrayBuffer(GRACE.WORDS * 4);
  const slot = heap.reserveSlot();
  const job: GraceJob = { kind: 'hold', heap: slot, map: map.handle, seed: SEED, control, key: HELD, until: 'hang', deadlineMs: DEADLINE_MS };
  const worker = new Worker(WORKER, { workerData: job });
  let failure: unknown = null;
  worker.on('error', (err) => (failure = err));
  try {
    await pollWhileEquals(new Int32Array(control), GRACE.PINNED, 0, DEADLINE_MS, 'the worker to pin');
    retire(map, 100, 300);
    assert.ok(map.collect() > 0, 'the pinned worker holds the deferred frees back');
  } finally {
    await worker.terminate();
  }
  assert.equal(failure, null, `${note}: the worker failed before it was terminated: ${String(failure)}`);
  assert.equal(Atomics.load(new Int32Array(control), GRACE.BAD), 0, 'the held element stayed intact');
  const waiting = map.collect();
  assert.ok(waiting >= 300, `the dead worker's pin still holds them (${waiting} waiting)`);
  assert.equal(heap.releaseSlot(slot.slot, slot.gen + 1), false, 'a stale generation releases nothing');
  assert.ok(map.collect() > 0, 'still held after a refused release');
  assert.equal(heap.releaseSlot(slot.slot, slot.gen), true);
  assert.equal(map.collect(), 0, 'reclamation goes on once the slot is released');
  retire(map, 1000, 100);
  assert.equal(map.collect(), 0, 'and keeps going');
  assert.equal(liveElements(map), map.count(), note);
  assertMapValid(map, heap, note);
  assert.equal(map.destroy(), 1);
  assert.equal(heap.stats().usedPages, used0, 'destroy gives every page back: the dead reader held nothing');
});
