import { workerData } from 'node:worker_threads';
import { Heap } from 'anyalloc';

const heap = Heap.attach(workerData.heap); // takes the reserved slot
const a = heap.attachAllocator(workerData.alloc);
heap.refresh(); // the buffer may have grown since the handle was made
const { p, length } = workerData;
console.log(`worker read: ${new TextDecoder().decode(heap.u8.slice(p, p + length))}`);
a.free(p); // freed here, allocated in the main thread
a.detach(); // cached objects go back to the shared pool
heap.detach(); // the slot is free again
