// Counting events per worker, two ways side by side:
// - per-worker objects (PerWorkerAllocator): every counter holds one copy
//   per worker slot; a worker increments its own copy, mine(p), with plain
//   writes, and the main thread sums the copies;
// - the per-worker hash map (HashMap with perWorker: true): every key's
//   value has one copy per worker slot; update() writes the caller's, and
//   sum() adds them all.
//   npm run build && node examples/per-worker/main.mjs
import { Worker } from 'node:worker_threads';
import { HashMap, Heap, PerWorkerAllocator } from 'anyalloc';

const WORKERS = 3;
const COUNTERS = 8;
const EVENTS = 50_000; // per worker

const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 8 });

// Per-worker objects: 8 bytes per copy, each copy on its own cache line.
const counters = PerWorkerAllocator.create(heap, { size: 8 });
const objects = [];
for (let c = 0; c < COUNTERS; c++) objects.push(counters.alloc()); // every copy starts at 0

// The per-worker map: key c (4 bytes), a uint32 value per worker slot.
const map = HashMap.create(heap, { keySize: 4, valueSize: 4, maxEntries: COUNTERS, perWorker: true });
const zero = new Uint8Array(4);
for (let c = 0; c < COUNTERS; c++) map.updateNumber(c, zero);

const slots = [];
const exits = [];
for (let w = 0; w < WORKERS; w++) {
  const slot = heap.reserveSlot();
  slots.push(slot.slot);
  const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
    workerData: { heap: slot, counters: counters.handle, objects, map: map.handle, events: EVENTS, seed: w + 1 },
  });
  worker.on('error', (e) => {
    console.error(e);
    process.exitCode = 1;
  });
  exits.push(
    new Promise((resolve) =>
      worker.once('exit', () => {
        heap.releaseSlot(slot.slot, slot.gen); // no-op after a clean detach
        resolve();
      }),
    ),
  );
}
await Promise.all(exits);
heap.refresh();

let objectTotal = 0;
for (const p of objects) objectTotal += counters.sumU32(p);
let mapTotal = 0;
for (let c = 0; c < COUNTERS; c++) mapTotal += map.sum(new Uint8Array(new Uint32Array([c]).buffer), 'u32');
const want = WORKERS * EVENTS;
console.log(`per-worker objects: ${COUNTERS} counters, total ${objectTotal} (want ${want})`);
console.log(`per-worker map: ${COUNTERS} keys, total ${mapTotal} (want ${want})`);
console.log(`counter 0 per worker: ${slots.map((s) => heap.u32[counters.copyOf(objects[0], s) >>> 2]).join(' ')}`);

for (const p of objects) counters.free(p);
counters.destroy();
map.destroy();
const problems = heap.validate();
console.log(problems.length === 0 ? 'heap.validate(): consistent' : problems.join('\n'));
