/**
 * Debug mode of the allocator (AllocatorOptions.debug): see DebugAllocator.
 */
import { Allocator, type AttachOptions } from './allocator.js';
import type { Heap } from '../heap/heap.js';
import { A, AF_DEBUG } from '../shm/layout.js';

/**
 * An allocator in debug mode. Same API as Allocator; every agent that
 * attaches an allocator created with `debug: true` gets one.
 */
export class DebugAllocator extends Allocator {}

/** @internal Attaches allocator `id` in this agent, in debug mode when it was created so. */
export function openAllocator(heap: Heap, id: number, options: AttachOptions): Allocator {
  heap.refresh();
  const region = heap.allocatorRow(id).region >>> 2;
  const debug = region !== 0 && (heap.u32[region + A.FLAGS]! & AF_DEBUG) !== 0;
  return debug ? new DebugAllocator(heap, id, options) : new Allocator(heap, id, options);
}
