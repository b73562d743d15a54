/**
 * Worker of test/map-parallel.test.ts (the kernel's test_map_parallel): on
 * the keys this worker owns (k % workers === index), in steps that start
 * together on a barrier:
 *   insert phase: NOEXIST inserts; EXIST updates; (barrier) read back;
 *   delete phase: deletes; (barrier) check they are gone.
 * With job.readersDuringWrites the read-back runs right after this
 * worker's own updates instead, while other workers still replace
 * elements (readers pinned while writers retire).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag, MapStatus } from '../../src/index.js';
import { Barrier } from '../util/barrier.js';
import { drainDeferred } from '../util/map-drain.js';
import { PARALLEL_VALUE_SIZE, type ParallelJob, type ParallelResult } from '../util/map-jobs.js';

const job = workerData as ParallelJob;
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

barrier.arrive(BARRIER_MS);
if (job.phase === 'insert') {
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
result.undrained = drainDeferred(map);
map.detach();
heap.detach();
parentPort!.postMessage(result);
