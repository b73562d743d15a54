/**
 * The allocator's public types: its options, its handle, its statistics
 * and the leak report of destroy().
 */

/** Options of Heap.createAllocator. Watermark options override every class. */
export interface AllocatorOptions {
  /**
   * Fixed-size mode (the kernel's kmem_cache flavour): every object has
   * this size, rounded up to a multiple of 16. Omit for size-bucketed mode.
   * At most pageSize - pageSize/16 (61440 with 64 KiB pages).
   */
  unitSize?: number;
  /**
   * Memory limit in bytes for slabs and large runs (the kernel charges a
   * memory cgroup). Cached objects count: they sit in pages the allocator
   * holds. Past it alloc returns 0 and counts a failure. Default: none.
   */
  limitBytes?: number;
  /** Cache refill threshold, 0..65536. Default: the kernel's (32 for units <= 256 B). */
  lowWatermark?: number;
  /** Cache trim threshold, 1..65536. Default: the kernel's (96 for units <= 256 B). */
  highWatermark?: number;
  /** Objects per batch, 1..65536. Default: the kernel's (48 for units <= 256 B). */
  batch?: number;
  /** Objects placed in each cache when an agent attaches. Default 4 (1 above 256 B). */
  prefill?: number;
  /** For the creating agent: see AttachOptions.nowait. */
  nowait?: boolean;
  /**
   * Debug mode (src/alloc/debug.ts): poisoned free objects, canaries,
   * a quarantine. Slower; every agent that attaches gets it. Default off.
   */
  debug?: boolean;
}

export interface AttachOptions {
  /**
   * Never refill synchronously: an empty cache makes alloc return 0 while
   * a refill is scheduled for the next microtask. For real-time callers
   * (an AudioWorklet's process()). Large allocations always go to the page
   * heap directly (a few atomic operations, never a wait).
   */
  nowait?: boolean;
}

/** A structured-cloneable reference to an allocator, to post to other agents. */
export interface AllocatorHandle {
  readonly kind: 'anyalloc.allocator';
  readonly id: number;
}

export interface CacheStats {
  unit: number;
  cached: number;
  allocs: number;
  frees: number;
  refills: number;
  trims: number;
  failures: number;
}

export interface ClassStats {
  unit: number;
  slabPages: number;
  objects: number;
  depot: number;
  cached: number;
  live: number;
  liveBytes: number;
}

export interface AllocatorStats {
  id: number;
  mode: 'bucketed' | 'fixed';
  unitSize: number;
  limitBytes: number;
  chargedBytes: number;
  peakChargedBytes: number;
  /** Bytes of live objects (slab objects not cached nor in the depot) plus live large runs. */
  bytesInUse: number;
  /** Peak bytes outside the depots (live + cached + large), sampled at batch moves. */
  peakBytesOut: number;
  failures: number;
  classes: ClassStats[];
  workers: { slot: number; attached: boolean; classes: CacheStats[] }[];
  large: { live: number; liveBytes: number; allocs: number; frees: number; failures: number };
}

export interface LeakReport {
  /** Objects still allocated when the allocator was destroyed. */
  leakedObjects: number;
  leakedBytes: number;
  /** Per class (unit size) leaked counts, only classes with leaks. */
  classes: { unit: number; objects: number }[];
  /** Large allocations still live. */
  largeRuns: number;
  /** Pages kept because they still hold leaked objects. */
  pagesKept: number;
}
