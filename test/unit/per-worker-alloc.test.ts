/**
 * PerWorkerAllocator in one thread: the layout of an object's copies, the
 * bounds of copyOf, mine() following the agent's slot (a second Heap
 * attached in the same thread is a second agent), zeroing, free and the
 * heap's invariants, argument errors with their codes, and the memory
 * the wrapped allocator accounts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heap, PerWorkerAllocator } from '../../src/index.js';
import { slabGeometry } from '../../src/alloc/sizeclass.js';

const MAX_BYTES = 32 << 20;

function heapOf(maxWorkers: number): Heap {
  return Heap.create({ maxBytes: MAX_BYTES, maxWorkers });
}

/** f must throw an error of class `cls` whose message matches `text` and whose code is `code`. */
function throwsCoded(f: () => unknown, cls: typeof TypeError | typeof RangeError, text: RegExp, code: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `want ${cls.name}, got ${String(e)}`);
    assert.match(e.message, text);
    assert.equal((e as { code?: string }).code, code, e.message);
    return true;
  });
}

test('stride: size rounded up to a cache line, or to 16 when packed; object = stride x maxWorkers', () => {
  const heap = heapOf(8);
  for (const [size, packed, stride] of [
    [1, false, 64],
    [8, false, 64],
    [64, false, 64],
    [65, false, 128],
    [8, true, 16],
    [20, true, 32],
    [48, true, 48],
  ] as const) {
    const pw = PerWorkerAllocator.create(heap, { size, packed });
    assert.equal(pw.stride, stride, `stride of size ${size}, packed ${packed}`);
    assert.equal(pw.objectBytes, stride * 8);
    assert.equal(pw.slots, 8);
    assert.equal(pw.size, size);
    assert.equal(pw.allocator.unitFor(1), stride * 8);
    pw.destroy();
  }
  heap.assertValid();
});

test('copies of live objects never overlap, keep their contents, and sit on their own cache lines', () => {
  for (const packed of [false, true]) {
    const heap = heapOf(8);
    const pw = PerWorkerAllocator.create(heap, { size: 24, packed });
    const objects: number[] = [];
    for (let i = 0; i < 600; i++) {
      const p = pw.alloc();
      assert.notEqual(p, 0);
      assert.equal(p % (packed ? 16 : 64), 0, `alignment of object ${i}`);
      objects.push(p);
    }
    // Every copy's bytes, across objects and slots: no byte twice.
    const ranges: [number, number][] = [];
    for (const p of objects) for (let s = 0; s < pw.slots; s++) ranges.push([pw.copyOf(p, s), pw.copyOf(p, s) + pw.size]);
    ranges.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i - 1]![1] <= ranges[i]![0], `copies overlap at ${ranges[i]![0]}`);
    if (!packed) {
      // Cache lines: each 64-byte line holds bytes of one copy only.
      const lines = new Set(ranges.map(([a]) => a >>> 6));
      assert.equal(lines.size, ranges.length);
      for (const [a, b] of ranges) assert.equal(a >>> 6, (b - 1) >>> 6);
    }
    // Distinct bytes in every copy, read back after all were written.
    const u8 = heap.u8;
    objects.forEach((p, i) => {
      for (let s = 0; s < pw.slots; s++) u8.fill((i * 8 + s) & 255, pw.copyOf(p, s), pw.copyOf(p, s) + pw.size);
    });
    objects.forEach((p, i) => {
      for (let s = 0; s < pw.slots; s++) {
        const c = pw.copyOf(p, s);
        assert.ok(
          heap.u8.subarray(c, c + pw.size).every((b) => b === ((i * 8 + s) & 255)),
          `copy of slot ${s} of object ${i}`,
        );
      }
    });
    for (const p of objects) pw.free(p);
    heap.assertValid();
    assert.equal(pw.allocator.stats().bytesInUse, 0);
    pw.destroy();
  }
});

test('alloc zeroes every copy, also of an object reused after free', () => {
  const heap = heapOf(4);
  const pw = PerWorkerAllocator.create(heap, { size: 16 });
  const p = pw.alloc();
  assert.ok(heap.u8.subarray(p, p + pw.objectBytes).every((b) => b === 0));
  heap.u8.fill(0xa5, p, p + pw.objectBytes);
  pw.free(p);
  const q = pw.alloc();
  assert.equal(q, p, 'the cache gives the last freed object back first');
  assert.ok(heap.u8.subarray(q, q + pw.objectBytes).every((b) => b === 0), 'stale bytes of the freed object survived alloc');
  pw.free(q);
  pw.destroy();
});

test('copyOf: slot s is p + s x stride, for s in [0, maxWorkers); anything else throws with a code', () => {
  const heap = heapOf(6);
  const pw = PerWorkerAllocator.create(heap, { size: 8 });
  const p = pw.alloc();
  for (let s = 0; s < 6; s++) assert.equal(pw.copyOf(p, s), p + s * 64);
  throwsCoded(() => pw.copyOf(p, 6), RangeError, /slot must be in \[0, 5\], got 6/, 'out-of-range');
  throwsCoded(() => pw.copyOf(p, -1), RangeError, /slot must be in \[0, 5\], got -1/, 'out-of-range');
  throwsCoded(() => pw.copyOf(p, 1.5), TypeError, /slot must be a safe integer, got 1\.5/, 'bad-argument');
  throwsCoded(() => pw.copyOf(p, '1' as unknown as number), TypeError, /slot must be a safe integer, got "1"/, 'bad-argument');
  throwsCoded(() => pw.copyOf(0, 0), RangeError, /copyOf\(0\): p must be a non-zero, 16-byte aligned/, 'out-of-range');
  throwsCoded(() => pw.copyOf(p + 8, 0), RangeError, /16-byte aligned/, 'out-of-range');
  throwsCoded(() => pw.copyOf(-16, 0), RangeError, /copyOf\(-16\)/, 'out-of-range');
  throwsCoded(() => pw.copyOf(NaN, 0), TypeError, /copyOf: p must be an integer byte offset, got NaN/, 'bad-argument');
  throwsCoded(() => pw.copyOf(undefined as unknown as number, 0), TypeError, /got undefined/, 'bad-argument');
  throwsCoded(() => pw.mine(p + 4), RangeError, /mine\(\d+\): p must be/, 'out-of-range');
  pw.free(p);
  pw.destroy();
});

test("mine() is the copy of the agent's own slot; a second agent's mine() is its own, and stops with its slot", () => {
  const heap = heapOf(4);
  const pw = PerWorkerAllocator.create(heap, { size: 8 });
  // A second Heap attached in this thread is another agent with a slot of its own.
  const heap2 = Heap.attach(heap.handle);
  const pw2 = PerWorkerAllocator.attach(heap2, pw.handle);
  assert.notEqual(heap2.slot, heap.slot);
  const p = pw.alloc();
  assert.equal(pw.mine(p), pw.copyOf(p, heap.slot));
  assert.equal(pw2.mine(p), pw.copyOf(p, heap2.slot));
  heap.u32[pw.mine(p) >>> 2] = 5;
  heap2.u32[pw2.mine(p) >>> 2] = 7;
  assert.equal(pw.sumU32(p), 12);
  assert.equal(pw2.sumU32(p), 12);
  // Allocated by one agent, freed by the other.
  pw2.free(p);
  pw2.detach();
  heap2.detach();
  throwsCoded(() => pw2.mine(16), RangeError, /mine: this agent has detached from the heap/, 'out-of-range');
  heap.assertValid();
  assert.equal(pw.allocator.stats().bytesInUse, 0);
  pw.destroy();
});

test('sumU32 and sumF64 add every slot\'s value at an offset of the copy; offsets are checked', () => {
  const heap = heapOf(5);
  const pw = PerWorkerAllocator.create(heap, { size: 24 });
  const p = pw.alloc();
  assert.equal(pw.sumU32(p), 0);
  assert.equal(pw.sumF64(p, 8), 0);
  for (let s = 0; s < 5; s++) {
    heap.u32[pw.copyOf(p, s) >>> 2] = 0xffffffff; // the sum is a number, no 32-bit wrap
    heap.u32[(pw.copyOf(p, s) + 4) >>> 2] = s + 1;
    heap.f64[(pw.copyOf(p, s) + 8) >>> 3] = s + 0.25;
    heap.f64[(pw.copyOf(p, s) + 16) >>> 3] = -s;
  }
  assert.equal(pw.sumU32(p), 5 * 0xffffffff);
  assert.equal(pw.sumU32(p, 4), 15);
  assert.equal(pw.sumF64(p, 8), 11.25);
  assert.equal(pw.sumF64(p, 16), -10);
  throwsCoded(() => pw.sumU32(p, 24), RangeError, /offset must be in \[0, 20\], got 24/, 'out-of-range');
  throwsCoded(() => pw.sumU32(p, 2), RangeError, /sumU32: offset must be a multiple of 4, got 2/, 'out-of-range');
  throwsCoded(() => pw.sumF64(p, 4), RangeError, /sumF64: offset must be a multiple of 8, got 4/, 'out-of-range');
  throwsCoded(() => pw.sumF64(p, 24), RangeError, /offset must be in \[0, 16\], got 24/, 'out-of-range');
  throwsCoded(() => pw.sumF64(p, -8), RangeError, /offset must be in \[0, 16\], got -8/, 'out-of-range');
  throwsCoded(() => pw.sumU32(p, 0.5), TypeError, /offset must be a safe integer, got 0\.5/, 'bad-argument');
  throwsCoded(() => pw.sumU32(0), RangeError, /sumU32\(0\)/, 'out-of-range');
  pw.free(p);
  pw.destroy();
});

test('free: every copy at once; free(0) does nothing; bad pointers throw and change nothing; freeDeferred after a grace period', () => {
  const heap = heapOf(4);
  const pw = PerWorkerAllocator.create(heap, { size: 8 });
  const other = PerWorkerAllocator.create(heap, { size: 8 });
  const p = pw.alloc();
  const q = other.alloc();
  pw.free(0);
  assert.throws(() => pw.free(q), /wrong allocator/);
  assert.throws(() => pw.free(pw.copyOf(p, 1)), /not the start of an object/);
  pw.free(p);
  assert.throws(() => pw.free(p), /double free/);
  heap.assertValid();
  const r = pw.alloc();
  pw.freeDeferred(r);
  assert.throws(() => pw.free(r), /double free/);
  for (let i = 0; i < 100 && pw.allocator.collectDeferred() > 0; i++);
  assert.equal(pw.allocator.deferredPending, 0);
  other.free(q);
  heap.assertValid();
  assert.deepEqual(pw.destroy(), { leakedObjects: 0, leakedBytes: 0, classes: [], largeRuns: 0, pagesKept: 0 });
  other.destroy();
  heap.assertValid();
});

test('memory: bytesInUse counts objectBytes per live object; limitBytes makes alloc return 0; destroy reports leaks', () => {
  const heap = heapOf(8);
  const slab = slabGeometry(heap.pageSize, 512);
  const slabBytes = slab.pages * heap.pageSize;
  const pw = PerWorkerAllocator.create(heap, { size: 32, limitBytes: slabBytes, lowWatermark: 0, prefill: 0 });
  assert.equal(pw.objectBytes, 512);
  const perSlab = slab.perSlab;
  const live: number[] = [];
  for (;;) {
    const p = pw.alloc();
    if (p === 0) break;
    live.push(p);
    assert.ok(live.length <= perSlab, 'more objects than one slab holds under a one-slab limit');
  }
  assert.equal(live.length, perSlab);
  const st = pw.allocator.stats();
  assert.equal(st.bytesInUse, perSlab * 512);
  assert.equal(st.chargedBytes, slabBytes);
  assert.ok(st.failures >= 1);
  for (const p of live.slice(1)) pw.free(p);
  assert.equal(pw.allocator.stats().bytesInUse, 512);
  heap.assertValid();
  const report = pw.destroy();
  assert.equal(report.leakedObjects, 1);
  assert.equal(report.leakedBytes, 512);
  assert.deepEqual(report.classes, [{ unit: 512, objects: 1 }]);
});

test('create and attach: bad options and handles throw TypeError / RangeError with a code, naming the value and the rule', () => {
  const heap = heapOf(64);
  const create = (o: unknown) => () => PerWorkerAllocator.create(heap, o as { size: number });
  throwsCoded(create(undefined), TypeError, /needs options with a size, got undefined/, 'bad-argument');
  throwsCoded(create({}), TypeError, /size must be a safe integer, got undefined/, 'bad-argument');
  throwsCoded(create({ size: 1.5 }), TypeError, /size must be a safe integer, got 1\.5/, 'bad-argument');
  throwsCoded(create({ size: '8' }), TypeError, /size must be a safe integer, got "8"/, 'bad-argument');
  throwsCoded(create({ size: 0 }), RangeError, /size must be in \[1, 1048576\], got 0/, 'out-of-range');
  throwsCoded(create({ size: 8, packed: 1 }), TypeError, /packed must be a boolean, got 1/, 'bad-argument');
  // 64 workers x 64-byte strides fill a 1048576-byte unit at size 16384.
  assert.equal(PerWorkerAllocator.create(heap, { size: 16384 }).objectBytes, 1048576);
  throwsCoded(
    create({ size: 16385 }),
    RangeError,
    /^size 16385 needs 16448 x 64 worker slots = 1052672 bytes per object; a fixed-size unit is at most 1048576 \(the largest slab\): use a smaller size, fewer maxWorkers$/,
    'out-of-range',
  );
  // With 100 workers, 10480-byte copies fit at 16-byte strides (10480 x 100) but not at 64 (10496 x 100).
  const heap100 = heapOf(100);
  throwsCoded(() => PerWorkerAllocator.create(heap100, { size: 10480 }), RangeError, /= 1049600 bytes per object; .*, or packed: true$/, 'out-of-range');
  assert.equal(PerWorkerAllocator.create(heap100, { size: 10480, packed: true }).objectBytes, 1048000);
  // The wrapped allocator's own checks still apply.
  assert.throws(create({ size: 8, batch: 0 }), /batch must be in/);

  const pw = PerWorkerAllocator.create(heap, { size: 8 });
  const plain = heap.createAllocator({ unitSize: 64 });
  const attach = (h: unknown) => () => PerWorkerAllocator.attach(heap, h as typeof pw.handle);
  throwsCoded(attach(null), TypeError, /needs a per-worker allocator handle \(\.handle\), got null/, 'bad-argument');
  throwsCoded(attach(pw.allocator.handle), TypeError, /needs a per-worker allocator handle/, 'bad-argument');
  throwsCoded(attach({ ...pw.handle, stride: 4 }), RangeError, /handle\.stride must be in/, 'out-of-range');
  throwsCoded(attach({ ...pw.handle, size: 100 }), RangeError, /handle\.size must be in \[1, 64\], got 100/, 'out-of-range');
  // Attaching the wrong allocator: detected, and the attach undone.
  const heap2 = Heap.attach(heap.handle);
  throwsCoded(
    () => PerWorkerAllocator.attach(heap2, { ...pw.handle, allocator: plain.handle }),
    RangeError,
    /has units of 64 bytes, not stride x maxWorkers = 4096/,
    'out-of-range',
  );
  assert.equal(plain.attachedAgents, 1);
  heap2.detach();
  assert.equal(typeof structuredClone(pw.handle), 'object', 'the handle is structured-cloneable');
  assert.deepEqual(structuredClone(pw.handle), pw.handle);
  heap.assertValid();
});
