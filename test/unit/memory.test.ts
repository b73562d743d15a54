/**
 * What memory the allocator holds: an empty allocator only its control
 * region, a class's slabs only once the class is used (or when prefill is
 * asked for).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BUCKET_SIZES, Heap } from '../../src/index.js';
import { MAX_SLAB_BYTES, MAX_TAIL_SHARE, MIN_PER_SLAB, defaultWatermarks, slabGeometry } from '../../src/alloc/sizeclass.js';
import { KIND_REGION, pageTag } from '../../src/shm/layout.js';
import { strandedRegions } from '../../src/alloc/region.js';

test('an empty size-bucketed allocator with one agent attached holds its control region only (at most 256 KiB)', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const before = heap.stats().usedBytes;
  const a = heap.createAllocator();
  const held = heap.stats().usedBytes - before;
  assert.ok(held <= 256 << 10, `an empty allocator holds ${held} bytes`);
  assert.equal(a.stats().classes.reduce((n, c) => n + c.slabPages, 0), 0, 'no slab before any alloc');
  // The first alloc of a class carves that class's slab, and no other.
  a.free(a.alloc(100));
  const slabs = a.stats().classes.filter((c) => c.slabPages > 0).map((c) => c.unit);
  assert.deepEqual(slabs, [a.unitFor(100)]);
  assert.deepEqual(heap.validate(), []);
});

test('slab sizes: every bucket class on 4 KiB pages leaves at most 1/64 of its slab in the tail, and holds four objects and a batch', () => {
  for (const unit of BUCKET_SIZES) {
    const g = slabGeometry(4096, unit);
    const tail = g.pages * 4096 - g.perSlab * unit;
    assert.ok(tail <= (g.pages * 4096) / 64, `${unit} B: ${g.pages} pages, tail ${tail} B`);
    assert.ok(g.perSlab >= Math.max(MIN_PER_SLAB, defaultWatermarks(unit).batch), `${unit} B: ${g.perSlab} objects`);
  }
  // Where a power-of-two slab left a sixteenth: 2560 B in 5 pages (8 objects), 20 KiB in 20 pages (4).
  assert.deepEqual(slabGeometry(4096, 2560), { pages: 5, perSlab: 8 });
  assert.deepEqual(slabGeometry(4096, 20480), { pages: 20, perSlab: 4 });
});

test('slab sizes, any unit and page size: the fewest pages holding the least objects up to twice that, the first within the tail share or else the smallest tail; never past the largest slab', () => {
  const tail = (pages: number, ps: number, unit: number): number => (pages * ps - Math.floor((pages * ps) / unit) * unit) / (pages * ps);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1 << 20 }), fc.constantFrom(4096, 16384, 65536, 1 << 20), (bytes, ps) => {
      const unit = Math.ceil(bytes / 16) * 16;
      const g = slabGeometry(ps, bytes);
      const maxPages = Math.max(1, Math.floor(MAX_SLAB_BYTES / ps));
      assert.ok(g.pages >= 1 && g.pages <= maxPages, `pages ${g.pages}`);
      assert.equal(g.perSlab, Math.floor((g.pages * ps) / unit));
      const least = Math.max(MIN_PER_SLAB, defaultWatermarks(unit).batch);
      const fewest = Math.ceil((least * unit) / ps);
      if (fewest <= maxPages) {
        assert.ok(g.perSlab >= least && g.pages >= fewest && g.pages <= Math.min(2 * fewest, maxPages), `${unit} B on ${ps}: ${g.pages} pages`);
        // No fewer pages in the range would have done.
        for (let k = fewest; k < g.pages; k++) assert.ok(tail(k, ps, unit) > MAX_TAIL_SHARE, `${unit} B on ${ps}: ${k} pages would do`);
        if (tail(g.pages, ps, unit) > MAX_TAIL_SHARE) {
          for (let k = fewest; k <= Math.min(2 * fewest, maxPages); k++) assert.ok(tail(k, ps, unit) >= tail(g.pages, ps, unit));
        }
      } else {
        assert.ok(g.perSlab >= 1 || unit > maxPages * ps, `${unit} B on ${ps}: ${g.perSlab} objects`);
      }
    }),
    { numRuns: 2000 },
  );
});

test('an agent attaching later takes its prefill from depots that have objects, and carves nothing', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const a = heap.createAllocator();
  const held: number[] = [];
  for (let i = 0; i < 500; i++) held.push(a.alloc(64));
  for (const p of held) a.free(p);
  a.flushCaches();
  const pagesBefore = heap.stats().usedPages;
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  assert.equal(heap.stats().usedPages, pagesBefore + 1, 'no slab carved at attach: one page for the slot\'s caches only');
  const mine = b.stats().workers.find((w) => w.slot === other.slot)!;
  const cached = mine.classes.find((c) => c.unit === 64)!.cached;
  assert.ok(cached > 0, 'the used class was prefilled from its depot');
  assert.equal(mine.classes.filter((c) => c.unit !== 64 && c.cached > 0).length, 0, 'unused classes were not');
  b.detach();
  other.detach();
  assert.deepEqual(heap.validate(), []);
});

test('prefill given at create is honoured at attach, carving slabs if need be', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const a = heap.createAllocator({ prefill: 2 });
  const classes = a.stats().classes;
  assert.ok(
    classes.every((c) => c.slabPages === slabGeometry(heap.pageSize, c.unit).pages),
    'a slab per class',
  );
  const mine = a.stats().workers.find((w) => w.slot === heap.slot)!;
  assert.ok(mine.classes.every((c) => c.cached >= 2));
  assert.deepEqual(heap.validate(), []);
});

/** How many objects of `size` a heap gives until alloc returns 0. */
function fill(a: { alloc(size: number): number }, size: number): number[] {
  const got: number[] = [];
  for (;;) {
    const p = a.alloc(size);
    if (p === 0) return got;
    got.push(p);
  }
}

const PHASES: [number, number][] = [
  [16, 4096],
  [16, 100_000],
  [4096, 16],
  [100_000, 64],
];

for (const [first, second] of PHASES) {
  test(`phase change ${first} B -> ${second} B: after every ${first}-byte object is freed, at least 90% of a fresh heap's ${second}-byte capacity is there`, () => {
    const fresh = Heap.create({ maxBytes: 16 << 20 });
    const capacity = fill(fresh.createAllocator(), second).length;
    const heap = Heap.create({ maxBytes: 16 << 20 });
    const a = heap.createAllocator();
    const old = fill(a, first);
    assert.ok(old.length > 0);
    for (const p of old) a.free(p);
    const now = fill(a, second);
    assert.ok(now.length >= 0.9 * capacity, `${now.length} of ${capacity} objects of ${second} B after the phase change`);
    for (const p of now) a.free(p);
    assert.deepEqual(heap.validate(), []);
  });
}

test('phase change across agents: objects freed by another agent (and passed through its cache) come back to the page heap; only what its cache holds waits', () => {
  const fresh = Heap.create({ maxBytes: 16 << 20 });
  const capacity = fill(fresh.createAllocator(), 4096).length;
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  // Another agent (an attachment in this thread stands in for a worker,
  // attached from the start) frees them all.
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  const old = fill(a, 16);
  for (const p of old) b.free(p);
  const now = fill(a, 4096);
  assert.ok(now.length >= 0.9 * capacity, `${now.length} of ${capacity} objects of 4096 B`);
  for (const p of now) a.free(p);
  b.detach();
  other.detach();
  assert.deepEqual(heap.validate(), []);
});

test('an allocator costs its small region and a page per slot that attached; attaching in a full heap throws heap-full and changes nothing', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const before = heap.stats().usedPages;
  const a = heap.createAllocator();
  const region = heap.stats().usedPages - before;
  assert.ok(region * heap.pageSize <= 8 << 10, `a bucketed allocator with one agent attached takes ${region} pages`);
  const held = fill(a, 16);
  const other = Heap.attach(heap.handle);
  const used = heap.stats().usedPages;
  assert.throws(() => other.attachAllocator(a.handle), { name: 'RangeError', code: 'heap-full', message: /no room for this worker slot's caches/ });
  assert.equal(heap.stats().usedPages, used, 'nothing taken');
  for (const p of held.slice(0, 1000)) a.free(p);
  a.flushCaches();
  other.detach();
  for (const p of held.slice(1000)) a.free(p);
  assert.deepEqual(heap.validate(), []);
});

test('a slot block or ring region an agent took and died before publishing goes back at destroy(), and only those', () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 64 });
  const before = heap.stats().usedPages;
  const a = heap.createAllocator();
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  const id = a.handle.id;
  // What a dying agent leaves between takeRegion and the CAS that would publish the run.
  const stray = [heap.takeRegion(4096, id), heap.takeRegion(3 * 4096, id)];
  const unrelated = heap.takeRegion(4096, 0);
  assert.ok(stray.every((at) => at !== 0) && unrelated !== 0);
  // Deferred frees from both agents: ring rows (and their rings) are named, not stray.
  for (let i = 0; i < 200; i++) b.freeDeferred(b.alloc(64));
  b.detach();
  other.detach();
  assert.deepEqual(heap.validate(), []);
  a.destroy();
  assert.equal(heap.stats().usedPages, before + 1, 'only the region owned by nobody is left');
  heap.giveRegion(unrelated);
  assert.equal(heap.stats().usedPages, before);
  assert.deepEqual(heap.validate(), []);
});

test("an allocator created while another is being destroyed does not get its id until the last region tagged with it is back (it would give them back a second time as stranded)", () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const before = heap.stats().usedPages;
  const a = heap.createAllocator();
  a.free(a.alloc(64));
  const id = a.handle.id;
  // Another agent creates and destroys an allocator while a.destroy() gives
  // its control regions back (here: from inside that give-back).
  const other = Heap.attach(heap.handle);
  const give = heap.giveRegion.bind(heap);
  const ids: number[] = [];
  heap.giveRegion = (at: number): void => {
    if (ids.length === 0) {
      const b = other.createAllocator();
      ids.push(b.handle.id);
      b.free(b.alloc(64));
      b.destroy();
    }
    give(at);
  };
  a.destroy();
  heap.giveRegion = give;
  assert.equal(ids.length, 1, 'the create ran inside the destroy');
  assert.notEqual(ids[0], id, 'not the id still being destroyed');
  assert.equal(heap.stats().usedPages, before, 'every page back, each once');
  assert.deepEqual(heap.validate(), []);
  // Once destroy is over, the id is free again.
  assert.equal(other.createAllocator().handle.id, id);
  other.detach();
});

test('destroy() gives back of a half-tagged stray region only the pages still tagged: the rest went back with the dead agent\'s claim and may be another\'s', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  const id = a.handle.id;
  const at = heap.takeRegion(3 * heap.pageSize, id);
  const first = at / heap.pageSize;
  // As if its taker died having tagged only the head: its other two pages
  // go back (the claim's recovery), and someone else takes them.
  heap.givePages(first + 1, 2);
  Atomics.store(heap.u32, heap.argWord + first, 3);
  const theirs = new Set<number>();
  for (let tries = 0; tries < 64 && !(theirs.has(first + 1) && theirs.has(first + 2)); tries++) theirs.add(heap.takeRegion(heap.pageSize, 0) / heap.pageSize);
  assert.ok(theirs.has(first + 1) && theirs.has(first + 2), 'precondition: the two pages are someone else\'s');
  const used = heap.stats().usedPages;
  a.destroy();
  assert.ok(heap.stats().usedPages < used, 'a gave its pages back');
  for (const p of [first + 1, first + 2]) assert.equal(Atomics.load(heap.u32, heap.tagWord + p), pageTag(KIND_REGION, 0, 0), `page ${p} is still the other owner's`);
  assert.deepEqual(heap.validate(), []);
  for (const p of theirs) heap.giveRegion(p * heap.pageSize);
  assert.deepEqual(heap.validate(), []);
});

test('a stray region\'s still-tagged pages stop at the next region of the same allocator (a slot block taken where its untagged pages were)', () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 64 });
  const a = heap.createAllocator();
  const id = a.handle.id;
  const R = heap.allocatorRow(id).region >>> 2;
  const at = heap.takeRegion(3 * heap.pageSize, id);
  const first = at / heap.pageSize;
  // Its taker died having tagged the head only; the other two pages went back...
  heap.givePages(first + 1, 2);
  Atomics.store(heap.u32, heap.argWord + first, 3);
  // ...and an agent attaching in a new slot took the first of them for its caches.
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  assert.equal(Atomics.load(heap.u32, heap.tagWord + first + 1), pageTag(KIND_REGION, id, 0), 'precondition: the slot block lies right after the stray head');
  assert.deepEqual(strandedRegions(heap, R, id), [first, 1], 'the stray head alone, not the block after it');
  b.detach();
  other.detach();
  a.destroy();
  assert.deepEqual(heap.validate(), []);
});

test('createAllocator in a heap with room for the region but not for the creator\'s caches throws heap-full and leaves nothing behind', () => {
  const heap = Heap.create({ maxBytes: 4 << 20 });
  const taken: number[] = [];
  for (;;) {
    const p = heap.takePages(1);
    if (p === 0) break;
    heap.claimDone();
    taken.push(p);
  }
  heap.givePages(taken.pop()!, 1);
  const used = heap.stats().usedPages;
  assert.throws(() => heap.createAllocator(), { name: 'RangeError', code: 'heap-full', message: /no room for the allocator's control region and this worker slot's caches/ });
  assert.equal(heap.stats().usedPages, used, 'the region went back');
  for (const p of taken) heap.givePages(p, 1);
  const a = heap.createAllocator();
  assert.equal(a.id, 1, 'the id was not kept');
  assert.deepEqual(heap.validate(), []);
});

test('a depot keeps a few whole empty slabs per class (hysteresis) while the heap has room', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const a = heap.createAllocator();
  const ps: number[] = [];
  for (let i = 0; i < 40_000; i++) ps.push(a.alloc(64));
  const peak = a.stats().classes.find((c) => c.unit === 64)!.slabPages;
  for (const p of ps) a.free(p);
  const after = a.stats().classes.find((c) => c.unit === 64)!;
  assert.ok(after.slabPages < peak / 2, `slab pages ${peak} -> ${after.slabPages}`);
  assert.ok(after.slabPages >= 2, 'a couple of slabs stay for the next allocations');
  assert.deepEqual(heap.validate(), []);
});

test('slabs of an allocator that reserved its objects are never given back', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const f = heap.createAllocator({ unitSize: 64 });
  assert.ok(f.reserve(20_000));
  const reserved = f.stats().classes[0]!.slabPages;
  const a = heap.createAllocator();
  fill(a, 4096);
  assert.equal(f.stats().classes[0]!.slabPages, reserved);
  assert.deepEqual(heap.validate(), []);
});

/** A heap whose class-0 depot holds many objects, another agent about to die in it, and the words to play its shrink by hand. */
async function shrinkDeathSetup() {
  const { AllocatorHeader, CacheRow, ClassRow, O_COUNT, O_NEXT_BATCH } = await import('../../src/shm/layout.js');
  const { cacheRowAt, classRowAt } = await import('../../src/alloc/region.js');
  const { depotStacks } = await import('../../src/alloc/depot.js');
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4, pageSize: 65536 });
  const a = heap.createAllocator({ unitSize: 64, batch: 32, lowWatermark: 8, highWatermark: 64 });
  const ps: number[] = [];
  for (let i = 0; i < 20_000; i++) ps.push(a.alloc());
  const live = ps.splice(0, 500);
  for (const p of ps) a.free(p);
  a.flushCaches();
  // A live agent's cache: FREE objects no shrink may take.
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  const held = [b.alloc(), b.alloc(), b.alloc()];
  b.free(held[0]!);
  b.free(held[1]!);
  const h = heap.reserveSlot();
  const dying = Heap.attach(h);
  dying.attachAllocator(a.handle);
  const u32 = heap.u32;
  const R = heap.allocatorRow(a.id).region >>> 2;
  const cr = classRowAt(R, 0);
  const rec = cacheRowAt(u32, R, u32[R + AllocatorHeader.CLASSES]!, heap.maxSlots, h.slot, 0);
  const stacks = depotStacks(u32, R, 0, heap.maxSlots);
  /** Every object on the depot's stacks. */
  const depotObjects = () => {
    const out: number[] = [];
    for (const stack of stacks) {
      for (let x = Atomics.load(u32, stack); x !== 0; x = u32[(x >>> 2) + O_NEXT_BATCH]!) {
        for (let o = x, i = u32[(x >>> 2) + O_COUNT]!; i > 0; i--, o = u32[o >>> 2]!) out.push(o);
      }
    }
    return out;
  };
  assert.ok(Atomics.load(u32, cr + ClassRow.DEPOT_OBJECTS) > 1000);
  return { heap, a, b, other, h, u32, cr, rec, live, held, depotObjects, CacheRow, ClassRow, O_COUNT, O_NEXT_BATCH };
}

/** Every free object can be handed out again, and none twice; then all back. */
function drainAndCheck(heap: Heap, a: ReturnType<Heap['createAllocator']>, live: number[]) {
  const again = new Set<number>();
  for (;;) {
    const p = a.alloc();
    if (p === 0) break;
    assert.ok(!again.has(p) && !live.includes(p), `object ${p} handed out twice`);
    again.add(p);
  }
  for (const p of again) a.free(p);
  for (const p of live) a.free(p);
  assert.deepEqual(heap.validate(), []);
}

test("an agent that dies while shrinking a depot (objects marked, batches half relinked) loses nothing and takes nothing from live caches: releaseSlot rebuilds the depot from the marks", async () => {
  const { ST_SHRINKING } = await import('../../src/shm/layout.js');
  const { CARVE_MARKED, CARVE_SHRINKING } = await import('../../src/alloc/depot.js');
  const { heap, a, b, other, h, u32, cr, rec, live, held, depotObjects, CacheRow, ClassRow, O_COUNT, O_NEXT_BATCH } = await shrinkDeathSetup();
  // The dying agent takes the lock, records the shrink, marks the depot's
  // objects, and has rewritten part of a stack when it dies: the first
  // batch now ends it, and the second batch's head links into the middle
  // of the first.
  const cachedBefore = b.stats().workers.find((w) => w.slot === other.slot)!.classes[0]!.cached;
  Atomics.store(u32, cr + ClassRow.DEPOT_LOCK, h.slot + 1);
  for (const x of depotObjects()) heap.st[x >>> 4] = ST_SHRINKING;
  u32[rec + CacheRow.CARVE] = CARVE_SHRINKING | CARVE_MARKED;
  const first = Atomics.load(u32, cr + ClassRow.DEPOT_HEAD);
  const second = u32[(first >>> 2) + O_NEXT_BATCH]!;
  assert.notEqual(second, 0);
  u32[(first >>> 2) + O_NEXT_BATCH] = 0;
  u32[second >>> 2] = u32[first >>> 2]!;
  u32[(second >>> 2) + O_COUNT] = 7;
  assert.ok(heap.validate().length > 0, 'the heap is inconsistent until the slot is released');
  assert.equal(heap.releaseSlot(h.slot, h.gen), true);
  assert.equal(Atomics.load(u32, cr + ClassRow.DEPOT_LOCK), 0, 'lock released');
  assert.deepEqual(heap.validate(), []);
  assert.equal(a.stats().bytesInUse, (live.length + 1) * 64, 'the live objects are the only ones in use');
  const cachedAfter = b.stats().workers.find((w) => w.slot === other.slot)!.classes[0]!.cached;
  assert.ok(cachedBefore > 0);
  assert.equal(cachedAfter, cachedBefore, "the live agent's cache kept its objects");
  b.free(held[2]!);
  other.detach();
  drainAndCheck(heap, a, live);
});

for (const when of ['while it marked the objects', 'after it published the new stacks']) {
  test(`an agent that dies shrinking a depot ${when} (stacks whole, some objects marked) loses nothing: releaseSlot clears the marks and keeps the stacks`, async () => {
    const { ST_SHRINKING } = await import('../../src/shm/layout.js');
    const { CARVE_SHRINKING } = await import('../../src/alloc/depot.js');
    const { heap, a, b, other, h, u32, cr, rec, live, held, depotObjects, CacheRow, ClassRow } = await shrinkDeathSetup();
    Atomics.store(u32, cr + ClassRow.DEPOT_LOCK, h.slot + 1);
    u32[rec + CacheRow.CARVE] = CARVE_SHRINKING;
    const objs = depotObjects();
    // Half the objects marked (or still marked) when it died.
    for (let i = 0; i < objs.length; i += 2) heap.st[objs[i]! >>> 4] = ST_SHRINKING;
    assert.ok(heap.validate().some((e) => /state is 4/.test(e)), 'marked objects until the slot is released');
    assert.equal(heap.releaseSlot(h.slot, h.gen), true);
    assert.deepEqual(heap.validate(), []);
    const after = new Set(depotObjects());
    assert.ok(objs.every((x) => after.has(x)), 'the stacks kept every object');
    b.free(held[2]!);
    other.detach();
    drainAndCheck(heap, a, live);
  });
}

test('free() and freeDeferred() of an object a shrink is relinking are double frees, and change nothing', async () => {
  const { ST_SHRINKING } = await import('../../src/shm/layout.js');
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator({ unitSize: 64 });
  const p = a.alloc();
  a.free(p);
  heap.st[p >>> 4] = ST_SHRINKING;
  assert.throws(() => a.free(p), (e: unknown) => e instanceof RangeError && (e as { code?: string }).code === 'double-free');
  assert.throws(() => a.freeDeferred(p), (e: unknown) => e instanceof RangeError && (e as { code?: string }).code === 'double-free');
  assert.equal(heap.st[p >>> 4], ST_SHRINKING);
  heap.st[p >>> 4] = 1;
  assert.deepEqual(heap.validate(), []);
});

test("a preallocated map's slack for agents' caches is bounded in bytes: 2 entries of 32 KiB values at 16 workers take a few MiB, not maxWorkers x 224 elements", async () => {
  const { HashMap } = await import('../../src/index.js');
  const heap = Heap.create({ maxBytes: 1 << 30, maxWorkers: 16 });
  const before = heap.stats().usedBytes;
  const map = HashMap.create(heap, { keySize: 8, valueSize: 32 << 10, maxEntries: 2, mode: 'prealloc' });
  const taken = heap.stats().usedBytes - before;
  assert.ok(taken <= 16 << 20, `${taken} bytes for a 2-entry map`);
  const key = new Uint8Array(8);
  const value = new Uint8Array(32 << 10);
  assert.equal(map.update(key, value), 0);
  key[0] = 1;
  assert.equal(map.update(key, value), 0);
  key[0] = 2;
  assert.ok(map.update(key, value) < 0, 'the third entry does not fit a 2-entry map');
  assert.deepEqual(heap.validate(), []);
});

test("a shrink leaves alone an allocator this agent has not attached (another agent may destroy it meanwhile), though a slot block page of a group of slots holds a row for it", async () => {
  const { shrinkClass } = await import('../../src/alloc/shrink.js');
  const { cacheRowAt } = await import('../../src/alloc/region.js');
  const { AllocatorHeader } = await import('../../src/shm/layout.js');
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const other = Heap.attach(heap.handle);
  const x = other.createAllocator({ unitSize: 64, batch: 8, lowWatermark: 2, highWatermark: 16 });
  const ps: number[] = [];
  for (let i = 0; i < 1024; i++) ps.push(x.alloc());
  for (const p of ps) x.free(p);
  const R = heap.allocatorRow(x.id).region >>> 2;
  const classes = heap.u32[R + AllocatorHeader.CLASSES]!;
  assert.notEqual(cacheRowAt(heap.u32, R, classes, heap.maxSlots, heap.slot, 0), 0, 'this agent\'s slot shares the block page of the other agent\'s');
  const pages = x.stats().classes[0]!.slabPages;
  assert.equal(shrinkClass(heap, R, 0, 0, 1000), 0);
  assert.equal(x.stats().classes[0]!.slabPages, pages, 'nothing given back');
  assert.ok(shrinkClass(other, R, 0, 0, 1000) > 0, 'the attached agent can');
  assert.deepEqual(heap.validate(), []);
  other.detach();
});
