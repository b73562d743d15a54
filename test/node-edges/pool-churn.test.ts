/**
 * Worker pools release their slots without the pool's help: piscina and
 * tinypool start threads and terminate them when idle (terminate() runs no
 * code in the thread, so a pool thread never detaches). Each thread
 * attaches with attachInWorker when it loads; releaseExitedWorkers in this
 * thread releases its slot on its 'exit'. The heap has 8 worker slots for
 * 8-thread pools, so a single slot that was not released would soon make
 * an attach fail with "no free worker slot".
 *
 * ANYALLOC_CHURN sets the thread turnovers in all, half through each pool:
 * 240 by default (30 rounds of the 8 slots per pool, so a slot not given
 * back fails an attach within the first rounds); `npm run test:soak` runs
 * 1000.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';
import { Heap } from '../../src/index.js';
import { releaseExitedWorkers, type ThreadWatch } from '../../src/node/index.js';
import type { TaskResult } from './pool-task.js';

const TURNOVERS = Number(process.env.ANYALLOC_CHURN ?? 240);
const PER_POOL = Math.ceil(TURNOVERS / 2);
const POOL_THREADS = 8;
const TASK_FILE = new URL('./pool-task.js', import.meta.url).href;

/** The part of piscina's and tinypool's API the churn uses. */
interface Pool {
  run(seed: number): Promise<TaskResult>;
  readonly threads: readonly unknown[];
  destroy(): Promise<void>;
}

/** Waits until the exits of all the threads seen but `alive` have been handled. */
async function settled(watch: ThreadWatch, deadlineMs: number, alive = 0): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const s = watch.stats();
    if (s.released + s.clean + s.unrecorded >= s.workersSeen - alive) return;
    if (Date.now() > end) assert.fail(`exits not all seen: ${JSON.stringify(s)}`);
    await sleep(5);
  }
}

async function churn(name: string, makePool: (workerData: unknown) => Pool): Promise<void> {
  const heap = Heap.create({ maxWorkers: POOL_THREADS + 1 });
  const a = heap.createAllocator();
  const watch = releaseExitedWorkers(heap);
  const pool = makePool({ heap: watch.handle, alloc: a.handle });
  const t0 = performance.now();
  let seed = 1;
  let tasks = 0;
  const threadsUsed = new Set<number>();
  try {
    while (watch.stats().released < PER_POOL) {
      // A wave of tasks starts up to 8 threads; then the pool goes idle and
      // terminates them all after its idle timeout.
      const wave = await Promise.all(Array.from({ length: 2 * POOL_THREADS }, () => pool.run(seed++)));
      tasks += wave.length;
      for (const r of wave) {
        threadsUsed.add(r.threadId);
        assert.ok(r.slot > 0 && r.slot <= POOL_THREADS, `${name}: task ran on slot ${r.slot}`);
      }
      // Now and then a pool keeps a thread past its idle timeout (piscina
      // under load): it is reused in the next wave, or terminated by
      // destroy() at the end; the churn goes on without it.
      const end = Date.now() + 1000;
      while (pool.threads.length > 0 && Date.now() < end) await sleep(2);
      await settled(watch, 10_000, pool.threads.length);
    }
  } finally {
    await pool.destroy();
  }
  await settled(watch, 10_000);
  watch.stop();
  const s = watch.stats();
  const ms = performance.now() - t0;
  console.log(`${name}: ${s.workersSeen} threads came and went (${threadsUsed.size} ran tasks), ${tasks} tasks, ${ms.toFixed(0)} ms; ${JSON.stringify(s)}`);
  assert.ok(s.released >= PER_POOL, `${name}: only ${s.released} releases`);
  assert.equal(s.unrecorded, 0, `${name}: a thread exited inside its attach`);
  assert.deepEqual(
    heap.slots().map((x) => ({ slot: x.slot, self: x.self })),
    [{ slot: heap.slot, self: true }],
    `${name}: slots left taken besides the main thread's`,
  );
  assert.deepEqual(heap.validate(), [], `${name}: heap inconsistent`);
  assert.equal(heap.stats().slotsReleased, s.released);
  // Every task freed what it allocated: the released threads' caches went
  // back to the global pool, and nothing is live.
  const report = a.destroy();
  assert.equal(report.leakedObjects, 0, `${name}: ${report.leakedObjects} objects still allocated`);
  heap.detach();
}

test(`piscina: ${PER_POOL} idle-terminated threads release their slots`, { timeout: 120_000 }, async () => {
  await churn('piscina', (workerData) => new Piscina({ filename: TASK_FILE, minThreads: 0, maxThreads: POOL_THREADS, idleTimeout: 5, workerData }) as unknown as Pool);
});

test(`tinypool: ${PER_POOL} idle-terminated threads release their slots`, { timeout: 120_000 }, async () => {
  await churn('tinypool', (workerData) => new Tinypool({ filename: TASK_FILE, minThreads: 0, maxThreads: POOL_THREADS, idleTimeout: 5, workerData }) as unknown as Pool);
});
