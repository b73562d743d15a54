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
  /**
   * Objects placed in each cache when an agent attaches. Default 4 (1 above
   * 256 B), taken only from classes whose depot has free objects this
   * agent may take (anyone's, a departed agent's, or another agent's
   * surplus past 32 KiB), so an allocator holds no slab of a class nobody
   * used. Given explicitly, every class is filled, carving slabs if need be.
   */
  prefill?: number;
  /** For the creating agent: see AttachOptions.nowait. */
  nowait?: boolean;
  /**
   * Debug mode (src/alloc/debug/): poisoned free objects, canaries,
   * a quarantine. Slower; every agent that attaches gets it. Default off.
   */
  debug?: boolean;
}

/** Options of Heap.attachAllocator (how this agent uses the allocator). */
export interface AttachOptions {
  /**
   * Never refill synchronously: an empty cache makes alloc return 0 while
   * a refill is scheduled for the next microtask. For real-time callers
   * (an AudioWorklet's process()). Large allocations always go to the page
   * heap directly (a few atomic operations, never a wait).
   */
  nowait?: boolean;
}

/** A structured-cloneable reference to an allocator, to post to other agents (Heap.attachAllocator takes it). */
export interface AllocatorHandle {
  /** Always 'anyalloc.allocator'. */
  readonly kind: 'anyalloc.allocator';
  /** The allocator's id in its heap (1..maxAllocators). */
  readonly id: number;
  /**
   * The id's generation: new each time the id is claimed, so a handle of
   * a destroyed allocator never attaches the id's next owner.
   */
  readonly gen: number;
  /** The heap's identity (heap.id): a handle of another heap is refused. */
  readonly heap: number;
}

/** One agent's cache of one size class (a row of AllocatorStats.workers). */
export interface CacheStats {
  /** Object size of the class, in bytes. */
  unit: number;
  /** Free objects held in this agent's cache now, ready for its next allocs. */
  cached: number;
  /** Objects this agent allocated from the class (counted since the slot was first used). */
  allocs: number;
  /** Objects this agent freed into the class (whoever allocated them). */
  frees: number;
  /** Batches this cache took from the depot (refills below the low watermark). */
  refills: number;
  /** Batches this cache gave back to the depot (trims above the high watermark). */
  trims: number;
  /** Allocations of the class that returned 0 here (no memory, or nowait with an empty cache). */
  failures: number;
}

/**
 * One size class of an allocator, summed over every agent. Its objects are
 * in exactly one place:  objects = depot + cached + live.
 */
export interface ClassStats {
  /** Object size of the class, in bytes. */
  unit: number;
  /** Slab pages the class holds. */
  slabPages: number;
  /** Objects those pages hold (slabPages x objects per slab). */
  objects: number;
  /** Free objects in the class's depot (every agent's stack of it and anyone's): the pool caches refill from. */
  depot: number;
  /** Free objects in the agents' caches (every slot's cache of this class). */
  cached: number;
  /** Objects handed out and not freed yet (objects - depot - cached). */
  live: number;
  /** live x unit. */
  liveBytes: number;
}

/** What Allocator.stats() returns: a snapshot read without stopping anyone (counts may be a batch apart). */
export interface AllocatorStats {
  /** The allocator's id in its heap. */
  id: number;
  /** 'bucketed' (size classes from 16 bytes, larger sizes as page runs) or 'fixed' (one unitSize). */
  mode: 'bucketed' | 'fixed';
  /** The fixed unit size, 0 when bucketed. */
  unitSize: number;
  /** The allocator's limit in bytes (limitBytes option rounded to pages), 0 for none. */
  limitBytes: number;
  /** Bytes charged to the limit now: slab pages and large runs. */
  chargedBytes: number;
  /** Peak of chargedBytes. */
  peakChargedBytes: number;
  /** Bytes of live objects (slab objects not cached nor in the depot) plus live large runs. */
  bytesInUse: number;
  /**
   * Peak bytes outside the depots (live + cached + large), sampled at each
   * new slab and large run: a peak reached by refills from depots that
   * still held objects is not seen.
   */
  peakBytesOut: number;
  /** Allocations that returned 0: every class's failures plus large.failures. */
  failures: number;
  /** Per size class, in class order. */
  classes: ClassStats[];
  /** Per worker slot that ever used the allocator: whether attached now, and its caches per class. */
  workers: {
    /** The worker slot. */
    slot: number;
    /** Whether the slot's agent has the allocator attached now. */
    attached: boolean;
    /** Its cache of each class, in class order. */
    classes: CacheStats[];
  }[];
  /** Allocations above the largest class, each a run of whole pages. */
  large: {
    /** Runs live now. */
    live: number;
    /** Bytes in live runs (whole pages). */
    liveBytes: number;
    /** Runs allocated since creation. */
    allocs: number;
    /** Runs freed since creation. */
    frees: number;
    /** Large allocations that returned 0 (heap full or over the limit). */
    failures: number;
  };
}

/** What Allocator.destroy() found still allocated. */
export interface LeakReport {
  /** Objects still allocated when the allocator was destroyed. */
  leakedObjects: number;
  /** Bytes of those objects and of the large runs still live. */
  leakedBytes: number;
  /** Per class (unit size) leaked counts, only classes with leaks. */
  classes: {
    /** Object size of the class. */
    unit: number;
    /** Objects of the class still allocated. */
    objects: number;
  }[];
  /** Large allocations still live. */
  largeRuns: number;
  /** Pages kept because they still hold leaked objects. */
  pagesKept: number;
}
