/**
 * releaseExitedWorkers and attachInWorker (anyalloc/node) with plain
 * workers: a terminated thread's slot is released on its 'exit', a thread
 * that detached is left alone (its generation no longer matches), a
 * worker's own workers are released with it when it ends first, and a
 * handle without the thread table is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { Heap } from '../../src/index.js';
import { attachInWorker, releaseExitedWorkers, type ThreadExit, type ThreadWatch } from '../../src/node/index.js';

const WORKER = new URL('./thread-worker.js', import.meta.url);

function setup(): { heap: Heap; a: ReturnType<Heap['createAllocator']>; watch: ThreadWatch; exits: ThreadExit[] } {
  const heap = Heap.create({ maxWorkers: 4 });
  const a = heap.createAllocator();
  const exits: ThreadExit[] = [];
  const watch = releaseExitedWorkers(heap, { onExit: (e) => exits.push(e) });
  return { heap, a, watch, exits };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function finish(heap: Heap, a: ReturnType<Heap['createAllocator']>, watch: ThreadWatch): void {
  watch.stop();
  assert.deepEqual(heap.slots().map((s) => s.slot), [heap.slot], 'only the main thread holds a slot');
  assert.deepEqual(heap.validate(), []);
  assert.equal(a.destroy().leakedObjects, 0);
  heap.detach();
}

test('a terminated worker has its slot released on exit', async () => {
  const { heap, a, watch, exits } = setup();
  const w = new Worker(WORKER, { workerData: { mode: 'hold', heap: watch.handle, alloc: a.handle } });
  const [m] = (await once(w, 'message')) as [{ slot: number }];
  assert.equal(heap.slots().length, 2);
  await w.terminate();
  await until(() => exits.length === 1, 'the exit');
  assert.deepEqual(exits.map((e) => [e.slot, e.released]), [[m.slot, true]]);
  assert.deepEqual(watch.stats(), { workersSeen: 1, released: 1, clean: 0, unrecorded: 0 });
  finish(heap, a, watch);
});

test('a worker terminated between taking its slot and recording it is found by its owner tag and released', async () => {
  const { heap, a, watch, exits } = setup();
  const w = new Worker(WORKER, { workerData: { mode: 'window', heap: watch.handle, alloc: a.handle } });
  const [m] = (await once(w, 'message')) as [{ slot: number }];
  const taken = heap.slots().find((s) => s.slot === m.slot)!;
  assert.equal(taken.owner, w.threadId + 1, 'the slot carries the thread id + 1');
  await w.terminate();
  await until(() => exits.length === 1, 'the exit');
  assert.deepEqual(exits.map((e) => [e.slot, e.released]), [[m.slot, true]]);
  assert.deepEqual(watch.stats(), { workersSeen: 1, released: 1, clean: 0, unrecorded: 0 });
  finish(heap, a, watch);
});

test('a worker that detached is left alone, and so is whoever took its slot since', async () => {
  const { heap, a, watch, exits } = setup();
  const w = new Worker(WORKER, { workerData: { mode: 'detach', heap: watch.handle, alloc: a.handle } });
  await once(w, 'message');
  // The slot it held is free now; another agent takes it before the exit is seen.
  const other = heap.reserveSlot();
  await once(w, 'exit');
  await until(() => exits.length === 1, 'the exit');
  assert.equal(exits[0]!.released, false);
  assert.deepEqual(watch.stats(), { workersSeen: 1, released: 0, clean: 1, unrecorded: 0 });
  assert.ok(heap.slots().some((s) => s.slot === other.slot && s.gen === other.gen && s.state === 'reserved'), 'the reservation survives');
  assert.ok(heap.releaseSlot(other.slot, other.gen));
  finish(heap, a, watch);
});

test("a worker's own workers are released with it when it is terminated", async () => {
  const { heap, a, watch, exits } = setup();
  const w = new Worker(WORKER, { workerData: { mode: 'nest', heap: watch.handle, alloc: a.handle } });
  const [m] = (await once(w, 'message')) as [{ slot: number; childSlot: number }];
  assert.equal(heap.slots().length, 3);
  await w.terminate();
  await until(() => exits.length === 2, 'both exits');
  assert.deepEqual(exits.map((e) => e.slot).sort(), [m.slot, m.childSlot].sort());
  assert.ok(exits.every((e) => e.released));
  finish(heap, a, watch);
});

test('attachInWorker waits for a slot while all are taken, up to waitMs', async () => {
  const { heap, a, watch, exits } = setup();
  const taken = [heap.reserveSlot(), heap.reserveSlot(), heap.reserveSlot()]; // all 4 slots taken
  const waiting = new Worker(WORKER, { workerData: { mode: 'hold', heap: watch.handle, alloc: a.handle, waitMs: 10_000 } });
  await sleep(100);
  heap.releaseSlot(taken[0]!.slot, taken[0]!.gen);
  const [m] = (await once(waiting, 'message')) as [{ slot: number }];
  assert.equal(m.slot, taken[0]!.slot);

  // No slot comes free: the attach gives up after waitMs, and its row in
  // the thread table is given back (the exit finds nothing to release).
  const giving = new Worker(WORKER, { workerData: { mode: 'hold', heap: watch.handle, alloc: a.handle, waitMs: 50 } });
  const [err] = (await once(giving, 'error')) as [Error];
  assert.match(err.message, /no free worker slot/);
  await waiting.terminate();
  await until(() => watch.stats().released === 1 && exits.length === 1, 'the exits');
  assert.deepEqual(watch.stats(), { workersSeen: 2, released: 1, clean: 0, unrecorded: 0 });
  for (const t of taken.slice(1)) assert.ok(heap.releaseSlot(t.slot, t.gen));
  finish(heap, a, watch);
});

test('attachInWorker refuses a handle without the thread table, and the main thread', () => {
  const heap = Heap.create({ maxWorkers: 2 });
  assert.throws(() => attachInWorker(heap.handle), TypeError);
  const watch = releaseExitedWorkers(heap);
  assert.equal(releaseExitedWorkers(heap), watch, 'one watch per heap');
  assert.throws(() => attachInWorker(watch.handle), /worker threads/);
  watch.stop();
  heap.detach();
});
