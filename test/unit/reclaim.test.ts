import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heap } from '../../src/index.js';
import { currentEpoch, gracePassed, pin, tryAdvance, unpin } from '../../src/reclaim/epoch.js';
import { cacheRowAt, limboRowAt } from '../../src/alloc/region.js';
import { UNSTAMPED, stampRow } from '../../src/reclaim/limbo.js';
import { AllocatorHeader, CacheRow, LimboRow, LIMBO_HEADER_WORDS, LIMBO_INLINE, ST_FREE, ST_RETIRED } from '../../src/shm/layout.js';

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
  const bytes = st.classes[0]!.slabPages * heap.pageSize;
  assert.ok(bytes <= 128 << 10, `churn of 20000 objects used ${bytes} bytes of slabs`);
  heap.assertValid();
});

/* ----------------------- limbo rings in shared memory ---------------------- */

/** The limbo row of `agent`'s slot for allocator `a` (white-box: src/alloc/region.ts). */
function rowOf(heap: Heap, a: { handle: { id: number } }, slot: number): number {
  const R = heap.allocatorRow(a.handle.id).region >>> 2;
  return limboRowAt(heap.u32, R, heap.u32[R + AllocatorHeader.CLASSES]!, heap.maxSlots, slot);
}

test('a released slot leaves its waiting deferred frees to the others; none is lost or freed early', () => {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
  const used0 = heap.stats().usedPages;
  const a = heap.createAllocator({ unitSize: 48 });
  const reader = Heap.attach(heap.handle);
  const dead = Heap.attach(heap.handle);
  const d = dead.attachAllocator(a.handle);
  pin(reader);
  const retired = new Set<number>();
  for (let i = 0; i < 300; i++) {
    const p = d.alloc();
    retired.add(p);
    d.freeDeferred(p);
  }
  assert.equal(d.deferredPending, 300, 'all wait: the reader is pinned');
  assert.equal(a.retiredObjects(), 300, 'and every agent can see them');
  // The agent is gone without detaching (worker.terminate()).
  assert.equal(heap.releaseSlot(dead.slot, dead.slotGen), true);
  assert.deepEqual(heap.validate(), [], 'RETIRED objects = ring entries after the release');
  assert.equal(a.collectDeferred(), 0);
  assert.equal(a.retiredObjects(), 300, 'still pinned: nothing may be reused yet');
  const got = new Set<number>();
  for (let i = 0; i < 2000; i++) got.add(a.alloc());
  for (const p of retired) assert.ok(!got.has(p), `object ${p} reused during its grace period`);
  for (const p of got) a.free(p);
  unpin(reader);
  a.collectDeferred();
  assert.equal(a.retiredObjects(), 0, 'the orphaned ring was swept once the reader left');
  assert.equal(a.stats().classes[0]!.live, 0, 'every object came back');
  assert.deepEqual(heap.validate(), []);
  reader.detach();
  assert.equal(a.destroy().leakedObjects, 0);
  assert.equal(heap.stats().usedPages, used0, 'ring regions and slabs all given back');
});

test('an agent that died in the middle of retiring: the releaser records the object if it was marked', () => {
  for (const marked of [true, false]) {
    const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
    const a = heap.createAllocator({ unitSize: 32 });
    const dead = Heap.attach(heap.handle);
    const d = dead.attachAllocator(a.handle);
    const p = d.alloc();
    // What freeDeferred leaves behind when it stops between its steps:
    // the row locked by its slot, the object in `pending`, and its state
    // byte RETIRED (marked) or not yet (still ALLOCATED).
    const row = rowOf(heap, a, dead.slot);
    heap.u32[row + LimboRow.LOCK] = dead.slot + 1;
    heap.u32[row + LimboRow.PENDING] = p;
    if (marked) heap.st[p >>> 4] = ST_RETIRED;
    assert.equal(heap.releaseSlot(dead.slot, dead.slotGen), true);
    assert.equal(heap.u32[row + LimboRow.LOCK], 0, 'lock released');
    assert.equal(heap.u32[row + LimboRow.PENDING], 0);
    assert.deepEqual(heap.validate(), [], `marked ${marked}`);
    assert.equal(a.retiredObjects(), marked ? 1 : 0);
    for (let i = 0; i < 4; i++) a.collectDeferred();
    assert.equal(a.retiredObjects(), 0);
    assert.equal(a.stats().classes[0]!.live, marked ? 0 : 1, marked ? 'the marked object came back' : 'an unmarked object stays live: the dead agent held it');
    assert.deepEqual(heap.validate(), []);
  }
});

test('an append that finds its ring locked by a collector spills and catches up at the next one', () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const a = heap.createAllocator({ unitSize: 16 });
  const reader = Heap.attach(heap.handle);
  pin(reader);
  const row = rowOf(heap, a, heap.slot);
  heap.u32[row + LimboRow.LOCK] = reader.slot + 1; // a collector in the middle of its work
  const p = a.alloc();
  const q = a.alloc();
  a.freeDeferred(p);
  assert.equal(heap.u32[row + LimboRow.COUNT], 0, 'not in the ring');
  assert.equal(a.deferredPending, 1, 'but counted as waiting');
  assert.throws(() => a.free(p), { name: 'RangeError', message: /double free/ });
  heap.u32[row + LimboRow.LOCK] = 0;
  a.freeDeferred(q);
  assert.equal(heap.u32[row + LimboRow.COUNT], 2, 'the spilled entry went in first');
  assert.deepEqual(heap.validate(), []);
  unpin(reader);
  assert.equal(a.collectDeferred(), 0);
  assert.equal(a.stats().classes[0]!.live, 0);
  reader.detach();
});

test('an idle agent cannot starve the others: collectDeferred(true) empties every ring', async () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const a = heap.createAllocator({ unitSize: 64 });
  const idle = Heap.attach(heap.handle);
  const b = idle.attachAllocator(a.handle);
  const reader = Heap.attach(heap.handle);
  pin(reader);
  for (let i = 0; i < 50; i++) b.freeDeferred(b.alloc());
  // A busy agent keeps its ring locked between its collects; it lets go
  // when its job ends (its collect microtask), which the reader's pin
  // keeps from freeing anything.
  assert.equal(a.collectDeferred(true), 0);
  assert.equal(b.deferredPending, 50, 'a busy agent\'s ring is its own');
  await Promise.resolve();
  assert.equal(b.deferredPending, 50, 'nothing passed its grace period while the reader was pinned');
  unpin(reader);
  assert.equal(b.deferredPending, 50, 'the idle agent never collected');
  assert.equal(a.collectDeferred(), 0, 'a plain collect leaves other live agents alone');
  assert.equal(b.deferredPending, 50);
  a.collectDeferred(true);
  assert.equal(b.deferredPending, 0, 'collected by the other agent');
  assert.deepEqual(heap.validate(), []);
  b.detach();
  idle.detach();
  reader.detach();
  assert.equal(a.destroy().leakedObjects, 0);
});

test('a slot released while its agent held its limbo ring between collects: the ring is repaired and its entries come back', async () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const a = heap.createAllocator({ unitSize: 64 });
  const gone = Heap.attach(heap.handle);
  const b = gone.attachAllocator(a.handle);
  const ps = Array.from({ length: 5 }, () => b.alloc());
  for (const p of ps) b.freeDeferred(p);
  const row = rowOf(heap, a, gone.slot);
  assert.equal(heap.u32[row + LimboRow.LOCK], gone.slot + 1, 'the agent holds its ring between collects');
  assert.equal(heap.u32[row + LimboRow.COUNT], 5);
  assert.ok(heap.releaseSlot(gone.slot, gone.slotGen));
  assert.equal(heap.u32[row + LimboRow.LOCK], 0, 'the releaser let go of the lock');
  // The released agent's collect microtask runs (it was not dead, only
  // released): it must leave the ring alone.
  await Promise.resolve();
  assert.equal(heap.u32[row + LimboRow.COUNT], 5, 'the stale agent did not collect');
  for (let i = 0; i < 4 && a.retiredObjects() > 0; i++) a.collectDeferred();
  assert.equal(a.retiredObjects(), 0, 'the orphaned entries were collected by a survivor');
  assert.equal(a.stats().classes[0]!.live, 0, 'every object came back');
  assert.deepEqual(heap.validate(), []);
  assert.equal(a.destroy().leakedObjects, 0);
});

test('a collector that died inside a take: the releaser makes head and count agree and puts back what had not reached its cache', async () => {
  // A take of k entries: record (take head, take count, taking = k), head
  // moves past them, count drops, then the objects go FREE into the
  // collector's cache one by one. Death after each of those steps, in a
  // ring of 3 (a take of 2) and in a full inline ring (a take of all of
  // it: head comes round to where it was, so only the count shows it).
  const steps = ['record', 'head', 'count', 'pushed one', 'pushed all'] as const;
  for (const full of [false, true]) {
    for (const stopAfter of steps) {
      for (const whose of ['own', 'other'] as const) {
        const note = `${full ? 'full ring' : 'ring of 3'}, stopped after ${stopAfter}, ${whose} ring`;
        const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
        const a = heap.createAllocator({ unitSize: 32 });
        const owner = Heap.attach(heap.handle);
        const o = owner.attachAllocator(a.handle);
        const reader = Heap.attach(heap.handle);
        pin(reader); // keeps the entries waiting
        const n = full ? LIMBO_INLINE : 3;
        const ps = Array.from({ length: n }, () => o.alloc());
        for (const p of ps) o.freeDeferred(p);
        await Promise.resolve(); // the owner's job ends: it lets go of its ring
        const row = rowOf(heap, a, owner.slot);
        assert.equal(heap.u32[row + LimboRow.LOCK], 0, `${note}: precondition`);
        assert.equal(heap.u32[row + LimboRow.RING], 0, `${note}: the ring is inline`);
        const dead = whose === 'own' ? owner : Heap.attach(heap.handle);
        const d = whose === 'own' ? o : dead.attachAllocator(a.handle);
        const head = heap.u32[row + LimboRow.HEAD]!;
        const count = heap.u32[row + LimboRow.COUNT]!;
        assert.equal(count, n, `${note}: precondition`);
        const k = full ? n : 2;
        const cap = LIMBO_INLINE;
        const ring = row + LIMBO_HEADER_WORDS;
        const taken = Array.from({ length: k }, (_, m) => heap.u32[ring + 2 * ((head + m) % cap)]!);
        heap.u32[row + LimboRow.LOCK] = dead.slot + 1;
        heap.u32[row + LimboRow.TAKE_HEAD] = head;
        heap.u32[row + LimboRow.TAKE_COUNT] = count;
        heap.u32[row + LimboRow.TAKING] = k;
        const at = steps.indexOf(stopAfter);
        if (at >= 1) heap.u32[row + LimboRow.HEAD] = (head + k) % cap;
        if (at >= 2) heap.u32[row + LimboRow.COUNT] = count - k;
        const pushed = at === 3 ? 1 : at === 4 ? k : 0;
        // The dead collector's cache row for this allocator's only class.
        const R = heap.allocatorRow(a.handle.id).region >>> 2;
        const rec = cacheRowAt(heap.u32, R, heap.u32[R + AllocatorHeader.CLASSES]!, heap.maxSlots, dead.slot, 0);
        for (let m = 0; m < pushed; m++) {
          const p = taken[m]!;
          heap.st[p >>> 4] = ST_FREE;
          heap.u32[p >>> 2] = heap.u32[rec]!;
          heap.u32[rec] = p;
          heap.u32[rec + CacheRow.COUNT]!++;
        }
        assert.equal(heap.releaseSlot(dead.slot, dead.slotGen), true);
        assert.equal(heap.u32[row + LimboRow.LOCK], 0, `${note}: lock released`);
        assert.equal(heap.u32[row + LimboRow.TAKING], 0, `${note}: take settled`);
        assert.equal(heap.u32[row + LimboRow.COUNT], n - pushed, `${note}: what had not reached the cache is in the ring`);
        // Each object exactly once: in the ring, or (pushed) back in the pool.
        const inRing = new Set<number>();
        const c = heap.u32[row + LimboRow.COUNT]!;
        const h = heap.u32[row + LimboRow.HEAD]!;
        for (let m = 0; m < c; m++) inRing.add(heap.u32[ring + 2 * ((h + m) % cap)]!);
        assert.equal(inRing.size, c, `${note}: no entry twice`);
        for (let m = 0; m < k; m++) assert.equal(inRing.has(taken[m]!), m >= pushed, `${note}: object ${m} of the take`);
        assert.deepEqual(heap.validate(), [], note);
        void d;
        unpin(reader);
        for (let i = 0; i < 8 && a.retiredObjects() > 0; i++) a.collectDeferred(true);
        assert.equal(a.retiredObjects(), 0, `${note}: collected`);
        assert.equal(a.stats().classes[0]!.live, 0, `${note}: every object came back`);
        assert.deepEqual(heap.validate(), [], note);
      }
    }
  }
});

test('stampRow: a wrong count of fresh entries never leaves an unstamped entry behind a stamped one', async () => {
  for (const fresh of [-1, 0, 1, 3, 5, 8, 100]) {
    const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
    const a = heap.createAllocator({ unitSize: 32 });
    const reader = Heap.attach(heap.handle);
    pin(reader); // keeps every entry waiting
    for (let i = 0; i < 3; i++) a.freeDeferred(a.alloc());
    await Promise.resolve(); // the collect microtask stamps these three and lets go of the ring
    for (let i = 0; i < 5; i++) a.freeDeferred(a.alloc());
    const row = rowOf(heap, a, heap.slot);
    const ring = row + LIMBO_HEADER_WORDS;
    const head = heap.u32[row + LimboRow.HEAD]!;
    const epochs = (): number[] => Array.from({ length: heap.u32[row + LimboRow.COUNT]! }, (_, i) => heap.u32[ring + 2 * ((head + i) % LIMBO_INLINE) + 1]!);
    const before = epochs();
    assert.equal(before.length, 8);
    assert.ok(before.slice(0, 3).every((e) => e !== UNSTAMPED) && before.slice(3).every((e) => e === UNSTAMPED), `fresh ${fresh}: precondition`);
    const now = currentEpoch(heap) + 7;
    stampRow(heap, row, now, fresh);
    const after = epochs();
    assert.ok(after.every((e) => e !== UNSTAMPED), `fresh ${fresh}: every entry stamped: ${after.join(' ')}`);
    assert.deepEqual(after.slice(3), [now, now, now, now, now], `fresh ${fresh}: the new ones carry the epoch read now`);
    // Older stamps stay unless the hint reached back to them (which only delays those).
    const restamped = fresh > 5 ? Math.min(fresh, 8) - 5 : 0;
    assert.deepEqual(after.slice(0, 3 - restamped), before.slice(0, 3 - restamped), `fresh ${fresh}: older stamps kept`);
    unpin(reader);
    for (let i = 0; i < 8 && a.retiredObjects() > 0; i++) a.collectDeferred(true);
    assert.equal(a.retiredObjects(), 0, `fresh ${fresh}: collected`);
    assert.deepEqual(heap.validate(), [], `fresh ${fresh}`);
  }
});

test('gracePassed counts advances, also across the wrap where the epoch skips 0', () => {
  assert.equal(gracePassed(5, 6), false);
  assert.equal(gracePassed(5, 7), true);
  assert.equal(gracePassed(0xfffffffe, 0xffffffff), false);
  assert.equal(gracePassed(0xfffffffe, 1), true, '0xfffffffe -> 0xffffffff -> 1: two advances');
  assert.equal(gracePassed(0xffffffff, 1), false, '0xffffffff -> 1 is one advance');
  assert.equal(gracePassed(0xffffffff, 2), true);
});
