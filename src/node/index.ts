/**
 * anyalloc/node: helpers for Node hosts (worker_threads). The core
 * (anyalloc) uses only web-platform APIs; this module is the Node edge.
 *
 *   import { startWorker } from 'anyalloc/node';
 *   const w = startWorker(heap, new URL('./worker.js', import.meta.url), { workerData: { job } });
 *   // in the worker: Heap.attach(workerData.heap)
 *
 * Whatever way the worker ends (returns, throws, process.exit() inside it,
 * worker.terminate()), its slot is released once it has exited: its
 * caches go back to the global pool, locks it held are repaired, its
 * waiting deferred frees are reclaimed by the others.
 *
 * For threads a pool starts and terminates on its own (piscina, tinypool):
 *
 *   const watch = releaseExitedWorkers(heap);   // before creating the pool
 *   const pool = new Piscina({ filename, workerData: { heap: watch.handle } });
 *   // in the task file: const heap = attachInWorker(workerData.heap);
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import type { Heap, HeapHandle } from '../index.js';

export { attachInWorker, releaseExitedWorkers } from './threads.js';
export type { AttachInWorkerOptions, ReleaseExitedOptions, ThreadExit, ThreadWatch, ThreadWatchStats, ThreadsHandle } from './threads.js';

/** A reserved slot: what heap.reserveSlot() returns. */
export type SlotHandle = HeapHandle & {
  /** The reserved slot. */
  slot: number;
  /** Its generation. */
  gen: number;
};

/**
 * Releases `handle`'s slot when `worker` exits (its 'exit' event: the
 * thread has stopped, no code of it runs any more). A worker that detached
 * cleanly leaves nothing to release (the generation check makes that a
 * no-op, even if the slot was taken again meanwhile). `onRelease` hears
 * whether anything was released. Returns a function that stops watching.
 */
export function watchWorker(heap: Heap, worker: Worker, handle: SlotHandle, onRelease?: (released: boolean) => void): () => void {
  const onExit = (): void => {
    if (!heap.attached) return;
    const released = heap.releaseSlot(handle.slot, handle.gen);
    onRelease?.(released);
  };
  worker.once('exit', onExit);
  return () => worker.off('exit', onExit);
}

/** Options of startWorker: Node's WorkerOptions plus a callback. */
export interface StartWorkerOptions extends WorkerOptions {
  /** Called after the worker's exit with whether its slot had to be released. */
  onRelease?: (released: boolean) => void;
}

/**
 * Reserves a slot, starts `script` with `workerData: { ...workerData, heap }`
 * (the reserved handle: Heap.attach(workerData.heap) in the worker takes
 * exactly that slot), and watches it with watchWorker.
 */
export function startWorker(heap: Heap, script: string | URL, options: StartWorkerOptions = {}): Worker {
  const handle = heap.reserveSlot();
  const { onRelease, workerData, ...rest } = options;
  const data = workerData !== null && typeof workerData === 'object' ? { ...(workerData as object), heap: handle } : { heap: handle };
  let worker: Worker;
  try {
    worker = new Worker(script, { ...rest, workerData: data });
  } catch (e) {
    heap.releaseSlot(handle.slot, handle.gen);
    throw e;
  }
  watchWorker(heap, worker, handle, onRelease);
  return worker;
}
