/** Which class an agent gets when it attaches an allocator. */
import { Allocator } from '../allocator.js';
import type { AttachOptions } from '../types.js';
import type { HeapCore } from '../../heap/core.js';
import { AllocatorHeader, AF_DEBUG } from '../../shm/layout.js';
import { DebugAllocator } from './debug-allocator.js';

/** @internal Attaches allocator `id` in this agent, in debug mode when it was created so. */
export function openAllocator(heap: HeapCore, id: number, options: AttachOptions, gen = 0): Allocator {
  heap.refresh();
  // (Read before the attach's handshake: should the allocator be destroyed
  // meanwhile, the constructor refuses whichever class this picked.)
  const region = heap.allocatorRow(id).region >>> 2;
  const debug = region !== 0 && (heap.u32[region + AllocatorHeader.FLAGS]! & AF_DEBUG) !== 0;
  return debug ? new DebugAllocator(heap, id, options, gen) : new Allocator(heap, id, options, gen);
}
