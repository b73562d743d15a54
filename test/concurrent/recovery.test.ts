/**
 * Dead-worker recovery through anyalloc/node's startWorker: a worker that
 * holds objects, has map entries and deferred frees waiting, dies by
 * process.exit(), by an uncaught exception, or by terminate() while
 * blocked or busy. Its slot must come back, the heap must validate, its
 * waiting frees must be reclaimed by the others, and the only loss is
 * what it held live, which stats and destroy() report exactly.
 * (The liveness check and the release of pages a dead agent was claiming,
 * both in one agent, are in test/unit/recovery.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Worker } from 'node:worker_threads';
import { HashMap, Heap } from '../../src/index.js';
import { startWorker } from '../../src/node/index.js';
import { pin, unpin } from '../../src/reclaim/epoch.js';
import type { RecoveryJob, RecoveryReport } from './workers/recovery-worker.js';

const WORKER = new URL('./workers/recovery-worker.js', import.meta.url);
const TIMEOUT_MS = 10_000;

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function liveObjects(a: { stats(): { classes: { live: number }[]; large: { live: number } } }): number {
  const st = a.stats();
  return st.classes.reduce((n, c) => n + c.live, 0) + st.large.live;
}

for (const death of ['exit', 'throw', 'terminate', 'spin'] as const) {
  test(`a worker that dies by ${death}: its slot is released, its deferred frees reclaimed, only what it held live is lost`, async () => {
    const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 4 });
    const used0 = heap.stats().usedPages;
    const a = heap.createAllocator({ lowWatermark: 2, highWatermark: 8, batch: 4 });
    const map = HashMap.create(heap, { keySize: 8, valueSize: 24, maxEntries: 4096, mode: 'dynamic' });
    const job: Omit<RecoveryJob, 'heap'> = { alloc: a.handle, map: map.handle, live: 40, keys: 300, retire: 200, death };
    // Pinned: the worker's deletes wait in its limbo ring until we unpin.
    pin(heap);
    let released!: (r: boolean) => void;
    const releasedP = new Promise<boolean>((r) => (released = r));
    const worker: Worker = startWorker(heap, WORKER, { workerData: job, onRelease: (r) => released(r) });
    const errors: Error[] = [];
    worker.on('error', (e) => errors.push(e));
    const report = await within(new Promise<RecoveryReport>((r) => worker.once('message', r)), 'the worker report');
    assert.equal(report.held.length, 40);
    assert.equal(report.waiting, 200, 'its deletes wait for the grace period');
    const listed = heap.slots().find((s) => s.slot === report.slot);
    assert.equal(listed?.state, 'attached', 'the worker is listed while it runs');
    if (death === 'terminate' || death === 'spin') await worker.terminate();
    assert.equal(await within(releasedP, 'the release on exit'), true, 'the slot had to be released');
    if (death === 'throw') assert.match(String(errors[0]), /uncaught exception/);
    assert.equal(heap.slots().some((s) => s.slot === report.slot), false, 'the slot is free again');
    assert.equal(heap.stats().slotsReleased, 1);
    assert.deepEqual(heap.validate(), [], 'consistent right after the release');
    assert.equal(map.count(), 100, 'its 100 remaining entries are still in the map');

    unpin(heap);
    map.collect();
    assert.equal(map.elementStats().classes.reduce((n, c) => n + c.live, 0), map.count(), 'its 200 deleted elements came back');
    assert.equal(liveObjects(a), 40, 'the 40 objects it held are the only loss, and stats count them');

    // The slot is reusable, and the survivors carry on in it.
    const again = heap.reserveSlot();
    assert.equal(again.slot, report.slot);
    const w2 = startWorker(heap, WORKER, { workerData: { ...job, live: 0, retire: 0, death: 'exit' } });
    await within(new Promise((r) => w2.once('exit', r)), 'the second worker');
    heap.releaseSlot(again.slot, again.gen);

    map.clear();
    map.collect();
    assert.equal(map.destroy(), 0);
    const leak = a.destroy();
    assert.equal(leak.leakedObjects, 40, 'the leak report lists exactly what the dead worker held');
    assert.deepEqual(heap.validate(), []);
    assert.ok(heap.stats().usedPages >= used0);
  });
}
