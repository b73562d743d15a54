/**
 * The benchmark code: the matched-window runner (order, warm-up, per-cycle
 * ratios), the pair and map points that use it (every variant timed in
 * every cycle; map peers taking turns in the same workers each on their
 * own map), the command line, and the checked floor's checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TWIN_COLUMN, matchedRows, ratio, runMatched, twinOf } from '../matched.js';
import { measurePoint } from '../map/point.js';
import type { PointSpec } from '../map/protocol.js';
import { measurePair } from '../pair.js';
import { REPO_ROOT } from '../paths.js';
import { benchOptions } from '../run.js';
import { cycleRatios } from '../stats.js';

test('runMatched: the order reverses every cycle, warm-up cycles are not kept, values go to their variant', async () => {
  const calls: string[] = [];
  const c = (name: string, v: number) => ({ name, window: () => (calls.push(name), v + calls.length) });
  const m = await runMatched([c('a', 100), c('b', 200), c('c', 300)], 2, 1);
  assert.deepEqual(calls, ['a', 'b', 'c', 'c', 'b', 'a', 'a', 'b', 'c']);
  assert.deepEqual(m.names, ['a', 'b', 'c']);
  assert.deepEqual(m.values, [[106, 107], [205, 208], [304, 309]]);
  await assert.rejects(runMatched([c('a', 1)], 0), /cycles/);
});

test('cycleRatios and ratio: median and quartiles of the per-cycle ratios, not the ratio of medians', () => {
  // Per cycle: 2, 1, 2, 2, 1 -> sorted [1, 1, 2, 2, 2]; the ratio of the medians (40 / 20) would say 2 with no spread.
  const r = cycleRatios([20, 20, 40, 40, 40], [10, 20, 20, 20, 40]);
  assert.deepEqual([r.median, r.q1, r.q3, r.n], [2, 1, 2, 5]);
  assert.equal(cycleRatios([3, 3, 3], [1, 1]).n, 2, 'only cycles both sides have');
  const m = { names: ['x', 'x@baseline'], values: [[10, 20, 10], [11, 18, 10]] };
  assert.ok(Math.abs(ratio(m, 'x@baseline', 'x').median - 1) < 1e-12);
  assert.ok(Number.isNaN(ratio(m, 'x', 'y').median), 'a missing variant gives NaN');
  assert.ok(Number.isNaN(ratio(m, 'x', undefined).median));
  assert.equal(twinOf('anyalloc-fixed@baseline'), 'anyalloc-fixed');
  assert.equal(twinOf('anyalloc'), undefined);
});

test('matchedRows: a baseline row is divided by the baseline\'s own reference where it ran, and by its twin in `x this build`', () => {
  const m = { names: ['pre', 'dyn', 'pre@baseline', 'dyn@baseline'], values: [[10, 10], [9, 9], [8, 8], [4, 4]] };
  const rows = matchedRows(m, String, [{ heading: 'x pre', ref: (n) => (n === 'pre' ? undefined : 'pre') }, TWIN_COLUMN]);
  assert.deepEqual(rows.map((r) => r.slice(4)), [
    ['-', '-'],
    ['0.90 (0.90-0.90)', '-'],
    ['0.80 (0.80-0.80)', '0.80 (0.80-0.80)'],
    ['0.50 (0.50-0.50)', '0.44 (0.44-0.44)'],
  ]);
});

test('pair point: every variant gets a time for every cycle, in its own instance; a baseline build runs beside this one', async () => {
  const r = await measurePair({ group: 'pair', size: 64, names: ['floor', 'anyalloc', 'anyalloc-fixed'], cycles: 3, windowMs: 4 });
  assert.deepEqual(r.names, ['floor', 'anyalloc', 'anyalloc-fixed']);
  assert.deepEqual(r.values.map((x) => x.length), [3, 3, 3]);
  for (const series of r.values) for (const x of series) assert.ok(x > 0 && Number.isFinite(x), `ns per pair ${x}`);
  await assert.rejects(measurePair({ group: 'pair', size: 64, names: ['no-such-variant'], cycles: 1, windowMs: 4 }), /unknown variant/);
  await assert.rejects(measurePair({ group: 'pair', size: 64, names: ['anyalloc@baseline'], cycles: 1, windowMs: 4 }), /--baseline/);
  // A copy of this build's dist/src in another directory: another module, as a checkout of an older commit would be.
  const dir = mkdtempSync(join(tmpdir(), 'anyalloc-baseline-'));
  try {
    cpSync(join(REPO_ROOT, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true });
    copyFileSync(join(REPO_ROOT, 'package.json'), join(dir, 'package.json'));
    const b = await measurePair({ group: 'pair', size: 64, names: ['anyalloc', 'anyalloc@baseline'], cycles: 2, windowMs: 4, baseline: join(dir, 'dist', 'src', 'index.js') });
    assert.deepEqual(b.values.map((x) => x.length), [2, 2]);
    const map = await measurePoint(spec({ peers: ['anyalloc-dynamic', 'anyalloc-dynamic@baseline'], baseline: join(dir, 'dist', 'src', 'index.js') }));
    assert.equal(map.failures, 0);
    // A window can pass without rounds on a busy machine; a peer cannot.
    assert.ok(map.values.every((v) => v.length === 3 && v.some((x) => x > 0)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The tests' defaults (one worker, overwrite, three short cycles); each overrides what it is about. */
function spec(o: Partial<PointSpec>): PointSpec {
  return { scenario: 'overwrite', workers: 1, peers: ['anyalloc-prealloc', 'anyalloc-dynamic'], cycles: 3, windowMs: 20, warmupCycles: 1, ...o };
}

test('map point: add_del pairs delete exactly what their adder added, map by map, the JS Map server included', async () => {
  // The adder picks the peer of each round and the deleter follows it: a
  // deleter on the wrong map would find none of the round's keys (failed ops).
  const r = await measurePoint(spec({ scenario: 'add_del_on_diff_cpu', workers: 2, peers: ['anyalloc-prealloc', 'sharedmap', 'jsmap-postmessage'], cycles: 3, windowMs: 25, warmupCycles: 1 }));
  assert.equal(r.failures, 0);
  assert.equal(r.values.length, 3);
  for (const rates of r.values) {
    assert.equal(rates.length, 3);
    assert.ok(rates.some((x) => x > 0), `a peer with no rounds: ${rates.join(', ')}`);
  }
  assert.ok(r.peakMapBytes['anyalloc-prealloc']! > 0 && r.peakMapBytes['sharedmap']! > 0);
});

test('map point: bad specs are refused', async () => {
  await assert.rejects(measurePoint(spec({ peers: [] })), /1\.\.16 peers/);
  await assert.rejects(measurePoint(spec({ scenario: 'add_del_on_diff_cpu' })), /even worker count/);
  await assert.rejects(measurePoint(spec({ cycles: 0 })), /cycles/);
});

test('command line: unknown options and suites are refused, --quick sets the short run', () => {
  assert.throws(() => benchOptions(['--no-map']), /Unknown option/);
  assert.throws(() => benchOptions(['--suite', 'pairs']), /unknown suite/);
  assert.throws(() => benchOptions(['--sizes', '16,x']), /whole numbers/);
  assert.throws(() => benchOptions(['--baseline', '/nonexistent']), /not found/);
  const q = benchOptions(['--quick', '--suite', 'pair,map', '--workers', '2']);
  assert.deepEqual(q.suites, ['pair', 'map']);
  assert.deepEqual(q.sizes, [16, 256, 4096]);
  assert.deepEqual(q.workers, [2]);
  assert.equal(benchOptions(['--runs', '7']).pairCycles, 7);
});

test('the checked floor makes its checks: bad sizes, foreign, unaligned, non-integer and never-allocated pointers, double frees and watermarks throw, and nothing changes', async () => {
  const { CheckedFloor } = await import('../peers/floor-checked.js');
  const f = new CheckedFloor();
  const STRIDE = f.stacks.length / 11;
  const classOf = (p: number): number => Math.floor((Math.floor(p / 4096) - 1) / 64);
  const before = Int32Array.from(f.stacks);
  for (const size of [0, -1, 1.5, 4097, NaN, 2 ** 32 + 16]) assert.throws(() => f.alloc(size), RangeError, `size ${size}`);
  assert.throws(() => f.alloc('16' as unknown as number), TypeError);
  // Each size lands in its bucket: 16 32 64 96 128 192 256 512 1024 2048 4096.
  for (const [size, k] of [[1, 0], [16, 0], [17, 1], [96, 3], [97, 4], [192, 5], [193, 6], [4095, 10], [4096, 10]] as const) {
    const p = f.alloc(size);
    assert.equal(classOf(p), k, `size ${size}`);
    f.free(p);
  }
  const p = f.alloc(100);
  const q = f.alloc(16);
  assert.notEqual(p, q);
  assert.equal(p & 15, 0);
  const snapshot = Int32Array.from(f.stacks);
  assert.throws(() => f.free(1344 * 4096 + 256), RangeError, 'a page that is not this allocator\'s');
  assert.throws(() => f.free(p + 8), RangeError, 'not on a boundary');
  assert.throws(() => f.free(p + 0.5), RangeError, 'not an integer');
  assert.throws(() => f.free(p + 2 ** 32), RangeError, '2^32 past an object');
  assert.throws(() => f.free(1 << 30), RangeError, 'outside the heap');
  assert.throws(() => f.free(p + 16), RangeError, 'never allocated');
  assert.throws(() => f.free('0' as unknown as number), TypeError);
  assert.deepEqual(f.stacks, snapshot, 'refused frees change nothing');
  f.free(p);
  assert.throws(() => f.free(p), RangeError, 'double free');
  f.free(q);
  const frees = (k: number): number => f.stacks[k * STRIDE + 3]!;
  assert.equal(frees(0), 1 + 2, 'the 16-byte class counted its frees (two from the bucket walk)');
  assert.equal(frees(4), 1 + 1, 'and the 128-byte class its');
  // Every count and entry as it was; only the frees counters moved.
  const skip = (_: number, i: number): boolean => i % STRIDE !== 3;
  assert.deepEqual(Array.from(f.stacks).filter(skip), Array.from(before).filter(skip), 'every stack as it was');
  // The watermarks are read from each class's header.
  f.stacks[4 * STRIDE + 1] = f.stacks[4 * STRIDE]!;
  assert.throws(() => f.alloc(100), /low watermark/);
  f.stacks[4 * STRIDE + 1] = 2;
  const r = f.alloc(100);
  f.stacks[4 * STRIDE + 2] = f.stacks[4 * STRIDE]!;
  assert.throws(() => f.free(r), /high watermark/);
});
