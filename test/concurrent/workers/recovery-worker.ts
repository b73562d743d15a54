/**
 * Worker of test/concurrent/recovery.test.ts: attaches the slot reserved for it,
 * holds `live` objects of the allocator, inserts `keys` map entries and
 * deletes `retire` of them (the main thread is pinned, so those wait in
 * this agent's limbo ring), reports, then dies the way it is told to:
 *   exit       process.exit(3) inside the worker
 *   throw      an uncaught exception
 *   terminate  blocks in Atomics.wait until the parent terminates it
 *   spin       a busy loop until the parent terminates it
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag, MapStatus, type AllocatorHandle, type HashMapHandle, type HeapHandle } from '../../../src/index.js';

export interface RecoveryJob {
  heap: HeapHandle;
  alloc: AllocatorHandle;
  map: HashMapHandle;
  live: number;
  keys: number;
  retire: number;
  death: 'exit' | 'throw' | 'terminate' | 'spin';
}

export interface RecoveryReport {
  slot: number;
  held: number[];
  waiting: number;
}

const job = workerData as RecoveryJob;
const heap = Heap.attach(job.heap);
const a = heap.attachAllocator(job.alloc);
const map = HashMap.attach(heap, job.map);
const held: number[] = [];
for (let i = 0; i < job.live; i++) held.push(a.alloc(16 + ((i * 37) % 3000)));
const key = new Uint8Array(map.keySize);
const value = new Uint8Array(map.valueSize);
const kv = new DataView(key.buffer);
const base = 1000 * (heap.slot + 1);
for (let i = 0; i < job.keys; i++) {
  kv.setUint32(0, base + i, true);
  if (map.update(key, value, MapFlag.NOEXIST) !== MapStatus.OK) throw new Error(`insert ${base + i} failed`);
}
for (let i = 0; i < job.retire; i++) {
  kv.setUint32(0, base + i, true);
  if (map.delete(key) !== MapStatus.OK) throw new Error(`delete ${base + i} failed`);
}
const report: RecoveryReport = { slot: heap.slot, held, waiting: map.deferredPending };
parentPort!.postMessage(report);
const park = new Int32Array(new SharedArrayBuffer(4));
switch (job.death) {
  case 'exit':
    // Let the report leave first; a plain exit from the worker's thread.
    setTimeout(() => process.exit(3), 20);
    break;
  case 'throw':
    setTimeout(() => {
      throw new Error('worker dies of an uncaught exception (expected by the test)');
    }, 20);
    break;
  case 'terminate':
    setTimeout(() => Atomics.wait(park, 0, 0), 0);
    break;
  case 'spin':
    setTimeout(() => {
      for (;;) park[0] = (park[0]! + 1) | 0;
    }, 0);
    break;
}
