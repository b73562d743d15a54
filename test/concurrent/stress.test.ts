/**
 * Multi-worker stress test, after mimalloc's test-stress.
 *
 * Each round starts WORKERS fresh workers on one heap and one allocator;
 * they allocate blocks of random sizes (all eleven buckets, and sometimes
 * large page runs), fill every block with a cookie derived from (pointer,
 * size, stamp), swap blocks through a shared slot array with
 * Atomics.exchange so that many blocks (tens of thousands a run) are freed
 * by another worker than the one that allocated them, and check each
 * cookie before freeing. One worker attaches with nowait, so its empty
 * caches return 0 and refill in a microtask. At the
 * end of a round every worker frees its private blocks and about half of
 * the shared ones, and detaches; the rest survive into the next round,
 * where workers that never saw them free them.
 *
 * Watermarks are tiny (low 2, high 8, batch 4, prefill 1) so refill, trim,
 * depot push/pop and slab carving run all the time; the heap starts at
 * its minimum size so it grows while workers run.
 *
 * After each round, with no worker running, the main thread checks:
 * heap.validate() is empty; every worker slot is free again; the live
 * objects the allocator counts equal the blocks left in the shared slots
 * (so nothing leaked or was freed twice); the survivors' cookies are
 * intact. At the end it frees the survivors itself, and destroy() must
 * report no leaks and give every page back.
 *
 * Seeded: ANYALLOC_SEED=<n> replays each worker's sequence of decisions
 * (operation, index, size, slot); what it finds in the shared slots still
 * depends on how the OS interleaves the workers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUCKET_SIZES, Heap, type AllocatorOptions, type HeapOptions } from '../../src/index.js';
import { assertDestroyClean, assertHeapValid, liveObjects } from '../util/checks.js';
import { checkCookie } from '../util/cookie.js';
import { seedNote, testSeed } from '../util/prng.js';
import {
  MAX_ORIGINS,
  blockPointer,
  blockSize,
  blockStamp,
  type StressJob,
  type StressResult,
} from '../util/stress-protocol.js';
import { runWorkerGroup } from '../util/workers.js';

const WORKER_SCRIPT = new URL('./workers/stress-worker.js', import.meta.url);
const WORKERS = 4;
const ROUNDS = 6;
const SHARED_SLOTS = 256;
const ROUND_TIMEOUT_MS = 30_000;
const SHRUNK_MARKS = { lowWatermark: 2, highWatermark: 8, batch: 4, prefill: 1 } as const;

interface StressConfig {
  name: string;
  heap: HeapOptions;
  allocator: AllocatorOptions;
  iterations: number;
  localBlocks: number;
  largeChance: number;
}

/** A round's results summed over the workers. */
type Totals = Omit<StressResult, 'worker'>;

/** Blocks in the shared slots, each with its cookie checked. */
function checkSurvivors(heap: Heap, slots: BigInt64Array, note: string): bigint[] {
  heap.refresh();
  const found: bigint[] = [];
  for (let j = 0; j < slots.length; j++) {
    const v = Atomics.load(slots, j);
    if (v === 0n) continue;
    const bad = checkCookie(heap.i32, heap.u8, blockPointer(v), blockSize(v), blockStamp(v));
    if (bad !== null) assert.fail(`${note}: surviving block in slot ${j} is corrupt: ${bad}`);
    found.push(v);
  }
  return found;
}

async function runStress(config: StressConfig): Promise<void> {
  const seed = testSeed();
  const note = `${config.name}, ${seedNote(seed)}`;
  assert.ok(ROUNDS * WORKERS <= MAX_ORIGINS, 'stamps must tell every (round, worker) apart');
  const heap = Heap.create(config.heap);
  const a = heap.createAllocator(config.allocator);
  const startBytes = heap.stats().committedBytes;
  const slotBuffer = new SharedArrayBuffer(SHARED_SLOTS * 8);
  const slots = new BigInt64Array(slotBuffer);
  const totals: Totals = {
    allocs: 0,
    frees: 0,
    largeAllocs: 0,
    remoteFrees: 0,
    earlierRoundFrees: 0,
    received: 0,
    yields: 0,
    reattaches: 0,
    nowaitZeros: 0,
    perClass: [],
  };
  const started = performance.now();

  for (let round = 0; round < ROUNDS; round++) {
    const where = `${note}, round ${round}`;
    const handles = Array.from({ length: WORKERS }, () => heap.reserveSlot());
    const jobs: StressJob[] = handles.map((h, w) => ({
      heap: h,
      alloc: a.handle,
      slots: slotBuffer,
      seed,
      round,
      worker: w,
      workers: WORKERS,
      iterations: config.iterations,
      localBlocks: config.localBlocks,
      fixedUnit: a.unitSize,
      largeChance: config.largeChance,
      // One worker in four never refills synchronously.
      nowait: w === WORKERS - 1,
    }));
    const out = await runWorkerGroup<StressResult>(
      jobs.map((data) => ({ script: WORKER_SCRIPT, data })),
      { timeoutMs: ROUND_TIMEOUT_MS },
    );
    if (out.failures.length > 0) {
      // Dead workers' caches go back so later tests are not disturbed.
      for (const i of out.failed) heap.releaseSlot(handles[i]!.slot, handles[i]!.gen);
      assert.fail(`${where}: ${out.failures.length} worker(s) failed:\n  ${out.failures.join('\n  ')}`);
    }
    for (const r of out.results) {
      assert.ok(r !== undefined);
      totals.allocs += r.allocs;
      totals.frees += r.frees;
      totals.largeAllocs += r.largeAllocs;
      totals.remoteFrees += r.remoteFrees;
      totals.earlierRoundFrees += r.earlierRoundFrees;
      totals.received += r.received;
      totals.yields += r.yields;
      totals.reattaches += r.reattaches;
      totals.nowaitZeros += r.nowaitZeros;
      r.perClass.forEach((n, c) => (totals.perClass[c] = (totals.perClass[c] ?? 0) + n));
      assert.ok(r.allocs > config.iterations / 4, `${where}: worker ${r.worker} allocated only ${r.allocs} blocks`);
    }

    // Quiet heap: every invariant must hold.
    assertHeapValid(heap, where);
    const hs = heap.stats();
    assert.equal(hs.slotsAttached, 1, `${where}: only the main thread stays attached`);
    assert.equal(hs.slotsReserved, 0, `${where}: no reserved slot left behind`);
    for (const h of handles) assert.equal(heap.releaseSlot(h.slot, h.gen), false, `${where}: slot ${h.slot} was detached`);

    // Nothing leaked, nothing freed twice: what the allocator counts as
    // live is exactly what survives in the shared slots.
    const survivors = checkSurvivors(heap, slots, where);
    assert.equal(totals.allocs - totals.frees, survivors.length, `${where}: allocs - frees vs surviving blocks`);
    assert.equal(liveObjects(a), survivors.length, `${where}: allocator's live objects vs surviving blocks`);
    assert.ok(survivors.length > 0, `${where}: some shared blocks must survive the round`);
    assert.ok(survivors.length < SHARED_SLOTS, `${where}: about half of the shared blocks must be freed at the end of a round`);
    // Only a nowait worker's empty caches may fail an allocation, and each
    // such failure is counted once, in that worker's cache row.
    assert.equal(a.stats().failures, totals.nowaitZeros, `${where}: allocation failures vs nowait zeros`);
  }

  // Every bucket (and large runs) was exercised; objects moved between workers and rounds.
  const classes = a.unitSize === 0 ? BUCKET_SIZES.length + (config.largeChance > 0 ? 1 : 0) : 1;
  for (let c = 0; c < classes; c++) assert.ok((totals.perClass[c] ?? 0) > 0, `${note}: class ${c} never allocated`);
  // (About 10% on two cores; fewer when one core runs the workers in turns.)
  assert.ok(totals.remoteFrees > totals.frees / 50, `${note}: only ${totals.remoteFrees} of ${totals.frees} frees were remote`);
  assert.ok(totals.earlierRoundFrees > 0, `${note}: no block survived into a later round and was freed there`);
  assert.ok(totals.yields > 0, `${note}: the deferred refill/trim path never ran`);
  assert.ok(totals.nowaitZeros > 0, `${note}: the nowait worker never found an empty cache`);
  assert.ok(heap.stats().committedBytes > startBytes, `${note}: the heap never grew while workers ran`);
  const st = a.stats();
  const refills = st.workers.reduce((n, w) => n + w.classes.reduce((m, c) => m + c.refills, 0), 0);
  const trims = st.workers.reduce((n, w) => n + w.classes.reduce((m, c) => m + c.trims, 0), 0);
  assert.ok(refills > 100 && trims > 100, `${note}: refill (${refills}) and trim (${trims}) paths must run often`);

  // The main thread frees the survivors (blocks of workers long gone).
  for (let j = 0; j < slots.length; j++) {
    const v = Atomics.exchange(slots, j, 0n);
    if (v === 0n) continue;
    heap.refresh();
    const p = blockPointer(v);
    const bad = checkCookie(heap.i32, heap.u8, p, blockSize(v), blockStamp(v));
    if (bad !== null) assert.fail(`${note}: block in slot ${j} is corrupt at the end: ${bad}`);
    a.free(p);
    totals.frees++;
  }
  assert.equal(totals.allocs, totals.frees, `${note}: every block allocated was freed once`);
  assertHeapValid(heap, `${note}, after the final frees`);
  assert.equal(liveObjects(a), 0, `${note}: no live objects left`);
  assertDestroyClean(a, note);
  assertHeapValid(heap, `${note}, after destroy`);
  assert.equal(heap.stats().usedPages, 0, `${note}: every page went back to the page heap`);

  const ms = performance.now() - started;
  // One line of evidence per run (node --test shows it with the test).
  console.log(
    `${config.name}: ${ROUNDS} rounds x ${WORKERS} workers, ${totals.allocs} allocs (${totals.largeAllocs} large), ` +
      `${totals.remoteFrees} remote frees, ${totals.earlierRoundFrees} from earlier rounds, ` +
      `${refills} refills, ${trims} trims, ${totals.reattaches} re-attaches, ${totals.nowaitZeros} nowait zeros, ` +
      `heap grew ${startBytes} -> ${heap.stats().committedBytes} bytes, ${ms.toFixed(0)} ms, ${seedNote(seed)}`,
  );
}

test('stress: bucketed allocator, 4 workers, 6 rounds, blocks freed across workers and rounds', async () => {
  await runStress({
    name: 'bucketed',
    // 16 KiB pages: the 4096-byte class has 3 objects per slab, so slabs
    // are carved often; the heap starts at its minimum and grows.
    heap: { maxBytes: 256 << 20, pageSize: 16 << 10, maxWorkers: 8, initialBytes: 0 },
    allocator: { ...SHRUNK_MARKS },
    iterations: 50_000,
    localBlocks: 64,
    largeChance: 0.02,
  });
});

test('stress: fixed-size allocator, 4 workers, 6 rounds', async () => {
  await runStress({
    name: 'fixed',
    heap: { maxBytes: 64 << 20, pageSize: 8 << 10, maxWorkers: 8, initialBytes: 0 },
    allocator: { unitSize: 48, ...SHRUNK_MARKS },
    iterations: 50_000,
    localBlocks: 64,
    largeChance: 0,
  });
});
