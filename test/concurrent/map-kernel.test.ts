/**
 * Kernel semantics across worker threads: FULL exactly at maxEntries
 * while another agent holds unused entry quota, and destroy() of a map
 * while a worker sits in a read-side section of another map (the
 * destroyed map's elements wait for that grace period, then every page
 * comes back); and the kernel's test_map_stress: the single-map selftests
 * run in many workers at once, each on maps of its own in one heap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { HashMap, Heap, MapStatus } from '../../src/index.js';
import type { InsertResult, KernelJob } from './workers/map-kernel-worker.js';

const WORKER = new URL('./workers/map-kernel-worker.js', import.meta.url);

function run<R>(job: KernelJob): { done: Promise<R>; worker: Worker } {
  const worker = new Worker(WORKER, { workerData: job });
  const done = new Promise<R>((resolve, reject) => {
    worker.once('message', (m) => resolve(m as R));
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`worker exited with ${code}`))));
  });
  return { done, worker };
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('maxWorkers 4, maxEntries 1024: the main thread inserts key 0 (and keeps its quota), a worker inserts 1..1023: all succeed', async () => {
  for (const mode of ['prealloc', 'dynamic'] as const) {
    const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 4 });
    const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 1024, mode });
    assert.equal(map.updateNumber(0, new Uint8Array(8)), MapStatus.OK);
    const r = await run<InsertResult>({ kind: 'insert', heap: heap.handle, map: map.handle, from: 1, to: 1024 }).done;
    assert.deepEqual(r, { ok: 1023, full: 0, other: 0 }, mode);
    assert.equal(map.count(), 1024, mode);
    assert.equal(map.updateNumber(5000, new Uint8Array(8)), MapStatus.FULL, `${mode}: and the main thread's next insert is FULL`);
    const r2 = await run<InsertResult>({ kind: 'insert', heap: heap.handle, map: map.handle, from: 2000, to: 2010 }).done;
    assert.deepEqual(r2, { ok: 0, full: 10, other: 0 }, `${mode}: so is a worker's`);
    assert.deepEqual(map.validate(), [], mode);
    map.destroy();
    assert.deepEqual(heap.validate(), [], mode);
    heap.detach();
  }
});

test('three workers race to fill a map of 1024 whose other agent holds unused quota: exactly 1024 inserts succeed, never more', async () => {
  for (let round = 0; round < 3; round++) {
    const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 4 });
    const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 1024 });
    assert.equal(map.updateNumber(1_000_000, new Uint8Array(8)), MapStatus.OK);
    const runs = [0, 1, 2].map((w) => run<InsertResult>({ kind: 'insert', heap: heap.handle, map: map.handle, from: w * 1000, to: (w + 1) * 1000 }).done);
    const results = await Promise.all(runs);
    const ok = results.reduce((a, r) => a + r.ok, 0);
    assert.equal(results.reduce((a, r) => a + r.other, 0), 0);
    assert.equal(ok, 1023, `round ${round}: ${JSON.stringify(results)}`);
    assert.equal(map.count(), 1024);
    assert.deepEqual(map.validate(), []);
    map.destroy();
    heap.detach();
  }
});

test("destroy() while a worker is inside another map's read(): the elements are freed once it leaves, every page comes back", async () => {
  const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 4 });
  const used0 = heap.stats().usedPages;
  const other = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 16 });
  const flag = new SharedArrayBuffer(8);
  const f = new Int32Array(flag);
  const holder = run<string>({ kind: 'hold', heap: heap.handle, map: other.handle, flag });
  await until('the reader to enter read()', () => Atomics.load(f, 1) === 1);
  // (After the worker attached: what its caches of the other map hold is not the destroyed map's.)
  const usedOther = heap.stats().usedPages;
  const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 10_000, mode: 'dynamic' });
  const v = new Uint8Array(8);
  for (let k = 0; k < 10_000; k++) assert.equal(map.updateNumber(k, v), MapStatus.OK);
  assert.equal(map.destroy(), 10_000);
  assert.equal(map.destroying, true, 'the elements wait for the reader');
  Atomics.store(f, 0, 1);
  assert.equal(await holder.done, 'done');
  await until('the destroyed map to finish', () => !map.destroying);
  assert.equal(heap.stats().usedPages, usedOther, 'every page of the destroyed map came back');
  other.destroy();
  assert.equal(heap.stats().usedPages, used0);
  assert.deepEqual(heap.validate(), []);
  heap.detach();
});

test('test_map_stress: 8 workers run test_hashmap, _walk and _percpu at once, each on its own maps in one heap; every page comes back', async () => {
  const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 9 });
  const used0 = heap.stats().usedPages;
  const runs = Array.from({ length: 8 }, () => run<string[]>({ kind: 'selftests', heap: heap.handle, rounds: 20 }).done);
  const results = await Promise.all(runs);
  assert.deepEqual(results.flat(), []);
  assert.equal(heap.stats().usedPages, used0);
  assert.deepEqual(heap.validate(), []);
  heap.detach();
});

test('lookupAndDeleteBatch walks while two workers insert: every key inserted is taken exactly once, with its value', async () => {
  const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 4 });
  const N = 20_000;
  const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: N, buckets: 4096 });
  const runs = [0, 1].map((w) => run<InsertResult>({ kind: 'insert', heap: heap.handle, map: map.handle, from: w * (N / 2), to: (w + 1) * (N / 2) }).done);
  let finished = false;
  void Promise.all(runs).then(() => (finished = true));
  const io = new Uint32Array(2);
  const keys = new Uint8Array(4 * 64);
  const values = new Uint8Array(8 * 64).fill(1);
  const seen = new Uint8Array(N);
  const kv = new DataView(keys.buffer);
  let taken = 0;
  for (let pass = 0; ; pass++) {
    const last = finished;
    io[0] = 0;
    for (;;) {
      const st = map.lookupAndDeleteBatch(io, keys, values);
      assert.ok(st === MapStatus.OK || st === MapStatus.NOT_FOUND, `status ${st}`);
      for (let i = 0; i < io[1]!; i++) {
        const k = kv.getUint32(4 * i, true);
        assert.equal(seen[k], 0, `key ${k} taken twice`);
        seen[k] = 1;
        taken++;
        for (let j = 0; j < 8; j++) assert.equal(values[8 * i + j], 0, 'the value written');
      }
      if (st === MapStatus.NOT_FOUND) break;
    }
    if (last) break;
    await new Promise((r) => setTimeout(r, 1));
  }
  const results = await Promise.all(runs);
  assert.equal(results.reduce((a, r) => a + r.ok, 0), N);
  assert.equal(taken, N);
  assert.equal(map.count(), 0);
  assert.deepEqual(map.validate(), []);
  map.destroy();
  heap.detach();
});
