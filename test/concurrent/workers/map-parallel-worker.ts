/**
 * Worker of test/concurrent/map-parallel.test.ts (the kernel's test_map_parallel): on
 * the keys this worker owns (k % workers === index), in steps that start
 * together on a barrier:
 *   insert phase: NOEXIST inserts; EXIST updates; (barrier) read back;
 *   delete phase: deletes; (barrier) check they are gone.
 * With job.readersDuringWrites the read-back runs right after this
 * worker's own updates instead, while other workers still replace
 * elements (readers pinned while writers retire).
 *   count phase (a perWorker map): increments this worker's own value of
 *   random keys, counting the increments per key, and now and then reads
 *   the key's sum over all workers, which must never go down.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag, MapStatus } from '../../../src/index.js';
import { Barrier } from '../../util/barrier.js';
import { drainDeferred } from '../../util/map-drain.js';
import { PARALLEL_VALUE_SIZE, type ParallelJob, type ParallelResult, type PerWorkerCountJob, type PerWorkerCountResult } from '../../util/map-jobs.js';
import { Prng, deriveSeed } from '../../util/prng.js';

const job = workerData as ParallelJob | PerWorkerCountJob;
const heap = Heap.attach(job.heap);
const map = HashMap.attach(heap, job.map);
const barrier = new Barrier(job.barrier, job.workers);
const BARRIER_MS = 20_000;
const key = new Uint8Array(8);
const kv = new DataView(key.buffer);
const value = new Uint8Array(PARALLEL_VALUE_SIZE);
const vv = new DataView(value.buffer);
const out = new Uint8Array(PARALLEL_VALUE_SIZE);
const ov = new DataView(out.buffer);
const result: ParallelResult = { done: 0, updated: 0, bad: [], undrained: 0 };

function note(what: string): void {
  if (result.bad.length < 8) result.bad.push(what);
}

/** Where the map's elements are (for a NO_MEMORY report): slabs, depot, each slot's cache, limbo. */
function whereElements(): string {
  const s = map.elementStats();
  const c = s.classes[0]!;
  const caches = s.workers.filter((w) => w.classes[0]!.cached > 0).map((w) => `slot ${w.slot} ${w.classes[0]!.cached}`).join(', ');
  return `elements: ${c.objects} in slabs, ${c.depot} in the depot, ${c.cached} cached (${caches}), ${c.live} out (in the map or waiting for a grace period), ${map.deferredPending} waiting in this worker's ring, count ${map.count()}`;
}

function perWorkerCount(j: PerWorkerCountJob): PerWorkerCountResult {
  const rng = new Prng(deriveSeed(j.seed, 100, j.index));
  const mine = new Uint8Array(map.valueSize);
  const mv = new DataView(mine.buffer);
  const counts = new Array<number>(j.keys).fill(0);
  const lastSum = new Array<number>(j.keys).fill(0);
  const violations: string[] = [];
  for (let i = 0; i < j.ops; i++) {
    const k = rng.below(j.keys);
    kv.setUint32(0, k, true);
    const before = map.lookup(key, mine) ? mv.getUint32(0, true) : 0;
    mv.setUint32(0, before + 1, true);
    if (map.update(key, mine, MapFlag.ANY) !== MapStatus.OK) throw new Error(`update of ${k} failed`);
    counts[k]!++;
    if ((i & 15) === 0) {
      const sum = map.sum(key, 'u32') ?? 0;
      if (sum < lastSum[k]! && violations.length < 5) violations.push(`sum of key ${k} went down: ${lastSum[k]} -> ${sum}`);
      lastSum[k] = sum;
    }
  }
  return { counts, violations, undrained: drainDeferred(map) };
}

barrier.arrive(BARRIER_MS);
let message: ParallelResult | PerWorkerCountResult = result;
if (job.phase === 'count') {
  message = perWorkerCount(job);
} else if (job.phase === 'insert') {
  for (let k = job.index; k < job.keys; k += job.workers) {
    kv.setUint32(0, k, true);
    vv.setUint32(0, k, true);
    vv.setUint32(4, 1, true);
    const st = map.update(key, value, MapFlag.NOEXIST);
    if (st === MapStatus.OK) result.done++;
    else note(`insert ${k}: status ${st}${st === MapStatus.NO_MEMORY ? ` (${whereElements()})` : ''}`);
  }
  for (let k = job.index; k < job.keys; k += job.workers) {
    kv.setUint32(0, k, true);
    vv.setUint32(0, k, true);
    vv.setUint32(4, 2, true);
    const st = map.update(key, value, MapFlag.EXIST);
    if (st === MapStatus.OK) result.updated++;
    else note(`update ${k}: status ${st}${st === MapStatus.NO_MEMORY ? ` (${whereElements()})` : ''}`);
  }
  if (!job.readersDuringWrites) barrier.arrive(BARRIER_MS);
  // Nobody else writes these keys: each must read back as updated.
  for (let k = job.index; k < job.keys; k += job.workers) {
    kv.setUint32(0, k, true);
    if (!map.lookup(key, out)) note(`lookup ${k}: absent after its update`);
    else if (ov.getUint32(0, true) !== k || ov.getUint32(4, true) !== 2) note(`lookup ${k}: value [${ov.getUint32(0, true)}, ${ov.getUint32(4, true)}]`);
  }
} else {
  for (let k = job.index; k < job.keys; k += job.workers) {
    kv.setUint32(0, k, true);
    const st = map.delete(key);
    if (st === MapStatus.OK) result.done++;
    else note(`delete ${k}: status ${st}`);
  }
  if (!job.readersDuringWrites) barrier.arrive(BARRIER_MS);
  for (let k = job.index; k < job.keys; k += job.workers) {
    kv.setUint32(0, k, true);
    if (map.has(key)) note(`has ${k}: present after its delete`);
  }
}
if (job.phase !== 'count') result.undrained = drainDeferred(map);
map.detach();
heap.detach();
parentPort!.postMessage(message);
