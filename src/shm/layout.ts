/**
 * The shared-memory layout of an anyalloc heap: every struct that lives in
 * the shared buffer is defined here, once, with its byte offsets, an ASCII
 * picture, and for each field who writes it and how.
 *
 * Glossary
 *   agent      a thread of JS execution: the main thread, a worker, a worklet.
 *   slot       a row in the heap's worker-slot table; an attached agent owns
 *              exactly one. Slots are our "CPU ids".
 *   page       the unit of the page heap (default 4 KiB, a power of two).
 *   slab       a run of pages carved into objects of one size
 *              class of one
 *              allocator.
 *   large run  a run of pages holding one allocation above the largest class.
 *   cache      a per-(allocator, slot, class) free list, touched only by the
 *              slot's owner with plain reads and writes.
 *   depot      per (allocator, class), stacks of batches of free objects
 *              under one try-lock: anyone's, and one per slot (what its
 *              agent trimmed or carved); the pool that caches refill from
 *              and trim to.
 *   batch      a chain of free objects moved as one unit between a cache and
 *              the depot.
 *
 * Access kinds used below
 *   owner      plain typed-array reads and writes by the owning agent only.
 *   cas        Atomics.compareExchange by any agent.
 *   atomic     Atomics.add/sub/or/and/store by any agent.
 *   racy       plain read by anyone; the value need not be exact (stats).
 *   once       written before publication, read-only afterwards.
 *
 * Pointers are byte offsets into the buffer (0 = null) stored as uint32.
 * Every word is accessed through a Uint32Array (Atomics work on it; we never
 * wait, so Int32Array is not needed).
 */

/* ------------------------------------------------------------------------ *
 * The buffer
 *
 *   base (page-aligned; 0 unless the first bytes belong to a wasm module)
 *   |
 *   v
 *   +--------+-----------+------------+-----------+-----------+-------+------
 *   | header | slot tbl  | alloc tbl  | page tags | page args | free  | data
 *   | 128 B  | 64 B/slot | 32 B/alloc | 4 B/page  | 4 B/page  | bitmap| pages
 *   +--------+-----------+------------+-----------+-----------+-------+------
 *   '------------------ meta pages (tag META) -------------------------'
 *
 * Page p covers bytes [p << pageShift, (p + 1) << pageShift) of the buffer;
 * page numbers count from offset 0 of the buffer, so pages below `base` are
 * tagged RESERVED and never handed out.
 *
 * Beside it, the state buffer (a second SharedArrayBuffer, in the heap
 * handle as `states`): one state byte per 16-byte granule of the buffer,
 * the byte of offset p at index p >> 4 (see "Object states" below).
 *
 *   buffer   | meta | data pages ...                      |  grows -->
 *   states   |      | 1 byte per 16 bytes of the buffer   |  grows -->
 *            (length: the buffer's committed bytes / 16, grown first)
 *
 * The four state bytes of the header's first granules (index base >> 4)
 * hold HeapHeader.HEAP_ID (written once at create), so an attach knows
 * the state buffer is this heap's.
 *
 * HeapCore.growTo grows the state buffer to cover the new bytes before it
 * grows the buffer, and a page is handed out only after a growTo that
 * covers it: so the states of every committed page exist, and an agent
 * whose views were made after a page's commit sees its states.
 * ------------------------------------------------------------------------ */

export const HEAP_MAGIC = 0x616e7941; // "Anya"
export const LAYOUT_VERSION = 12;

/** Header words (index into the Uint32Array, relative to base/4). */
export const HeapHeader = {
  /** once: HEAP_MAGIC. */
  MAGIC: 0,
  /** once: LAYOUT_VERSION. */
  VERSION: 1,
  /** once: log2(pageSize). */
  PAGE_SHIFT: 2,
  /** once: pages the buffer may ever hold (maxByteLength >> pageShift). */
  MAX_PAGES: 3,
  /** cas by any (growth): pages committed = buffer bytes >> pageShift. */
  COMMITTED_PAGES: 4,
  /** once: first page after the meta pages. */
  FIRST_DATA_PAGE: 5,
  /** once: worker slots in the slot table. */
  MAX_SLOTS: 6,
  /** once: rows in the allocator table. */
  MAX_ALLOCATORS: 7,
  /** atomic by any: pages handed out (slabs, large runs, allocator regions). */
  USED_PAGES: 8,
  /** cas-max by any: the highest USED_PAGES seen. */
  PEAK_USED_PAGES: 9,
  /** once: byte offset of the slot table. */
  SLOT_TABLE: 10,
  /** once: byte offset of the allocator table. */
  ALLOC_TABLE: 11,
  /** once: byte offset of the page tag table. */
  PAGE_TAGS: 12,
  /** once: byte offset of the page argument table. */
  PAGE_ARGS: 13,
  /** once: byte offset of the free-page bitmap. */
  FREE_BITMAP: 14,
  /** racy hint, any: bitmap word where the last page search succeeded. */
  FREE_CURSOR: 15,
  /** atomic by any: slot generations handed out (makes stale handles visible). */
  SLOT_GEN: 16,
  /** once: byte offset of this header (base). */
  BASE: 17,
  /** atomic by any: failed growth attempts (heap full). */
  GROW_FAILURES: 18,
  /**
   * cas by any (reclaim/epoch.ts): the global epoch of grace-period
   * reclamation; starts at 1, only ever incremented by one.
   */
  EPOCH: 19,
  /** cas-max by any: 1 + the highest slot ever attached or reserved (scans stop there). */
  SLOTS_USED: 20,
  /** atomic by any: slots released by releaseSlot (agents gone without detaching). */
  SLOTS_RELEASED: 21,
  /**
   * once: the heap's identity, a random nonzero 32-bit number drawn at
   * create. Allocator and map handles carry it, so a handle of another
   * heap is refused instead of naming this heap's object of the same id.
   */
  HEAP_ID: 22,
  /**
   * atomic by any: allocator generations handed out. Each claim of an
   * allocator id takes the next one (AllocatorEntry.GEN), so generations
   * are unique in the heap (until 2^32 claims) and a handle of a
   * destroyed allocator, or of a map whose element allocator it was,
   * never matches the id's or the region's next owner.
   */
  ALLOC_GEN: 23,
} as const;
export const HEADER_BYTES = 128;

/* ------------------------------------------------------------------------ *
 * Slot table: one 64-byte row (a cache line) per worker slot, so that an
 * agent's pin and unpin stores never evict its neighbours' rows.
 *
 *   +-------+-------+-----------+----------+-------------+---------+-----+
 *   | state |  gen  |    pin    |   beat   | claim first | claim k | ... |
 *   +-------+-------+-----------+----------+-------------+---------+-----+
 *   (16 words, 64 bytes; then owner and using; words 8..15 unused)
 *
 * state: cas by any. FREE -> RESERVED (creator reserves for a worker it is
 *   about to start), FREE/RESERVED -> ATTACHED (the agent that attaches),
 *   ATTACHED/RESERVED -> FREE (detach, or release by a survivor).
 * gen: written by the agent that moved state to ATTACHED/RESERVED, before
 *   the store that publishes it; a fresh value from HeapHeader.SLOT_GEN each time.
 * pin: the epoch the slot's agent is reading in, 0 when it is quiescent.
 *   Atomics.store by the owner (pin/unpin); read atomically by any agent
 *   trying to advance the epoch; zeroed by whoever attaches or releases
 *   the slot. Only ATTACHED slots count, so a released slot stops holding
 *   reclamation back at once.
 * beat: Atomics.store by the owner: the low 32 bits of Date.now() when it
 *   last showed it runs (attach, heap.heartbeat(), an allocator's deferred
 *   refill/trim); read by heap.slots() for the liveness check.
 * owner: a tag the attaching agent gave Heap.attach ({ owner }), 0 for
 *   none; stored by that agent with the generation, before the store that
 *   publishes the state, so a host that knows an agent is gone (Node: the
 *   thread id of an exited thread) finds its slot even when the agent died
 *   right after attaching (anyalloc/node). Read by anyone.
 * using: Atomics.store by the owner: the id of the allocator it is
 *   attaching, or working on while it releases another slot, 0 otherwise;
 *   stored before it checks that the allocator is LIVE and cleared when it
 *   is done. destroy() marks the allocator DESTROYED first, then waits for
 *   no slot to name it (so an attach either sees DESTROYED and touches
 *   nothing, or is done, with its slot flag set, before destroy counts
 *   the flags). Cleared by whoever releases the slot.
 * claim first/k: Atomics.store by the owner: the page run it is claiming,
 *   written before each atomic operation that may claim it (heap/pages.ts)
 *   and cleared (k = 0) once the pages are tagged. A run taken aligned from
 *   the end of the committed pages is named together with the gap it skips
 *   until the gap is back in the bitmap. A page that is claimed
 *   (not free in the bitmap), still tagged FREE and named by no live slot
 *   was claimed by a dead one: releaseSlot gives it back.
 * ------------------------------------------------------------------------ */
export const SLOT_ROW_WORDS = 16;
export const SlotRow = { STATE: 0, GEN: 1, PIN: 2, BEAT: 3, CLAIM_FIRST: 4, CLAIM_K: 5, OWNER: 6, USING: 7 } as const;
export const SLOT_FREE = 0;
export const SLOT_RESERVED = 1;
export const SLOT_ATTACHED = 2;
/** Transient: the slot's caches are being flushed by detach or release. */
export const SLOT_RELEASING = 3;

/* ------------------------------------------------------------------------ *
 * Allocator table: one 32-byte row per allocator id (ids start at 1).
 *
 *   +-------+--------+------+-------+-------+-----+
 *   | state | region | unit |  map  |  gen  | ... |
 *   +-------+--------+------+-------+-------+-----+
 *   (8 words; words 5..7 unused)
 *
 * state: cas by any. FREE -> CREATING (creator) -> LIVE (store, after the
 *   region is initialised) -> CLOSING (destroy, store, while it decides:
 *   it waits for attaches and releases under way and counts the agents
 *   attached) -> DESTROYED (store: none other attached), or back to LIVE
 *   (store: destroy throws) -> FREE (destroy, store, once the last page
 *   tagged with the id has gone back). A destroyed id is not
 *   reused while pages tagged with it still exist (leaks): a create that
 *   took it earlier would count the old regions as its own stranded runs
 *   (region.ts strandedRegions) and give them back twice.
 * region: once (before LIVE): byte offset of the allocator region.
 * unit: once: 0 for size-bucketed mode, else the fixed unit size.
 * map: byte offset of the hash map whose elements this allocator holds (0
 *   for none): written once by the map's creator, read by releaseSlot().
 * gen: written by the claimer (FREE -> CREATING), before the store that
 *   makes the id LIVE: a fresh value from HeapHeader.ALLOC_GEN each time
 *   the id is claimed. Handles carry it (with HeapHeader.HEAP_ID); attach
 *   compares them. Never zero.
 * ------------------------------------------------------------------------ */
export const ALLOC_ROW_WORDS = 8;
export const AllocatorEntry = { STATE: 0, REGION: 1, UNIT: 2, MAP: 3, GEN: 4 } as const;
export const ALLOC_FREE = 0;
export const ALLOC_CREATING = 1;
export const ALLOC_LIVE = 2;
export const ALLOC_DESTROYED = 3;
/** destroy() deciding (heap/using.ts): no attach starts; a release waits. */
export const ALLOC_CLOSING = 4;
/** Allocator ids fit in 12 bits of a page tag. */
export const MAX_ALLOCATOR_ID = 4095;

/* ------------------------------------------------------------------------ *
 * Page tags: one uint32 per page (index = page number).
 *
 *    31                 22 21            10 9       4 3      0
 *   +---------------------+----------------+---------+--------+
 *   |      reserved       |  allocator id  |  class  |  kind  |
 *   +---------------------+----------------+---------+--------+
 *
 * Every page of a slab carries the same tag; the page's arg names the
 * slab's first page, so any agent finds a slab's start from a pointer.
 *
 * Written by the agent that owns the page at the moment: the one that took
 * it from the page heap (store before the page's objects are published
 * through a depot CAS or returned to the caller), or the one freeing it
 * (store before its free bit is set with Atomics.or). Read plainly on the
 * free fast path: a pointer reaches a freeing agent only through some
 * synchronising operation after its page was tagged.
 *
 * Page args: one uint32 per page, same writers.
 *   LARGE head: pages in the run;  LARGE tail: the head's page number;
 *   REGION head: pages in the run; SLAB: the slab's first page number;
 *   others: 0.
 * ------------------------------------------------------------------------ */
export const KIND_FREE = 0;
export const KIND_META = 1;
export const KIND_RESERVED = 2;
export const KIND_SLAB = 3;
export const KIND_LARGE = 4;
export const KIND_LARGE_TAIL = 5;
export const KIND_REGION = 6;
export const KIND_MASK = 0xf;
export const CLASS_SHIFT = 4;
/** Size classes fit in 6 bits of a page tag. */
export const MAX_CLASSES = 64;
export const CLASS_MASK = 0x3f0;
export const AID_SHIFT = 10;

export function pageTag(kind: number, allocatorId: number, cls: number): number {
  return (kind | (cls << CLASS_SHIFT) | (allocatorId << AID_SHIFT)) >>> 0;
}
export function tagKind(tag: number): number {
  return tag & KIND_MASK;
}
export function tagClass(tag: number): number {
  return (tag & CLASS_MASK) >>> CLASS_SHIFT;
}
export function tagAllocator(tag: number): number {
  return (tag >>> AID_SHIFT) & MAX_ALLOCATOR_ID;
}

/* ------------------------------------------------------------------------ *
 * Free-page bitmap: bit (p & 31) of word (p >> 5) is 1 when committed page p
 * is free. Claimed with cas (1 -> 0), released with Atomics.or. Bits of
 * pages not yet committed are 0: such pages are taken by bumping
 * HeapHeader.COMMITTED_PAGES instead.
 * ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ *
 * Slab
 *
 *   slab start (a page start)                        slab end
 *   +--------+--------+--------+-----+--------+------+
 *   | obj 0  | obj 1  | obj 2  | ... | obj n-1| tail |
 *   +--------+--------+--------+-----+--------+------+
 *   '-- page --'-- page --'-- ... (k pages, each tagged alike) --'
 *
 *   state buffer, bytes (start >> 4) .. (end >> 4) - 1:
 *   +---+---+---+---+---+---+---+---+---+---+---+---+---
 *   | F | 0 | 0 | A | 0 | 0 | F | 0 | 0 | ...           (unit 48 B here)
 *   +---+---+---+---+---+---+---+---+---+---+---+---+---
 *
 * A slab is a run of k pages, anywhere in the page heap; every page's arg
 * is the slab's first page number, so a pointer's slab starts at
 * args[p >> pageShift] * pageSize. Each class has its own k
 * (ClassRow.SLAB_PAGES, chosen by alloc/sizeclass.ts slabGeometry so that
 * the tail stays within 1/64 of the slab where it can). Only the slow
 * paths need a slab's start (shrink, recovery, validate, debug mode):
 * alloc and free go by the page tag and the state byte.
 *
 * Object states: the state buffer has one byte per 16-byte granule of the
 * heap. In a slab, the byte of the granule where an object starts says
 * whether the object is free or allocated; all other bytes of the slab's
 * range are 0 (NONE). For a pointer p:
 *     state byte of p = states[p >> 4]
 * whatever the slab's size: no load, no division, and it answers "is p an
 * object start" as well. (States kept in a map at each slab's start cost
 * alloc and free a load to find it once slabs came in several sizes: 14-19%
 * of a pair; see docs/design.md.) The bytes of pages that are not slabs are
 * unused; a carve zeroes its slab's range before it marks the objects.
 *
 * A state byte is written by the agent that holds the object at the moment:
 *   FREE -> ALLOCATED by the allocating agent (owner of the cache it was in),
 *   ALLOCATED -> FREE by the freeing agent (any agent; only one holds the
 *   object), ALLOCATED -> RETIRED -> FREE by an agent that frees it after
 *   a grace period (freeDeferred), FREE -> SHRINKING -> FREE by an agent
 *   that shrinks the depot the object is in (under the depot's lock,
 *   alloc/shrink.ts; an object of a slab it gives back keeps the mark,
 *   which the next carve of those pages wipes). Distinct bytes never tear each other, so plain
 *   stores suffice.
 * ------------------------------------------------------------------------ */
export const GRANULE_SHIFT = 4;
export const GRANULE = 1 << GRANULE_SHIFT;
export const ST_NONE = 0;
export const ST_FREE = 1;
export const ST_ALLOCATED = 2;
/** Freed with freeDeferred: waiting for a grace period, recorded in a limbo ring (L below). */
export const ST_RETIRED = 3;
/**
 * Free, in a depot that a shrink is relinking: how a survivor of the
 * shrinker's death tells the depot's objects from those in live agents'
 * caches, which keep changing while it looks (recovery/caches.ts).
 */
export const ST_SHRINKING = 4;

/* ------------------------------------------------------------------------ *
 * Free object: the first words of a free object hold the links.
 *
 *   +-----------+------------+-------+-------+
 *   | next obj  | next batch | count | tail  |   (words 0..3, 16 bytes)
 *   +-----------+------------+-------+-------+
 *
 * next obj: link of a cache list or of a batch chain (owner of the object).
 * next batch / count / tail: valid only in the head object of a batch while
 *   the batch sits in a depot stack; written under the depot's lock by the
 *   agent that links the batch, read under it by the one that takes it.
 * Objects are at least 16 bytes, so the four words always fit.
 * ------------------------------------------------------------------------ */
export const O_NEXT_BATCH = 1;
export const O_COUNT = 2;
export const O_TAIL = 3;

/* ------------------------------------------------------------------------ *
 * Allocator region: a run of pages (tag REGION) per allocator, page-aligned,
 * and a block per slot, taken when an agent first attaches in the slot.
 *
 *   region
 *   +-----------------+--------------------+-------------+----------------+
 *   | allocator words | class rows         | slot flags  | block table    |
 *   | 32 words        | classes x 16 words | maxSlots    | one word per   |
 *   |                 | (one 64 B line     | words       | group of slots |
 *   |                 |  per class)        |             | (pad to 64 B)  |
 *   +-----------------+--------------------+-------------+----------------+
 *
 *   a group's run of pages (tag REGION, owner: the allocator id), k blocks:
 *   +-------------------------------------------+-------------------+-----
 *   | slot g*k: cache rows, classes x 16 words  | its limbo row     | slot g*k+1 ...
 *   +-------------------------------------------+-------------------+-----
 *
 * Every class row and every cache row is one 64-byte line, so agents
 * working on different slots or classes never share a line.
 * slot flags: 1 while the slot's agent has the allocator attached:
 *   Atomics.store by that agent (attach/detach), or 0 by whoever releases
 *   the slot, as its last write to the allocator. The agents attached are
 *   the flags set (destroy() counts them; see SlotRow.USING for how an
 *   attach and a destroy meet).
 * block table: word g holds the byte offset of the run of group g (slots
 *   g*k .. g*k+k-1, k = AllocatorHeader.SLOT_GROUP: as many blocks as fit a
 *   page, at least one), 0 until an agent attaches in one of them: cas 0 ->
 *   run by that agent (a loser gives its run back); cas run -> 0 by
 *   destroy, which gives the runs back. A slot without a block has no
 *   caches and no limbo ring: readers skip it.
 *
 * Memory budget: a bucketed allocator (40 classes) with 64 slots needs a
 *   (32 + 40*16 + 64 + 64) * 4 = 3 KiB region and a 4 KiB page per slot
 *   that ever attached (a block is 40*16 + 144 words, 3,136 bytes); a
 *   fixed-size one 6 blocks to a page.
 * ------------------------------------------------------------------------ */
export const AllocatorHeader = {
  /** once: allocator id. */
  ID: 0,
  /** once: number of classes (40 bucketed, 1 fixed). */
  CLASSES: 1,
  /** once: fixed unit size, 0 when bucketed. */
  UNIT: 2,
  /** once: limit in pages (0 = no limit). */
  LIMIT_PAGES: 3,
  /** atomic by any: pages charged (slabs + large runs). */
  CHARGED_PAGES: 4,
  /** cas-max by any: peak of CHARGED_PAGES. */
  PEAK_CHARGED_PAGES: 5,
  /* word 6 unused (was a count of the agents attached: the slot flags say it). */
  /** atomic by any: large allocations live. */
  LARGE_LIVE: 7,
  /** atomic by any: pages in live large allocations. */
  LARGE_LIVE_PAGES: 8,
  /** atomic by any: large allocations made / freed. */
  LARGE_ALLOCS: 9,
  LARGE_FREES: 10,
  /** atomic by any: large-allocation failures (limit or heap full). */
  LARGE_FAILURES: 11,
  /** cas-max by any: peak bytes outside the depots (live + cached + large), sampled by the agent that carves a slab or takes a large run. */
  PEAK_OUT_BYTES_LO: 12,
  /** once: pages in the region. */
  REGION_PAGES: 13,
  /** once: option bits, AF_* below. */
  FLAGS: 14,
  /**
   * atomic by any: limbo rows marked ORPHAN (their agent detached or was
   * released with objects still waiting); a hint for collectors to sweep.
   */
  LIMBO_ORPHANS: 15,
  /** once: slots whose blocks share one run of pages (see the block table). */
  SLOT_GROUP: 16,
} as const;
/** AllocatorHeader.FLAGS: debug mode (src/alloc/debug/): every agent attaches a DebugAllocator. */
export const AF_DEBUG = 1;
/**
 * AllocatorHeader.FLAGS: `prefill` was given at create: every agent that
 * attaches fills its caches to it, carving slabs if need be. Without it an
 * attach takes prefill objects only from depots that have them, so an
 * allocator costs no slab of a class nobody has used yet.
 */
export const AF_PREFILL = 2;
/**
 * AllocatorHeader.FLAGS: reserve() carved objects up front (a preallocated
 * map's elements): its slabs are promised and never given back by a shrink
 * (alloc/shrink.ts). Set with Atomics.or by the agent that reserves.
 */
export const AF_RESERVED = 4;
export const ALLOC_WORDS = 32;

/**
 * Class row: one per size class.
 *
 *   +------+------------+------------+---------------+-------+-----+------+-------+---------+
 *   | unit | depot head | depot lock | depot objects | slabs | low | high | batch | prefill |
 *   +------+------------+------------+---------------+-------+-----+------+-------+---------+
 *   | per slab | shrink mark | slab pages | (words 12..15 unused)
 *   +----------+-------------+------------+
 *
 * The class's depot is a set of stacks of batches: `depot head`, the
 * stack of anyone's batches, and one stack per slot (its cache row's
 * `depot`, below) of the batches that slot's agent trimmed or carved. A
 * refill takes its own stack's, then anyone's, then those of a slot no
 * agent has attached, and another agent's only when the others' batches
 * pass STEAL_BYTES or no slab can be had (alloc/batches.ts, depotPop):
 * objects keep going round the cache of the agent that carved their slab,
 * so the lines of their links and state bytes stay with one core.
 *
 * depot head, depot objects: changed only by the holder of depot lock
 *   (Atomics.store; read with Atomics.load by anyone, e.g. "is it empty").
 *   depot objects counts the objects of every stack of the class.
 * depot lock: cas 0 -> slot+1 by whoever pops or pushes a batch on any of
 *   the class's stacks, store 0 to release. A try-lock held for a handful
 *   of stores (a refill that looks at other slots' stacks reads a word
 *   per slot), never waited on from alloc or free: a popper that finds it busy for LOCK_TRIES tries
 *   carves a fresh slab instead (and spins longer, at most DEPOT_WAIT_MS,
 *   only when no slab can be had); a trim that finds it busy leaves the
 *   objects in its cache and tries again later. One holder at a time makes
 *   the stack ABA-free, and a dead holder recoverable: the survivor that
 *   releases its slot takes the lock over, finds the stack and the counter
 *   as the dead agent left them, settles the batch it was moving (cache
 *   row TRIM/INFLIGHT) and recounts (alloc/region.ts, releaseRow).
 * slabs: atomic by any (carve adds, a shrink under the depot lock
 *   subtracts).
 * shrink mark: store under the depot lock by a shrink or a survivor's
 *   repair (recovery/caches.ts), read racily.
 * unit, low, high, batch, prefill, per slab, slab pages: once.
 *
 * Invariant (quiescent heap), per class:
 *   slabs * perSlab = depotObjects + sum(cache counts) + live objects
 */
export const ClassRow = {
  UNIT: 0,
  DEPOT_HEAD: 1,
  DEPOT_LOCK: 2,
  DEPOT_OBJECTS: 3,
  SLABS: 4,
  LOW: 5,
  HIGH: 6,
  BATCH: 7,
  PREFILL: 8,
  PER_SLAB: 9,
  /**
   * Written under the depot lock by a shrink (alloc/shrink.ts): the depot's
   * objects after its last look; a trim looks again only once the depot
   * grew well past it. A hint, read without the lock.
   */
  SHRINK_MARK: 10,
  /** once: pages of the class's slabs (sizeclass.ts slabGeometry). */
  SLAB_PAGES: 11,
} as const;
export const CLASS_WORDS = 16;

/**
 * Cache row: one per (slot, class); all fields but `depot` owner-written
 * with plain stores (but releaseSlot, once the owner is gone, zeroes owner
 * and high with plain stores too), read racily by stats() and by a
 * survivor that releases a dead slot. `depot` is written under the class's
 * depot lock, mostly by the owner; another agent's write there (a batch
 * taken from the stack, a shrink) costs the owner its line once.
 *
 *   +------+-------+--------+--------+---------+---------+-------+----------+----------+-----+------+------+--------+-------+-------+-------+
 *   | head | count | frees  | objsIn | objsOut | refills | trims | failures | inflight | low | high | trim | trim n | carve | owner | depot |
 *   +------+-------+--------+--------+---------+---------+-------+----------+----------+-----+------+------+--------+-------+-------+-------+
 *   (16 words, one 64-byte line)
 *
 * head/count: the cache's free list (objects linked through word 0).
 * frees: objects freed into this cache (by free, or after a grace period).
 *   Allocs are not counted on the fast path; they follow from
 *   count = objsIn - objsOut - allocs + frees.
 * objsIn/objsOut: objects moved in (refill, carve) and out (trim, flush).
 * inflight: head of a batch popped from the depot, from before the store
 *   that unlinks it until it is spliced into the cache (0 when none).
 * trim, trim n: head and size of a batch being moved from the cache to
 *   the depot (under the depot lock) until it is linked there.
 * carve: the slab page (byte offset) being carved into batches, with bit
 *   0 while its objects are being marked and linked into this row, bit 1
 *   once the depot lock is held and batches go to the depot; 0 when done
 *   (cleared before the unlock). Or bit 2 (CARVE_SHRINKING), with bit 3
 *   (CARVE_MARKED) while the depot's stacks are being rewritten: the agent
 *   holds the depot lock to shrink it (alloc/shrink.ts), set after the lock
 *   is taken and cleared before the unlock; a survivor that finds it
 *   rebuilds the depot from the objects marked SHRINKING (with bit 3), or
 *   clears those marks (without).
 *   With these a survivor finds a batch a dying worker had in its hands.
 * owner: the slot generation of the agent that attached (written at
 *   attach, zeroed by releaseSlot); the slow paths compare it with their
 *   own.
 * depot: the head of this slot's stack in its class's depot (see the class
 *   row): the batches this slot's agent trimmed, and a new slab's batches
 *   beyond the first that it carved. Changed only under the class's depot
 *   lock: by the owner (trim, carve, refill), by another agent taking a
 *   batch from it or shrinking the depot, by a survivor's repair. It stays
 *   when its agent detaches or dies: a slot no agent has attached has a
 *   stack that any refill takes, and the slot's next agent takes as its
 *   own.
 * low/high: the class's watermarks keyed with the owner: watermark +
 *   ownerKey(generation), written by the owner when it attaches (releaseSlot
 *   zeroes high). The fast paths check, in one compare each,
 *     alloc: count - 1 - (low - key)  in [0, KEY_RANGE)
 *     free:  (high - key) - (count + 1)  in [0, KEY_RANGE)
 *   with their own key: the watermark test, and a stale handle (its slot
 *   released, perhaps taken again by an agent of another generation, whose
 *   key differs by a multiple of 2 x KEY_RANGE) lands outside the range and
 *   takes the slow path, which finds the slot lost. Counts stay far below
 *   KEY_RANGE: watermarks and batches are at most 65536 objects (a cache
 *   that still grew past it would only take slow paths).
 */
export const CacheRow = {
  HEAD: 0,
  COUNT: 1,
  FREES: 2,
  OBJS_IN: 3,
  OBJS_OUT: 4,
  REFILLS: 5,
  TRIMS: 6,
  FAILURES: 7,
  INFLIGHT: 8,
  LOW: 9,
  HIGH: 10,
  TRIM: 11,
  TRIM_N: 12,
  CARVE: 13,
  OWNER: 14,
  DEPOT: 15,
} as const;
export const CACHE_WORDS = 16;

/** Counts and watermarks of a cache row stay below this (see the cache row). */
export const KEY_RANGE = 1 << 20;
/**
 * The key a slot generation adds to its cache rows' watermarks: generations
 * taken mod 2^10, spaced 2 x KEY_RANGE apart, so keys of different
 * generations differ by at least 2 x KEY_RANGE and stay below 2^31 (a small
 * integer in V8). Generations 1024 apart share a key: a stale handle is
 * caught unless its slot was taken again a multiple of 1024 times while it ran.
 */
export function ownerKey(gen: number): number {
  return (gen & 0x3ff) * 2 * KEY_RANGE;
}

/**
 * Limbo row: one per slot, after the cache rows. The deferred frees of the
 * slot's agent (freeDeferred, the kernel's free_rcu), waiting for a grace
 * period, in a ring of (pointer, epoch) entries in retire order.
 *
 *   +------+------+-----+------+-------+---------+--------+--------+-----------+------------+----------+
 *   | lock | ring | cap | head | count | pending | orphan | taking | take head | take count | (..15)   |
 *   +------+------+-----+------+-------+---------+--------+--------+-----------+------------+----------+
 *   | inline ring: LIMBO_INLINE entries of [pointer, epoch] (2 words each) |
 *   +---------------------------------------------------------------------+
 *
 * lock: cas 0 -> slot+1 by whoever works on the ring (its owner to append,
 *   any agent to collect, the releaser of a dead slot to repair), store 0
 *   to release. A try-lock: nobody waits for it. The owner keeps it from
 *   an append until its next collect (every LIMBO_INLINE / 2 appends, or
 *   the microtask after its current job), so that most appends touch no
 *   atomic; meanwhile the other agents skip the ring. An owner that finds
 *   it taken keeps the object in a private spill list until its next
 *   append; a collector moves on to the next row.
 * ring/cap/head/count: written under the lock (plain stores; the lock's
 *   atomic operations order them). ring = byte offset of the entries: the
 *   inline ring below, or a region taken from the heap when the inline one
 *   overflows (a reader pinned for long), given back once it drains.
 * entry epoch: UNSTAMPED (0) when appended; the next collector stamps the
 *   unstamped entries (always the newest) with the epoch it reads after
 *   taking the lock, which is at least the epoch of each one's unlink
 *   (limbo.ts stampRow). A collector stops at an unstamped entry.
 * pending: under the lock, by the owner: the object being retired, set
 *   before its state byte turns RETIRED and cleared after count grows, so
 *   that the releaser of a slot whose agent died in between records it.
 * taking/take head/take count: plain stores under the lock, by a
 *   collector: how many entries it is taking out of the ring (up to 64,
 *   from the head) and the head and count before, written before head
 *   and count move (take head and count first, taking last) and cleared
 *   (taking = 0) once every object of the take is in its cache, so that
 *   the releaser of a collector that died in between makes head and count
 *   agree and puts the objects still RETIRED back. Head and count both
 *   unchanged mean nothing was taken (a take of a whole full ring brings
 *   head back round: the count tells).
 * orphan: cas 0 <-> 1 by any: the row's agent is gone (detached, released)
 *   and it still holds entries; AllocatorHeader.LIMBO_ORPHANS counts such rows.
 *
 * Every RETIRED object of an allocator is in exactly one of its rows'
 * rings, or in its retiring agent's spill list, or is the pending object
 * of a row.
 */
export const LimboRow = {
  LOCK: 0,
  RING: 1,
  CAP: 2,
  HEAD: 3,
  COUNT: 4,
  PENDING: 5,
  ORPHAN: 6,
  TAKING: 7,
  TAKE_HEAD: 8,
  TAKE_COUNT: 9,
} as const;
export const LIMBO_HEADER_WORDS = 16;
export const LIMBO_INLINE = 64;
export const LIMBO_ROW_WORDS = LIMBO_HEADER_WORDS + 2 * LIMBO_INLINE;
