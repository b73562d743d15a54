/**
 * Worker of test/concurrent/map-linearizability.test.ts: runs random operations on a
 * few keys and records each with its invocation and response times on a
 * shared logical clock (an Atomics.add on one word: a total order of
 * events consistent with real time). Histories run back to back, each
 * after a barrier so the workers' operations overlap; after each one,
 * worker 0 deletes that history's keys (not recorded) so the map's entry
 * count starts from zero again.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag, MapStatus } from '../../../src/index.js';
import { Barrier } from '../../util/barrier.js';
import { drainDeferred } from '../../util/map-drain.js';
import type { MapOp } from '../../util/lincheck.js';
import { LIN_BARRIER_WORD, LIN_VALUE_SIZE, type LinJob, type LinResult, linValue, linValueIntact, writeLinValue } from '../../util/map-jobs.js';
import { Prng, deriveSeed } from '../../util/prng.js';

const job = workerData as LinJob;
const heap = Heap.attach(job.heap);
const map = HashMap.attach(heap, job.map);
const clock = new Int32Array(job.clock);
const barrier = new Barrier(job.clock, job.workers, LIN_BARRIER_WORD);
const key = new Uint8Array(8);
const kv = new DataView(key.buffer);
const value = new Uint8Array(LIN_VALUE_SIZE);
const vv = new DataView(value.buffer);
const out = new Uint8Array(LIN_VALUE_SIZE);
const ov = new DataView(out.buffer);
const result: LinResult = { histories: [], torn: [], undrained: 0 };
const deadline = performance.now() + job.deadlineMs;

for (let h = 0; h < job.histories; h++) {
  const rng = new Prng(deriveSeed(job.seed, h, job.worker));
  const ops: MapOp[] = [];
  barrier.arrive(Math.max(1, deadline - performance.now()));
  for (let i = 0; i < job.opsPerHistory; i++) {
    const k = h * job.keys + rng.below(job.keys);
    kv.setUint32(0, k, true);
    // One operation in four waits a little first (up to ~10 us): a
    // history then spans several switches between the workers (on a
    // machine with fewer cores than workers, the only source of overlap)
    // and the interleavings vary.
    if (rng.below(4) === 0) for (let spin = rng.below(1000); spin > 0; spin--) Atomics.load(clock, 1);
    const r = rng.below(100);
    let op: MapOp;
    if (r < 50) {
      const flag = r < 20 ? MapFlag.ANY : r < 35 ? MapFlag.NOEXIST : MapFlag.EXIST;
      const id = linValue(h, job.worker, i);
      writeLinValue(vv, id, k);
      const call = Atomics.add(clock, 0, 1);
      const status = map.update(key, value, flag);
      const ret = Atomics.add(clock, 0, 1);
      op = { call, ret, key: k, worker: job.worker, input: { kind: 'update', flag, value: id }, output: { status, found: false, value: 0 } };
    } else if (r < 70) {
      const call = Atomics.add(clock, 0, 1);
      const status = map.delete(key);
      const ret = Atomics.add(clock, 0, 1);
      op = { call, ret, key: k, worker: job.worker, input: { kind: 'delete', flag: 0, value: 0 }, output: { status, found: false, value: 0 } };
    } else {
      const call = Atomics.add(clock, 0, 1);
      const found = map.lookup(key, out);
      const ret = Atomics.add(clock, 0, 1);
      if (found && !linValueIntact(ov, k) && result.torn.length < 8) result.torn.push(`history ${h}: lookup(${k}) read [${out.join(', ')}]`);
      op = { call, ret, key: k, worker: job.worker, input: { kind: 'lookup', flag: 0, value: 0 }, output: { status: 0, found, value: found ? ov.getUint32(0, true) : 0 } };
    }
    ops.push(op);
  }
  result.histories.push(ops);
  barrier.arrive(Math.max(1, deadline - performance.now()));
  if (job.worker === 0) {
    for (let j = 0; j < job.keys; j++) {
      kv.setUint32(0, h * job.keys + j, true);
      const st = map.delete(key);
      if (st !== MapStatus.OK && st !== MapStatus.NOT_FOUND) throw new Error(`cleanup of key ${h * job.keys + j}: status ${st}`);
    }
  }
}
result.undrained = drainDeferred(map);
map.detach();
heap.detach();
parentPort!.postMessage(result);
