/**
 * Which batch a refill takes from its class's depot: its own agent's (or
 * anyone's) first, then one another agent trimmed, then a new slab, and
 * another agent's fresh batch only when no slab can be had. Objects keep
 * going round the cache of the agent that carved their slab, so two
 * agents do not write the same lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heap, type Allocator } from '../../src/index.js';
import { AllocatorHeader, BATCH_OWNER_SHIFT, batchCount, batchOwner, ClassRow, CacheRow, O_COUNT, O_NEXT_BATCH } from '../../src/shm/layout.js';
import { cacheRowAt, classRowAt } from '../../src/alloc/region.js';
import { shrinkClass } from '../../src/alloc/shrink.js';

const OPTS = { unitSize: 64, batch: 8, lowWatermark: 2, highWatermark: 16, prefill: 0 };

function setup(extra: { limitBytes?: number } = {}) {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const a = heap.createAllocator({ ...OPTS, ...extra });
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  const R = heap.allocatorRow(a.id).region >>> 2;
  /** The first page of the slab that holds p. */
  const slabOf = (p: number) => heap.u32[heap.argWord + Math.floor(p / heap.pageSize)]!;
  /** [owner, count] of each batch in the depot, top first. */
  const batches = () => {
    const out: [number, number][] = [];
    const u32 = heap.u32;
    for (let x = Atomics.load(u32, classRowAt(R, 0) + ClassRow.DEPOT_HEAD); x !== 0; x = u32[(x >>> 2) + O_NEXT_BATCH]!) {
      out.push([batchOwner(u32[(x >>> 2) + O_COUNT]!), batchCount(u32[(x >>> 2) + O_COUNT]!)]);
    }
    return out;
  };
  const slabPages = () => a.stats().classes[0]!.slabPages;
  return { heap, a, other, b, R, slabOf, batches, slabPages };
}

function take(x: Allocator, n: number): number[] {
  const ps: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = x.alloc();
    assert.notEqual(p, 0);
    ps.push(p);
  }
  return ps;
}

test("a refill does not take another agent's fresh batches while a slab can be carved: each agent cuts its own", () => {
  const { heap, a, b, other, slabOf, batches } = setup();
  const x = a.alloc();
  const fresh = batches();
  assert.ok(fresh.length > 0 && fresh.every(([o]) => o === heap.slot + 1), 'the rest of the slab waits in the depot as the carver\'s');
  const y = b.alloc();
  assert.notEqual(slabOf(y), slabOf(x), 'the second agent carved a slab of its own');
  assert.equal(batches().filter(([o]) => o === heap.slot + 1).length, fresh.length, "the carver's batches are all still there");
  a.free(x);
  b.free(y);
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test("a refill takes its own agent's batches before another's, even from under them, and another's trimmed batch before a new slab", () => {
  const { heap, a, b, other, slabOf, batches, slabPages } = setup();
  const mine = take(b, 64);
  const theirs = take(a, 64);
  const mySlabs = new Set(mine.map(slabOf));
  const theirSlabs = new Set(theirs.map(slabOf));
  assert.ok([...mySlabs].every((s) => !theirSlabs.has(s)), 'no slab shared');
  for (const p of mine) b.free(p);
  for (const p of theirs) a.free(p);
  const top = batches()[0]!;
  assert.equal(top[0], heap.slot + 1, "the other agent's batches lie on top");
  const pages = slabPages();
  const again = take(b, 64);
  assert.ok(again.every((p) => mySlabs.has(slabOf(p))), 'every object came back from the agent\'s own slabs');
  const next = b.alloc();
  assert.ok(theirSlabs.has(slabOf(next)), "with none of its own left, it took the other agent's trimmed batch");
  assert.equal(slabPages(), pages, 'and carved nothing');
  for (const p of [...again, next]) b.free(p);
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test("with no slab to be had (the allocator's limit), a refill takes another agent's fresh batch", () => {
  const { heap, a, b, other, slabOf } = setup({ limitBytes: 4096 });
  const x = a.alloc();
  const y = b.alloc();
  assert.notEqual(y, 0, 'the limit is not a failure while the depot has objects');
  assert.equal(slabOf(y), slabOf(x));
  a.free(x);
  b.free(y);
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test('a shrink relinks the objects it keeps into batches of the owners they had', () => {
  const { heap, a, b, other, R, slabOf, batches, slabPages } = setup();
  const mine = take(b, 64);
  // Four slabs: what the cache keeps (at most high + batch objects) spans two at most.
  const theirs = take(a, 256);
  for (const p of mine) b.free(p);
  for (const p of theirs) a.free(p);
  const pages = slabPages();
  const released = shrinkClass(heap, R, 0, 0, 1000);
  assert.ok(released > 0, 'a whole slab went back');
  assert.equal(slabPages(), pages - released);
  const owners = new Set(batches().map(([o]) => o));
  assert.deepEqual([...owners].sort(), [heap.slot + 1, other.slot + 1].sort(), 'both owners kept their batches');
  // Each batch's objects lie in its owner's slabs.
  const u32 = heap.u32;
  const slabsOf = new Map([[heap.slot + 1, new Set(theirs.map(slabOf))], [other.slot + 1, new Set(mine.map(slabOf))]]);
  for (let x = Atomics.load(u32, classRowAt(R, 0) + ClassRow.DEPOT_HEAD); x !== 0; x = u32[(x >>> 2) + O_NEXT_BATCH]!) {
    const owned = slabsOf.get(batchOwner(u32[(x >>> 2) + O_COUNT]!))!;
    let o = x;
    for (let i = batchCount(u32[(x >>> 2) + O_COUNT]!); i > 0; i--, o = u32[o >>> 2]!) assert.ok(owned.has(slabOf(o)), `object ${o} in its owner's slab`);
  }
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test('validate() reports a batch whose owner names no slot', () => {
  const { heap, a, other, R } = setup();
  a.free(a.alloc());
  const u32 = heap.u32;
  const head = Atomics.load(u32, classRowAt(R, 0) + ClassRow.DEPOT_HEAD);
  assert.notEqual(head, 0);
  const word = u32[(head >>> 2) + O_COUNT]!;
  u32[(head >>> 2) + O_COUNT] = (batchCount(word) | ((heap.maxSlots + 1) << BATCH_OWNER_SHIFT)) >>> 0;
  assert.ok(heap.validate().some((e) => /names owner 5, past the 4 slots/.test(e)), heap.validate().join('\n'));
  u32[(head >>> 2) + O_COUNT] = word;
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test('an agent that dies having unlinked a batch from the middle of the depot loses nothing: releaseSlot links it back', () => {
  const { heap, a, b, other, R } = setup();
  const mine = take(b, 64);
  const theirs = take(a, 64);
  for (const p of mine) b.free(p);
  for (const p of theirs) a.free(p);
  const h = heap.reserveSlot();
  const dying = Heap.attach(h);
  dying.attachAllocator(a.handle);
  const u32 = heap.u32;
  const cr = classRowAt(R, 0);
  const rec = cacheRowAt(u32, R, u32[R + AllocatorHeader.CLASSES]!, heap.maxSlots, h.slot, 0);
  // It takes the lock, records the second batch as in flight, unlinks it...
  const first = Atomics.load(u32, cr + ClassRow.DEPOT_HEAD);
  const second = u32[(first >>> 2) + O_NEXT_BATCH]!;
  assert.notEqual(second, 0);
  Atomics.store(u32, cr + ClassRow.DEPOT_LOCK, h.slot + 1);
  u32[rec + CacheRow.INFLIGHT] = second;
  u32[(first >>> 2) + O_NEXT_BATCH] = u32[(second >>> 2) + O_NEXT_BATCH]!;
  // ...and dies before it splices the batch or unlocks.
  assert.ok(heap.validate().some((e) => /in no list/.test(e)), 'the batch is lost until repaired');
  assert.equal(heap.releaseSlot(h.slot, h.gen), true);
  assert.equal(Atomics.load(u32, cr + ClassRow.DEPOT_LOCK), 0, 'lock released');
  assert.deepEqual(heap.validate(), []);
  other.detach(); // its cache goes back to the depot
  // Every object can be handed out again, and none twice.
  const seen = new Set<number>();
  for (;;) {
    const p = a.alloc();
    if (p === 0) break;
    assert.ok(!seen.has(p), `object ${p} handed out twice`);
    seen.add(p);
  }
  assert.ok([...mine, ...theirs].every((p) => seen.has(p)), 'every freed object came back');
  for (const p of seen) a.free(p);
  assert.deepEqual(heap.validate(), []);
});
