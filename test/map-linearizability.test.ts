/**
 * Linearizability of the hash map under real workers.
 *
 * Three workers run random operations (update with ANY / NOEXIST / EXIST,
 * delete, lookup) on 8 keys, 100 each per history, recording invocation and
 * response on a shared logical clock; every write's value is unique. The
 * checker (./util/lincheck.ts: Wing & Gong / Lowe search with memoization,
 * split per key) must find each history linearizable against a sequential
 * map. Ten histories (or more, until enough operations overlapped) for
 * each of four map shapes: both element modes; one bucket (all keys in one
 * chain: inserts, replaces and deletes next to each other under lock-free
 * readers) or a few; and maxEntries just above the number of keys, where
 * the entry count is exact (no per-agent quotas) and any FULL would be
 * spurious. Zero violations, and no FULL, NO_MEMORY or BUSY at all.
 *
 * The checker itself is tested first: it rejects hand-made histories that
 * are not linearizable, accepts ones that are only by a non-obvious
 * order, handles operations with unknown outcome, and agrees with an
 * exhaustive search on thousands of small random histories.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap, MapFlag, MapStatus } from '../src/index.js';
import {
  type MapInput,
  type MapOp,
  type MapOutput,
  type Operation,
  checkByBruteForce,
  checkLinearizable,
  checkMapHistory,
  mapKeyModel,
  withUnknownOutcomes,
} from './util/lincheck.js';
import { assertMapValid, liveElements, runWorkers } from './util/map-checks.js';
import { LIN_CLOCK_WORDS, LIN_VALUE_SIZE, type LinJob, type LinResult } from './util/map-jobs.js';
import { Prng, deriveSeed, seedNote, testSeed } from './util/prng.js';

const WORKER = new URL('./workers/map-lin-worker.js', import.meta.url);
const SEED = testSeed();
const WORKERS = 3;
const OPS = 100;
const KEYS = 8;

/* ------------------------------ the checker ------------------------------- */

const { ANY, NOEXIST, EXIST } = MapFlag;
const { OK, NOT_FOUND, EXISTS } = MapStatus;

function upd(call: number, ret: number, flag: number, value: number, status: number, worker = 0): MapOp {
  return { call, ret, key: 1, worker, input: { kind: 'update', flag, value }, output: { status, found: false, value: 0 } };
}
function del(call: number, ret: number, status: number, worker = 0): MapOp {
  return { call, ret, key: 1, worker, input: { kind: 'delete', flag: 0, value: 0 }, output: { status, found: false, value: 0 } };
}
function get(call: number, ret: number, found: number | null, worker = 0): MapOp {
  return { call, ret, key: 1, worker, input: { kind: 'lookup', flag: 0, value: 0 }, output: { status: 0, found: found !== null, value: found ?? 0 } };
}
function linearizable(ops: MapOp[]): boolean {
  return checkMapHistory(ops).violations.length === 0;
}

test('checker: rejects histories that are not linearizable', () => {
  const bad: [string, MapOp[]][] = [
    ['a completed write is missed by a later lookup', [upd(0, 1, ANY, 7, OK), get(2, 3, null)]],
    ['a lookup returns a value nobody wrote', [upd(0, 5, ANY, 7, OK), get(1, 2, 8)]],
    ['two overlapping NOEXIST inserts both succeed', [upd(0, 3, NOEXIST, 1, OK), upd(1, 2, NOEXIST, 2, OK, 1)]],
    ['a stale read after a newer write completed', [upd(0, 1, ANY, 1, OK), upd(2, 3, ANY, 2, OK), get(4, 5, 1)]],
    ['a delete succeeds on a key never inserted', [del(0, 1, OK)]],
    ['EXIST succeeds on an absent key', [upd(0, 1, EXIST, 3, OK)]],
    ['an insert reports EXISTS on an absent key', [upd(0, 1, NOEXIST, 3, EXISTS)]],
    ['a key deleted twice', [upd(0, 1, ANY, 1, OK), del(2, 5, OK), del(3, 6, OK, 1)]],
    [
      // Both writes overlap every read, but the reads are sequential and
      // see 1, then 2, then 1 again: no order of two writes does that.
      'reads flip back to an overwritten value',
      [upd(0, 20, ANY, 1, OK), upd(0, 20, ANY, 2, OK, 1), get(1, 2, 1, 2), get(3, 4, 2, 2), get(5, 6, 1, 2)],
    ],
  ];
  for (const [what, ops] of bad) {
    const verdict = checkMapHistory(ops);
    assert.equal(verdict.violations.length, 1, what);
    assert.match(verdict.violations[0]!.report, /key 1: no order works/, what);
  }
});

test('checker: accepts linearizable histories, including ones that need a non-obvious order', () => {
  // Overlapping operations may take either order.
  assert.ok(linearizable([upd(0, 3, ANY, 7, OK), get(1, 2, null, 1)]));
  assert.ok(linearizable([upd(0, 3, ANY, 7, OK), get(1, 2, 7, 1)]));
  // The later-invoked insert wins the race, so the first reports EXISTS.
  assert.ok(linearizable([upd(0, 10, NOEXIST, 1, EXISTS), upd(1, 2, NOEXIST, 2, OK, 1), get(11, 12, 2)]));
  // Reads 1 then 2 with overlapping writes: write 1 first, then 2.
  assert.ok(linearizable([upd(0, 20, ANY, 1, OK), upd(0, 20, ANY, 2, OK, 1), get(1, 2, 1, 2), get(3, 4, 2, 2)]));
  // Delete overlapping an insert: either order, and NOT_FOUND is fine if it went first.
  assert.ok(linearizable([upd(0, 4, ANY, 1, OK), del(1, 3, NOT_FOUND, 1), get(5, 6, 1)]));
  assert.ok(linearizable([upd(0, 4, ANY, 1, OK), del(1, 3, OK, 1), get(5, 6, null)]));
  // FULL / NO_MEMORY / BUSY change nothing.
  assert.ok(linearizable([upd(0, 1, ANY, 1, MapStatus.FULL), get(2, 3, null)]));
  // Keys are independent: a violation on one key does not hide behind another.
  const two = [upd(0, 1, ANY, 1, OK), { ...get(2, 3, null), key: 2 }, { ...get(4, 5, null), key: 1 }];
  assert.deepEqual(checkMapHistory(two).violations.map((v) => v.key), [1]);
});

test('checker: an operation with unknown outcome may take effect any time after its call, or never', () => {
  const unknown = (o: MapOutput): boolean => o.status === 1;
  const model = withUnknownOutcomes(mapKeyModel, unknown);
  const pending = (call: number, value: number): MapOp => ({ ...upd(call, Infinity, ANY, value, 1), ret: Infinity });
  assert.ok(checkLinearizable(model, [pending(0, 5), get(1, 2, null), get(3, 4, 5)]).ok, 'took effect late');
  assert.ok(checkLinearizable(model, [pending(0, 5), get(1, 2, null)]).ok, 'never took effect');
  assert.ok(!checkLinearizable(model, [get(0, 1, 5), pending(2, 5)]).ok, 'but not before its call');
  assert.ok(!checkLinearizable(model, [pending(0, 5), get(1, 2, 5), get(3, 4, null)]).ok, 'and only once');
});

test('checker: agrees with an exhaustive search on 3000 small random histories', () => {
  const seed = deriveSeed(SEED, 0xc4ec);
  const rng = new Prng(seed);
  let rejected = 0;
  for (let h = 0; h < 3000; h++) {
    // A linearizable history by construction: each operation takes effect
    // at a random instant inside its interval, in instant order...
    const n = rng.between(1, 6);
    const ops: Operation<MapInput, MapOutput>[] = [];
    const points: number[] = [];
    for (let i = 0; i < n; i++) {
      const call = rng.below(20);
      const ret = call + 1 + rng.below(8);
      points.push(call + 0.5 + rng.below(ret - call) * 0.999);
      const r = rng.below(5);
      const input: MapInput =
        r < 3 ? { kind: 'update', flag: rng.below(3), value: i + 1 } : r === 3 ? { kind: 'delete', flag: 0, value: 0 } : { kind: 'lookup', flag: 0, value: 0 };
      ops.push({ call, ret, input, output: { status: 0, found: false, value: 0 } });
    }
    let state = 0;
    for (const i of [...ops.keys()].sort((a, b) => points[a]! - points[b]!)) {
      const { input } = ops[i]!;
      const out = ops[i]!.output;
      if (input.kind === 'lookup') {
        out.found = state !== 0;
        out.value = state;
      } else if (input.kind === 'delete') {
        out.status = state !== 0 ? OK : NOT_FOUND;
        state = 0;
      } else if (input.flag === NOEXIST && state !== 0) {
        out.status = EXISTS;
      } else if (input.flag === EXIST && state === 0) {
        out.status = NOT_FOUND;
      } else {
        out.status = OK;
        state = input.value;
      }
    }
    assert.ok(checkLinearizable(mapKeyModel, ops).ok, `history ${h} is linearizable by construction (seed ${seed})`);
    // ...then, half the time, one result is changed.
    if (rng.chance(0.5)) {
      const o = ops[rng.below(n)]!;
      if (o.input.kind === 'lookup') {
        o.output.found = !o.output.found || rng.chance(0.5);
        o.output.value = o.output.found ? rng.between(0, n) : 0;
      } else {
        o.output.status = [OK, NOT_FOUND, EXISTS][rng.below(3)]!;
      }
    }
    const fast = checkLinearizable(mapKeyModel, ops).ok;
    assert.equal(fast, checkByBruteForce(mapKeyModel, ops), `history ${h} (seed ${seed}): ${JSON.stringify(ops)}`);
    if (!fast) rejected++;
  }
  assert.ok(rejected > 300, `only ${rejected} of the changed histories were not linearizable: the test is too weak`);
});

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
