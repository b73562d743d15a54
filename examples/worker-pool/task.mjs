// Task file of examples/worker-pool: attaches the shared heap when the
// thread loads, then writes one string per task into it.
import { threadId } from 'node:worker_threads';
import { workerData } from 'piscina';
import { attachInWorker } from 'anyalloc/node';

const heap = attachInWorker(workerData.heap);
const strings = heap.attachAllocator(workerData.strings);
const encoder = new TextEncoder();

export default function greet(what) {
  const bytes = encoder.encode(`hello from thread ${threadId} (slot ${heap.slot}): ${what}`);
  const p = strings.alloc(4 + bytes.length);
  if (p === 0) throw new Error('the heap is full');
  heap.u32[p >>> 2] = bytes.length;
  heap.u8.set(bytes, p + 4);
  return p;
}
