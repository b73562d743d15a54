/**
 * Which batch a refill takes from its class's depot: from its own agent's
 * stack, else anyone's, else a stack whose agent has left; another
 * attached agent's only once other agents' batches pass STEAL_BYTES, or
 * when no slab can be had; else it carves. Objects keep going round the
 * cache of the agent that carved their slab, so two agents do not write
 * the same lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heap, type Allocator } from '../../src/index.js';
import { AllocatorHeader, ClassRow, CacheRow, O_COUNT, O_NEXT_BATCH } from '../../src/shm/layout.js';
import { cacheRowAt, classRowAt } from '../../src/alloc/region.js';
import { shrinkClass } from '../../src/alloc/shrink.js';
import { STEAL_BYTES } from '../../src/alloc/batches.js';

const UNIT = 64;
const OPTS = { unitSize: UNIT, batch: 8, lowWatermark: 2, highWatermark: 16, prefill: 0 };

function setup(extra: { limitBytes?: number } = {}) {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const a = heap.createAllocator({ ...OPTS, ...extra });
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  const R = heap.allocatorRow(a.id).region >>> 2;
  const u32 = () => heap.u32;
  /** The first page of the slab that holds p. */
  const slabOf = (p: number) => heap.u32[heap.argWord + Math.floor(p / heap.pageSize)]!;
  /** The word holding the head of a stack: a slot's, or anyone's (slot -1). */
  const stackWord = (slot: number) =>
    slot < 0 ? classRowAt(R, 0) + ClassRow.DEPOT_HEAD : cacheRowAt(heap.u32, R, heap.u32[R + AllocatorHeader.CLASSES]!, heap.maxSlots, slot, 0) + CacheRow.DEPOT;
  /** The objects on a stack, batch by batch. */
  const stack = (slot: number) => {
    const out: number[][] = [];
    const w = u32();
    for (let x = Atomics.load(w, stackWord(slot)); x !== 0; x = w[(x >>> 2) + O_NEXT_BATCH]!) {
      const objs: number[] = [];
      for (let o = x, i = w[(x >>> 2) + O_COUNT]!; i > 0; i--, o = w[o >>> 2]!) objs.push(o);
      out.push(objs);
    }
    return out;
  };
  const slabPages = () => a.stats().classes[0]!.slabPages;
  return { heap, a, other, b, R, slabOf, stackWord, stack, slabPages };
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

test('each agent carves a slab of its own; a new slab\'s batches beyond the first wait on its carver\'s stack', () => {
  const { heap, a, b, other, slabOf, stack } = setup();
  const x = a.alloc();
  const mine = stack(heap.slot);
  assert.equal(mine.flat().length, 64 - 8, 'the rest of the slab is on the carver\'s stack');
  assert.ok(mine.flat().every((p) => slabOf(p) === slabOf(x)));
  const y = b.alloc();
  assert.notEqual(slabOf(y), slabOf(x), 'the second agent carved a slab of its own');
  assert.deepEqual(stack(heap.slot), mine, "the carver's batches are all still there");
  a.free(x);
  b.free(y);
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test("a refill takes its own stack's batches, and carves a slab before it takes a few of another agent's", () => {
  const { heap, a, b, other, slabOf, stack, slabPages } = setup();
  const mine = take(b, 64);
  const theirs = take(a, 64);
  const mySlabs = new Set(mine.map(slabOf));
  const theirSlabs = new Set(theirs.map(slabOf));
  assert.ok([...mySlabs].every((s) => !theirSlabs.has(s)), 'no slab shared');
  for (const p of mine) b.free(p);
  for (const p of theirs) a.free(p);
  assert.ok(stack(heap.slot).length > 0 && stack(other.slot).length > 0, 'both trimmed to their own stacks');
  const pages = slabPages();
  const again = take(b, 64);
  assert.ok(again.every((p) => mySlabs.has(slabOf(p))), "every object came back from the agent's own slabs");
  assert.equal(slabPages(), pages, 'carving nothing');
  assert.ok(stack(heap.slot).flat().length * UNIT < STEAL_BYTES);
  const next = b.alloc();
  assert.ok(!theirSlabs.has(slabOf(next)) && !mySlabs.has(slabOf(next)), "with none of its own left, it carved a slab rather than take the other agent's few");
  assert.ok(slabPages() > pages);
  for (const p of [...again, next]) b.free(p);
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test("once other agents' batches in the depot pass STEAL_BYTES, a refill takes theirs before it carves", () => {
  const { heap, a, b, other, slabOf, stack, slabPages } = setup();
  const n = Math.ceil(STEAL_BYTES / UNIT) + 64;
  const theirs = take(a, n);
  for (const p of theirs) a.free(p);
  assert.ok(stack(heap.slot).flat().length * UNIT >= STEAL_BYTES, 'a surplus on the other agent\'s stack');
  const pages = slabPages();
  const theirSlabs = new Set(theirs.map(slabOf));
  const y = b.alloc();
  assert.ok(theirSlabs.has(slabOf(y)), "it took the other agent's batch");
  assert.equal(slabPages(), pages, 'and carved nothing');
  b.free(y);
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test("with no slab to be had (the allocator's limit), a refill takes another agent's batch", () => {
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

test("the stack of a slot whose agent detached is anyone's: the next refill takes it before it carves", () => {
  const { heap, a, b, other, slabOf, stack, slabPages } = setup();
  const left = take(b, 64);
  for (const p of left) b.free(p);
  const slot = other.slot;
  other.detach();
  assert.ok(stack(slot).length > 0, 'the leaver\'s stack stays where it was');
  const pages = slabPages();
  const got = take(a, 64);
  assert.equal(slabPages(), pages, 'nothing carved');
  const leftSlabs = new Set(left.map(slabOf));
  assert.ok(got.every((p) => leftSlabs.has(slabOf(p))), "every object came from the leaver's slab");
  for (const p of got) a.free(p);
  assert.deepEqual(heap.validate(), []);
});

test("a shrink leaves the objects of slabs it cannot give back on the stacks they were on; the whole slabs it keeps are anyone's", () => {
  const { heap, a, b, other, R, slabOf, stack, slabPages } = setup();
  const mine = take(b, 64);
  // Four slabs: what the cache keeps (at most high + batch objects) spans two at most.
  const theirs = take(a, 256);
  for (const p of mine) b.free(p);
  for (const p of theirs) a.free(p);
  const before = { mine: stack(other.slot).flat(), theirs: stack(heap.slot).flat() };
  const pages = slabPages();
  const released = shrinkClass(heap, R, 0, 1, 1000);
  assert.ok(released > 0, 'whole slabs went back');
  assert.equal(slabPages(), pages - released);
  assert.deepEqual(new Set(stack(other.slot).flat()), new Set(before.mine), "the other agent's stack keeps its objects (its slab is not whole: its cache holds some)");
  const anyone = stack(-1).flat();
  assert.equal(anyone.length, 64, "the one whole slab kept is anyone's");
  assert.equal(new Set(anyone.map(slabOf)).size, 1);
  const theirSlabs = new Set(theirs.map(slabOf));
  assert.ok(stack(heap.slot).flat().every((p) => theirSlabs.has(slabOf(p)) && before.theirs.includes(p)), 'the rest of the first agent\'s stack is its own');
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test("validate() checks the batches of every slot's stack", () => {
  const { heap, a, other, stackWord } = setup();
  a.free(a.alloc());
  const u32 = heap.u32;
  const head = Atomics.load(u32, stackWord(heap.slot));
  assert.notEqual(head, 0);
  const n = u32[(head >>> 2) + O_COUNT]!;
  u32[(head >>> 2) + O_COUNT] = n + 1;
  const errors = heap.validate();
  assert.ok(errors.some((e) => e.includes(`slot ${heap.slot}'s stack`) && /says 9 objects, chain has 8/.test(e)), errors.join('\n'));
  u32[(head >>> 2) + O_COUNT] = n;
  assert.deepEqual(heap.validate(), []);
  other.detach();
});

test("an agent that dies having taken a batch from another agent's stack loses nothing: releaseSlot links it back", () => {
  const { heap, a, R, other, b, stackWord } = setup();
  const theirs = take(a, 64);
  for (const p of theirs) a.free(p);
  const h = heap.reserveSlot();
  const dying = Heap.attach(h);
  dying.attachAllocator(a.handle);
  const u32 = heap.u32;
  const cr = classRowAt(R, 0);
  const rec = cacheRowAt(u32, R, u32[R + AllocatorHeader.CLASSES]!, heap.maxSlots, h.slot, 0);
  // It takes the lock, records the first agent's top batch as in flight, unlinks it...
  const top = Atomics.load(u32, stackWord(heap.slot));
  assert.notEqual(top, 0);
  Atomics.store(u32, cr + ClassRow.DEPOT_LOCK, h.slot + 1);
  u32[rec + CacheRow.INFLIGHT] = top;
  Atomics.store(u32, stackWord(heap.slot), u32[(top >>> 2) + O_NEXT_BATCH]!);
  // ...and dies before it splices the batch or unlocks.
  assert.ok(heap.validate().some((e) => /in no list/.test(e)), 'the batch is lost until repaired');
  assert.equal(heap.releaseSlot(h.slot, h.gen), true);
  assert.equal(Atomics.load(u32, cr + ClassRow.DEPOT_LOCK), 0, 'lock released');
  assert.deepEqual(heap.validate(), []);
  b.free(b.alloc()); // the batch is anyone's now: the other agent takes it
  other.detach();
  // Every object can be handed out again, and none twice.
  const seen = new Set<number>();
  for (;;) {
    const p = a.alloc();
    if (p === 0) break;
    assert.ok(!seen.has(p), `object ${p} handed out twice`);
    seen.add(p);
  }
  assert.ok(theirs.every((p) => seen.has(p)), 'every freed object came back');
  for (const p of seen) a.free(p);
  assert.deepEqual(heap.validate(), []);
});

test("a refill that looks at other slots' stacks reaches a slot block published after its agent's views were made", () => {
  // 64 KiB pages: one-page runs fill every free page before the buffer grows.
  const heap = Heap.create({ maxBytes: 64 << 20, initialBytes: 1 << 20, pageSize: 65536 });
  const a = heap.createAllocator({ lowWatermark: 2, highWatermark: 16, batch: 8, prefill: 0 });
  const big = heap.createAllocator();
  const R = heap.allocatorRow(a.id).region >>> 2;
  const classes = heap.u32[R + AllocatorHeader.CLASSES]!;
  // Another agent fills the heap's first megabyte, so the next pages taken grow the buffer past this agent's views.
  const c = Heap.attach(heap.handle);
  const ca = c.attachAllocator(a.handle);
  const cbig = c.attachAllocator(big.handle);
  const mine = heap.viewBytes;
  const runs: number[] = [];
  while (c.viewBytes <= mine) runs.push(cbig.alloc(64 << 10));
  // Slots share a block page a group at a time: the late agent takes the first slot of the next group.
  const group = heap.u32[R + AllocatorHeader.SLOT_GROUP]!;
  const held = [];
  for (let h = heap.reserveSlot(); ; h = heap.reserveSlot()) {
    held.push(h);
    if (h.slot === group - 1) break;
  }
  const late = Heap.attach(heap.handle);
  late.attachAllocator(a.handle);
  const row = cacheRowAt(heap.u32, R, classes, heap.maxSlots, late.slot, 0);
  assert.ok(row * 4 >= heap.viewBytes, `the late agent's block (word ${row}) lies past this agent's views (${heap.viewBytes} bytes)`);
  // Another agent's stack holds objects, this agent's own and anyone's none: its refill looks at every slot.
  const theirs: number[] = [];
  for (let i = 0; i < 64; i++) theirs.push(ca.alloc(64));
  for (const p of theirs) ca.free(p);
  const p = a.alloc(64);
  assert.notEqual(p, 0);
  a.free(p);
  for (const r of runs) cbig.free(r);
  late.detach();
  c.detach();
  for (const h of held) heap.releaseSlot(h.slot, h.gen);
  assert.deepEqual(heap.validate(), []);
});
