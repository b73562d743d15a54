/**
 * Worker of test/concurrent/map-grace.test.ts. Jobs:
 *   churn             random update / delete / lookup on a few keys for a
 *                     fixed number of operations, sampling how many of
 *                     this agent's frees wait for a grace period;
 *   hold              inside map.read(), keep reading one element in
 *                     place until told to stop (or, 'hang', until
 *                     terminated): a reader that stays pinned;
 *   churn-while-held  once the holder is pinned, delete its key and churn
 *                     the others; report what stayed pending.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag, MapStatus } from '../../../src/index.js';
import { Barrier, signal, waitWhileEquals } from '../../util/barrier.js';
import { drainDeferred } from '../../util/map-drain.js';
import { type ChurnResult, type ChurnWhileHeldResult, GRACE, type GraceJob, type HoldResult, graceByte } from '../../util/map-jobs.js';
import { Prng, deriveSeed } from '../../util/prng.js';

const job = workerData as GraceJob;
const heap = Heap.attach(job.heap);
const map = HashMap.attach(heap, job.map);
const key = new Uint8Array(map.keySize);
const kv = new DataView(key.buffer);
const value = new Uint8Array(map.valueSize);
const vv = new DataView(value.buffer);
const out = new Uint8Array(map.valueSize);
const deadline = performance.now() + job.deadlineMs;

function churn(j: Extract<GraceJob, { kind: 'churn' }>): ChurnResult {
  const rng = new Prng(deriveSeed(j.seed, j.worker));
  const res: ChurnResult = { samples: [], deleted: 0, maxPending: 0, statuses: {}, undrained: 0 };
  new Barrier(j.barrier, 2).arrive(Math.max(1, deadline - performance.now()));
  for (let i = 0; i < j.ops; i++) {
    kv.setUint32(0, rng.below(j.keys), true);
    const r = rng.below(10);
    let st: number = MapStatus.OK;
    if (r < 4) {
      vv.setUint32(0, i, true);
      st = map.update(key, value, MapFlag.ANY);
    } else if (r < 7) {
      st = map.delete(key);
      if (st === MapStatus.OK) res.deleted++;
    } else {
      map.lookup(key, out);
    }
    if (st !== MapStatus.OK) res.statuses[st] = (res.statuses[st] ?? 0) + 1;
    if (i % j.sampleEvery === 0) {
      const pending = map.deferredPending;
      if (pending > res.maxPending) res.maxPending = pending;
      // memoryBytes() builds the allocator's stats: sample it less often.
      res.samples.push({ op: i, pending, memory: i % (16 * j.sampleEvery) === 0 ? map.memoryBytes() : -1 });
    }
  }
  res.undrained = drainDeferred(map);
  return res;
}

function hold(j: Extract<GraceJob, { kind: 'hold' }>): HoldResult {
  const control = new Int32Array(j.control);
  kv.setUint32(0, j.key, true);
  const res: HoldResult = { checks: 0, bad: 0 };
  map.read(() => {
    const at = map.lookupOffset(key);
    if (at === 0) throw new Error(`hold: key ${j.key} is absent`);
    const check = (): void => {
      const u8 = heap.u8;
      res.checks++;
      for (let i = 0; i < map.valueSize; i++) {
        if (u8[at + i] !== graceByte(j.key, i)) {
          res.bad++;
          break;
        }
      }
      Atomics.store(control, GRACE.CHECKS, res.checks);
      Atomics.store(control, GRACE.BAD, res.bad);
    };
    check();
    signal(control, GRACE.PINNED, 1);
    while (Atomics.load(control, GRACE.RELEASE) === 0) {
      check();
      if (performance.now() > deadline) throw new Error(`hold: not ${j.until === 'hang' ? 'terminated' : 'released'} within ${j.deadlineMs} ms`);
      if (j.until === 'hang') Atomics.wait(control, GRACE.RELEASE, 0, 5);
    }
    check();
  });
  return res;
}

function churnWhileHeld(j: Extract<GraceJob, { kind: 'churn-while-held' }>): ChurnWhileHeldResult {
  const control = new Int32Array(j.control);
  waitWhileEquals(control, GRACE.PINNED, 0, Math.max(1, deadline - performance.now()), 'the holder to pin');
  const rng = new Prng(deriveSeed(j.seed, 0x601d));
  // This worker is the only writer: it knows which keys are present, so
  // which updates replace (and retire) an element.
  const present = new Uint8Array(j.keys);
  let retired = 0;
  kv.setUint32(0, j.key, true);
  if (map.delete(key) !== MapStatus.OK) throw new Error(`churn-while-held: key ${j.key} was not there to delete`);
  retired++;
  for (let i = 0; i < j.ops; i++) {
    const k = rng.below(j.keys);
    kv.setUint32(0, j.key + 1 + k, true);
    vv.setUint32(0, i, true);
    if (rng.below(2) === 0) {
      // An update of a present key retires its element unless it was done
      // in place (a fresh element's first update; later ones wait for the
      // holder's grace period, so they replace).
      const inPlace = map.updateCounts.inPlace;
      if (map.update(key, value, MapFlag.ANY) !== MapStatus.OK) throw new Error(`churn-while-held: update ${i} failed`);
      if (present[k] === 1 && map.updateCounts.inPlace === inPlace) retired++;
      present[k] = 1;
    } else if (map.delete(key) === MapStatus.OK) {
      retired++;
      present[k] = 0;
    }
  }
  const res: ChurnWhileHeldResult = { pendingWhileHeld: map.deferredPending, retiredWhileHeld: retired, pendingAfter: -1 };
  signal(control, GRACE.CHURNED, 1);
  signal(control, GRACE.RELEASE, 1);
  // The holder unpins soon after RELEASE; then everything can go.
  while (map.collect() > 0) {
    if (performance.now() > deadline) break;
    Atomics.wait(control, GRACE.WORDS - 1, 0, 1);
  }
  res.pendingAfter = map.deferredPending;
  return res;
}

let result: unknown;
switch (job.kind) {
  case 'churn':
    result = churn(job);
    break;
  case 'hold':
    result = hold(job);
    break;
  case 'churn-while-held':
    result = churnWhileHeld(job);
    break;
}
map.detach();
heap.detach();
parentPort!.postMessage(result);
