import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUCKET_SIZES, Heap } from '../../src/index.js';
import { slabGeometry } from '../../src/alloc/sizeclass.js';

/** Class indices of 32- and 64-byte objects. */
const C32 = BUCKET_SIZES.indexOf(32);
const C64 = BUCKET_SIZES.indexOf(64);

function tick(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

test('bucketed sizes map to the smallest bucket that fits, 16-byte aligned', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const a = heap.createAllocator();
  for (let size = 1; size <= 4096; size++) {
    const p = a.alloc(size);
    assert.notEqual(p, 0);
    assert.equal(p % 16, 0, `alignment of alloc(${size})`);
    const want = BUCKET_SIZES.find((b) => b >= size);
    assert.equal(a.usableSize(p), want, `bucket of ${size}`);
    a.free(p);
  }
  heap.assertValid();
});

test('live objects never overlap and keep their contents', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const a = heap.createAllocator({ lowWatermark: 2, highWatermark: 8, batch: 4, prefill: 1 });
  const live: { p: number; size: number }[] = [];
  for (let i = 0; i < 3000; i++) {
    const size = 1 + ((i * 2654435761) >>> 0) % 4200;
    const p = a.alloc(size);
    assert.notEqual(p, 0);
    heap.u8.fill(i & 255, p, p + size);
    live.push({ p, size });
  }
  const sorted = [...live].sort((x, y) => x.p - y.p);
  for (let i = 1; i < sorted.length; i++) {
    assert.ok(sorted[i - 1]!.p + sorted[i - 1]!.size <= sorted[i]!.p, 'overlap');
  }
  live.forEach(({ p, size }, i) => {
    const u8 = heap.u8;
    for (let j = 0; j < size; j += 97) assert.equal(u8[p + j], i & 255);
  });
  for (const { p } of live) a.free(p);
  heap.assertValid();
  const report = a.destroy();
  assert.equal(report.leakedObjects, 0);
  heap.assertValid();
});

test('large allocations are page runs, freed back to the page heap', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const a = heap.createAllocator();
  const before = heap.stats().usedPages;
  const p = a.alloc(200_000);
  assert.equal(p % heap.pageSize, 0);
  const pages = Math.ceil(200_000 / heap.pageSize);
  assert.equal(a.usableSize(p), pages * heap.pageSize);
  assert.equal(heap.stats().usedPages, before + pages);
  assert.equal(a.stats().large.live, 1);
  a.free(p);
  assert.equal(heap.stats().usedPages, before);
  assert.throws(() => a.free(p), { name: 'RangeError', message: /not allocated|double free/ });
  heap.assertValid();
});

test('fixed-size mode rounds the unit to 16 and rejects larger sizes', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const f = heap.createAllocator({ unitSize: 40 });
  assert.equal(f.unitSize, 48);
  const p = f.alloc();
  assert.equal(f.usableSize(p), 48);
  assert.notEqual(f.alloc(48), 0);
  assert.throws(() => f.alloc(49), { name: 'RangeError', message: /\[1, 48\].*49/ });
  f.free(p);
  heap.assertValid();
});

test('bad sizes raise TypeError or RangeError naming the value', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  const cases: [unknown, string, RegExp][] = [
    [0, 'RangeError', /got 0$/],
    [-5, 'RangeError', /got -5$/],
    [1.5, 'TypeError', /got 1\.5$/],
    [NaN, 'TypeError', /got NaN$/],
    ['16', 'TypeError', /got "16"$/],
    [2 ** 53, 'TypeError', /got 9007199254740992$/],
    [undefined, 'TypeError', /got undefined$/],
    [1e12, 'RangeError', /got 1000000000000$/],
  ];
  const stats = JSON.stringify(heap.stats());
  for (const [size, name, message] of cases) {
    assert.throws(() => a.alloc(size as number), { name, message }, `alloc(${String(size)})`);
  }
  assert.equal(JSON.stringify(heap.stats()), stats, 'heap unchanged');
  heap.assertValid();
});

test('bad frees raise RangeError and leave the heap unchanged', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  const b = heap.createAllocator();
  const p = a.alloc(64);
  const q = a.alloc(100);
  const big = a.alloc(70_000);
  const other = b.alloc(64);
  const freed = a.alloc(32);
  a.free(freed);
  const snapshot = (): string => JSON.stringify([heap.stats(), a.stats(), b.stats()]);
  const before = snapshot();
  const cases: [unknown, string, RegExp][] = [
    [p + 8, 'RangeError', /invalid unaligned free/],
    [p + 16, 'RangeError', /not the start of an object/],
    [freed, 'RangeError', /double free/],
    [big + 4096, 'RangeError', /inside a large allocation/],
    [other, 'RangeError', /wrong allocator/],
    [16, 'RangeError', /not allocated/],
    [heap.committedPages() * heap.pageSize + 1024, 'RangeError', /outside the heap/],
    [2 ** 40, 'RangeError', /outside the heap/],
    [-64, 'RangeError', /outside the heap/],
    [p + 0.5, 'TypeError', /integer/],
    [NaN, 'TypeError', /integer/],
    ['64', 'TypeError', /integer/],
  ];
  for (const [ptr, name, message] of cases) {
    assert.throws(() => a.free(ptr as number), { name, message }, `free(${String(ptr)})`);
    assert.equal(snapshot(), before, `heap changed by free(${String(ptr)})`);
  }
  a.free(0);
  assert.equal(snapshot(), before);
  heap.assertValid();
  a.free(p);
  a.free(q);
  a.free(big);
  b.free(other);
  assert.throws(() => a.free(p), /double free/);
  heap.assertValid();
});

test('free after a free from a page of the same tag still checks the pointer, and each object goes to its own class', () => {
  // free() takes the cache row from the tag it checked last when a page
  // has the same tag: a pointer from such a page must still be refused
  // when bad, and a page of another class or allocator must not reuse it.
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  const b = heap.createAllocator();
  const p = a.alloc(64);
  const primer = a.alloc(64);
  const other = b.alloc(64);
  a.free(primer); // last checked tag: a's 64-byte slab page
  const snapshot = (): string => JSON.stringify([heap.stats(), a.stats(), b.stats()]);
  const before = snapshot();
  for (const [ptr, message] of [
    [p + 8, /invalid unaligned free/],
    [p + 16, /not the start of an object/],
    [primer, /double free/],
    [other, /wrong allocator/],
  ] as const) {
    assert.throws(() => a.free(ptr), { name: 'RangeError', message }, `free(${ptr})`);
    assert.equal(snapshot(), before, `heap changed by free(${ptr})`);
  }
  b.free(other);
  a.free(p);

  // Interleaved frees of two classes: every object lands in its own class's cache.
  const sizes = [16, 256, 16, 16, 256, 4096, 256, 16];
  const live = sizes.map((size) => ({ size, p: a.alloc(size) }));
  const cachedBefore = a.stats().classes.map((row) => row.cached);
  for (const o of live) a.free(o.p);
  const cachedAfter = a.stats().classes.map((row) => row.cached);
  for (const size of new Set(sizes)) {
    const c = a.stats().classes.findIndex((row) => row.unit === size);
    assert.equal(cachedAfter[c]! - cachedBefore[c]!, sizes.filter((x) => x === size).length, `objects of ${size} B cached in their class`);
  }
  for (const o of live) {
    const q = a.alloc(o.size);
    assert.equal(a.usableSize(q), o.size, `alloc(${o.size}) after interleaved frees gives a ${o.size}-byte object`);
  }
  heap.assertValid();
});

test('an object freed twice is never handed out twice', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  const p = a.alloc(128);
  a.free(p);
  assert.throws(() => a.free(p), /double free/);
  const seen = new Set<number>();
  for (let i = 0; i < 5000; i++) {
    const x = a.alloc(128);
    assert.ok(!seen.has(x), `pointer ${x} handed out twice`);
    seen.add(x);
  }
  heap.assertValid();
});

test('objects migrate: freed by another agent go to that agent\'s cache', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator({ lowWatermark: 2, highWatermark: 8, batch: 4, prefill: 0 });
  // A second attachment in this thread stands for another worker.
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  const ps: number[] = [];
  for (let i = 0; i < 100; i++) ps.push(a.alloc(64));
  for (const p of ps) b.free(p);
  const st = a.stats();
  const wa = st.workers.find((w) => w.slot === heap.slot)!;
  const wb = st.workers.find((w) => w.slot === other.slot)!;
  assert.equal(wa.classes[C64]!.allocs, 100);
  assert.equal(wb.classes[C64]!.frees, 100);
  assert.ok(wb.classes[C64]!.cached <= 8 + 4, 'freeing agent trims its cache synchronously when it overflows');
  assert.ok(wb.classes[C64]!.trims > 0);
  // They stay b's (its cache, its depot stack) while b is attached and
  // holds few of them; once b leaves, they come back to a through the depot.
  b.detach();
  other.detach();
  const back = new Set<number>();
  for (let i = 0; i < 100; i++) back.add(a.alloc(64));
  assert.ok([...back].some((p) => ps.includes(p)), 'reused through the depot');
  heap.assertValid();
});

test('refill and trim run in a microtask and respect the watermarks', async () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator({ lowWatermark: 10, highWatermark: 30, batch: 12, prefill: 0 });
  const cached = (): number => a.stats().workers.find((w) => w.slot === heap.slot)!.classes[0]!.cached;
  const ps = [a.alloc(16)];
  while (cached() >= 10) ps.push(a.alloc(16));
  await tick();
  assert.ok(cached() >= 10, `refilled to ${cached()}`);
  for (let i = 0; i < 60; i++) ps.push(a.alloc(16));
  // Free until the cache sits above high but below the synchronous cap.
  let peak = 0;
  while (ps.length > 0) {
    a.free(ps.pop()!);
    peak = Math.max(peak, cached());
    assert.ok(cached() < 30 + 12, 'bounded before the microtask runs');
    if (cached() === 35) break;
  }
  assert.ok(peak >= 35);
  await tick();
  assert.equal(cached(), 20, 'trimmed to (low + high) / 2');
  heap.assertValid();
});

test('a loop that never yields: batch frees above high trim the cache without the microtask', () => {
  // A burst leaves the cache between high and high + batch with the trim
  // waiting for a microtask; a loop that does not yield would otherwise
  // take free's slow path on every free.
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator({ lowWatermark: 10, highWatermark: 30, batch: 12, prefill: 0 });
  const row = () => a.stats().workers.find((w) => w.slot === heap.slot)!.classes[0]!;
  const ps: number[] = [];
  for (let i = 0; i < 80; i++) ps.push(a.alloc(16));
  while (row().cached < 33) a.free(ps.pop()!);
  const trims = row().trims;
  // Each pair's free finds the cache at 33, above high; the 12th since
  // the trim was asked for (the burst's 3 counted) trims it now.
  let pairs = 0;
  while (row().trims === trims && pairs < 100) {
    a.free(a.alloc(16));
    pairs++;
  }
  assert.equal(row().trims, trims + 1, 'trimmed without yielding');
  assert.equal(pairs, 12 - 3, 'after batch frees above high in all');
  assert.equal(row().cached, 20, 'trimmed to (low + high) / 2');
  for (const p of ps) a.free(p);
  heap.assertValid();
});

test('nowait: an empty cache returns 0 and is refilled in a microtask', async () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator({ nowait: true, lowWatermark: 4, highWatermark: 16, batch: 8, prefill: 2 });
  assert.equal(a.nowait, true);
  const prefilled = a.stats().workers[0]!.classes[C32]!.cached;
  assert.ok(prefilled >= 2, 'at least the prefill');
  const got: number[] = [];
  for (;;) {
    const p = a.alloc(32);
    if (p === 0) break;
    got.push(p);
  }
  assert.equal(got.length, prefilled, 'only the prefilled objects');
  const st = a.stats().workers[0]!.classes[C32]!;
  assert.equal(st.failures, 1);
  await tick();
  assert.notEqual(a.alloc(32), 0);
});

test('limitBytes caps the pages an allocator holds; alloc returns 0 past it', () => {
  const heap = Heap.create({ maxBytes: 64 << 20, pageSize: 65536 });
  const f = heap.createAllocator({ unitSize: 4096, limitBytes: 3 * 65536, prefill: 0 });
  const ps: number[] = [];
  for (;;) {
    const p = f.alloc();
    if (p === 0) break;
    ps.push(p);
    assert.ok(ps.length < 1000);
  }
  assert.equal(ps.length, 3 * 16, '16 objects of 4096 bytes per 64 KiB slab');
  const st = f.stats();
  assert.equal(st.chargedBytes, 3 * 65536);
  assert.ok(st.failures >= 1);
  f.free(ps.pop()!);
  assert.notEqual(f.alloc(), 0, 'memory freed under the limit is usable again');
  heap.assertValid();
});

test('the heap grows on demand and views are renewed', () => {
  const heap = Heap.create({ maxBytes: 32 << 20, initialBytes: 0 });
  const a = heap.createAllocator();
  const start = heap.committedPages();
  const ps: number[] = [];
  for (let i = 0; i < 200; i++) {
    const p = a.alloc(4096);
    heap.u32[p >>> 2] = i;
    ps.push(p);
  }
  assert.ok(heap.committedPages() > start, 'grew');
  assert.ok(heap.u8.length >= heap.committedPages() * heap.pageSize);
  assert.ok(heap.st.length * 16 >= heap.committedPages() * heap.pageSize);
  ps.forEach((p, i) => assert.equal(heap.u32[p >>> 2], i));
  for (const p of ps) a.free(p);
  heap.assertValid();
});

test('a full heap makes alloc return 0, not throw', () => {
  const heap = Heap.create({ maxBytes: 2 << 20 });
  const a = heap.createAllocator();
  let n = 0;
  while (a.alloc(2048) !== 0) n++;
  assert.ok(n > 100);
  assert.equal(a.alloc(100_000), 0);
  assert.ok(a.stats().failures >= 2);
  assert.ok(heap.stats().growFailures >= 0);
  heap.assertValid();
});

test('destroy drains caches, frees pages and reports leaks', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const used0 = heap.stats().usedPages;
  const a = heap.createAllocator();
  const keep = [a.alloc(16), a.alloc(16), a.alloc(1000), a.alloc(100_000)];
  for (let i = 0; i < 500; i++) a.free(a.alloc(64));
  const report = a.destroy();
  assert.equal(report.leakedObjects, 4);
  assert.equal(report.largeRuns, 1);
  assert.deepEqual(report.classes, [
    { unit: 16, objects: 2 },
    { unit: 1024, objects: 1 },
  ]);
  // A slab of 16-byte objects, one of 1024-byte ones, and the pages of the large run.
  const slabPages = (unit: number): number => slabGeometry(heap.pageSize, unit).pages;
  assert.equal(report.pagesKept, slabPages(16) + slabPages(1024) + Math.ceil(100_000 / heap.pageSize));
  assert.equal(heap.stats().usedPages, used0 + report.pagesKept);
  assert.throws(() => a.alloc(16), /detached/);
  assert.throws(() => a.free(keep[0]!), /detached/);
  heap.assertValid();
});

test('destroy refuses while another agent is attached', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  assert.throws(() => a.destroy(), /still attached in 1 other agent/);
  b.detach();
  assert.equal(a.destroy().leakedObjects, 0);
  other.detach();
});

test('releaseSlot gives a dead agent\'s cached objects back', () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const a = heap.createAllocator();
  const h = heap.reserveSlot();
  const dead = Heap.attach(h);
  assert.equal(dead.slot, h.slot);
  const d = dead.attachAllocator(a.handle);
  for (let i = 0; i < 50; i++) d.free(d.alloc(64));
  const cachedBefore = a.stats().workers.find((w) => w.slot === h.slot)!.classes[C64]!.cached;
  assert.ok(cachedBefore > 0);
  // The agent "dies" without detaching; a survivor releases its slot.
  assert.equal(heap.releaseSlot(h.slot), true);
  assert.equal(heap.releaseSlot(h.slot), false, 'already free');
  const row = a.stats().workers.find((w) => w.slot === h.slot);
  assert.equal(row?.classes[C64]!.cached ?? 0, 0);
  assert.equal(row?.attached ?? false, false);
  heap.assertValid();
  assert.equal(a.destroy().leakedObjects, 0);
  assert.throws(() => Heap.attach(h), /no longer reserved/);
});

test('worker slots run out with a clear error', () => {
  const heap = Heap.create({ maxBytes: 4 << 20, maxWorkers: 2 });
  const second = Heap.attach(heap.handle);
  assert.throws(() => Heap.attach(heap.handle), { name: 'RangeError', message: /all 2 are taken/ });
  second.detach();
  Heap.attach(heap.handle).detach();
});

test('heap options are checked', () => {
  assert.throws(() => Heap.create({ pageSize: 10000 }), { name: 'RangeError', message: /power of two.*10000/ });
  assert.throws(() => Heap.create({ pageSize: 1024 }), { name: 'RangeError', message: /pageSize/ });
  assert.throws(() => Heap.create({ maxWorkers: 0 }), { name: 'RangeError', message: /maxWorkers/ });
  assert.throws(() => Heap.create({ maxBytes: 2 ** 33 }), { name: 'RangeError', message: /maxBytes/ });
  assert.throws(() => Heap.create({ maxBytes: 1.5 }), { name: 'TypeError', message: /maxBytes/ });
  assert.throws(() => Heap.attach({} as never), { name: 'TypeError' });
  const heap = Heap.create({ maxBytes: 4 << 20 });
  assert.throws(() => heap.createAllocator({ unitSize: 0 }), { name: 'RangeError', message: /unitSize/ });
  assert.throws(() => heap.createAllocator({ lowWatermark: 10, highWatermark: 5 }), /above lowWatermark/);
  for (const key of ['lowWatermark', 'highWatermark', 'batch'] as const) {
    assert.throws(() => heap.createAllocator({ [key]: 65537 }), { name: 'RangeError', message: new RegExp(`${key}.*65537`) });
  }
  assert.equal(heap.createAllocator({ lowWatermark: 65535, highWatermark: 65536, batch: 65536, prefill: 0 }).destroy().leakedObjects, 0);
  assert.throws(() => heap.attachAllocator({ kind: 'anyalloc.allocator', id: 7 } as never), /not live/);
});

test('a heap in a shared WebAssembly.Memory leaves the reserved bytes alone', () => {
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 1024, shared: true });
  const raw = new Uint8Array(memory.buffer);
  raw.fill(0xab, 0, 65536);
  const heap = Heap.create({ memory, reserveBytes: 65536, maxBytes: 1024 * 65536 });
  const a = heap.createAllocator();
  const ps: number[] = [];
  for (let i = 0; i < 300; i++) ps.push(a.alloc(4000));
  assert.ok(memory.buffer.byteLength > 4 * 65536, 'memory grew');
  assert.ok(ps.every((p) => p >= 65536));
  const after = new Uint8Array(memory.buffer);
  for (let i = 0; i < 65536; i += 511) assert.equal(after[i], 0xab);
  const other = Heap.attach(heap.handle);
  const b = other.attachAllocator(a.handle);
  for (const p of ps) b.free(p);
  heap.assertValid();
});

test('releaseSlot repairs a depot pop lock held by a dead agent', async () => {
  const { AllocatorHeader, ClassRow, CacheRow, O_NEXT_BATCH } = await import('../../src/shm/layout.js');
  const { cacheRowAt, classRowAt } = await import('../../src/alloc/region.js');
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const a = heap.createAllocator({ unitSize: 64, batch: 8, lowWatermark: 2, highWatermark: 16 });
  assert.ok(a.reserve(64), 'a slab carved into the depot');
  const h = heap.reserveSlot();
  const dying = Heap.attach(h);
  dying.attachAllocator(a.handle);
  const R = heap.allocatorRow(a.id).region >>> 2;
  const u32 = heap.u32;
  const cr = classRowAt(R, 0);
  const rec = cacheRowAt(u32, R, u32[R + AllocatorHeader.CLASSES]!, heap.maxSlots, h.slot, 0);
  const depotBefore = a.stats().classes[0]!.depot;
  assert.ok(depotBefore > 0);
  // The agent takes the lock, records the batch, pops it with its CAS...
  const head = Atomics.load(u32, cr + ClassRow.DEPOT_HEAD);
  Atomics.store(u32, cr + ClassRow.DEPOT_LOCK, h.slot + 1);
  u32[rec + CacheRow.INFLIGHT] = head;
  Atomics.store(u32, cr + ClassRow.DEPOT_HEAD, u32[(head >>> 2) + O_NEXT_BATCH]!);
  // ...and dies before unlocking.
  assert.ok(heap.validate().some((e) => /in no list/.test(e)), 'the batch is lost until repaired');
  assert.equal(heap.releaseSlot(h.slot, h.gen), true);
  assert.equal(Atomics.load(u32, cr + ClassRow.DEPOT_LOCK), 0, 'lock released');
  assert.deepEqual(heap.validate(), []);
  assert.equal(a.destroy().leakedObjects, 0);
});

test('a batch with objects past this agent\'s views renews them before use', () => {
  const A = Heap.create({ pageSize: 8192, maxBytes: 64 << 20, initialBytes: 0 });
  const a = A.createAllocator({ unitSize: 4096, lowWatermark: 2, highWatermark: 8, batch: 4, prefill: 0 });
  const x = a.alloc();
  const B = Heap.attach(A.handle);
  const b = B.attachAllocator(a.handle);
  const y = a.alloc(); // grows the buffer past B's views
  a.free(y);
  a.free(x);
  a.flushCaches(); // one batch: x (inside B's views) then y (outside)
  const got = [b.alloc(), b.alloc()];
  assert.deepEqual(got.sort(), [x, y].sort());
  assert.ok(got.every((p) => p + 4096 <= B.viewBytes), 'handed-out objects lie inside the views');
  assert.deepEqual(A.validate(), []);
  for (const p of got) b.free(p);
  assert.deepEqual(A.validate(), []);
});

test('a stale handle whose slot another agent took since still throws, whatever that agent holds in its cache', () => {
  // The fast paths check the owner through watermarks keyed with the slot
  // generation: the new agent's rows must reject the old agent at every
  // fill level, below low, between the watermarks and above high.
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
  const a = heap.createAllocator({ lowWatermark: 4, highWatermark: 16, batch: 4, prefill: 8 });
  const zombie = Heap.attach(heap.handle);
  const z = zombie.attachAllocator(a.handle);
  const held = [z.alloc(64), z.alloc(64)];
  assert.equal(heap.releaseSlot(zombie.slot, zombie.slotGen), true);
  const next = Heap.attach(heap.handle);
  assert.equal(next.slot, zombie.slot, 'the released slot is taken again');
  assert.notEqual(next.slotGen, zombie.slotGen);
  const n = next.attachAllocator(a.handle);
  const c = a.stats().classes.findIndex((row) => row.unit === 64);
  const cached = (): number => a.stats().workers.find((w) => w.slot === next.slot)!.classes[c]!.cached;
  // Hold 30 objects, then empty the cache; free them back one level at a
  // time (nothing here yields, so no refill or trim runs in between
  // until the cache reaches high + batch).
  const pool = Array.from({ length: 30 }, () => n.alloc(64));
  while (cached() > 0) pool.push(n.alloc(64));
  for (let level = 0; level <= 19; level++) {
    assert.equal(cached(), level);
    const before = JSON.stringify(a.stats());
    assert.throws(() => z.alloc(64), { name: 'RangeError', message: /^alloc: stale handle/ }, `alloc, new agent caching ${level}`);
    assert.throws(() => z.free(held[0]!), { name: 'RangeError', message: /stale handle/ }, `free, new agent caching ${level}`);
    assert.equal(JSON.stringify(a.stats()), before, `the stale calls changed nothing (new agent caching ${level})`);
    n.free(pool.pop()!);
  }
  for (const p of [...held, ...pool]) n.free(p);
  assert.deepEqual(heap.validate(), []);
});

test('attachAllocator on a stale heap handle throws before it writes to the slot\'s rows; the new owner keeps working', () => {
  // The stale agent's attach used to key the slot's cache rows with its own
  // generation first and refuse after: the new owner's alloc then found
  // rows it did not own, and alloc -> allocSlow -> allocMiss -> alloc ran
  // until the stack overflowed.
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
  for (const options of [{}, { unitSize: 48 }]) {
    const a = heap.createAllocator(options);
    const zombie = Heap.attach(heap.handle);
    assert.equal(heap.releaseSlot(zombie.slot, zombie.slotGen), true);
    const next = Heap.attach(heap.handle);
    assert.equal(next.slot, zombie.slot);
    const n = next.attachAllocator(a.handle);
    // Every byte of the heap, not only what stats() shows: the old attach
    // changed the rows' owner and watermark words, which stats() omits.
    const before = heap.u8.slice();
    assert.throws(() => zombie.attachAllocator(a.handle), { name: 'RangeError', message: /stale heap handle/ });
    assert.ok(Buffer.from(heap.u8).equals(Buffer.from(before)), 'the refused attach changed no byte of the heap');
    const ps = Array.from({ length: 200 }, () => n.alloc(48));
    assert.ok(ps.every((p) => p > 0), 'the new owner allocates');
    for (const p of ps) n.free(p);
    n.detach();
    next.detach();
    assert.deepEqual(heap.validate(), []);
  }
});

test('a stale handle (its slot released while the agent still runs) throws on alloc and free and changes nothing', () => {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
  for (const options of [{}, { unitSize: 100 }]) {
    const a = heap.createAllocator(options);
    const zombie = Heap.attach(heap.handle);
    const z = zombie.attachAllocator(a.handle);
    const held = [z.alloc(100), z.alloc(100), z.alloc(100)];
    const before = a.stats().classes.map((c) => c.live);
    // Another agent wrongly believes it dead.
    assert.equal(heap.releaseSlot(zombie.slot, zombie.slotGen), true);
    assert.deepEqual(heap.validate(), []);
    for (const p of held) {
      assert.throws(() => z.free(p), { name: 'RangeError', message: new RegExp(`^free\\(${p}\\): stale handle: this agent's worker slot ${zombie.slot} was released`) });
    }
    assert.throws(() => z.alloc(100), { name: 'RangeError', message: /^alloc: stale handle/ });
    assert.deepEqual(a.stats().classes.map((c) => c.live), before, 'the objects are still allocated');
    assert.deepEqual(heap.validate(), []);
    // A live agent frees them normally.
    for (const p of held) a.free(p);
    assert.deepEqual(heap.validate(), []);
    assert.equal(a.destroy().leakedObjects, 0);
  }
});

test('peakBytesOut follows the objects taken out of the depots (sampled at new slabs, large runs and some refills)', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const a = heap.createAllocator();
  const ps: number[] = [];
  for (let i = 0; i < 10_000; i++) ps.push(a.alloc(64));
  const big = a.alloc(1 << 20);
  const st = a.stats();
  assert.ok(st.peakBytesOut >= 0.9 * (10_000 * 64) + (1 << 20), `peak ${st.peakBytesOut} after ${10_000 * 64} bytes of objects and a 1 MiB run`);
  assert.ok(st.peakBytesOut <= st.chargedBytes, 'never more than the allocator holds');
  for (const p of ps) a.free(p);
  a.free(big);
  assert.ok(a.stats().peakBytesOut >= st.peakBytesOut, 'a peak stays');
});
