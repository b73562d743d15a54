/**
 * The kernel's hash map selftests (tools/testing/selftests/bpf:
 * test_maps.c test_hashmap, test_hashmap_sizes, test_hashmap_percpu,
 * test_hashmap_walk, test_hashmap_zero_seed, test_map_large;
 * map_tests/htab_map_batch_ops.c), written anew from the semantics they
 * check, where ours are the same (the differences: docs/map.md). The
 * parallel and stress tests are test/concurrent/map-parallel.test.ts and
 * stress tests; htab_reuse is test/concurrent/map-reuse.test.ts. Also:
 * lookup_and_delete_elem, per-worker 64-bit sums, and destroy() while a
 * reader is pinned elsewhere (the kernel's last close frees the map after
 * an RCU grace period).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap, MapFlag, MapStatus, type HashMapOptions } from '../../src/index.js';
import { pin, unpin } from '../../src/reclaim/epoch.js';

function key64(n: number, size = 8): Uint8Array {
  const k = new Uint8Array(Math.max(8, size));
  new DataView(k.buffer).setBigUint64(0, BigInt(n), true);
  return k.subarray(0, size);
}
function val64(v: Uint8Array, at = 0): number {
  return Number(new DataView(v.buffer, v.byteOffset).getBigUint64(at, true));
}

function heapOf(maxWorkers = 4): Heap {
  return Heap.create({ maxBytes: 64 << 20, maxWorkers });
}

for (const mode of ['prealloc', 'dynamic'] as const) {
  test(`test_hashmap (${mode}): flags, E2BIG at max_entries, ENOENT, get_next_key to the end`, () => {
    const heap = heapOf();
    const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 2, mode });
    const out = new Uint8Array(8);
    assert.equal(m.update(key64(1), key64(1234), MapFlag.ANY), MapStatus.OK);
    assert.equal(m.update(key64(1), key64(1235), MapFlag.NOEXIST), MapStatus.EXISTS, 'NOEXIST on a present key');
    assert.equal(m.update(key64(1), key64(1235), MapFlag.EXIST), MapStatus.OK);
    assert.ok(m.lookup(key64(1), out));
    assert.equal(val64(out), 1235);
    assert.equal(m.update(key64(2), key64(1234), MapFlag.EXIST), MapStatus.NOT_FOUND, 'EXIST on an absent key');
    assert.equal(m.update(key64(2), key64(1234), MapFlag.NOEXIST), MapStatus.OK);
    // Full: inserts fail with E2BIG, updates of present keys still work.
    assert.equal(m.update(key64(0), key64(0), MapFlag.NOEXIST), MapStatus.FULL);
    assert.equal(m.update(key64(0), key64(0), MapFlag.ANY), MapStatus.FULL);
    assert.equal(m.update(key64(1), key64(1), MapFlag.ANY), MapStatus.OK);
    assert.equal(m.update(key64(0), key64(0), MapFlag.EXIST), MapStatus.NOT_FOUND);
    assert.equal(m.delete(key64(0)), MapStatus.NOT_FOUND);
    // Iterate: both keys, once each, then the end.
    const k = new Uint8Array(8);
    const seen: number[] = [];
    assert.ok(m.getNextKey(null, k));
    seen.push(val64(k));
    assert.ok(m.getNextKey(k, k));
    seen.push(val64(k));
    assert.equal(m.getNextKey(k, k), false);
    assert.deepEqual(seen.sort(), [1, 2]);
    // An absent key starts from the first (the kernel's get_next_key).
    assert.ok(m.getNextKey(key64(99), k));
    assert.equal(val64(k), seen.includes(val64(k)) ? val64(k) : -1);
    assert.equal(m.delete(key64(1)), MapStatus.OK);
    assert.equal(m.delete(key64(2)), MapStatus.OK);
    assert.equal(m.lookup(key64(1), out), false);
    assert.equal(m.getNextKey(null, k), false, 'empty: no first key');
    m.destroy();
    assert.deepEqual(heap.validate(), []);
  });
}

test('test_hashmap_sizes: every key size 1..512 (doubling, and one below each) with value sizes 1..65536 create, take and return an entry', () => {
  const heap = Heap.create({ maxBytes: 128 << 20, maxWorkers: 4 });
  for (let ks = 1; ks <= 512; ks <<= 1) {
    for (const keySize of ks > 2 ? [ks - 1, ks] : [ks]) {
      for (const valueSize of [1, 7, 8, 100, 4096, 32768, 65535, 65536]) {
        const note = `keySize ${keySize}, valueSize ${valueSize}`;
        const m = HashMap.create(heap, { keySize, valueSize, maxEntries: 2 });
        const k = new Uint8Array(keySize).fill(0xab);
        const v = new Uint8Array(valueSize).fill(0xcd);
        assert.equal(m.update(k, v), MapStatus.OK, note);
        const out = new Uint8Array(valueSize);
        assert.ok(m.lookup(k, out), note);
        assert.deepEqual(out, v, note);
        m.destroy();
      }
    }
  }
  assert.throws(() => HashMap.create(heap, { keySize: 513, valueSize: 8, maxEntries: 2 }), RangeError);
  assert.throws(() => HashMap.create(heap, { keySize: 8, valueSize: 65537, maxEntries: 2 }), { name: 'RangeError', code: 'bad-option', message: /valueSize must be in \[1, 65536\]/ });
  assert.deepEqual(heap.validate(), []);
});

test('test_hashmap_percpu: every slot value set at once (updateAll), read back by lookupAll, summed exactly, iterated', () => {
  const heap = heapOf(4);
  const slots = heap.maxSlots;
  const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 2, perWorker: true });
  const all = new Uint8Array(8 * slots);
  const dv = new DataView(all.buffer);
  // Slot i holds 100 + i (the kernel test: value[cpu] = 100 + cpu).
  for (let s = 0; s < slots; s++) dv.setBigUint64(8 * s, BigInt(100 + s), true);
  assert.equal(m.updateAll(key64(1), all, MapFlag.ANY), MapStatus.OK);
  assert.equal(m.updateAll(key64(1), all, MapFlag.NOEXIST), MapStatus.EXISTS);
  assert.equal(m.updateAll(key64(1), all, MapFlag.EXIST), MapStatus.OK);
  const back = new Uint8Array(8 * slots);
  assert.ok(m.lookupAll(key64(1), back));
  assert.deepEqual(back, all);
  const sum = new BigUint64Array(1);
  assert.ok(m.sumInto(key64(1), sum));
  assert.equal(sum[0], BigInt(slots * 100 + (slots * (slots - 1)) / 2));
  assert.equal(m.updateAll(key64(2), all, MapFlag.EXIST), MapStatus.NOT_FOUND);
  assert.equal(m.updateAll(key64(2), all, MapFlag.NOEXIST), MapStatus.OK);
  assert.equal(m.updateAll(key64(0), all, MapFlag.NOEXIST), MapStatus.FULL);
  const k = new Uint8Array(8);
  const seen: number[] = [];
  for (let ok = m.getNextKey(null, k); ok; ok = m.getNextKey(k, k)) {
    seen.push(val64(k));
    assert.ok(m.lookupAll(k, back));
    for (let s = 0; s < slots; s++) assert.equal(val64(back, 8 * s), 100 + s);
  }
  assert.deepEqual(seen.sort(), [1, 2]);
  // lookup_and_delete of a per-CPU map copies every slot's value.
  back.fill(0);
  assert.equal(m.lookupAndDelete(key64(1), back), MapStatus.OK);
  assert.deepEqual(back, all);
  assert.equal(m.lookupAndDelete(key64(1), back), MapStatus.NOT_FOUND);
  assert.equal(m.count(), 1);
  m.destroy();
  assert.deepEqual(heap.validate(), []);
});

test('per-worker sums: exact u64 and i64 past 2^53, no FULL confusion; sum() with a bogus type throws a TypeError naming it', () => {
  const heap = heapOf(4);
  const slots = heap.maxSlots;
  const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 4, perWorker: true });
  const all = new Uint8Array(8 * slots);
  const dv = new DataView(all.buffer);
  for (let s = 0; s < slots; s++) dv.setBigUint64(8 * s, 2n ** 62n + BigInt(s), true);
  assert.equal(m.updateAll(key64(7), all), MapStatus.OK);
  const u = new BigUint64Array(3);
  assert.ok(m.sumInto(key64(7), u.subarray(1)));
  assert.equal(u[1], (BigInt(slots) * 2n ** 62n + BigInt((slots * (slots - 1)) / 2)) % 2n ** 64n);
  assert.equal(u[0], 0n);
  assert.equal(u[2], 0n);
  for (let s = 0; s < slots; s++) dv.setBigInt64(8 * s, -(2n ** 60n) - BigInt(s), true);
  assert.equal(m.updateAll(key64(7), all), MapStatus.OK);
  const i = new BigInt64Array(1);
  assert.ok(m.sumInto(key64(7), i));
  assert.equal(i[0], -BigInt(slots) * 2n ** 60n - BigInt((slots * (slots - 1)) / 2));
  assert.equal(m.sumInto(key64(8), i), false);
  assert.throws(() => m.sum(key64(7), 'bogus' as 'u32'), (e: Error) => e instanceof TypeError && /bogus/.test(e.message));
  assert.throws(() => m.sumInto(key64(7), new Float64Array(1) as unknown as BigInt64Array), TypeError);
  m.destroy();
});

test('test_hashmap_walk: get_next_key walks every key once, also while each visited key is updated', () => {
  const heap = heapOf();
  const max = 1000;
  const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: max });
  for (let i = 0; i < max; i++) assert.equal(m.update(key64(i), key64(i), MapFlag.NOEXIST), MapStatus.OK);
  const k = new Uint8Array(8);
  const v = new Uint8Array(8);
  let n = 0;
  for (let ok = m.getNextKey(null, k); ok; ok = m.getNextKey(k, k)) {
    assert.ok(m.lookup(k, v));
    assert.equal(val64(v), val64(k));
    n++;
  }
  assert.equal(n, max);
  // Again, updating each key as it is visited: the walk still sees each once.
  const seen = new Set<number>();
  for (let ok = m.getNextKey(null, k); ok; ok = m.getNextKey(k, k)) {
    assert.equal(seen.has(val64(k)), false);
    seen.add(val64(k));
    assert.ok(m.lookup(k, v));
    assert.equal(m.update(k, key64(val64(v) + 1), MapFlag.EXIST), MapStatus.OK);
  }
  assert.equal(seen.size, max);
  for (let i = 0; i < max; i++) {
    assert.ok(m.lookup(key64(i), v));
    assert.equal(val64(v), i + 1);
  }
  m.destroy();
});

test('test_hashmap_zero_seed: two maps with the same (zero) seed iterate their keys in the same order', () => {
  const heap = heapOf();
  const a = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 64, seed: 0 });
  const b = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 64, seed: 0 });
  for (let i = 0; i < 64; i++) {
    assert.equal(a.update(key64(i), key64(i)), MapStatus.OK);
    assert.equal(b.update(key64(i), key64(i)), MapStatus.OK);
  }
  const ka = new Uint8Array(8);
  const kb = new Uint8Array(8);
  let okA = a.getNextKey(null, ka);
  let okB = b.getNextKey(null, kb);
  let n = 0;
  while (okA && okB) {
    assert.deepEqual(ka, kb, `key ${n}`);
    okA = a.getNextKey(ka, ka);
    okB = b.getNextKey(kb, kb);
    n++;
  }
  assert.equal(okA, okB);
  assert.equal(n, 64);
  a.destroy();
  b.destroy();
});

test('test_map_large: many entries with large keys, all found by iteration and lookup', () => {
  const heap = Heap.create({ maxBytes: 128 << 20, maxWorkers: 4 });
  const max = 20_000;
  const m = HashMap.create(heap, { keySize: 40, valueSize: 8, maxEntries: max });
  const k = new Uint8Array(40);
  const kd = new DataView(k.buffer);
  for (let i = 0; i < max; i++) {
    kd.setUint32(0, i, true);
    kd.setUint32(36, i * 2654435761, true);
    k[20] = i & 255;
    assert.equal(m.update(k, key64(i), MapFlag.NOEXIST), MapStatus.OK);
  }
  kd.setUint32(0, max, true);
  assert.equal(m.update(k, key64(0), MapFlag.NOEXIST), MapStatus.FULL);
  const c = new Uint8Array(40);
  const v = new Uint8Array(8);
  let n = 0;
  for (let ok = m.getNextKey(null, c); ok; ok = m.getNextKey(c, c)) {
    assert.ok(m.lookup(c, v));
    assert.equal(val64(v), new DataView(c.buffer).getUint32(0, true));
    n++;
  }
  assert.equal(n, max);
  m.destroy();
  assert.deepEqual(heap.validate(), []);
});

/* ----------------------- map_tests/htab_map_batch_ops ---------------------- */

function batchMap(options: Partial<HashMapOptions>): { heap: Heap; m: HashMap; vb: number } {
  const heap = heapOf(4);
  const m = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 10, buckets: 8, ...options } as HashMapOptions);
  return { heap, m, vb: m.perWorker ? 8 * heap.maxSlots : 8 };
}

function fill(m: HashMap, n: number): void {
  const slots = m.heap.maxSlots;
  for (let i = 0; i < n; i++) {
    if (m.perWorker) {
      const all = new Uint8Array(8 * slots);
      for (let s = 0; s < slots; s++) new DataView(all.buffer).setBigUint64(8 * s, BigInt(i * 10 + s), true);
      assert.equal(m.updateAll(key64(i + 1, 4), all), MapStatus.OK);
    } else {
      assert.equal(m.update(key64(i + 1, 4), key64((i + 1) * 3)), MapStatus.OK);
    }
  }
}

function checkBatch(m: HashMap, keys: Uint8Array, values: Uint8Array, n: number, vb: number, seen: Set<number>): void {
  for (let j = 0; j < n; j++) {
    const k = new DataView(keys.buffer).getUint32(j * 4, true);
    assert.equal(seen.has(k), false, `key ${k} twice`);
    seen.add(k);
    if (m.perWorker) {
      for (let s = 0; s < m.heap.maxSlots; s++) assert.equal(val64(values, j * vb + 8 * s), (k - 1) * 10 + s);
    } else {
      assert.equal(val64(values, j * vb), k * 3);
    }
  }
}

for (const perWorker of [false, true]) {
  const kind = perWorker ? 'percpu hash' : 'hash';
  test(`htab_map_batch_ops (${kind}): an empty map's batch ends at once; every step size walks every key once; NO_SPACE only when a bucket does not fit`, () => {
    const { m, vb } = batchMap({ perWorker });
    const max = 10;
    const keys = new Uint8Array(4 * max);
    const values = new Uint8Array(vb * max);
    const io = new Uint32Array(2);
    assert.equal(m.lookupBatch(io, keys, values), MapStatus.NOT_FOUND, 'empty: ENOENT');
    assert.equal(io[1], 0);
    fill(m, max);
    for (let step = 1; step <= max; step++) {
      const seen = new Set<number>();
      io[0] = 0;
      let calls = 0;
      for (;;) {
        let st = m.lookupBatch(io, keys, values, step);
        if (st === MapStatus.NO_SPACE) {
          assert.equal(io[1], 0, 'NO_SPACE copies nothing');
          // The bucket is larger than step: a larger count gets it.
          st = m.lookupBatch(io, keys, values, max);
        }
        assert.ok(st === MapStatus.OK || st === MapStatus.NOT_FOUND, `status ${st}`);
        assert.ok(io[1]! <= max);
        checkBatch(m, keys, values, io[1]!, vb, seen);
        if (st === MapStatus.NOT_FOUND) break;
        assert.ok(++calls < 100);
      }
      assert.equal(seen.size, max, `step ${step}`);
    }
    assert.equal(m.count(), max, 'lookup_batch deletes nothing');
    // lookup_and_delete_batch: the same walk empties the map.
    for (const step of [1, 3, max]) {
      const seen = new Set<number>();
      io[0] = 0;
      for (;;) {
        let st = m.lookupAndDeleteBatch(io, keys, values, step);
        if (st === MapStatus.NO_SPACE) st = m.lookupAndDeleteBatch(io, keys, values, max);
        checkBatch(m, keys, values, io[1]!, vb, seen);
        if (st === MapStatus.NOT_FOUND) break;
        assert.equal(st, MapStatus.OK);
      }
      assert.equal(seen.size, max);
      assert.equal(m.count(), 0);
      assert.equal(m.getNextKey(null, new Uint8Array(4)), false);
      fill(m, max);
    }
    assert.deepEqual(m.validate(), []);
    m.destroy();
  });
}

test('batches: NO_SPACE leaves the cursor on the bucket that did not fit; buffers decide the count; bad io throws', () => {
  // One bucket: every key in it.
  const { m } = batchMap({ buckets: 1, maxEntries: 5 });
  fill(m, 5);
  const io = new Uint32Array(2);
  assert.equal(m.lookupBatch(io, new Uint8Array(4 * 4), new Uint8Array(8 * 4)), MapStatus.NO_SPACE, 'buffers for 4, bucket of 5');
  assert.deepEqual([...io], [0, 0]);
  assert.equal(m.lookupBatch(io, new Uint8Array(4 * 5), new Uint8Array(8 * 5)), MapStatus.NOT_FOUND);
  assert.deepEqual([...io], [1, 5]);
  assert.equal(m.lookupBatch(io, new Uint8Array(20), new Uint8Array(40)), MapStatus.NOT_FOUND, 'past the end');
  assert.equal(io[1], 0);
  assert.throws(() => m.lookupBatch(new Uint32Array(1), new Uint8Array(4), new Uint8Array(8)), TypeError);
  assert.throws(() => m.lookupBatch(new Uint8Array(8) as unknown as Uint32Array, new Uint8Array(4), new Uint8Array(8)), TypeError);
  m.destroy();
});

for (const inPlace of [true, false]) {
  test(`lookup_and_delete_elem (inPlace ${inPlace}): returns the value and deletes; the entry goes back; absent: NOT_FOUND`, () => {
    const heap = heapOf();
    const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 3, inPlace });
    const out = new Uint8Array(8);
    assert.equal(m.lookupAndDelete(key64(1), out), MapStatus.NOT_FOUND);
    for (let i = 1; i <= 3; i++) assert.equal(m.update(key64(i), key64(i * 11)), MapStatus.OK);
    assert.equal(m.update(key64(2), key64(23)), MapStatus.OK);
    assert.equal(m.update(key64(4), key64(0)), MapStatus.FULL);
    assert.equal(m.lookupAndDelete(key64(2), out), MapStatus.OK);
    assert.equal(val64(out), 23);
    assert.equal(m.has(key64(2)), false);
    assert.equal(m.update(key64(4), key64(44)), MapStatus.OK, 'its entry is free again');
    assert.equal(m.lookupAndDelete(key64(2), out), MapStatus.NOT_FOUND);
    assert.throws(() => m.lookupAndDelete(key64(1), new Uint8Array(4)), TypeError);
    assert.equal(m.count(), 3);
    assert.deepEqual(m.validate(), []);
    m.destroy();
    assert.deepEqual(heap.validate(), []);
  });
}

test('batches: room for no element copies nothing and returns OK, the cursor unchanged (the kernel: count 0)', () => {
  const { m } = batchMap({});
  fill(m, 3);
  const io = new Uint32Array([2, 9]);
  assert.equal(m.lookupBatch(io, new Uint8Array(40), new Uint8Array(80), 0), MapStatus.OK);
  assert.deepEqual([...io], [2, 0]);
  assert.equal(m.lookupAndDeleteBatch(io, new Uint8Array(0), new Uint8Array(80)), MapStatus.OK);
  assert.equal(m.count(), 3);
  m.destroy();
});

/* --------------------------------- destroy -------------------------------- */

test('destroy with another agent attached throws a RangeError with code still-attached', () => {
  const heap = heapOf();
  const m = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 8 });
  const other = Heap.attach(heap.handle);
  const m2 = HashMap.attach(other, m.handle);
  assert.throws(() => m.destroy(), (e: Error & { code?: string }) => e instanceof RangeError && e.code === 'still-attached');
  m2.detach();
  other.detach();
  m.destroy();
});

test('destroy while a reader is pinned elsewhere: destroying until the reader leaves, then (timer, or heap.detach) every page comes back', async () => {
  for (const finish of ['timer', 'detach'] as const) {
    const heap = heapOf();
    const used0 = heap.stats().usedPages;
    const m = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 10_000, mode: 'dynamic' });
    for (let i = 0; i < 10_000; i++) assert.equal(m.updateNumber(i, new Uint8Array(8)), MapStatus.OK);
    const reader = Heap.attach(heap.handle);
    pin(reader);
    assert.equal(m.destroy(), 10_000);
    assert.equal(m.destroying, true, finish);
    assert.throws(() => HashMap.attach(reader, m.handle), RangeError, 'a destroyed map cannot be attached');
    unpin(reader);
    if (finish === 'timer') {
      const end = Date.now() + 5000;
      while (m.destroying && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
      assert.equal(m.destroying, false);
      assert.equal(heap.stats().usedPages, used0, finish);
      reader.detach();
      assert.deepEqual(heap.validate(), []);
    } else {
      heap.detach();
      assert.equal(m.destroying, false);
      assert.equal(reader.stats().usedPages, used0, finish);
      assert.deepEqual(reader.validate(), []);
      reader.detach();
    }
  }
});
