import { workerData } from 'node:worker_threads';
import { HashMap, Heap, PerWorkerAllocator } from 'anyalloc';

const heap = Heap.attach(workerData.heap); // takes the reserved slot
const counters = PerWorkerAllocator.attach(heap, workerData.counters);
const map = HashMap.attach(heap, workerData.map);
heap.refresh(); // the buffer may have grown since the handles were made
const { objects, events } = workerData;

// Addresses of this worker's copies, once: counting is then one plain increment.
const mine = objects.map((p) => counters.mine(p) >>> 2);
const value = new Uint8Array(4);
const view = new DataView(value.buffer);
let x = workerData.seed;
for (let i = 0; i < events; i++) {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  const c = (x >>> 16) % objects.length; // the counter this event goes to
  heap.u32[mine[c]]++; // per-worker object: this worker's copy, plain write
  map.lookupNumber(c, value); // per-worker map: this worker's value of key c
  view.setUint32(0, view.getUint32(0, true) + 1, true);
  map.updateNumber(c, value);
}
counters.detach();
map.detach();
heap.detach();
