/**
 * Handles that cannot be confused: an allocator or map handle names its
 * heap and its generation, so a handle of another heap, of a destroyed
 * object (whose id or memory may have been reused) or a forged one is
 * refused with a stable code, and the refused call changes nothing.
 * Heap.attach checks every field of its handle.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap } from '../../src/index.js';
import type { Allocator, AllocatorHandle, HashMapHandle, HeapHandle } from '../../src/index.js';
import { CLOSE_WAIT } from '../../src/alloc/allocator.js';

/** What a refused call must leave as it was. */
function snapshot(heap: Heap, ...allocators: Allocator[]): unknown {
  return { stats: heap.stats(), slots: heap.slots().map(({ silentMs: _, ...s }) => s), attached: allocators.map((a) => a.attachedAgents) };
}

function expectCode(f: () => unknown, cls: typeof TypeError | typeof RangeError, code: string, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.equal((e as { code?: string }).code, code, (e as Error).message);
    assert.match((e as Error).message, message);
    return true;
  });
}

test('heaps have an identity of their own, the same in every agent', () => {
  const a = Heap.create({ maxBytes: 4 << 20 });
  const b = Heap.create({ maxBytes: 4 << 20 });
  assert.ok(Number.isInteger(a.id) && a.id > 0 && a.id <= 0xffffffff);
  assert.notEqual(a.id, b.id);
  const other = Heap.attach(a.handle);
  assert.equal(other.id, a.id);
  other.detach();
});

test('handles carry the heap and a generation, and survive structured cloning', () => {
  const heap = Heap.create({ maxBytes: 8 << 20 });
  const a = heap.createAllocator();
  const h = structuredClone(a.handle);
  assert.deepEqual(Object.keys(h).sort(), ['gen', 'heap', 'id', 'kind']);
  assert.equal(h.heap, heap.id);
  assert.ok(h.gen > 0);
  const m = HashMap.create(heap, { keySize: 4, valueSize: 4, maxEntries: 8 });
  const mh = structuredClone(m.handle);
  assert.deepEqual(Object.keys(mh).sort(), ['gen', 'heap', 'kind', 'region']);
  const worker = Heap.attach(structuredClone(heap.handle));
  const a2 = worker.attachAllocator(h);
  const m2 = HashMap.attach(worker, mh);
  assert.equal(m2.updateNumber(1, new Uint8Array(4)), 0);
  assert.equal(m.count(), 1);
  m2.detach();
  a2.detach();
  worker.detach();
});

test('a kept handle of a destroyed allocator does not attach the allocator that reuses its id', () => {
  const heap = Heap.create({ maxBytes: 8 << 20 });
  const old = heap.createAllocator();
  const h = old.handle;
  old.destroy();
  const worker = Heap.attach(heap.handle);
  const before0 = snapshot(heap);
  expectCode(() => worker.attachAllocator(h), RangeError, 'stale-handle', new RegExp(`allocator ${h.id} is not live.*stale handle of generation ${h.gen}`));
  assert.deepEqual(snapshot(heap), before0);
  const fresh = heap.createAllocator({ unitSize: 64 });
  assert.equal(fresh.id, h.id, 'the id is reused');
  assert.notEqual(fresh.handle.gen, h.gen);
  const before = snapshot(heap, fresh);
  expectCode(
    () => worker.attachAllocator(h),
    RangeError,
    'stale-handle',
    new RegExp(`stale handle: allocator ${h.id} of generation ${h.gen} was destroyed; id ${h.id} now holds a newer allocator \\(generation ${fresh.handle.gen}\\)`),
  );
  assert.deepEqual(snapshot(heap, fresh), before, 'nothing attached, nothing changed');
  assert.deepEqual(old.handle, h, 'a destroyed allocator\'s handle stays its own');
  const ok = worker.attachAllocator(fresh.handle);
  assert.equal(fresh.attachedAgents, 2);
  ok.detach();
  worker.detach();
  assert.equal(fresh.destroy().leakedObjects, 0);
  heap.assertValid();
});

test('a handle of an allocator destroyed with leaks (its id kept back) is stale too', () => {
  const heap = Heap.create({ maxBytes: 8 << 20 });
  const a = heap.createAllocator();
  const h = a.handle;
  a.alloc(64);
  assert.equal(a.destroy().leakedObjects, 1);
  const before = snapshot(heap);
  expectCode(() => heap.attachAllocator(h), RangeError, 'stale-handle', new RegExp(`allocator ${h.id} is not live.*stale handle`));
  assert.deepEqual(snapshot(heap), before);
});

test('an allocator handle of another heap is refused', () => {
  const one = Heap.create({ maxBytes: 4 << 20 });
  const two = Heap.create({ maxBytes: 4 << 20 });
  const a = one.createAllocator();
  const b = two.createAllocator();
  assert.equal(a.id, b.id);
  const before = snapshot(two, b);
  expectCode(() => two.attachAllocator(a.handle), RangeError, 'foreign-handle', new RegExp(`allocator ${a.id} belongs to another heap \\(heap id ${one.id}, this heap is ${two.id}\\)`));
  assert.deepEqual(snapshot(two, b), before);
});

test('forged allocator handles are refused before anything is written', () => {
  const heap = Heap.create({ maxBytes: 4 << 20 });
  const a = heap.createAllocator();
  const h = a.handle;
  const other = heap.createAllocator({ unitSize: 32 });
  const worker = Heap.attach(heap.handle);
  const cases: [unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    [null, TypeError, /needs an allocator handle.*got null/],
    ['anyalloc.allocator', TypeError, /needs an allocator handle.*got "anyalloc.allocator"/],
    [{ ...h, kind: 'anyalloc.map' }, TypeError, /needs an allocator handle/],
    [{ ...h, extra: 1 }, TypeError, /unknown field "extra"/],
    [{ ...h, id: 1.5 }, TypeError, /allocator id must be a safe integer, got 1\.5/],
    [{ ...h, id: 0 }, RangeError, /allocator id must be in \[1, 64\], got 0/],
    [{ ...h, id: 65 }, RangeError, /allocator id must be in \[1, 64\], got 65/],
    [{ ...h, gen: 'x' }, TypeError, /gen must be an integer in \[1, 2\^32\), got "x"/],
    [{ ...h, gen: 0 }, TypeError, /gen must be an integer .*got 0/],
    [{ ...h, gen: h.gen + 1000 }, RangeError, /generation \d+ was never handed out in this heap \(a forged handle\)/],
    [{ ...h, gen: other.handle.gen }, RangeError, new RegExp(`generation ${other.handle.gen} is not allocator ${h.id}'s \\(a forged handle\\)`)],
    [{ ...h, heap: 'x' }, TypeError, /heap must be an integer .*got "x"/],
    [{ kind: 'anyalloc.allocator', id: h.id }, TypeError, /heap must be an integer .*got undefined/],
    [{ kind: 'anyalloc.allocator', id: 9 }, RangeError, /allocator 9 is not live/],
  ];
  const before = snapshot(heap, a, other);
  for (const [handle, cls, message] of cases) {
    expectCode(() => worker.attachAllocator(handle as AllocatorHandle), cls, 'bad-handle', message);
  }
  assert.deepEqual(snapshot(heap, a, other), before);
  worker.detach();
});

test('a map handle of a destroyed map is stale, also once a new map reuses its memory', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const opts = { keySize: 4, valueSize: 8, maxEntries: 64 };
  const m = HashMap.create(heap, opts);
  const h = m.handle;
  m.destroy();
  const worker = Heap.attach(heap.handle);
  const before0 = snapshot(heap);
  expectCode(() => HashMap.attach(worker, h), RangeError, 'stale-handle', new RegExp(`no live map at byte ${h.region}: stale handle of generation ${h.gen}`));
  assert.deepEqual(snapshot(heap), before0);
  const n = HashMap.create(heap, opts);
  assert.equal(n.handle.region, h.region, 'the new map takes the old one\'s memory');
  assert.deepEqual(m.handle, h, 'a destroyed map\'s handle stays its own');
  const before = snapshot(heap);
  expectCode(() => HashMap.attach(worker, h), RangeError, 'stale-handle', new RegExp(`stale handle: no live map at byte ${h.region} of generation ${h.gen}: it was destroyed and its memory holds a newer map`));
  assert.deepEqual(snapshot(heap), before);
  HashMap.attach(worker, n.handle).detach();
  worker.detach();
  n.destroy();
  heap.assertValid();
});

test('map handles of another heap, or forged, are refused', () => {
  const one = Heap.create({ maxBytes: 8 << 20 });
  const two = Heap.create({ maxBytes: 8 << 20 });
  const opts = { keySize: 4, valueSize: 8, maxEntries: 64 };
  const a = HashMap.create(one, opts);
  const b = HashMap.create(two, opts);
  const h = b.handle;
  assert.equal(a.handle.region, h.region);
  const before = snapshot(two);
  expectCode(() => HashMap.attach(two, a.handle), RangeError, 'foreign-handle', /belongs to another heap/);
  const cases: [unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    [undefined, TypeError, /needs a map handle.*got undefined/],
    [{ ...h, kind: 'anyalloc.allocator' }, TypeError, /needs a map handle/],
    [{ ...h, base: 0 }, TypeError, /unknown field "base"/],
    [{ ...h, region: '4096' }, TypeError, /region must be a safe integer, got "4096"/],
    [{ ...h, region: h.region + 4 }, RangeError, /no live map at byte \d+ \(a region is a multiple of 8/],
    [{ ...h, region: 8 }, RangeError, /no live map at byte 8 /],
    [{ ...h, region: 2 ** 40 }, RangeError, /no live map at byte 1099511627776/],
    [{ ...h, region: h.region + 64 }, RangeError, /no live map at byte/],
    [{ ...h, gen: h.gen + 1000 }, RangeError, /never handed out in this heap \(a forged handle\)/],
    [{ ...h, gen: -1 }, TypeError, /gen must be an integer.*got -1/],
    [{ kind: 'anyalloc.map', region: h.region }, TypeError, /heap must be an integer.*got undefined/],
  ];
  for (const [handle, cls, message] of cases) {
    expectCode(() => HashMap.attach(two, handle as HashMapHandle), cls, 'bad-handle', message);
  }
  assert.deepEqual(snapshot(two), before);
  assert.equal(b.count(), 0);
});

test('Heap.attach checks every field of its handle and takes no slot when it refuses', () => {
  const heap = Heap.create({ maxBytes: 4 << 20, maxWorkers: 4 });
  const h = heap.handle;
  const size = heap.sab!.byteLength;
  const cases: [unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    [null, TypeError, /attach needs a heap handle \(heap.handle\), got null/],
    [{ ...h, kind: 'anyalloc.map' }, TypeError, /attach needs a heap handle/],
    [{ kind: 'anyalloc.heap', base: 0 }, TypeError, /exactly one of buffer and memory, got neither/],
    [{ ...h, memory: { buffer: heap.sab, grow: () => 0 } }, TypeError, /exactly one of buffer and memory, got both/],
    [{ ...h, buffer: new ArrayBuffer(1 << 16) }, TypeError, /buffer must be a SharedArrayBuffer, got object/],
    [{ kind: 'anyalloc.heap', memory: {}, base: 0 }, TypeError, /memory must be a shared WebAssembly.Memory/],
    [{ ...h, base: 'x' }, TypeError, /base must be a safe integer, got "x"/],
    [{ ...h, base: undefined }, TypeError, /base must be a safe integer, got undefined/],
    [{ ...h, base: -8 }, RangeError, /base must be a multiple of 8 in \[0, \d+\] .*got -8/],
    [{ ...h, base: 4 }, RangeError, /base must be a multiple of 8 .*got 4/],
    [{ ...h, base: size }, RangeError, new RegExp(`base must be a multiple of 8 in \\[0, ${size - 128}\\] .*got ${size}`)],
    [{ ...h, slot: 0 }, TypeError, /slot and gen go together/],
    [{ ...h, slot: 'a', gen: 1 }, TypeError, /slot must be a non-negative integer, got "a"/],
    [{ ...h, slot: 0, gen: -1 }, TypeError, /gen must be an integer in \[0, 2\^32\), got -1/],
    [{ ...h, extra: true }, TypeError, /unknown field "extra"/],
    [{ ...h, threads: 5 }, TypeError, /threads \(a thread table\) must be a SharedArrayBuffer, got 5/],
    [{ ...h, base: 64 }, TypeError, /no anyalloc heap at byte 64/],
    [{ ...h, states: undefined }, TypeError, /states \(the heap's state buffer\) must be a SharedArrayBuffer, got undefined/],
    [{ ...h, states: new ArrayBuffer(64) }, TypeError, /states \(the heap's state buffer\) must be a SharedArrayBuffer, got object/],
    [{ ...h, states: new SharedArrayBuffer(64) }, RangeError, /states: a state buffer of 64 bytes is not this heap's \(it has 262144, one byte per 16 bytes of maxBytes\)/],
    // Of the right size, but another heap's, or short of the committed pages, or never stamped.
    [{ ...h, states: Heap.create({ maxBytes: 4 << 20, maxWorkers: 4 }).states }, RangeError, /states: not this heap's state buffer/],
    [{ ...h, states: new SharedArrayBuffer(64, { maxByteLength: 262144 }) }, RangeError, /states: not this heap's state buffer/],
    [{ ...h, states: new SharedArrayBuffer(262144, { maxByteLength: 262144 }) }, RangeError, /states: not this heap's state buffer/],
  ];
  const before = snapshot(heap);
  for (const [handle, cls, message] of cases) {
    expectCode(() => Heap.attach(handle as HeapHandle), cls, 'bad-handle', message);
  }
  assert.deepEqual(snapshot(heap), before, 'no slot taken');
  Heap.attach({ ...h, threads: new SharedArrayBuffer(64) } as HeapHandle).detach();
  const r = heap.reserveSlot();
  const after = snapshot(heap);
  expectCode(() => Heap.attach({ ...r, gen: r.gen + 1 }), RangeError, 'stale-handle', new RegExp(`slot ${r.slot} is no longer reserved`));
  assert.deepEqual(snapshot(heap), after);
  Heap.attach(r).detach();
  expectCode(() => Heap.attach(r), RangeError, 'stale-handle', /no longer reserved/);
});

test('a heap full of agents, or of allocators, says so with a code', () => {
  const heap = Heap.create({ maxBytes: 4 << 20, maxWorkers: 1, maxAllocators: 1 });
  expectCode(() => Heap.attach(heap.handle), RangeError, 'no-slot', /no free worker slot: all 1 are taken/);
  heap.createAllocator();
  const before = snapshot(heap);
  expectCode(() => heap.createAllocator(), RangeError, 'no-allocator-id', /no free allocator id: all 1 are in use/);
  assert.deepEqual(snapshot(heap), before);
});

test('Heap.attach records an owner tag with the slot (slots() shows it) and refuses a bad one before taking a slot', () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const other = Heap.attach(heap.handle, { owner: 42 });
  assert.equal(heap.slots().find((s) => s.slot === other.slot)!.owner, 42);
  assert.equal(heap.slots().find((s) => s.slot === heap.slot)!.owner, 0);
  const before = heap.slots().length;
  for (const owner of [0, -1, 2 ** 32, 1.5]) {
    assert.throws(() => Heap.attach(heap.handle, { owner }), (e: Error & { code?: string }) => e.code === 'bad-option' && /owner/.test(e.message), `owner ${owner}`);
  }
  assert.throws(() => Heap.attach(heap.handle, { ownr: 1 } as never), (e: Error & { code?: string }) => e.code === 'bad-option' && /did you mean owner/.test(e.message));
  assert.equal(heap.slots().length, before, 'no slot taken by a refused attach');
  other.detach();
  // A slot taken again carries its new agent's tag, not the old one.
  const again = Heap.attach(heap.handle);
  assert.equal(heap.slots().find((s) => s.slot === again.slot)!.owner, 0);
});

/**
 * Runs `destroy`, and `attach` once from inside its first page give-back
 * (as another agent would, at that moment); returns 'attached' or the
 * attach's error code.
 */
function duringGiveBack(heap: Heap, attach: () => unknown, destroy: () => unknown): string[] {
  const give = heap.givePages.bind(heap);
  const seen: string[] = [];
  heap.givePages = (first: number, k: number): void => {
    if (seen.length === 0) {
      try {
        attach();
        seen.push('attached');
      } catch (e) {
        seen.push((e as { code?: string }).code ?? String(e));
      }
    }
    give(first, k);
  };
  try {
    destroy();
  } finally {
    heap.givePages = give;
  }
  return seen;
}

test('an attach that comes while destroy() gives pages back is refused (stale-handle) and writes nothing; the destroy completes and every page comes back', () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const before = heap.stats().usedPages;
  const a = heap.createAllocator();
  for (const size of [16, 1000, 5000]) a.free(a.alloc(size));
  const handle = a.handle;
  const other = Heap.attach(heap.handle);
  // Another agent attaches while destroy() sweeps the slabs (here: from inside that sweep).
  const seen = duringGiveBack(heap, () => other.attachAllocator(handle), () => a.destroy());
  assert.deepEqual(seen, ['stale-handle']);
  assert.equal(heap.stats().usedPages, before, 'every page back, each once');
  assert.deepEqual(heap.validate(), []);
  other.detach();
  heap.detach();
});

test('destroy() waits for an attach under way, and refuses (busy) an attach that never finishes, leaving the allocator live; releasing the stuck slot lets it go', () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const a = heap.createAllocator();
  const other = Heap.attach(heap.handle);
  // The other agent died in the middle of attaching: its slot row names the allocator.
  Atomics.store(heap.u32, heap.slotWord + other.slot * 16 + 7, a.handle.id);
  const t = Date.now();
  CLOSE_WAIT.ms = 200;
  try {
    expectCode(() => a.destroy(), RangeError, 'busy', /allocator \d+: an agent has been attaching it for 200 ms/);
  } finally {
    CLOSE_WAIT.ms = 2000;
  }
  assert.ok(Date.now() - t >= 190, 'it waited');
  // Nothing changed: still live, usable, attachable.
  const p = a.alloc(64);
  assert.ok(p !== 0);
  a.free(p);
  const third = Heap.attach(heap.handle);
  third.attachAllocator(a.handle).detach();
  third.detach();
  assert.ok(heap.releaseSlot(other.slot));
  assert.equal(Atomics.load(heap.u32, heap.slotWord + other.slot * 16 + 7), 0, 'the release cleared it');
  a.destroy();
  assert.deepEqual(heap.validate(), []);
  heap.detach();
});

test("a map attach that comes while the map's destroy() frees its elements is refused (stale-handle); the destroy completes", () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const before = heap.stats().usedPages;
  const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 64, mode: 'dynamic' });
  for (let k = 0; k < 64; k++) map.updateNumber(k, new Uint8Array(8));
  const handle = map.handle;
  const other = Heap.attach(heap.handle);
  const seen = duringGiveBack(heap, () => HashMap.attach(other, handle), () => map.destroy());
  assert.deepEqual(seen, ['stale-handle']);
  assert.equal(heap.stats().usedPages, before);
  assert.deepEqual(heap.validate(), []);
  other.detach();
  heap.detach();
});

test('a destroy() by another agent waits while a release of a dead slot works in the allocator (it would give the pages back under the release)', () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const owner = Heap.attach(heap.handle);
  const a = owner.createAllocator({ unitSize: 64 });
  const dead = Heap.attach(heap.handle);
  const b = dead.attachAllocator(a.handle);
  b.free(b.alloc(64));
  const c = owner.createAllocator();
  const seen: string[] = [];
  const refresh = heap.refresh.bind(heap);
  // While this agent releases the dead slot (inside its work on `a`), the owner destroys `a`.
  heap.refresh = (): boolean => {
    if (seen.length === 0) {
      try {
        a.destroy();
        seen.push('destroyed');
      } catch (e) {
        seen.push((e as { code?: string }).code ?? String(e));
      }
    }
    return refresh();
  };
  CLOSE_WAIT.ms = 200;
  try {
    assert.ok(heap.releaseSlot(dead.slot));
  } finally {
    CLOSE_WAIT.ms = 2000;
    heap.refresh = refresh;
  }
  assert.deepEqual(seen, ['busy'], 'the destroy waited for the release, and gave up');
  a.destroy();
  c.destroy();
  assert.deepEqual(heap.validate(), []);
  owner.detach();
  heap.detach();
});

test("a map's destroy() that cannot clear a bucket (busy) leaves the map as it was: attachable, and destroyed once the bucket is free", () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 64, buckets: 4 });
  for (let k = 0; k < 16; k++) map.updateNumber(k, new Uint8Array(8));
  // A writer that stalled holding a bucket's lock (the lock bit of a bucket word).
  const m = map as unknown as { bucketWord: number };
  let b = 0;
  while (Atomics.load(heap.u32, m.bucketWord + b) === 0) b++;
  const head = Atomics.load(heap.u32, m.bucketWord + b);
  Atomics.store(heap.u32, m.bucketWord + b, (head | 1) >>> 0);
  expectCode(() => map.destroy(), RangeError, 'busy', /bucket \d+ stays locked/);
  const other = Heap.attach(heap.handle);
  const again = HashMap.attach(other, map.handle);
  again.detach();
  other.detach();
  Atomics.store(heap.u32, m.bucketWord + b, head);
  map.destroy();
  assert.deepEqual(heap.validate(), []);
  heap.detach();
});
