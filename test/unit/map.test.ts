/**
 * Single-threaded unit tests of the hash map: statuses and flags (FULL
 * exactly at maxEntries, NO_MEMORY when the heap runs out), replacing and
 * deleting anywhere in a chain, iteration order and termination, clear,
 * batch operations, per-worker values (several attachments in this thread
 * act as several agents), in-place counters through lookupOffset, bad
 * input, memory accounting and destroy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap, MapFlag, MapStatus, type HashMapOptions } from '../../src/index.js';
import { liveElements } from '../util/map-checks.js';
import { tryAdvance } from '../../src/reclaim/epoch.js';
import { SlotRow, SLOT_ROW_WORDS } from '../../src/shm/layout.js';

function k32(n: number, size = 8): Uint8Array {
  const k = new Uint8Array(size);
  new DataView(k.buffer).setUint32(0, n, true);
  return k;
}
function u32of(v: Uint8Array): number {
  return new DataView(v.buffer, v.byteOffset).getUint32(0, true);
}

/** A heap and a map, and a second agent (this thread again) attached to both. */
function twoAgents(maxBytes: number, maxWorkers: number, options: HashMapOptions): { heap: Heap; m: HashMap; other: Heap; m2: HashMap } {
  const heap = Heap.create({ maxBytes, maxWorkers });
  const m = HashMap.create(heap, options);
  const other = Heap.attach(heap.handle);
  return { heap, m, other, m2: HashMap.attach(other, m.handle) };
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
  const io = new Uint32Array(2);
  assert.equal(m.updateBatch(keys, vals, MapFlag.ANY, io), MapStatus.FULL);
  assert.equal(io[1], 10);
  const outVals = new Uint8Array(8 * 12);
  const found = new Uint8Array(12);
  assert.equal(m.lookupEach(keys, outVals, found), 10);
  assert.deepEqual([...found], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
  assert.equal(u32of(outVals.subarray(8 * 9)), 63);
  assert.equal(m.deleteBatch(keys.subarray(0, 40), io), MapStatus.OK);
  assert.equal(io[1], 10);
  assert.equal(m.count(), 0);
});

test('in place: a stamp newer than the epoch this writer read does not pass as old; a reader in read() keeps its copy', () => {
  const { heap, m, other, m2 } = twoAgents(32 << 20, 4, { keySize: 8, valueSize: 16, maxEntries: 16 });
  const val = (x: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, i) => (x * 11 + i) & 255);
  assert.equal(m.update(k32(9), val(1), MapFlag.NOEXIST), MapStatus.OK);
  m.read(() => {
    const at = m.lookupOffset(k32(9));
    // The epoch moves past this agent's pin (allowed: the pin equals the
    // epoch it leaves); the other agent then flips the key with the newer
    // epoch as its stamp.
    tryAdvance(heap);
    assert.equal(m2.update(k32(9), val(2), MapFlag.EXIST), MapStatus.OK);
    assert.deepEqual(m2.updateCounts, { inPlace: 1, replaced: 0 });
    // This agent's update must not write the copy it may still be reading.
    assert.equal(m.update(k32(9), val(3), MapFlag.EXIST), MapStatus.OK);
    assert.deepEqual(m.updateCounts, { inPlace: 0, replaced: 1 });
    assert.deepEqual(heap.u8.slice(at, at + 16), val(1), 'the copy read inside read() is intact');
  });
  const out = new Uint8Array(16);
  assert.ok(m2.lookup(k32(9), out));
  assert.deepEqual(out, val(3));
  m2.detach();
  other.detach();
});

test('read(): a lookup on another map of the same agent inside it does not end its read-side section', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const a = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 16 });
  const b = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 16 });
  assert.equal(a.update(k32(1), k32(10)), MapStatus.OK);
  assert.equal(b.update(k32(2), k32(20)), MapStatus.OK);
  const pinWord = heap.slotWord + heap.slot * SLOT_ROW_WORDS + SlotRow.PIN;
  const out = new Uint8Array(8);
  a.read(() => {
    assert.notEqual(Atomics.load(heap.u32, pinWord), 0);
    assert.ok(b.lookup(k32(2), out));
    assert.notEqual(Atomics.load(heap.u32, pinWord), 0, 'still pinned after the other map\'s lookup');
    b.read(() => assert.ok(a.lookup(k32(1), out)));
    assert.notEqual(Atomics.load(heap.u32, pinWord), 0, 'and after a nested read() of the other map');
  });
  assert.equal(Atomics.load(heap.u32, pinWord), 0, 'unpinned once the outer read() returns');
});

test('in place by default, one copy for values too big for two copies in 60 KiB; inPlace: true asks for two anyway', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const big = 40 * 1024;
  const m = HashMap.create(heap, { keySize: 8, valueSize: big, maxEntries: 4 });
  const v = new Uint8Array(big).fill(7);
  assert.equal(m.update(k32(1), v), MapStatus.OK);
  v.fill(8);
  assert.equal(m.update(k32(1), v, MapFlag.EXIST), MapStatus.OK);
  assert.deepEqual(m.updateCounts, { inPlace: 0, replaced: 0 }, 'one copy: updates replace the element');
  const out = new Uint8Array(big);
  assert.ok(m.lookup(k32(1), out));
  assert.deepEqual(out, v);
  const two = HashMap.create(heap, { keySize: 8, valueSize: big, maxEntries: 4, inPlace: true });
  assert.equal(two.update(k32(1), v), MapStatus.OK);
  v.fill(9);
  assert.equal(two.update(k32(1), v, MapFlag.EXIST), MapStatus.OK);
  assert.deepEqual(two.updateCounts, { inPlace: 1, replaced: 0 }, 'two copies: the update went in place');
  assert.ok(two.lookup(k32(1), out));
  assert.deepEqual(out, v);
  const small = HashMap.create(heap, { keySize: 8, valueSize: 64, maxEntries: 4 });
  assert.equal(small.update(k32(1), new Uint8Array(64)), MapStatus.OK);
  assert.equal(small.update(k32(1), new Uint8Array(64), MapFlag.EXIST), MapStatus.OK);
  assert.deepEqual(small.updateCounts, { inPlace: 1, replaced: 0 });
  assert.deepEqual(heap.validate(), []);
});

test('in place: an element left locked by a writer that died mid-update is read as before and replaced by the next update', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 16, maxEntries: 16 });
  const val = (x: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, i) => (x * 7 + i) & 255);
  assert.equal(m.update(k32(3), val(1), MapFlag.NOEXIST), MapStatus.OK);
  // A fresh element: copy 0 current, 16 bytes in (after next, ver and the
  // 8-byte key), the spare copy right after it (16 bytes); ver is the
  // element's second word.
  const at = m.lookupOffset(k32(3));
  const ver = ((at - 16) >>> 2) + 1;
  const before = heap.u32[ver]!;
  // The dead writer took the lock and got halfway through the spare copy.
  Atomics.or(heap.u32, ver, 1);
  heap.u8.fill(0xee, at + 16, at + 24);
  const out = new Uint8Array(16);
  assert.ok(m.lookup(k32(3), out));
  assert.deepEqual(out, val(1), 'readers use the current copy');
  assert.equal(m.update(k32(3), val(2), MapFlag.EXIST), MapStatus.OK);
  assert.deepEqual(m.updateCounts, { inPlace: 0, replaced: 1 }, 'the locked element is replaced, not waited for');
  assert.ok(m.lookup(k32(3), out));
  assert.deepEqual(out, val(2));
  assert.notEqual(m.lookupOffset(k32(3)), at);
  assert.equal(heap.u32[ver], (before | 1) >>> 0, 'the old element was left as it was');
  assert.equal(m.collect(), 0, 'and freed after its grace period');
  assert.equal(liveElements(m), 1);
  assert.deepEqual(m.validate(), []);
  // The new element updates in place again.
  assert.equal(m.update(k32(3), val(3), MapFlag.ANY), MapStatus.OK);
  assert.deepEqual(m.updateCounts, { inPlace: 1, replaced: 1 });
  assert.ok(m.lookup(k32(3), out));
  assert.deepEqual(out, val(3));
});

test('in place: an update by an agent whose views predate a grow by another agent reaches the new element', () => {
  const { heap, m, other, m2 } = twoAgents(64 << 20, 4, { keySize: 8, valueSize: 8, maxEntries: 100_000 });
  const before = heap.viewBytes;
  // The other agent fills the map until the heap has grown past this
  // agent's views, then inserts the key this agent will update.
  let n = 0;
  while (other.viewBytes <= before + (1 << 20)) assert.equal(m2.update(k32(1_000_000 + n++), k32(n)), MapStatus.OK);
  assert.equal(m2.update(k32(7), k32(70), MapFlag.NOEXIST), MapStatus.OK);
  assert.ok(m2.lookupOffset(k32(7)) > before, 'the element lies beyond this agent\'s views');
  assert.equal(heap.viewBytes, before, 'this agent has not renewed its views yet');
  assert.equal(m.update(k32(7), k32(71), MapFlag.EXIST), MapStatus.OK);
  assert.deepEqual(m.updateCounts, { inPlace: 1, replaced: 0 });
  const out = new Uint8Array(8);
  assert.ok(m2.lookup(k32(7), out));
  assert.equal(u32of(out), 71);
  assert.ok(m.lookup(k32(7), out));
  assert.equal(u32of(out), 71);
  assert.deepEqual(m.validate(), []);
  m2.detach();
  other.detach();
});

test('per-worker: a reader that gives up on a slot stuck mid-write throws with the agent unpinned; detach inside read() leaves the pin of the slot alone', () => {
  const { heap, m, other, m2 } = twoAgents(32 << 20, 2, { keySize: 4, valueSize: 8, maxEntries: 8, perWorker: true });
  assert.equal(m2.update(k32(1, 4), k32(5)), MapStatus.OK);
  // The other agent's slot record: its seq made odd, as by a writer that
  // died mid-write and was not released.
  const all = new Uint8Array(16);
  assert.ok(m.lookupAll(k32(1, 4), all));
  const at = m2.lookupOffset(k32(1, 4)) - 8;
  Atomics.add(heap.u32, at >>> 2, 1);
  const pinWord = heap.slotWord + heap.slot * SLOT_ROW_WORDS + SlotRow.PIN;
  assert.throws(() => m.lookupAll(k32(1, 4), all), (e: unknown) => e instanceof RangeError && /mid-write/.test(e.message));
  assert.equal(Atomics.load(heap.u32, pinWord), 0, 'not left pinned');
  assert.equal(heap.pinDepth, 0);
  Atomics.add(heap.u32, at >>> 2, 1);
  assert.ok(m.lookupAll(k32(1, 4), all), 'readable once the seq is even again');
  // Detach inside read(): the unpin that ends the section stores nothing.
  const otherPin = other.slotWord + other.slot * SLOT_ROW_WORDS + SlotRow.PIN;
  m2.read(() => {
    assert.notEqual(Atomics.load(other.u32, otherPin), 0);
    other.detach();
    assert.equal(Atomics.load(heap.u32, otherPin), 0);
    Atomics.store(heap.u32, otherPin, 77); // as if a new agent held the slot, pinned
  });
  assert.equal(Atomics.load(heap.u32, otherPin), 77, 'the ended section did not unpin a slot it no longer holds');
  Atomics.store(heap.u32, otherPin, 0);
  assert.throws(() => m2.read(() => 0), RangeError);
});

test('per-worker values of a size that is not a multiple of 4 read back exactly, in every slot', () => {
  const { m, other, m2 } = twoAgents(32 << 20, 2, { keySize: 4, valueSize: 6, maxEntries: 8, perWorker: true });
  // Longer arrays than valueSize: only the first 6 bytes count.
  assert.equal(m.update(k32(1, 4), Uint8Array.of(1, 2, 3, 4, 5, 6, 99, 99)), MapStatus.OK);
  assert.equal(m2.update(k32(1, 4), Uint8Array.of(250, 251, 252, 253, 254, 255, 77)), MapStatus.OK);
  const out = new Uint8Array(8).fill(0xaa);
  assert.ok(m.lookup(k32(1, 4), out));
  assert.deepEqual([...out], [1, 2, 3, 4, 5, 6, 0xaa, 0xaa], 'six bytes, nothing past them');
  const all = new Uint8Array(12);
  assert.ok(m2.lookupAll(k32(1, 4), all));
  assert.deepEqual([...all], [1, 2, 3, 4, 5, 6, 250, 251, 252, 253, 254, 255]);
  m2.detach();
  other.detach();
});

test('per-worker values: each agent writes its own slot; lookupAll lists, sum sums', () => {
  const { m, other, m2 } = twoAgents(32 << 20, 4, { keySize: 4, valueSize: 4, maxEntries: 16, perWorker: true });
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
  assert.throws(() => HashMap.attach(heap, { kind: 'anyalloc.map', region: 4096 } as never), /no live map/);
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
  const { MAP_HEADER_WORDS, MAP_SLOT_WORDS, MapSlotRow, MapHeader } = await import('../../src/map/layout.js');
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
  heap.i32[row + MapSlotRow.INTENT] = 1;
  const reservedBefore = Atomics.load(heap.u32, W + MapHeader.RESERVED);
  assert.ok(heap.i32[row + MapSlotRow.QUOTA]! > 0, 'the dead writer held unused quota');
  const out = new Uint8Array(8);
  assert.ok(m.lookupNumber(3, out), 'readers ignore the lock');
  assert.equal(heap.releaseSlot(h.slot, h.gen), true);
  assert.equal(Atomics.load(heap.u32, bucket) & 1, 0, 'unlocked');
  assert.ok(Atomics.load(heap.u32, W + MapHeader.RESERVED) < reservedBefore, 'quota returned');
  assert.equal(m.updateNumber(9, k32(9)), MapStatus.OK, 'writers go on');
  assert.equal(m.count(), 6);
  assert.deepEqual(m.validate(), []);
  assert.equal(m.destroy(), 6);
  assert.deepEqual(heap.validate(), []);
});

/* ------------------------------------------------------------------------ */

function keysOf(m: HashMap): number[] {
  return [...m.keys()].map((k) => u32of(k));
}

for (const mode of ['prealloc', 'dynamic'] as const) {
  for (const maxWorkers of [2, 64]) {
    test(`${mode}, maxWorkers ${maxWorkers}: one agent gets FULL exactly at maxEntries, with or without entry quotas`, () => {
      for (const maxEntries of [1, 7, 100, 1000, 4099]) {
        const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers });
        const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries, mode });
        const note = `maxEntries ${maxEntries}`;
        for (let i = 0; i < maxEntries; i++) {
          const st = m.update(k32(i), k32(i), MapFlag.NOEXIST);
          if (st !== MapStatus.OK) assert.fail(`${note}: insert ${i} returned ${st}`);
        }
        assert.equal(m.count(), maxEntries, note);
        assert.equal(m.update(k32(maxEntries), k32(0)), MapStatus.FULL, note);
        assert.equal(m.update(k32(maxEntries), k32(0), MapFlag.NOEXIST), MapStatus.FULL, note);
        assert.equal(m.update(k32(maxEntries), k32(0), MapFlag.EXIST), MapStatus.NOT_FOUND, `${note}: EXIST on an absent key is NOT_FOUND, full or not`);
        assert.equal(m.has(k32(maxEntries)), false, `${note}: a refused insert leaves nothing`);
        assert.equal(m.update(k32(0), k32(42)), MapStatus.OK, `${note}: replacing needs no new entry`);
        assert.equal(m.update(k32(0), k32(43), MapFlag.EXIST), MapStatus.OK, note);
        assert.equal(m.count(), maxEntries, note);
        assert.equal(m.delete(k32(0)), MapStatus.OK, note);
        assert.equal(m.update(k32(maxEntries), k32(1), MapFlag.NOEXIST), MapStatus.OK, `${note}: a delete makes room for one`);
        assert.equal(m.update(k32(maxEntries + 1), k32(1)), MapStatus.FULL, `${note}: and only one`);
        assert.deepEqual(m.validate(), [], note);
        assert.equal(m.destroy(), maxEntries, note);
        assert.deepEqual(heap.validate(), [], note);
      }
    });
  }
}

test('entry quotas: another agent holding unused quota does not make FULL come early (it is taken back)', () => {
  const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 2 });
  const maxEntries = 4096;
  const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries });
  const other = Heap.attach(heap.handle);
  const m2 = HashMap.attach(other, m.handle);
  assert.equal(m2.update(k32(1_000_000), k32(0)), MapStatus.OK);
  let n = 1;
  while (m.update(k32(n), k32(n), MapFlag.NOEXIST) === MapStatus.OK) n++;
  assert.equal(m.count(), maxEntries, 'FULL exactly at maxEntries');
  assert.deepEqual(m.validate(), []);
  assert.equal(m2.delete(k32(1_000_000)), MapStatus.OK);
  assert.equal(m.update(k32(n), k32(n), MapFlag.NOEXIST), MapStatus.OK, "the other agent's delete makes room at once");
  assert.equal(m.update(k32(n + 1), k32(n), MapFlag.NOEXIST), MapStatus.FULL);
  m2.detach();
  other.detach();
  assert.equal(m.count(), maxEntries);
  assert.deepEqual(m.validate(), []);
});

test('dynamic: NO_MEMORY when the heap runs out below maxEntries; deletes make room again', () => {
  const heap = Heap.create({ maxBytes: 2 << 20, maxWorkers: 2 });
  const used0 = heap.stats().usedPages;
  const m = HashMap.create(heap, { keySize: 8, valueSize: 1000, maxEntries: 100_000, buckets: 64 });
  const v = new Uint8Array(1000).fill(7);
  let n = 0;
  let st: number = MapStatus.OK;
  while (n < 100_000 && (st = m.update(k32(n), v)) === MapStatus.OK) n++;
  assert.equal(st, MapStatus.NO_MEMORY);
  assert.ok(n > 100, `only ${n} elements fit`);
  assert.equal(m.count(), n);
  assert.equal(m.has(k32(n)), false);
  assert.deepEqual(m.validate(), []);
  for (let i = 0; i < 10; i++) assert.equal(m.delete(k32(i)), MapStatus.OK);
  // The deleted elements wait for a grace period; with no reader pinned the insert gets them.
  for (let i = 0; i < 10; i++) assert.equal(m.update(k32(n + i), v), MapStatus.OK, `insert ${i} after the deletes`);
  assert.equal(m.update(k32(n + 10), v), MapStatus.NO_MEMORY);
  assert.deepEqual(m.validate(), []);
  assert.equal(m.destroy(), n);
  assert.equal(heap.stats().usedPages, used0);
  assert.deepEqual(heap.validate(), []);
});

test('inPlace: false: update replaces the whole value; a reader inside read() keeps the old one until it leaves', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 40, maxEntries: 16, inPlace: false });
  const a = Uint8Array.from({ length: 40 }, (_, i) => i + 1);
  const b = Uint8Array.from({ length: 40 }, (_, i) => 200 - i);
  assert.equal(m.update(k32(5), a, MapFlag.NOEXIST), MapStatus.OK);
  const out = new Uint8Array(40);
  m.read(() => {
    const at = m.lookupOffset(k32(5));
    assert.deepEqual(heap.u8.slice(at, at + 40), a);
    assert.equal(m.update(k32(5), b, MapFlag.EXIST), MapStatus.OK);
    assert.ok(m.lookup(k32(5), out));
    assert.deepEqual(out, b, 'lookups see the new value at once');
    assert.notEqual(m.lookupOffset(k32(5)), at, 'in a new element');
    assert.equal(m.collect(), 1, 'the old element waits: this agent is still reading');
    assert.deepEqual(heap.u8.slice(at, at + 40), a, 'and is intact');
  });
  assert.equal(m.collect(), 0, 'freed once the reader left');
  assert.deepEqual(m.updateCounts, { inPlace: 0, replaced: 0 }, 'no in-place path in this map');
  assert.equal(m.count(), 1);
  assert.equal(liveElements(m), 1);
  assert.deepEqual(m.validate(), []);
});

test('in place: update writes the spare copy and flips; a copy a reader may use is not written until its grace period passes', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 40, maxEntries: 16 });
  const val = (x: number): Uint8Array => Uint8Array.from({ length: 40 }, (_, i) => (x + i) & 255);
  assert.equal(m.update(k32(5), val(1), MapFlag.NOEXIST), MapStatus.OK);
  const out = new Uint8Array(40);
  const first = m.lookupOffset(k32(5));
  m.read(() => {
    const at = m.lookupOffset(k32(5));
    assert.equal(at, first);
    // Copy 1 was never current: written at once, no new element.
    assert.equal(m.update(k32(5), val(2), MapFlag.EXIST), MapStatus.OK);
    assert.ok(m.lookup(k32(5), out));
    assert.deepEqual(out, val(2), 'lookups see the new value at once');
    const spare = m.lookupOffset(k32(5));
    assert.notEqual(spare, at, 'in the other copy');
    assert.equal(Math.abs(spare - at), 40, 'of the same element');
    assert.deepEqual(m.updateCounts, { inPlace: 1, replaced: 0 });
    assert.equal(m.collect(), 0, 'nothing retired');
    // Copy `at` may still be read by this agent: the next update must not
    // write it, so it replaces the element.
    assert.equal(m.update(k32(5), val(3), MapFlag.ANY), MapStatus.OK);
    assert.deepEqual(m.updateCounts, { inPlace: 1, replaced: 1 });
    assert.ok(m.lookup(k32(5), out));
    assert.deepEqual(out, val(3));
    assert.deepEqual(heap.u8.slice(at, at + 40), val(1), 'the copy read before the flips is intact');
    assert.equal(m.collect(), 1, 'the replaced element waits: this agent is still reading');
  });
  assert.equal(m.collect(), 0, 'freed once the reader left');
  // With no reader, updates go in place once epochs pass; the value is
  // always the last one written.
  for (let i = 0; i < 200; i++) {
    assert.equal(m.update(k32(5), val(10 + i), MapFlag.ANY), MapStatus.OK);
    assert.ok(m.lookup(k32(5), out));
    assert.deepEqual(out, val(10 + i), `update ${i}`);
    m.collect();
  }
  const c = m.updateCounts;
  assert.ok(c.inPlace > 100, `only ${c.inPlace} of 200 updates in place`);
  assert.equal(m.count(), 1);
  assert.equal(liveElements(m), 1);
  assert.deepEqual(m.validate(), []);
});

test('delete unlinks a key from anywhere in a chain (one bucket)', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 64, buckets: 1 });
  const present = new Set<number>();
  for (let i = 0; i < 12; i++) {
    m.update(k32(i), k32(i * 3));
    present.add(i);
  }
  const order = keysOf(m);
  // Head, tail, middle, then whatever is left in chain order.
  const victims = [order[0]!, order[11]!, order[5]!, order[6]!, ...order.filter((_, i) => ![0, 11, 5, 6].includes(i))];
  const out = new Uint8Array(8);
  for (const v of victims) {
    assert.equal(m.delete(k32(v)), MapStatus.OK, `delete ${v}`);
    present.delete(v);
    assert.equal(m.delete(k32(v)), MapStatus.NOT_FOUND, `delete ${v} again`);
    assert.equal(m.delete(k32(100 + v)), MapStatus.NOT_FOUND, 'a key never inserted');
    for (const p of present) {
      assert.ok(m.lookup(k32(p), out), `key ${p} survives the delete of ${v}`);
      assert.equal(u32of(out), p * 3);
    }
    assert.deepEqual(keysOf(m).sort((x, y) => x - y), [...present].sort((x, y) => x - y));
    assert.equal(m.count(), present.size);
    assert.deepEqual(m.validate(), []);
  }
});

for (const buckets of [1, 4, 1024]) {
  test(`getNextKey (${buckets} buckets): one fixed order, each key once, ends; null or an absent key give the first`, () => {
    const heap = Heap.create({ maxBytes: 32 << 20 });
    const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 256, buckets });
    const out = new Uint8Array(8);
    assert.equal(m.getNextKey(null, out), false, 'an empty map has no first key');
    assert.equal(m.getNextKey(k32(3), out), false);
    for (let i = 0; i < 200; i++) m.update(k32(i * 7), k32(i));
    const order: number[] = [];
    let prev: Uint8Array | null = null;
    while (m.getNextKey(prev, out)) {
      order.push(u32of(out));
      assert.ok(order.length <= 200, 'terminates');
      prev = out.slice();
    }
    assert.equal(new Set(order).size, 200, 'each key once');
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i * 7));
    assert.deepEqual(keysOf(m), order, 'keys() follows the same order');
    for (let i = 0; i + 1 < order.length; i++) {
      assert.ok(m.getNextKey(k32(order[i]!), out));
      assert.equal(u32of(out), order[i + 1], `successor of ${order[i]}`);
    }
    assert.equal(m.getNextKey(k32(order[199]!), out), false, 'the last key has no successor');
    assert.ok(m.getNextKey(k32(5), out), 'an absent key starts over');
    assert.equal(u32of(out), order[0]);
    m.delete(k32(order[50]!));
    assert.ok(m.getNextKey(k32(order[50]!), out), 'so does a key deleted under the walk (the kernel does the same)');
    assert.equal(u32of(out), order[0]);
    const longKey = new Uint8Array(12);
    longKey.set(k32(order[0]!));
    assert.ok(m.getNextKey(longKey, out), 'a longer key uses its first keySize bytes');
    assert.equal(u32of(out), order[1]);
    assert.throws(() => m.getNextKey(null, new Uint8Array(4)), { name: 'TypeError', message: /out must hold keySize 8/ });
    assert.throws(() => m.getNextKey(new Uint8Array(4), out), { name: 'TypeError', message: /keySize 8.*4 bytes/ });
  });
}

test('keys() and entries() give fresh copies of every pair', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 8, valueSize: 16, maxEntries: 64 });
  for (let i = 0; i < 30; i++) m.update(k32(i), k32(i + 1000, 16));
  const keys = [...m.keys()];
  assert.equal(new Set(keys.map((k) => k.buffer)).size, 30, 'each key its own buffer');
  keys[0]!.fill(0xff);
  assert.equal([...m.keys()].length, 30, 'changing a returned key changes nothing');
  const entries = [...m.entries()];
  assert.equal(entries.length, 30);
  for (const [k, v] of entries) {
    assert.equal(k.length, 8);
    assert.equal(v.length, 16);
    assert.equal(u32of(v), u32of(k) + 1000);
  }
});

test('clear() deletes everything, the map stays usable, and entries are counted back', () => {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 2 });
  for (const perWorker of [false, true]) {
    const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 50, perWorker, buckets: 8 });
    assert.equal(m.clear(), 0, 'clear of an empty map');
    for (let i = 0; i < 50; i++) assert.equal(m.update(k32(i), k32(i)), MapStatus.OK);
    assert.equal(m.update(k32(50), k32(0)), MapStatus.FULL);
    assert.equal(m.clear(), 50);
    assert.equal(m.count(), 0);
    assert.deepEqual(keysOf(m), []);
    assert.equal(m.has(k32(7)), false);
    assert.equal(m.collect(), 0);
    assert.equal(liveElements(m), 0, 'every element is back');
    for (let i = 100; i < 150; i++) assert.equal(m.update(k32(i), k32(i), MapFlag.NOEXIST), MapStatus.OK, `perWorker ${perWorker}: refill ${i}`);
    assert.equal(m.update(k32(150), k32(0)), MapStatus.FULL, 'maxEntries again');
    assert.deepEqual(m.validate(), []);
    assert.equal(m.destroy(), 50);
  }
  assert.deepEqual(heap.validate(), []);
});

test('batch operations stop at the first failure and report where', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const m = HashMap.create(heap, { keySize: 4, valueSize: 4, maxEntries: 100 });
  const keys = new Uint8Array(4 * 6);
  const vals = new Uint8Array(4 * 6);
  [10, 11, 12, 13, 14, 15].forEach((k, i) => {
    keys.set(k32(k, 4), 4 * i);
    vals.set(k32(k * 2, 4), 4 * i);
  });
  m.update(k32(13, 4), k32(0, 4));
  const io = new Uint32Array(2);
  assert.equal(m.updateBatch(keys, vals, MapFlag.NOEXIST, io), MapStatus.EXISTS);
  assert.equal(io[1], 3);
  assert.equal(m.count(), 4);
  assert.equal(m.updateBatch(keys, vals, MapFlag.EXIST, io), MapStatus.NOT_FOUND);
  assert.equal(io[1], 4);
  assert.equal(m.updateBatch(keys, vals, MapFlag.ANY, io), MapStatus.OK);
  assert.equal(io[1], 6);
  const outVals = new Uint8Array(4 * 6);
  assert.equal(m.lookupEach(keys, outVals), 6, 'found may be left out');
  assert.deepEqual(outVals, vals);
  const some = new Uint8Array(4 * 3);
  some.set(k32(10, 4), 0);
  some.set(k32(99, 4), 4);
  some.set(k32(15, 4), 8);
  assert.equal(m.deleteBatch(some, io), MapStatus.NOT_FOUND, 'an absent key stops the batch (the kernel\'s delete_batch)');
  assert.equal(io[1], 1);
  assert.equal(m.count(), 5);
  assert.equal(m.deleteBatch(some.subarray(8), io), MapStatus.OK);
  assert.equal(m.count(), 4);
  assert.throws(() => m.updateBatch(new Uint8Array(6), vals), { name: 'TypeError', message: /multiple of keySize 4/ });
  assert.throws(() => m.lookupEach(keys, new Uint8Array(8)), { name: 'TypeError', message: /6 x valueSize 4/ });
  assert.throws(() => m.deleteBatch(new Uint8Array(5)), { name: 'TypeError', message: /multiple of keySize 4/ });
  assert.deepEqual(m.validate(), []);
});

test('per-worker values: any agent may create or delete a key; each writes only its own slot', () => {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 3 });
  const m = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 16, perWorker: true });
  const h2 = Heap.attach(heap.handle);
  const m2 = HashMap.attach(h2, m.handle);
  const v = (n: number): Uint8Array => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, n, true);
    return b;
  };
  const f64 = (b: Uint8Array, i = 0): number => new DataView(b.buffer, b.byteOffset).getFloat64(8 * i, true);
  const out = new Uint8Array(8);
  assert.equal(m2.update(k32(1, 4), v(2.5), MapFlag.NOEXIST), MapStatus.OK, 'the second agent creates the key');
  assert.ok(m.lookup(k32(1, 4), out));
  assert.equal(f64(out), 0, 'the first agent has not written its slot: zero');
  assert.equal(m.update(k32(1, 4), v(-1), MapFlag.NOEXIST), MapStatus.EXISTS);
  assert.equal(m.update(k32(1, 4), v(-1), MapFlag.EXIST), MapStatus.OK);
  assert.ok(m2.lookup(k32(1, 4), out));
  assert.equal(f64(out), 2.5, "the first agent's write left the second's slot alone");
  const all = new Uint8Array(3 * 8);
  assert.ok(m.lookupAll(k32(1, 4), all));
  assert.deepEqual([0, 1, 2].map((s) => f64(all, s)), [-1, 2.5, 0]);
  assert.equal(m.sum(k32(1, 4), 'f64'), 1.5);
  assert.equal(m.lookupAll(k32(2, 4), all), false);
  assert.equal(m.sum(k32(2, 4)), undefined);
  assert.equal(m.count(), 1);
  assert.equal(m.delete(k32(1, 4)), MapStatus.OK, 'either agent deletes the key for all');
  assert.equal(m2.has(k32(1, 4)), false);
  assert.equal(m2.update(k32(1, 4), v(1), MapFlag.EXIST), MapStatus.NOT_FOUND);
  // i32 sums of negative values.
  const small = HashMap.create(heap, { keySize: 4, valueSize: 4, maxEntries: 4, perWorker: true });
  const small2 = HashMap.attach(h2, small.handle);
  small.update(k32(9, 4), k32(-5 >>> 0, 4));
  small2.update(k32(9, 4), k32(-7 >>> 0, 4));
  assert.equal(small.sum(k32(9, 4), 'i32'), -12);
  assert.throws(() => small.sum(k32(9, 4), 'f64'), { name: 'RangeError', message: /valueSize >= 8.*4/ });
  assert.throws(() => small.lookupAll(k32(9, 4), new Uint8Array(8)), { name: 'TypeError', message: /12 bytes/ });
  const plain = HashMap.create(heap, { keySize: 4, valueSize: 4, maxEntries: 4 });
  assert.throws(() => plain.lookupAll(k32(9, 4), new Uint8Array(12)), { name: 'TypeError', message: /per-worker/ });
  assert.throws(() => plain.sum(k32(9, 4)), { name: 'TypeError', message: /per-worker/ });
  assert.deepEqual(m.validate(), []);
  assert.deepEqual(small.validate(), []);
  m2.detach();
  small2.detach();
  h2.detach();
  assert.equal(m.destroy(), 0);
  assert.equal(small.destroy(), 1);
  assert.equal(plain.destroy(), 0);
  assert.deepEqual(heap.validate(), []);
});

test('lookupOffset: two agents count in place with Atomics; per-worker maps give each agent its own slot', () => {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 2 });
  const h2 = Heap.attach(heap.handle);
  for (const perWorker of [false, true]) {
    const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 8, perWorker });
    const m2 = HashMap.attach(h2, m.handle);
    m.update(k32(1), new Uint8Array(8));
    const a = m.lookupOffset(k32(1));
    const b = m2.lookupOffset(k32(1));
    assert.ok(a > 0 && b > 0 && a % 8 === 0 && b % 8 === 0, 'aligned for Atomics on 64-bit words too');
    assert.equal(a === b, !perWorker, perWorker ? 'one slot each' : 'one shared value');
    for (let i = 0; i < 1000; i++) {
      m.read(() => Atomics.add(heap.i32, a >>> 2, 1));
      m2.read(() => Atomics.add(h2.i32, b >>> 2, 1));
    }
    const out = new Uint8Array(8);
    assert.ok(m.lookup(k32(1), out));
    assert.equal(u32of(out), perWorker ? 1000 : 2000);
    if (perWorker) assert.equal(m.sum(k32(1), 'u32'), 2000);
    assert.equal(m.lookupOffset(k32(2)), 0, 'absent: 0');
    m2.detach();
    m.destroy();
  }
  h2.detach();
});

test('bad options and bad arguments raise TypeError or RangeError naming the value', () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const used0 = heap.stats().usedPages;
  const ok = { keySize: 8, valueSize: 8, maxEntries: 4 };
  const bad: [unknown, string, RegExp][] = [
    [null, 'TypeError', /options must be an object, got null/],
    [7, 'TypeError', /options must be an object, got 7/],
    [{ ...ok, keySize: 513 }, 'RangeError', /keySize must be in \[1, 512\], got 513/],
    [{ ...ok, keySize: '8' }, 'TypeError', /keySize must be a safe integer, got "8"/],
    [{ ...ok, valueSize: 0 }, 'RangeError', /valueSize must be in \[1, 65536\], got 0/],
    [{ ...ok, valueSize: 65537 }, 'RangeError', /valueSize .*got 65537/],
    [{ ...ok, maxEntries: 0 }, 'RangeError', /maxEntries .*got 0/],
    [{ ...ok, maxEntries: NaN }, 'TypeError', /maxEntries must be a safe integer, got NaN/],
    [{ ...ok, maxEntries: 2 ** 26 + 1 }, 'RangeError', /maxEntries .*got 67108865/],
    [{ ...ok, seed: -1 }, 'RangeError', /seed .*got -1/],
    [{ ...ok, seed: 2 ** 32 }, 'RangeError', /seed .*got 4294967296/],
    [{ ...ok, buckets: 0 }, 'RangeError', /buckets .*got 0/],
    [{ ...ok, buckets: 2.5 }, 'TypeError', /buckets .*2\.5/],
    [{ ...ok, mode: 'PREALLOC' }, 'TypeError', /mode .*"PREALLOC"/],
    [{ ...ok, maxEntries: 1 << 24, mode: 'prealloc' }, 'RangeError', /heap is full/],
  ];
  for (const [options, name, message] of bad) {
    assert.throws(() => HashMap.create(heap, options as never), { name, message }, JSON.stringify(options));
  }
  assert.equal(heap.stats().allocatorsLive, 0, 'failed creates leave no allocator behind');
  assert.equal(heap.stats().usedPages, used0, 'nor any page');
  const m = HashMap.create(heap, ok);
  const key = k32(1);
  const val = k32(2);
  assert.throws(() => m.update(key, val, -1), { name: 'RangeError', message: /flag.*got -1/ });
  assert.throws(() => m.update(key, val, 3), { name: 'RangeError', message: /flag.*got 3/ });
  for (const flag of [1.5, '1', null]) {
    assert.throws(() => m.update(key, val, flag as never), { name: /^(TypeError|RangeError)$/, message: new RegExp(`flag.*got ${flag === '1' ? '"1"' : String(flag).replace('.', '\\.')}`) });
  }
  assert.throws(() => m.update(new Uint8Array(7), val), { name: 'TypeError', message: /keySize 8.*got 7 bytes/ });
  assert.throws(() => m.update(key, new Uint8Array(7)), { name: 'TypeError', message: /valueSize 8.*got 7 bytes/ });
  assert.throws(() => m.update([1, 2, 3, 4, 5, 6, 7, 8] as never, val), { name: 'TypeError', message: /key must be a Uint8Array.*got object/ });
  assert.throws(() => m.lookup(key, new Uint8Array(4)), { name: 'TypeError', message: /out must be a Uint8Array of at least valueSize 8.*got 4 bytes/ });
  assert.throws(() => m.delete(new Uint8Array(0)), { name: 'TypeError', message: /got 0 bytes/ });
  assert.throws(() => m.has('abc' as never), { name: 'TypeError', message: /"abc"/ });
  assert.throws(() => HashMap.attach(heap, null as never), { name: 'TypeError', message: /map handle.*null/ });
  assert.equal(m.count(), 0, 'nothing changed');
  assert.deepEqual(m.validate(), []);
  m.destroy();
  assert.deepEqual(heap.validate(), []);
});

test('destroy gives the page heap back exactly as it was, whatever the map went through; the map is unusable after', () => {
  const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 4 });
  const used0 = heap.stats().usedPages;
  const shapes = [
    { mode: 'prealloc', perWorker: false },
    { mode: 'dynamic', perWorker: false },
    { mode: 'dynamic', perWorker: true },
    { mode: 'prealloc', perWorker: true },
  ] as const;
  for (const shape of shapes) {
    const m = HashMap.create(heap, { keySize: 8, valueSize: 24, maxEntries: 5000, ...shape });
    const v = new Uint8Array(24);
    for (let i = 0; i < 20_000; i++) {
      // Churn: inserts, replaces and deletes, leaving deferred frees pending.
      m.update(k32(i % 3000), v);
      if (i % 3 === 0) m.delete(k32((i * 7) % 3000));
    }
    assert.ok(m.deferredPending > 0, 'frees still waiting when destroy runs');
    const n = m.count();
    assert.equal(m.destroy(), n);
    assert.equal(heap.stats().usedPages, used0, `${JSON.stringify(shape)}: every page back`);
    assert.deepEqual(heap.validate(), []);
    assert.throws(() => m.lookup(k32(1), new Uint8Array(24)), { name: 'RangeError', message: /detached/ });
    assert.throws(() => m.update(k32(1), v), { name: 'RangeError', message: /detached/ });
    assert.throws(() => m.destroy(), { name: 'RangeError', message: /detached/ });
    assert.throws(() => HashMap.attach(heap, m.handle), { name: 'RangeError', message: /no live map/ });
  }
  assert.equal(heap.stats().allocatorsLive, 0);
});

test('memoryBytes: a dynamic map grows with its elements, a preallocated one stays put; at 10% the dynamic one is a fraction', () => {
  const heap = Heap.create({ maxBytes: 256 << 20, maxWorkers: 8 });
  const N = 65_536;
  const pre = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: N, mode: 'prealloc' });
  const dyn = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: N, mode: 'dynamic' });
  const preEmpty = pre.memoryBytes();
  const dynEmpty = dyn.memoryBytes();
  assert.ok(preEmpty >= N * 16, `a preallocated map holds its elements from the start (${preEmpty} bytes)`);
  assert.ok(dynEmpty < preEmpty / 10, `an empty dynamic map is small (${dynEmpty} bytes)`);
  let atTenth = 0;
  for (let i = 0; i < N; i++) {
    pre.update(k32(i), k32(i));
    dyn.update(k32(i), k32(i));
    if (i + 1 === N / 10) atTenth = dyn.memoryBytes();
  }
  assert.equal(pre.memoryBytes(), preEmpty, 'preallocated: constant');
  const ratio = atTenth / preEmpty;
  assert.ok(ratio <= 0.15, `dynamic at 10% fill uses ${(ratio * 100).toFixed(1)}% of the preallocated map's memory`);
  const full = dyn.memoryBytes() / preEmpty;
  assert.ok(full >= 0.8 && full <= 1.1, `dynamic when full uses ${(full * 100).toFixed(1)}% of the preallocated map's memory`);
  pre.destroy();
  dyn.destroy();
});
