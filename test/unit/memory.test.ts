/**
 * What memory the allocator holds: an empty allocator only its control
 * region, a class's slabs only once the class is used (or when prefill is
 * asked for).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heap } from '../../src/index.js';

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
  assert.equal(heap.stats().usedPages, pagesBefore, 'no slab carved at attach');
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
  assert.ok(classes.every((c) => c.slabPages === 1), 'a slab per class');
  const mine = a.stats().workers.find((w) => w.slot === heap.slot)!;
  assert.ok(mine.classes.every((c) => c.cached >= 2));
  assert.deepEqual(heap.validate(), []);
});
