import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heap } from '../src/index.js';
import { currentEpoch, pin, tryAdvance, unpin } from '../src/reclaim/epoch.js';

function tick(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

test('freeDeferred holds an object back while a reader is pinned', () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const a = heap.createAllocator({ unitSize: 32 });
  const reader = Heap.attach(heap.handle);
  const p = a.alloc();
  pin(reader);
  a.freeDeferred(p);
  assert.equal(a.deferredPending, 1);
  for (let i = 0; i < 10; i++) assert.equal(a.collectDeferred(), 1, 'still pinned at the retire epoch');
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) seen.add(a.alloc());
  assert.ok(!seen.has(p), 'not reused during the grace period');
  unpin(reader);
  assert.equal(a.collectDeferred(), 0);
  for (const x of seen) a.free(x);
  heap.assertValid();
  reader.detach();
});

test('bad and repeated deferred frees throw and change nothing', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  const reader = Heap.attach(heap.handle);
  pin(reader);
  const p = a.alloc(64);
  const big = a.alloc(100_000);
  a.freeDeferred(p);
  assert.throws(() => a.freeDeferred(p), { name: 'RangeError', message: /double free: already freed with freeDeferred/ });
  assert.throws(() => a.free(p), { name: 'RangeError', message: /double free: already freed with freeDeferred/ });
  assert.throws(() => a.freeDeferred(p + 16), { name: 'RangeError', message: /not the start of an object/ });
  assert.throws(() => a.freeDeferred(big), { name: 'RangeError', message: /large allocations/ });
  assert.throws(() => a.freeDeferred(1.5), { name: 'TypeError' });
  a.freeDeferred(0);
  assert.equal(a.deferredPending, 1);
  assert.deepEqual(heap.validate(), []);
  unpin(reader);
  assert.equal(a.collectDeferred(), 0);
  a.free(big);
  assert.deepEqual(heap.validate(), []);
});

test('the epoch advances past idle agents and released slots, not past pinned ones', () => {
  const heap = Heap.create({ maxBytes: 8 << 20, maxWorkers: 4 });
  const idle = Heap.attach(heap.handle);
  const h = heap.reserveSlot();
  const dead = Heap.attach(h);
  const e0 = currentEpoch(heap);
  assert.equal(tryAdvance(heap), e0 + 1, 'idle agents do not hold it back');
  pin(dead);
  assert.equal(tryAdvance(heap), e0 + 2, 'a pin at the current epoch allows one advance');
  assert.equal(tryAdvance(heap), e0 + 2, 'but not the next');
  heap.releaseSlot(h.slot, h.gen);
  assert.equal(tryAdvance(heap), e0 + 3, 'a released slot stops counting at once');
  idle.detach();
});

test('deferred frees are collected in a microtask and memory stays bounded under churn', async () => {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
  const a = heap.createAllocator({ unitSize: 64 });
  const reader = Heap.attach(heap.handle);
  let maxPending = 0;
  for (let round = 0; round < 200; round++) {
    pin(reader);
    const ps: number[] = [];
    for (let i = 0; i < 100; i++) ps.push(a.alloc());
    for (const p of ps) a.freeDeferred(p);
    unpin(reader);
    maxPending = Math.max(maxPending, a.deferredPending);
  }
  assert.ok(maxPending <= 200, `pending stayed at most two rounds of retires, got ${maxPending}`);
  await tick();
  assert.equal(a.deferredPending, 0);
  const st = a.stats();
  assert.ok(st.classes[0]!.slabPages <= 2, `churn of 20000 objects used ${st.classes[0]!.slabPages} slabs`);
  heap.assertValid();
});
