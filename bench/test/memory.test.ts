/**
 * The memory suite's code: the ideal is the live requested bytes, counted
 * the same way whatever the allocator; the workload is the same sequence
 * for every allocator of a seed; tiny runs of every case give sane
 * figures (used at least the live requested bytes, shares in (0, 1]);
 * the native replay reads the same live set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Arena,
  anyallocArena,
  fill,
  idealArena,
  inverseSquareSizes,
  larson,
  loadMemHeap,
  mixedWindow,
  mulberry32,
  phaseChange,
  phaseChangeAcross,
  randomSizes,
  thingArena,
  MiB,
} from '../memory.js';
import { nativeRandom, nativeReport } from '../native.js';
import { benchOptions } from '../run.js';

/** The ideal arena (fake pointers, the bytes of what is live), recording every call it gets. */
function countingArena(capacity: number): Arena & { calls: string[] } {
  const ideal = idealArena(capacity);
  const calls: string[] = [];
  return {
    ...ideal,
    name: 'counting',
    calls,
    alloc(n) {
      calls.push(`a${n}`);
      return ideal.alloc(n);
    },
    free(p) {
      calls.push(`f${p}`);
      ideal.free(p);
    },
  };
}

test('randomSizes: the live requested bytes are those the allocator holds; the ideal row counts them', () => {
  const a = countingArena(1 << 20);
  const r = randomSizes(a, 256, 1 << 20, 7);
  assert.equal(r.usedBytes, r.liveBytes);
  assert.equal(r.peakUsedBytes, r.peakLiveBytes);
  assert.equal(r.usedPerLive, 1);
  // Grown to half the heap, then churned around there.
  assert.ok(r.peakLiveBytes >= (1 << 20) / 2 && r.liveBytes > 0.4 * (1 << 20), `live ${r.liveBytes}, peak ${r.peakLiveBytes}`);
  assert.equal(r.failures, 0);
  // The fake fails exactly when the live bytes reach its capacity.
  assert.ok(r.firstFailureShare > 0.99 && r.firstFailureShare <= 1, String(r.firstFailureShare));
  // The suite's ideal is such an allocator.
  const i = randomSizes(idealArena(1 << 20), 256, 1 << 20, 7);
  assert.deepEqual({ ...i, allocator: 'counting' }, r);
});

test('randomSizes: one seed, one sequence of calls, whatever the allocator returns', () => {
  const a = countingArena(1 << 20);
  const b = countingArena(1 << 20);
  randomSizes(a, 4096, 1 << 20, 99);
  randomSizes(b, 4096, 1 << 20, 99);
  assert.deepEqual(a.calls.slice(0, 5000), b.calls.slice(0, 5000));
  const c = countingArena(1 << 20);
  randomSizes(c, 4096, 1 << 20, 100);
  assert.notDeepEqual(a.calls.slice(0, 100), c.calls.slice(0, 100));
});

test('mulberry32 and inverseSquareSizes: deterministic, in range, mostly small', () => {
  assert.deepEqual([1, 2, 3].map(mulberry32(5)), [1, 2, 3].map(mulberry32(5)));
  const s = inverseSquareSizes(4096, 4, 32768, mulberry32(1));
  assert.ok(s.every((x) => x >= 4 && x <= 32768));
  const sorted = [...s].sort((x, y) => x - y);
  assert.ok(sorted[2048]! < 16, `median ${sorted[2048]}`);
  assert.ok(sorted[4095]! > 1024, `max ${sorted[4095]}`);
});

test('tiny runs of anyalloc and thi.ng/malloc: used at least the live requested bytes, failures past half the heap', async () => {
  const Heap = await loadMemHeap();
  for (const arena of [anyallocArena(Heap, 8 * MiB), thingArena(8 * MiB)]) {
    const r = randomSizes(arena, 65536, 8 * MiB, 3, 1);
    arena.close();
    assert.ok(r.usedPerLive >= 1 && r.usedPerLive < 10, `${arena.name} used / live ${r.usedPerLive}`);
    assert.ok(r.peakCommittedBytes >= r.liveBytes && r.peakCommittedBytes <= 8 * MiB, `${arena.name} committed ${r.peakCommittedBytes}`);
    assert.ok(r.firstFailureShare > 0.25 && r.firstFailureShare <= 1, `${arena.name} first failure ${r.firstFailureShare}`);
  }
});

test('phase change: shares of a fresh heap in (0, 1], the same and across agents', async () => {
  const Heap = await loadMemHeap();
  const t = phaseChange(() => thingArena(4 * MiB), 100_000, 64);
  assert.equal(t.share, 1);
  const same = phaseChange(() => anyallocArena(Heap, 4 * MiB), 100_000, 64);
  const across = await phaseChangeAcross(Heap, 4 * MiB, 100_000, 64);
  for (const r of [same, across]) {
    assert.ok(r.aObjects > 0 && r.freshBBytes > 0);
    assert.ok(r.share > 0 && r.share <= 1, `${r.freedBy}: ${r.share}`);
  }
  assert.equal(fill(thingArena(1 << 16), 1 << 20).length, 0);
});

test('Larson and mixed-size workers: live bytes counted, used at least them, steps made', async () => {
  const Heap = await loadMemHeap();
  const r = await larson(Heap, { workers: 2, minSize: 16, maxSize: 4096, mix: 'test', live: 200, durationMs: 60, seed: 1 });
  assert.ok(r.liveBytes > 200 * 16 && r.liveBytes < 2 * 200 * 4096, String(r.liveBytes));
  assert.ok(r.usedPerLive >= 1, String(r.usedPerLive));
  assert.ok(r.opsPerSec > 0 && r.fails === 0);
  assert.ok((await mixedWindow(Heap, 2, true, 50, 1)) > 0);
  assert.ok((await mixedWindow(Heap, 1, false, 50, 1)) > 0);
});

test('the command line: --suite memory and --seed', () => {
  const o = benchOptions(['--suite', 'memory', '--seed', '42']);
  assert.deepEqual(o.suites, ['memory']);
  assert.equal(o.seed, 42);
  assert.equal(benchOptions(['--quick']).memoryCycles, 2);
  assert.throws(() => benchOptions(['--seed', 'x']), /--seed/);
});

test('the native replay of randomSizes reads the live set the JS arenas read (where a C compiler is found; else each allocator is reported left out)', () => {
  const ideal = randomSizes(idealArena(1 << 20), 256, 1 << 20, 7);
  const { results, skipped } = nativeRandom([[256, 1 << 20]], 7);
  assert.equal(results.length + skipped.length, 3, 'every allocator run or reported');
  for (const line of skipped) assert.match(line, /^(jemalloc|mimalloc|glibc): not built \(.+\)$/);
  for (const r of results) {
    assert.equal(r.liveBytes, ideal.liveBytes, r.allocator);
    assert.equal(r.objects, ideal.objects, r.allocator);
    assert.ok(r.heldPerLive >= 1 && r.heldPerLive < 4, `${r.allocator} held / live ${r.heldPerLive}`);
  }
  const report = nativeReport({ results, skipped }, [{ ...ideal, allocator: 'anyalloc', usedPerLive: 1.5, usedPerLiveWithoutStates: 1.4 }]);
  if (results.length > 0) assert.match(report, /\| +256 \| +1 MiB \|.* 1\.50 \| +1\.40 \|/);
  else assert.match(report, /No native allocator was built/);
});

test("anyalloc's floor: at most its used bytes, at least the live bytes and their state map; used without the state map is used x 16/17", async () => {
  const Heap = await loadMemHeap();
  const arena = anyallocArena(Heap, 8 * MiB);
  const r = randomSizes(arena, 4096, 8 * MiB, 3, 1);
  arena.close();
  assert.ok(r.floorPerLive >= 1 + 1 / 16 && r.floorPerLive <= r.usedPerLive, `floor ${r.floorPerLive}, used ${r.usedPerLive}`);
  assert.ok(Math.abs(r.usedPerLiveWithoutStates * (17 / 16) - r.usedPerLive) < 1e-9, `${r.usedPerLiveWithoutStates} x 17/16 vs ${r.usedPerLive}`);
  const ideal = randomSizes(idealArena(8 * MiB), 4096, 8 * MiB, 3, 1);
  assert.ok(Number.isNaN(ideal.floorPerLive) && Number.isNaN(ideal.usedPerLiveWithoutStates));
});
