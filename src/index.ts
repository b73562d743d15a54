/**
 * anyalloc: an any-context allocator for JavaScript agents sharing memory.
 *
 *   const heap = Heap.create({ maxBytes: 256 << 20 });
 *   const a = heap.createAllocator();          // size-bucketed
 *   const p = a.alloc(100);                    // byte offset, 0 = no memory
 *   heap.u8[p] = 42;
 *   a.free(p);
 *
 * Post heap.handle and a.handle to a worker; there:
 *   const heap = Heap.attach(handle); const a = heap.attachAllocator(allocHandle);
 */
export { Heap } from './anyalloc.js';
export type { HeapAttachOptions } from './anyalloc.js';
export type { HeapCore, HeapHandle, SlotInfo } from './heap/core.js';
export type { HeapStats } from './heap/stats.js';
export type { HeapOptions, SharedMemory } from './heap/format.js';
export { Allocator } from './alloc/allocator.js';
export type {
  AllocatorHandle,
  AllocatorOptions,
  AllocatorStats,
  AttachOptions,
  CacheStats,
  ClassStats,
  LeakReport,
} from './alloc/types.js';
export { BUCKET_SIZES, MAX_SMALL, defaultWatermarks } from './alloc/sizeclass.js';
export type { Watermarks } from './alloc/sizeclass.js';
export { PerWorkerAllocator, type PerWorkerAllocatorHandle, type PerWorkerAllocatorOptions, type PerWorkerHeap } from './alloc/per-worker.js';
export { HashMap, MapFlag, MapStatus } from './map/hashmap.js';
export type { HashMapHandle, HashMapOptions } from './map/hashmap.js';
export { DebugAllocator } from './alloc/debug/debug-allocator.js';
export { DEBUG_OVERHEAD, POISON_BYTE } from './alloc/debug/guard.js';
export { AllocatorMisuseError, MISUSE, MISUSE_CODES } from './alloc/misuse.js';
export type { MisuseCode } from './alloc/misuse.js';
export { ERROR_CODES } from './errors.js';
export type { CodedError, ErrorCode } from './errors.js';
