/**
 * Linearizability of the hash map under real workers.
 *
 * Three workers run random operations (update with ANY / NOEXIST / EXIST,
 * delete, lookup) on 8 keys, 100 each per history, recording invocation and
 * response on a shared logical clock; every write's value is unique. The
 * checker (../util/lincheck.ts: Wing & Gong / Lowe search with memoization,
 * split per key) must find each history linearizable against a sequential
 * map. Ten histories (or more, until enough operations overlapped) for
 * each of four map shapes: both element modes; one bucket (all keys in one
 * chain: inserts, replaces and deletes next to each other under lock-free
 * readers) or a few; and maxEntries just above the number of keys, where
 * the entry count is exact (no per-agent quotas) and any FULL would be
 * spurious. Zero violations, and no FULL, NO_MEMORY or BUSY at all.
 *
 * The checker itself is tested in test/unit/lincheck.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap, MapStatus } from '../../src/index.js';
import { checkMapHistory } from '../util/lincheck.js';
import { assertMapValid, liveElements, runWorkers } from '../util/map-checks.js';
import { LIN_CLOCK_WORDS, LIN_VALUE_SIZE, type LinJob, type LinResult } from '../util/map-jobs.js';
import { deriveSeed, seedNote, testSeed } from '../util/prng.js';

const WORKER = new URL('./workers/map-lin-worker.js', import.meta.url);
const SEED = testSeed();
const WORKERS = 3;
const OPS = 100;
const KEYS = 8;

const { OK, NOT_FOUND, EXISTS } = MapStatus;

/* ------------------------------- the map --------------------------------- */

interface Shape {
  mode: 'prealloc' | 'dynamic';
  buckets?: number;
  maxEntries: number;
}

/**
 * With maxEntries = KEYS + WORKERS no insert may ever see FULL: at most
 * KEYS keys exist, and a delete gives its entry back only after it has
 * unlinked the key, so at most one entry per worker is counted for a key
 * already gone. (With maxEntries = KEYS such a delete in flight can make a
 * concurrent insert report FULL although the map never held maxEntries
 * keys while it ran; see the notes on entry counting.)
 */
const SHAPES: Shape[] = [
  { mode: 'dynamic', maxEntries: 64 },
  { mode: 'prealloc', buckets: 1, maxEntries: 64 },
  { mode: 'dynamic', buckets: 1, maxEntries: KEYS + WORKERS },
  { mode: 'prealloc', buckets: 2, maxEntries: KEYS + WORKERS },
];
const HISTORIES_PER_BATCH = 10;
/**
 * The check means something only if operations of different workers
 * overlap. A batch usually brings several hundred overlapping operations;
 * on a busy machine the OS may run the workers one after the other, so
 * more batches run (up to MAX_BATCHES) until WANTED_OVERLAP is reached,
 * and the test fails only below MIN_OVERLAP.
 */
const WANTED_OVERLAP = 300;
const MIN_OVERLAP = 30;
const MAX_BATCHES = 6;

async function runBatch(shape: Shape, seed: number, note: string): Promise<{ overlapping: number; total: number; steps: number }> {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 8 });
  const map = HashMap.create(heap, { keySize: 8, valueSize: LIN_VALUE_SIZE, mode: shape.mode, maxEntries: shape.maxEntries, seed, ...(shape.buckets === undefined ? {} : { buckets: shape.buckets }) });
  const clock = new SharedArrayBuffer(LIN_CLOCK_WORDS * 4);
  const specs = Array.from({ length: WORKERS }, (_, worker) => ({
    script: WORKER,
    name: `worker ${worker}`,
    data: {
      heap: heap.handle,
      map: map.handle,
      seed,
      worker,
      workers: WORKERS,
      histories: HISTORIES_PER_BATCH,
      opsPerHistory: OPS,
      keys: KEYS,
      clock,
      deadlineMs: 20_000,
    } satisfies LinJob,
  }));
  const results = await runWorkers<LinResult>(specs, 25_000, note);
  for (const [w, r] of results.entries()) {
    assert.deepEqual(r.torn, [], `${note}: worker ${w} read torn values`);
    assert.equal(r.undrained, 0, `${note}: worker ${w} could not run its deferred frees before detaching`);
  }
  let overlapping = 0;
  let total = 0;
  let steps = 0;
  for (let h = 0; h < HISTORIES_PER_BATCH; h++) {
    const ops = results.flatMap((r) => r.histories[h]!);
    assert.equal(ops.length, WORKERS * OPS);
    const odd = ops.filter((o) => o.output.status !== OK && o.output.status !== NOT_FOUND && o.output.status !== EXISTS);
    assert.deepEqual(odd.map((o) => `key ${o.key}: ${o.input.kind} -> ${o.output.status}`), [], `${note}, history ${h}: FULL, NO_MEMORY or BUSY`);
    const verdict = checkMapHistory(ops);
    steps += verdict.steps;
    if (verdict.violations.length > 0) {
      assert.fail(`${note}, history ${h} is not linearizable:\n${verdict.violations.map((v) => v.report).join('\n')}`);
    }
    for (const o of ops) {
      total++;
      if (ops.some((p) => p.worker !== o.worker && p.call < o.ret && o.call < p.ret)) overlapping++;
    }
  }
  assert.equal(map.count(), 0, `${note}: worker 0 deleted every history's keys`);
  assert.equal(liveElements(map), 0, `${note}: every element came back`);
  assertMapValid(map, heap, note);
  map.destroy();
  return { overlapping, total, steps };
}

for (const [s, shape] of SHAPES.entries()) {
  const name = `${shape.mode}, ${shape.buckets ?? 'default'} bucket(s), maxEntries ${shape.maxEntries}`;
  test(`linearizability (${name}): histories of ${WORKERS} workers x ${OPS} operations on ${KEYS} keys`, async (t) => {
    let overlapping = 0;
    let total = 0;
    let steps = 0;
    let batches = 0;
    while (batches < MAX_BATCHES && overlapping < WANTED_OVERLAP) {
      const seed = deriveSeed(SEED, s, batches);
      const r = await runBatch(shape, seed, `${name}, batch ${batches}, ${seedNote(SEED)}`);
      overlapping += r.overlapping;
      total += r.total;
      steps += r.steps;
      batches++;
    }
    t.diagnostic(`${batches * HISTORIES_PER_BATCH} histories, all linearizable; ${overlapping} of ${total} operations overlapped another worker's; ${steps} checker steps`);
    assert.ok(overlapping >= MIN_OVERLAP, `${name}, ${seedNote(SEED)}: in ${batches} batches only ${overlapping} of ${total} operations overlapped another worker's`);
  });
}
