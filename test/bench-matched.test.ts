/**
 * The benchmarks' matched windows: the map's (bench/map/interleave.ts),
 * where peers that take turns in the same workers must each get their own
 * rounds on their own map, and the alloc+free pair's
 * (bench/pair-matched.ts); in both the ratios must come from the same
 * cycles.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureInterleaved } from '../bench/map/interleave.js';
import type { InterleaveSpec } from '../bench/map/interleave-protocol.js';
import { DEFAULT_MAP, mapTargets, matchedRatio, type MapRow, type MatchedRow } from '../bench/map/run.js';
import { measureMatchedPairs } from '../bench/pair-matched.js';
import { pairTargets, type MatchedRow as PairMatchedRow } from '../bench/pair-targets.js';
import { cycleRatios } from '../bench/stats.js';
import { DEFAULT_THROUGHPUT, scalingMatched, type ScalingRow, type ThroughputRow, type ThroughputRun } from '../bench/throughput.js';

/** The tests' defaults (one worker, overwrite, three short cycles); each overrides what it is about. */
function spec(o: Partial<InterleaveSpec>): InterleaveSpec {
  return { scenario: 'overwrite', workers: 1, peers: ['anyalloc-prealloc', 'anyalloc-dynamic'], cycles: 3, windowMs: 20, warmupCycles: 0, keys: 'bytes', pairWindow: 8, ...o };
}

test('matched windows: add_del pairs delete exactly what their adder added, map by map', async () => {
  // The adder picks the peer of each round and the deleter follows it: a
  // deleter on the wrong map would find none of the round's keys (failed ops).
  const r = await measureInterleaved(spec({ scenario: 'add_del_on_diff_cpu', workers: 2, cycles: 4, windowMs: 25, warmupCycles: 1 }));
  assert.equal(r.failures, 0);
  assert.equal(r.rates.length, 2);
  for (const rates of r.rates) {
    assert.equal(rates.length, 4);
    for (const x of rates) assert.ok(x > 0, `a window with no rounds: ${rates.join(', ')}`);
  }
});

test('matched windows: every peer is measured on its own map (overwrite, number keys)', async () => {
  const r = await measureInterleaved(spec({ peers: ['anyalloc-dynamic', 'anyalloc-prealloc'], cycles: 3, keys: 'number' }));
  assert.equal(r.failures, 0);
  assert.deepEqual(r.rates.map((x) => x.length), [3, 3]);
});

test('matched windows: bad specs are refused', async () => {
  await assert.rejects(measureInterleaved(spec({ peers: ['anyalloc-dynamic'] })), /2\.\.16 peers/);
  await assert.rejects(measureInterleaved(spec({ scenario: 'add_del_on_diff_cpu' })), /even worker count/);
  await assert.rejects(measureInterleaved(spec({ cycles: 0 })), /cycles/);
});

test('matchedRatio: median and quartiles of the per-cycle ratios, not the ratio of medians', () => {
  const row: MatchedRow = {
    scenario: 'overwrite',
    workers: 2,
    peers: ['anyalloc-prealloc', 'anyalloc-dynamic', 'sharedmap'],
    // Machine speed changes from cycle to cycle; within a cycle dynamic is 0.9x to 1.1x prealloc.
    rates: [
      [10, 20, 10, 20, 10],
      [9, 22, 10, 18, 11],
      [1, 2, 1, 2, 1],
    ],
    failures: 0,
  };
  const r = matchedRatio(row, 'anyalloc-dynamic', 'anyalloc-prealloc');
  // Ratios: 0.9, 1.1, 1.0, 0.9, 1.1 -> sorted 0.9 0.9 1.0 1.1 1.1.
  assert.equal(r.n, 5);
  assert.ok(Math.abs(r.median - 1.0) < 1e-12);
  assert.ok(Math.abs(r.q1 - 0.9) < 1e-12);
  assert.ok(Math.abs(r.q3 - 1.1) < 1e-12);
  assert.ok(Math.abs(matchedRatio(row, 'anyalloc-prealloc', 'sharedmap').median - 10) < 1e-12);
  assert.ok(Number.isNaN(matchedRatio(row, 'anyalloc-prealloc', 'jsmap-postmessage').median));
  assert.ok(Number.isNaN(matchedRatio(undefined, 'anyalloc-prealloc', 'sharedmap').median));
});

test('cycleRatios (the pair table\'s ratios, and matchedRatio\'s): per-cycle ratios, quartiles over them', () => {
  // Per cycle: 2, 1, 2, 2, 1 -> sorted [1, 1, 2, 2, 2]; the ratio of the
  // medians (40 / 20) would say 2 with no spread.
  const r = cycleRatios([20, 20, 40, 40, 40], [10, 20, 20, 20, 40]);
  assert.deepEqual(r, { median: 2, q1: 1, q3: 2, n: 5 });
  assert.equal(cycleRatios([3, 3, 3], [1, 1]).n, 2, 'only cycles both sides have');
  assert.ok(Number.isNaN(cycleRatios([], []).median));
});

test('matched pair windows: every variant gets a time for every cycle, in its own instance', async () => {
  const r = await measureMatchedPairs(['floor', 'anyalloc', 'anyalloc-fixed'], 64, 3, 4);
  assert.deepEqual(r.variants, ['floor', 'anyalloc', 'anyalloc-fixed']);
  assert.deepEqual(r.ns.map((x) => x.length), [3, 3, 3]);
  for (const series of r.ns) for (const x of series) assert.ok(x > 0 && Number.isFinite(x), `ns per pair ${x}`);
  assert.deepEqual(r.unavailable, {});
  await assert.rejects(measureMatchedPairs(['floor'], 64, 0, 4), /cycles/);
  await assert.rejects(measureMatchedPairs(['no-such-variant'], 64, 1, 4), /unknown variant/);
});

test('map targets: a separate-process ratio whose runs fall on both sides of the line is unclear, not PASS or FAIL', () => {
  const row = (peer: MapRow['peer'], runs: number[]): MapRow => {
    const sorted = [...runs].sort((a, b) => a - b);
    return {
      peer, scenario: 'overwrite', workers: 2, runs, opsPerSec: sorted[sorted.length >> 1]!, min: sorted[0]!, max: sorted[sorted.length - 1]!,
      spread: 0, memMeanBytes: 1, memPeakBytes: 1, heapPeakBytes: 1, cpuPerWorker: 1, failures: 0,
    };
  };
  const o = { ...DEFAULT_MAP, workers: [2], scenarios: ['overwrite'] as const, peers: ['anyalloc-prealloc', 'anyalloc-dynamic', 'sharedmap'] as const };
  const verdictOf = (table: string, target: string): string => {
    const line = table.split('\n').find((l) => l.includes(target));
    assert.ok(line, `no row for ${target}`);
    return line.split('|')[3]!.trim();
  };
  const pre = row('anyalloc-prealloc', [100, 100, 100]);
  const sm = row('sharedmap', [10, 10, 10]);
  // Runs 0.90-1.10 around the 0.95 line: unclear, whatever the median.
  let t = mapTargets([pre, row('anyalloc-dynamic', [90, 110, 100]), sm], o);
  assert.equal(verdictOf(t, 'dynamic / prealloc ops/s >= 0.95'), 'unclear');
  // All runs above: PASS; all below: FAIL.
  t = mapTargets([pre, row('anyalloc-dynamic', [96, 99, 98]), sm], o);
  assert.equal(verdictOf(t, 'dynamic / prealloc ops/s >= 0.95'), 'PASS');
  t = mapTargets([pre, row('anyalloc-dynamic', [80, 94, 90]), sm], o);
  assert.equal(verdictOf(t, 'dynamic / prealloc ops/s >= 0.95'), 'FAIL');
  // The sharedmap line (10x): runs 9-11x span it; 12-13x pass.
  t = mapTargets([row('anyalloc-prealloc', [90, 110, 100]), row('anyalloc-dynamic', [120, 130, 125]), sm], o);
  assert.equal(verdictOf(t, 'anyalloc-prealloc / sharedmap ops/s >= 10'), 'unclear');
  assert.equal(verdictOf(t, 'anyalloc-dynamic / sharedmap ops/s >= 10'), 'PASS');
});

test('allocator targets: each verdict comes from the worst size of its group, in the direction of its line', () => {
  // ns per cycle; ratios per cycle are exact here.
  const row = (group: string, size: number, variants: string[], ns: number[]): PairMatchedRow => ({
    group,
    size,
    variants,
    ns: ns.map((x) => [x, x, x]),
    unavailable: {},
    checksum: 0,
  });
  const rows: PairMatchedRow[] = [
    row('pair', 16, ['floor', 'thing-malloc', 'anyalloc', 'anyalloc-fixed', 'uint8array'], [2, 13, 8, 7, 20]),
    row('pair', 256, ['floor', 'thing-malloc', 'anyalloc', 'anyalloc-fixed', 'uint8array'], [2, 13, 9.5, 7, 600]),
    row('churn', 16, ['floor', 'thing-malloc-1000', 'anyalloc-1000'], [2, 3000, 15]),
    row('churn', 256, ['floor', 'thing-malloc-1000', 'anyalloc-1000'], [2, 1400, 15]),
  ];
  const lines = pairTargets(rows, []).split('\n');
  const verdict = (what: string): string => {
    const l = lines.find((x) => x.includes(what));
    assert.ok(l, `a line for ${what}`);
    return l.split('|').map((c) => c.trim()).filter((c) => c !== '').at(-1)!;
  };
  // 256 B: 13 / 9.5 = 1.37 decides, though 16 B passes.
  assert.equal(verdict('empty pool (bucketed)'), 'FAIL');
  assert.equal(verdict('empty pool (fixed size)'), 'PASS');
  // Within 1.5x of the floor: the largest multiple (4.75 at 256 B) decides.
  assert.equal(verdict('within 1.5x of the floor'), 'FAIL');
  // 1400 / 15 = 93 at 256 B.
  assert.equal(verdict('1000 live blocks'), 'FAIL');
  // Only the 256-byte row counts: 600 / 9.5 = 63 (16 B would say 2.5).
  assert.equal(verdict('Uint8Array(256)'), 'PASS');
  assert.ok(lines.some((l) => l.includes('2 workers vs 1') && l.includes('not run') && l.includes('n/a')), 'a scaling target without runs says so');
  const passing = pairTargets([row('pair', 64, ['floor', 'anyalloc'], [4, 5])], []).split('\n');
  assert.ok(passing.some((l) => l.includes('within 1.5x of the floor') && l.includes('PASS')));
  assert.ok(passing.some((l) => l.includes('empty pool (bucketed)') && l.includes('n/a')), 'a target whose variants did not run is n/a');
  assert.ok(!passing.some((l) => l.includes('required checks')), 'no reference lines without the checked floor');
  // The checked floor's lines are references: no verdict, the range over sizes.
  const checked = pairTargets(
    [row('pair', 16, ['floor', 'floor-checked', 'anyalloc'], [2, 6, 8]), row('pair', 256, ['floor', 'floor-checked', 'anyalloc'], [2, 7, 9.1])],
    [],
  ).split('\n');
  const ref = (what: string): string => checked.find((l) => l.includes(what)) ?? '';
  assert.match(ref('the floor with the required checks vs the floor'), /\| 3\.00x-3\.50x \(2 sizes\) +\| - +\|$/);
  assert.match(ref('anyalloc vs the floor with the required checks'), /\| 1\.30x-1\.33x \(2 sizes\) +\| - +\|$/);
});

test('allocator targets: scaling comes from the back-to-back pairs when there are any, and 16 workers only counts on 16 cores', () => {
  const rows: PairMatchedRow[] = [];
  const tp = (peer: string, workers: number, median: number): ThroughputRow => ({ peer, workers, runs: [median], median, spread: 0, fails: 0 });
  const sc = (peer: string, workers: number, ratios: number[]): ScalingRow => {
    const one = ratios.map(() => 10);
    const many = ratios.map((r) => 10 * r);
    const s = [...ratios].sort((a, b) => a - b);
    return { peer, workers, one, many, median: s[Math.floor(s.length / 2)]!, q1: s[0]!, q3: s[s.length - 1]!, fails: 0 };
  };
  const line = (out: string, what: string): string => out.split('\n').find((l) => l.includes(what)) ?? '';
  // Separate runs only: 1.7x, FAIL.
  const separate = pairTargets(rows, [tp('anyalloc', 1, 10), tp('anyalloc', 2, 17)]);
  assert.match(line(separate, '2 workers vs 1'), /1\.70x \(separate runs\).*FAIL/);
  // On the line passes.
  assert.match(line(pairTargets(rows, [tp('anyalloc', 1, 10), tp('anyalloc', 2, 18)]), '2 workers vs 1'), /1\.80x \(separate runs\).*PASS/);
  // The 16-worker line is there when 16 workers did not run, and says so.
  assert.match(line(separate, '16 workers vs 1'), /not run.*n\/a/);
  // The back-to-back pairs decide when present: 1.9 (1.85-1.95), PASS, whatever the suite's medians say.
  const both = pairTargets(rows, [tp('anyalloc', 1, 10), tp('anyalloc', 2, 17)], [sc('anyalloc', 2, [1.85, 1.9, 1.95]), sc('private', 2, [1.9, 2, 2.1])]);
  assert.match(line(both, '2 workers vs 1'), /1\.90 \(1\.85-1\.95\)x back to back; private lists 2\.00 \(1\.90-2\.10\)x back to back.*PASS/);
  // 16 workers: not judged on 2 cores, judged on 16.
  const sixteen = [sc('anyalloc', 16, [11, 12.5, 13])];
  assert.match(line(pairTargets(rows, [], sixteen, 2), '16 workers vs 1'), /n\/a \(needs 16 cores, this machine has 2\)/);
  assert.match(line(pairTargets(rows, [], sixteen, 16), '16 workers vs 1'), /12\.50 \(11\.00-13\.00\).*PASS/);
  assert.match(line(pairTargets(rows, [], [sc('anyalloc', 16, [9, 10, 11])], 16), '16 workers vs 1'), /FAIL/);
});

test('back-to-back scaling: the order alternates, each rate goes to its count, the ratio is n workers over 1, failures add up', async () => {
  const calls: number[] = [];
  // Rates tell the runs apart: run k (0-based) with n workers gives n * 1000 + k.
  const fake = async (_peer: string, n: number): Promise<ThroughputRun> => {
    const k = calls.length;
    calls.push(n);
    return { opsPerSec: n * 1000 + k, perWorker: [], fails: n === 4 ? 1 : 0 };
  };
  const r = await scalingMatched('anyalloc', 4, 3, DEFAULT_THROUGHPUT, () => {}, fake);
  assert.deepEqual(calls, [1, 4, 4, 1, 1, 4], '1 first, then n first, then 1 first');
  assert.deepEqual(r.one, [1000, 1003, 1004]);
  assert.deepEqual(r.many, [4001, 4002, 4005]);
  const ratios = [4001 / 1000, 4002 / 1003, 4005 / 1004].sort((a, b) => a - b);
  assert.equal(r.median, ratios[1]);
  assert.equal(r.fails, 3);
  await assert.rejects(scalingMatched('anyalloc', 4, 1.5, DEFAULT_THROUGHPUT, () => {}, fake), RangeError);
  await assert.rejects(scalingMatched('anyalloc', 2.5, 2, DEFAULT_THROUGHPUT, () => {}, fake), RangeError);
});

test('back-to-back scaling with real workers: every pair has one run of each count, and the ratios are of the same pairs', async () => {
  const r = await scalingMatched('private', 2, 2, { ...DEFAULT_THROUGHPUT, durationMs: 20, warmupMs: 5 });
  assert.equal(r.one.length, 2);
  assert.equal(r.many.length, 2);
  assert.ok(r.one.every((x) => x > 0) && r.many.every((x) => x > 0));
  const ratios = r.many.map((m, i) => m / r.one[i]!).sort((a, b) => a - b);
  // Two pairs: the median is the mean of the two per-pair ratios (not a ratio of medians).
  assert.ok(Math.abs(r.median - (ratios[0]! + ratios[1]!) / 2) < 1e-12, 'median of the per-pair ratios');
  await assert.rejects(scalingMatched('private', 1, 2, DEFAULT_THROUGHPUT), RangeError);
});

test('the checked floor makes its checks: bad sizes, foreign, unaligned, non-integer and never-allocated pointers, double frees and watermarks throw, and nothing changes', async () => {
  const { CheckedFloor } = await import('../bench/peers/floor-checked.js');
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
  assert.throws(() => f.free(p + 2 ** 32), RangeError, 'above 2^32');
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
