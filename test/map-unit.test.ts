import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap, MapFlag, MapStatus } from '../src/index.js';

function k32(n: number, size = 8): Uint8Array {
  const k = new Uint8Array(size);
  new DataView(k.buffer).setUint32(0, n, true);
  return k;
}
function u32of(v: Uint8Array): number {
  return new DataView(v.buffer, v.byteOffset).getUint32(0, true);
}

for (const mode of ['prealloc', 'dynamic'] as const) {
  test(`${mode}: flags, statuses and FULL at maxEntries`, () => {
    const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 4 });
    const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 100, mode });
    const out = new Uint8Array(8);
    assert.equal(m.update(k32(1), k32(10), MapFlag.EXIST), MapStatus.NOT_FOUND);
    assert.equal(m.update(k32(1), k32(10), MapFlag.NOEXIST), MapStatus.OK);
    assert.equal(m.update(k32(1), k32(11), MapFlag.NOEXIST), MapStatus.EXISTS);
    assert.ok(m.lookup(k32(1), out));
    assert.equal(u32of(out), 10);
    assert.equal(m.update(k32(1), k32(12), MapFlag.EXIST), MapStatus.OK);
    assert.equal(m.update(k32(1), k32(13)), MapStatus.OK);
    assert.ok(m.lookup(k32(1), out));
    assert.equal(u32of(out), 13);
    for (let i = 2; i <= 100; i++) assert.equal(m.update(k32(i), k32(i), MapFlag.NOEXIST), MapStatus.OK);
    assert.equal(m.count(), 100);
    assert.equal(m.update(k32(101), k32(0)), MapStatus.FULL);
    assert.equal(m.update(k32(50), k32(5)), MapStatus.OK, 'replacing is allowed when full');
    assert.equal(m.delete(k32(50)), MapStatus.OK);
    assert.equal(m.delete(k32(50)), MapStatus.NOT_FOUND);
    assert.equal(m.update(k32(101), k32(0)), MapStatus.OK, 'room again after a delete');
    assert.equal(m.has(k32(50)), false);
    assert.equal(m.has(k32(101)), true);
    assert.deepEqual(m.validate(), []);
    assert.equal(m.clear(), 100);
    assert.equal(m.count(), 0);
    assert.deepEqual(m.validate(), []);
    assert.deepEqual(heap.validate(), []);
  });
}

test('getNextKey walks every key once; null or an absent key starts over', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 4, valueSize: 4, maxEntries: 64, buckets: 8 });
  for (let i = 0; i < 50; i++) m.update(k32(i, 4), k32(i, 4));
  const out = new Uint8Array(4);
  const seen: number[] = [];
  let prev: Uint8Array | null = null;
  while (m.getNextKey(prev, out)) {
    seen.push(u32of(out));
    prev = out.slice();
    assert.ok(seen.length <= 50, 'terminates');
  }
  assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  const first = new Uint8Array(4);
  assert.ok(m.getNextKey(null, first));
  const again = new Uint8Array(4);
  assert.ok(m.getNextKey(k32(999, 4), again));
  assert.deepEqual(again, first);
  assert.equal([...m.keys()].length, 50);
  const entries = [...m.entries()];
  assert.ok(entries.every(([k, v]) => u32of(k) === u32of(v)));
});

test('batch operations', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 10 });
  const keys = new Uint8Array(4 * 12);
  const vals = new Uint8Array(8 * 12);
  for (let i = 0; i < 12; i++) {
    keys.set(k32(i, 4), 4 * i);
    vals.set(k32(i * 7), 8 * i);
  }
  assert.deepEqual(m.updateBatch(keys, vals), { done: 10, status: MapStatus.FULL });
  const outVals = new Uint8Array(8 * 12);
  const found = new Uint8Array(12);
  assert.equal(m.lookupBatch(keys, outVals, found), 10);
  assert.deepEqual([...found], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
  assert.equal(u32of(outVals.subarray(8 * 9)), 63);
  assert.equal(m.deleteBatch(keys), 10);
  assert.equal(m.count(), 0);
});

test('per-worker values: each agent writes its own slot; lookupAll lists, sum sums', () => {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
  const m = HashMap.create(heap, { keySize: 4, valueSize: 4, maxEntries: 16, perWorker: true });
  const other = Heap.attach(heap.handle);
  const m2 = HashMap.attach(other, m.handle);
  assert.equal(m.update(k32(1, 4), k32(5, 4)), MapStatus.OK);
  assert.equal(m2.update(k32(1, 4), k32(7, 4)), MapStatus.OK);
  assert.equal(m2.update(k32(1, 4), k32(9, 4), MapFlag.NOEXIST), MapStatus.EXISTS);
  const out = new Uint8Array(4);
  assert.ok(m.lookup(k32(1, 4), out));
  assert.equal(u32of(out), 5);
  assert.ok(m2.lookup(k32(1, 4), out));
  assert.equal(u32of(out), 7);
  const all = new Uint8Array(4 * 4);
  assert.ok(m.lookupAll(k32(1, 4), all));
  const dv = new DataView(all.buffer);
  assert.deepEqual([0, 1, 2, 3].map((s) => dv.getUint32(4 * s, true)), [5, 7, 0, 0]);
  assert.equal(m.sum(k32(1, 4), 'u32'), 12);
  assert.equal(m.sum(k32(2, 4), 'u32'), undefined);
  assert.equal(m.count(), 1);
  assert.deepEqual(m.validate(), []);
  m2.detach();
  other.detach();
});

test('lookupOffset gives a value to update in place with Atomics', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 16 });
  m.update(k32(3), new Uint8Array(8));
  const off = m.lookupOffset(k32(3));
  assert.equal(off % 4, 0);
  m.read(() => {
    for (let i = 0; i < 10; i++) Atomics.add(heap.i32, off >>> 2, 1);
  });
  const out = new Uint8Array(8);
  m.lookup(k32(3), out);
  assert.equal(u32of(out), 10);
  assert.equal(m.lookupOffset(k32(4)), 0);
});

test('bad input raises TypeError or RangeError naming the value', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  assert.throws(() => HashMap.create(heap, { keySize: 0, valueSize: 8, maxEntries: 1 }), { name: 'RangeError', message: /keySize.*got 0/ });
  assert.throws(() => HashMap.create(heap, { keySize: 8, valueSize: 1.5, maxEntries: 1 }), { name: 'TypeError', message: /valueSize.*1\.5/ });
  assert.throws(() => HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 1, mode: 'lazy' as never }), { name: 'TypeError', message: /mode.*"lazy"/ });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 4 });
  assert.throws(() => m.update(new Uint8Array(4), new Uint8Array(8)), { name: 'TypeError', message: /keySize 8.*4 bytes/ });
  assert.throws(() => m.update(new Uint8Array(8), new Uint8Array(2)), { name: 'TypeError', message: /valueSize 8.*2 bytes/ });
  assert.throws(() => m.update(new Uint8Array(8), new Uint8Array(8), 3), { name: 'RangeError', message: /flag.*got 3/ });
  assert.throws(() => m.lookup('key' as never, new Uint8Array(8)), { name: 'TypeError', message: /"key"/ });
  assert.throws(() => HashMap.attach(heap, { kind: 'anyalloc.map', region: 4096 }), /no live map/);
  assert.deepEqual(m.validate(), []);
});

test('memory: a dynamic map at 10% holds a fraction of a preallocated one; destroy gives all back', () => {
  const heap = Heap.create({ maxBytes: 256 << 20, maxWorkers: 8 });
  const used0 = heap.stats().usedPages;
  const pre = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 65536, mode: 'prealloc' });
  const dyn = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 65536, mode: 'dynamic' });
  for (let i = 0; i < 6554; i++) {
    pre.update(k32(i), k32(i));
    dyn.update(k32(i), k32(i));
  }
  const ratio = dyn.memoryBytes() / pre.memoryBytes();
  assert.ok(ratio <= 0.15, `dynamic at 10% uses ${(ratio * 100).toFixed(1)}% of the preallocated map's memory`);
  assert.equal(pre.destroy(), 6554);
  assert.equal(dyn.destroy(), 6554);
  assert.equal(heap.stats().usedPages, used0);
  assert.deepEqual(heap.validate(), []);
});

test('a dead agent that had the map attached is released with its slot; destroy then works', () => {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 64 });
  const h = heap.reserveSlot();
  const dead = Heap.attach(h);
  const dm = HashMap.attach(dead, m.handle);
  for (let i = 0; i < 10; i++) dm.update(k32(i), k32(i));
  dm.delete(k32(0));
  assert.throws(() => m.destroy(), /still attached in 1 other agent/);
  assert.equal(heap.releaseSlot(h.slot, h.gen), true);
  assert.equal(m.count(), 9);
  assert.equal(m.destroy(), 9);
  assert.deepEqual(heap.validate(), []);
});

test('number keys are the little-endian bytes of the key, zero-extended', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 4, maxEntries: 64 });
  const out = new Uint8Array(4);
  assert.equal(m.updateNumber(0xdeadbeef, k32(1, 4), MapFlag.NOEXIST), MapStatus.OK);
  assert.ok(m.lookup(k32(0xdeadbeef), out), 'visible under its byte key');
  assert.equal(u32of(out), 1);
  assert.equal(m.update(k32(7), k32(2, 4)), MapStatus.OK);
  assert.ok(m.lookupNumber(7, out));
  assert.equal(u32of(out), 2);
  assert.equal(m.updateNumber(7, k32(3, 4), MapFlag.NOEXIST), MapStatus.EXISTS);
  assert.equal(m.deleteNumber(7), MapStatus.OK);
  assert.equal(m.deleteNumber(7), MapStatus.NOT_FOUND);
  assert.equal(m.lookupNumber(8, out), false);
  assert.throws(() => m.lookupNumber(-1, out), { name: 'TypeError', message: /\[0, 2\^32\).*-1/ });
  assert.throws(() => m.updateNumber(1.5, out), { name: 'TypeError', message: /1\.5/ });
  const small = HashMap.create(heap, { keySize: 2, valueSize: 4, maxEntries: 4 });
  assert.throws(() => small.lookupNumber(1, out), { name: 'RangeError', message: /keySize >= 4/ });
  assert.deepEqual(m.validate(), []);
});

test('releaseSlot unlocks a bucket a dead writer held and returns its entry quota', async () => {
  const { MAP_HEADER_WORDS, MAP_SLOT_WORDS, MS, M } = await import('../src/map/layout.js');
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 4096, buckets: 1 });
  const h = heap.reserveSlot();
  const dead = Heap.attach(h);
  const dm = HashMap.attach(dead, m.handle);
  for (let i = 0; i < 5; i++) assert.equal(dm.updateNumber(i, k32(i)), MapStatus.OK);
  // The writer takes the only bucket's lock, records it, and dies.
  const W = m.region >>> 2;
  const bucket = W + MAP_HEADER_WORDS + heap.maxSlots * MAP_SLOT_WORDS;
  const row = W + MAP_HEADER_WORDS + h.slot * MAP_SLOT_WORDS;
  Atomics.or(heap.u32, bucket, 1);
  heap.i32[row + MS.LOCKED_BUCKET] = 1;
  const reservedBefore = Atomics.load(heap.u32, W + M.RESERVED);
  assert.ok(heap.i32[row + MS.QUOTA]! > 0, 'the dead writer held unused quota');
  const out = new Uint8Array(8);
  assert.ok(m.lookupNumber(3, out), 'readers ignore the lock');
  assert.equal(heap.releaseSlot(h.slot, h.gen), true);
  assert.equal(Atomics.load(heap.u32, bucket) & 1, 0, 'unlocked');
  assert.ok(Atomics.load(heap.u32, W + M.RESERVED) < reservedBefore, 'quota returned');
  assert.equal(m.updateNumber(9, k32(9)), MapStatus.OK, 'writers go on');
  assert.equal(m.count(), 6);
  assert.deepEqual(m.validate(), []);
  assert.equal(m.destroy(), 6);
  assert.deepEqual(heap.validate(), []);
});
