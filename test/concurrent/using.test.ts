/**
 * The handshake between destroy() and the attaches and releases of the
 * same allocator (src/heap/using.ts), with the two sides in two threads on
 * a bare table: a release that comes while a destroy decides waits for the
 * decision (a destroy that gives up needs that release), and an attach is
 * refused once the destroy has begun to decide.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { ALLOC_DESTROYED, ALLOC_LIVE, AllocatorEntry, ALLOC_ROW_WORDS } from '../../src/shm/layout.js';
import { closeAllocator, type UsingHost } from '../../src/heap/using.js';

const WORKER = new URL('./workers/using-worker.js', import.meta.url);

/** A table with allocator 1 LIVE, two slot rows; the main thread is slot 0. */
function table(): { sab: SharedArrayBuffer; i32: Int32Array; h: UsingHost; state: () => number } {
  const sab = new SharedArrayBuffer(4 * 128);
  const u32 = new Uint32Array(sab);
  const h: UsingHost = { u32, slotWord: 64, allocWord: 16, maxSlots: 2, slot: 0 };
  const stateWord = h.allocWord + 1 * ALLOC_ROW_WORDS + AllocatorEntry.STATE;
  Atomics.store(u32, stateWord, ALLOC_LIVE);
  return { sab, i32: new Int32Array(sab), h, state: () => Atomics.load(u32, stateWord) };
}

/** Runs the worker's side, started from inside the destroy's count of the agents attached; returns what it found and the destroy's answer. */
async function meet(kind: 'release' | 'attach', othersAttached: number): Promise<{ found: boolean; decided: number; state: number }> {
  const { sab, i32, h, state } = table();
  const worker = new Worker(WORKER, { workerData: { sab, kind } });
  const found = new Promise<boolean>((resolve, reject) => {
    worker.once('message', (m) => resolve(m as boolean));
    worker.once('error', reject);
  });
  const decided = closeAllocator(h, 1, 2000, () => {
    // The other side starts now, while the destroy decides; give it time to reach the table.
    Atomics.store(i32, 0, 1);
    Atomics.notify(i32, 0);
    while (Atomics.load(i32, 1) === 0) Atomics.wait(i32, 1, 0, 100);
    Atomics.wait(i32, 2, 0, 100);
    return othersAttached;
  });
  const r = { found: await found, decided, state: state() };
  await worker.terminate();
  return r;
}

test('a release that comes while destroy() decides waits for the decision: the destroy gave up (the dead agent still counted), so the release goes on', async () => {
  const r = await meet('release', 1);
  assert.deepEqual(r, { found: true, decided: 1, state: ALLOC_LIVE });
});

test('a release that comes while destroy() decides, and the destroy goes ahead: the release leaves the allocator alone', async () => {
  const r = await meet('release', 0);
  assert.deepEqual(r, { found: false, decided: 0, state: ALLOC_DESTROYED });
});

test('an attach that comes while destroy() decides is refused, even when the destroy then gives up', async () => {
  const r = await meet('attach', 1);
  assert.deepEqual(r, { found: false, decided: 1, state: ALLOC_LIVE });
});
