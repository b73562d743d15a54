// The main thread and a worker share objects in one heap: the main thread
// allocates and writes a message, the worker reads it and frees it.
//   npm run build && node examples/node-worker/main.mjs
import { Worker } from 'node:worker_threads';
import { Heap } from 'anyalloc';

const heap = Heap.create({ maxBytes: 64 << 20 });
const a = heap.createAllocator();

const text = new TextEncoder().encode('hello from main');
const p = a.alloc(text.length);
heap.u8.set(text, p);

// A slot reserved for the worker: if it dies, this thread can release it.
const slot = heap.reserveSlot();
const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
  workerData: { heap: slot, alloc: a.handle, p, length: text.length },
});
worker.on('error', (e) => {
  console.error(e);
  process.exitCode = 1;
});
worker.once('exit', () => {
  // No-op when the worker detached itself; recovers its caches if it died.
  heap.releaseSlot(slot.slot, slot.gen);
  console.log(`bytes in use after the worker: ${a.stats().bytesInUse}`);
  const problems = heap.validate();
  console.log(problems.length === 0 ? 'heap.validate(): consistent' : problems.join('\n'));
});
