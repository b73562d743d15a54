/**
 * PerWorkerAllocator across threads: four workers each increment their own
 * copy of many objects with plain writes, at once, and the main thread's
 * sums are exact; objects allocated in one agent are freed in another
 * (worker to worker, some deferred, and worker to main thread); the heap
 * validates clean and the allocator is destroyed without leaks. Then
 * examples/per-worker/main.mjs runs as a user would run it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Heap, PerWorkerAllocator, type HeapHandle } from '../../src/index.js';
import { Barrier } from '../util/barrier.js';
import { assertHeapValid } from '../util/checks.js';
import { runWorkerGroup } from '../util/workers.js';
import type { PerWorkerJob, PerWorkerResult } from './workers/per-worker-alloc-worker.js';

const WORKER = new URL('./workers/per-worker-alloc-worker.js', import.meta.url);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WORKERS = 4;
const OBJECTS = 1500;
const ROUNDS = 400;
const OWN = 300;
const LEFT_FOR_MAIN = 50;

for (const packed of [false, true]) {
  test(`${WORKERS} workers count in their own copies with plain writes: exact sums, cross-agent frees, a valid heap (packed: ${packed})`, { timeout: 60_000 }, async () => {
    const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 8 });
    const pw = PerWorkerAllocator.create(heap, { size: 16, packed });
    const objects = new Int32Array(new SharedArrayBuffer(OBJECTS * 4));
    for (let i = 0; i < OBJECTS; i++) {
      objects[i] = pw.alloc();
      assert.notEqual(objects[i], 0);
    }
    const handles: (HeapHandle & { slot: number; gen: number })[] = [];
    for (let w = 0; w < WORKERS; w++) handles.push(heap.reserveSlot());
    const slots = handles.map((h) => h.slot);
    const common = {
      pw: pw.handle,
      workers: WORKERS,
      slots,
      objects: objects.buffer as SharedArrayBuffer,
      rounds: ROUNDS,
      table: new SharedArrayBuffer(WORKERS * OWN * 4),
      own: OWN,
      leftForMain: LEFT_FOR_MAIN,
      barrier: Barrier.buffer(),
    };
    const out = await runWorkerGroup<PerWorkerResult>(
      handles.map((h, index) => ({ script: WORKER, data: { ...common, heap: h, index } satisfies PerWorkerJob, name: `worker ${index}` })),
      { timeoutMs: 50_000 },
    );
    for (const i of out.failed) heap.releaseSlot(handles[i]!.slot, handles[i]!.gen);
    assert.deepEqual(out.failures, []);
    heap.refresh();

    // Exact totals: each worker's copy holds its own count, ours none.
    for (let i = 0; i < OBJECTS; i++) {
      const p = objects[i]!;
      for (let s = 0; s < pw.slots; s++) {
        const want = slots.includes(s) ? ROUNDS : 0;
        assert.equal(heap.u32[pw.copyOf(p, s) >>> 2], want, `object ${i}, slot ${s}'s count`);
      }
      assert.equal(pw.sumU32(p), WORKERS * ROUNDS, `sum of object ${i}`);
      assert.equal(pw.sumF64(p, 8), WORKERS * ROUNDS * 0.5, `float sum of object ${i}`);
    }
    for (const r of out.results) {
      assert.equal(r!.increments, OBJECTS * ROUNDS);
      assert.equal(r!.freedHere, OWN);
    }
    for (const p of objects) pw.free(p);

    // Objects the workers allocated and left: their stamp in their slot's copy, zeros elsewhere; freed here.
    for (const r of out.results) {
      for (const { p, stamp } of r!.leftForMain) {
        for (let s = 0; s < pw.slots; s++) assert.equal(heap.u32[pw.copyOf(p, s) >>> 2], s === r!.slot ? stamp : 0);
        pw.free(p);
      }
    }
    for (let i = 0; i < 1000 && pw.allocator.collectDeferred(true) > 0; i++);
    assertHeapValid(heap, `per-worker counting, packed ${packed}`);
    assert.equal(pw.allocator.stats().bytesInUse, 0);
    assert.deepEqual(pw.destroy(), { leakedObjects: 0, leakedBytes: 0, classes: [], largeRuns: 0, pagesKept: 0 });
    assertHeapValid(heap, `after destroy, packed ${packed}`);
  });
}

test('examples/per-worker: per-worker objects and the per-worker map count the same', { timeout: 60_000 }, async () => {
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['examples/per-worker/main.mjs'], { cwd: ROOT });
  assert.equal(stderr, '');
  const objects = /^per-worker objects: (\d+) counters, total (\d+) \(want (\d+)\)$/m.exec(stdout);
  const map = /^per-worker map: (\d+) keys, total (\d+) \(want (\d+)\)$/m.exec(stdout);
  assert.ok(objects && map, stdout);
  assert.equal(objects[2], objects[3], stdout);
  assert.equal(map[2], map[3], stdout);
  assert.equal(objects[3], map[3], stdout);
  assert.match(stdout, /^counter 0 per worker: \d+( \d+)+$/m);
  assert.match(stdout, /^heap\.validate\(\): consistent$/m);
});
