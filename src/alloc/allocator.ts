/**
 * The any-context allocator (the kernel's bpf_mem_alloc, for JS agents).
 *
 * Design in one sentence: every agent allocates from and frees into its own
 * per-size-class cache with plain typed-array reads and writes; batches of
 * objects move between those caches and a lock-free global depot per class
 * when a cache crosses its watermarks, and the depot is fed from slabs
 * carved out of the page heap.
 *
 *      agent 0 caches        agent 1 caches                agent N caches
 *   16 32 64 ... 4096     16 32 64 ... 4096     ...     16 32 64 ... 4096
 *    |  |  |       |       |  |  |       |               |  |  |       |
 *    '--+--+-------+---+---'--+--+-------+------...------'--+--+-------'
 *                      | batches (refill below low, trim above high)
 *                      v
 *         per-class depots: lock-free stacks of batches
 *                      |  new slab when a depot is empty
 *                      v
 *              page heap (bitmap + bump, growable buffer)
 *
 * Ownership rules
 * - A cache row is written only by the agent that owns its slot (or, once
 *   that agent is gone, by whoever releases the slot). No Atomics there.
 * - Free goes to the freeing agent's cache whichever agent allocated the
 *   object: objects migrate between agents through the depot.
 * - Depot push is a CAS on the head word (ABA-safe: a push only needs the
 *   head it links to to still be the head). Depot pop takes a try-lock
 *   first, so there is one popper at a time and no ABA. It is held for
 *   three atomic operations; an agent that cannot get it within LOCK_TRIES
 *   carves a new slab, and waits longer (bounded in time) only when no new
 *   slab can be had.
 * - Refill and trim run in a microtask of the same agent (our irq_work).
 *   An empty cache is refilled synchronously with one batch, unless the
 *   agent attached with `nowait`, in which case alloc returns 0 (as the
 *   kernel does) and the refill follows in the microtask. A cache that
 *   keeps growing in a synchronous loop is trimmed synchronously once it
 *   reaches high + batch, so it stays bounded.
 *
 * Object states live in the slab's state map (see ../shm/layout.ts), so
 * free needs no header, no size, and no division to check a pointer:
 *   free(p): tag(page(p)) must be this allocator's slab; state(p) must be
 *   ALLOCATED (else: not an object start, or a double free).
 */
import {
  AllocatorHeader,
  AF_DEBUG,
  HeapHeader,
  LimboRow,
  LIMBO_HEADER_WORDS,
  LIMBO_INLINE,
  SlotRow,
  SLOT_ATTACHED,
  SLOT_ROW_WORDS,
  ALLOC_LIVE,
  ALLOC_WORDS,
  ClassRow,
  CACHE_WORDS,
  CLASS_WORDS,
  GRANULE,
  CacheRow,
  KEY_RANGE,
  KIND_LARGE,
  KIND_LARGE_TAIL,
  KIND_SLAB,
  O_COUNT,
  O_NEXT_BATCH,
  O_TAIL,
  ST_ALLOCATED,
  ST_FREE,
  ST_NONE,
  ST_RETIRED,
  pageTag,
  tagAllocator,
  tagClass,
  tagKind,
  ownerKey,
} from '../shm/layout.js';
import { add, cas, load, maxTo, store } from '../shm/atomic.js';
import { badPointer, checkInt, describe } from '../errors.js';
import type { HeapCore, ViewClient } from '../heap/core.js';
import { freeLargeRun, tagLargeRun } from '../heap/runs.js';
import {
  cacheRowAt,
  classRowAt,
  limboRowAt,
  regionWords,
  slotFlagWord,
} from './region.js';
import { CARVE_BUILDING, CARVE_LINKING, flushCacheRow, linkLocked, lockDepot, moveToDepot, unlockDepot } from './depot.js';
import {
  appendRetired,
  clearOrphan,
  collectLocked,
  dropRing,
  markOrphan,
  rowEntries,
  rowCount,
  UNSTAMPED,
  tryLockRow,
  unlockRow,
} from '../reclaim/limbo.js';
import { BUCKET_SIZES, CLASS_BY_GRANULE, MAX_SMALL, defaultWatermarks, objectsPerSlab } from './sizeclass.js';
import type { AllocatorHandle, AllocatorOptions, AllocatorStats, AttachOptions, CacheStats, ClassStats, LeakReport } from './types.js';
import { MISUSE } from './misuse.js';


/**
 * Tries at a depot's pop lock before a refill carves a new slab instead.
 * The lock is held for three atomic operations, but its holder may be
 * descheduled by the OS; spinning a few microseconds first keeps memory
 * from growing under contention.
 */
const LOCK_TRIES = 4096;
/** Tries of a trim (or a carve's depot part) for the depot lock before it leaves the objects in its cache. */
const TRIM_LOCK_TRIES = 64;
/** A busy agent collects its limbo ring after this many deferred frees (half of LIMBO_INLINE). */
const COLLECT_EVERY = LIMBO_INLINE / 2;
/** Tries of a deferred free for its own limbo ring's lock (held by a collector) before it spills. */
const SPILL_AFTER_TRIES = 100_000;
/** When no new slab can be had (limit, full heap), the refill waits up to this long for the lock. */
const DEPOT_WAIT_MS = 200;

// Hot-path copies of layout constants. V8 reads an imported binding through
// a cell on every use; a module-local const it folds, which is worth ~2 ns
// per alloc+free pair. Same values as ../shm/layout.ts and ./sizeclass.ts.
const HOT_COUNT: number = CacheRow.COUNT;
const HOT_FREES: number = CacheRow.FREES;
const HOT_MAX_SMALL: number = MAX_SMALL;
const HOT_LOW: number = CacheRow.LOW;
const HOT_HIGH: number = CacheRow.HIGH;
const HOT_OWNER: number = CacheRow.OWNER;
const HOT_KEY_RANGE: number = KEY_RANGE;
const HOT_ROW: number = CACHE_WORDS;
const HOT_ALLOCATED: number = ST_ALLOCATED;
const HOT_FREE: number = ST_FREE;
const HOT_L_LOCK: number = LimboRow.LOCK;
const HOT_L_RING: number = LimboRow.RING;
const HOT_L_HEAD: number = LimboRow.HEAD;
const HOT_L_COUNT: number = LimboRow.COUNT;
const HOT_L_PENDING: number = LimboRow.PENDING;
const HOT_L_HEADER: number = LIMBO_HEADER_WORDS;
const HOT_UNSTAMPED: number = UNSTAMPED;
const HOT_L_INLINE: number = LIMBO_INLINE;
const HOT_CLASS_BY_GRANULE: Uint8Array = CLASS_BY_GRANULE;

/**
 * An allocator as seen from one agent. Create with heap.createAllocator(),
 * attach in another agent with heap.attachAllocator(handle).
 */
export class Allocator implements ViewClient {
  readonly heap: HeapCore;
  readonly id: number;
  /** 0 in bucketed mode, else the fixed object size. */
  readonly unitSize: number;
  readonly classes: number;
  readonly nowait: boolean;

  // Hot-path state, all per agent.
  private u8: Uint8Array;
  private u32: Uint32Array;
  private i32: Int32Array;
  private readonly tags: Uint32Array;
  /** @internal */ readonly pageShift: number;
  /** @internal */ readonly pageMask: number;
  /** @internal Word index of this agent's first cache row. */
  cacheRec: number;
  /** @internal Page tag of this allocator's slabs with class 0. */
  readonly slabTagBase: number;
  private readonly low: Uint32Array;
  private readonly high: Uint32Array;
  private readonly batch: Uint32Array;
  /** @internal */ readonly units: Uint32Array;
  /** @internal */ readonly perSlab: Uint32Array;
  /** Per class: frees that found the cache above high since the last trim or microtask (see kickTrim). */
  private readonly aboveHigh: Uint32Array;
  /** @internal Word index of the region. */
  readonly R: number;
  /** @internal */ readonly mapBytes: number;
  private pending = 0;
  private scheduled = false;
  /** Word index of this agent's limbo row (deferred frees; ./limbo.ts). */
  private limboRow: number;
  /** @internal This agent's slot generation as the cache rows' OWNER word holds it (int32). */
  readonly ownerGen: number;
  /** ownerKey(ownerGen): added to this agent's cache-row watermarks (see the cache row in layout.ts). */
  private readonly key: number;
  /** @internal This agent's value in lock words (slot + 1). */
  readonly lockId: number;
  /**
   * Deferred frees that found this agent's limbo row locked by a collector
   * (or the heap without a page for a bigger ring): they go into the row
   * at the next chance. Almost always empty.
   */
  private spill: number[] = [];
  /** Objects whose grace period ended go through free() (the debug allocator's override checks them). */
  protected retireThroughFree = false;
  /** This agent holds its limbo row's lock (see freeDeferred). */
  private ringHeld = false;
  /**
   * Deferred frees since this agent last collected its own ring: when the
   * next periodic collect is due, and how many unstamped entries it will
   * find (a hint for stampRow, which checks it; spilled ones or a ring let
   * go meanwhile only make it too large, which is safe).
   */
  private sinceCollect = 0;
  private collectScheduled = false;
  /** Classes whose caches took objects from limbo rings since the last settleRetired (a bit each). */
  private retiredTouched = 0;
  private readonly collector: () => void;
  private detached = false;
  private readonly deferred: () => void;
  /** free()'s last slow-checked page tag (-1: none) and the cache row it maps to. */
  private freeTag = -1;
  private freeRec = 0;

  /** @internal use Heap.createAllocator / Heap.attachAllocator. */
  constructor(heap: HeapCore, id: number, options: AttachOptions) {
    const row = heap.allocatorRow(id);
    if (row.state !== ALLOC_LIVE) throw new RangeError(`allocator ${id} is not live (destroyed or never created)`);
    if (heap.slot < 0) throw new RangeError('attach the heap in this agent first (Heap.attach)');
    // Checked before anything is written: the slot's rows may be another
    // agent's (a released slot taken again, or this allocator attached).
    if (!heap.ownsSlot()) {
      throw new RangeError(
        `allocator ${id}: stale heap handle: this agent's worker slot ${heap.slot} was released (releaseSlot) while the agent still ran; nothing was changed`,
      );
    }
    const flag0 = (row.region >>> 2) + slotFlagWord(heap.u32[(row.region >>> 2) + AllocatorHeader.CLASSES]!) + heap.slot;
    if (heap.u32[flag0] !== 0) throw new RangeError(`allocator ${id} is already attached in this agent's slot ${heap.slot}`);
    this.heap = heap;
    this.id = id;
    this.R = row.region >>> 2;
    this.u8 = heap.u8;
    this.u32 = heap.u32;
    this.i32 = heap.i32;
    const u32 = this.u32;
    this.classes = u32[this.R + AllocatorHeader.CLASSES]!;
    this.unitSize = u32[this.R + AllocatorHeader.UNIT]!;
    this.nowait = options.nowait === true;
    this.tags = new Uint32Array(heap.u32.buffer, heap.tagWord * 4, heap.maxPages);
    this.pageShift = heap.pageShift;
    this.pageMask = heap.pageSize - 1;
    this.mapBytes = heap.pageSize / GRANULE;
    this.slabTagBase = pageTag(KIND_SLAB, id, 0);
    this.cacheRec = cacheRowAt(this.R, this.classes, heap.maxSlots, heap.slot, 0);
    this.limboRow = limboRowAt(this.R, this.classes, heap.maxSlots, heap.slot);
    this.lockId = heap.slot + 1;
    this.ownerGen = heap.slotGen | 0;
    this.key = ownerKey(heap.slotGen);
    this.low = new Uint32Array(this.classes);
    this.high = new Uint32Array(this.classes);
    this.batch = new Uint32Array(this.classes);
    this.units = new Uint32Array(this.classes);
    this.perSlab = new Uint32Array(this.classes);
    this.aboveHigh = new Uint32Array(this.classes);
    for (let c = 0; c < this.classes; c++) {
      const cr = this.R + ALLOC_WORDS + c * CLASS_WORDS;
      this.low[c] = u32[cr + ClassRow.LOW]!;
      this.high[c] = u32[cr + ClassRow.HIGH]!;
      this.batch[c] = u32[cr + ClassRow.BATCH]!;
      this.units[c] = u32[cr + ClassRow.UNIT]!;
      this.perSlab[c] = u32[cr + ClassRow.PER_SLAB]!;
    }
    for (let c = 0; c < this.classes; c++) {
      u32[this.cacheRec + c * CACHE_WORDS + CacheRow.LOW] = this.low[c]! + this.key;
      u32[this.cacheRec + c * CACHE_WORDS + CacheRow.HIGH] = this.high[c]! + this.key;
      u32[this.cacheRec + c * CACHE_WORDS + CacheRow.OWNER] = heap.slotGen;
    }
    this.deferred = () => this.runDeferred();
    this.collector = () => {
      this.collectScheduled = false;
      if (!this.detached) this.collectDeferred();
    };
    u32[flag0] = 1;
    add(u32, this.R + AllocatorHeader.ATTACHED, 1);
    // Entries a previous agent of this slot left in the ring are ours to collect now.
    clearOrphan(u32, this.R, this.limboRow);
    heap.addClient(this);
    // Prefill: the kernel's first program run should not find empty caches.
    for (let c = 0; c < this.classes; c++) {
      const want = u32[this.R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.PREFILL]!;
      while (this.u32[this.cacheRec + c * CACHE_WORDS + CacheRow.COUNT]! < want) {
        if (!this.refill(c)) break;
      }
    }
  }

  /** Initialises the shared region of a new allocator; returns its id. */
  static create(heap: HeapCore, options: AllocatorOptions): number {
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${describe(options)}`);
    const mapBytes = heap.pageSize / GRANULE;
    const maxUnit = heap.pageSize - mapBytes;
    let unit = 0;
    if (options.unitSize !== undefined) {
      unit = checkInt('unitSize', options.unitSize, 1, maxUnit);
      unit = Math.ceil(unit / GRANULE) * GRANULE;
    }
    const limit = options.limitBytes === undefined ? 0 : checkInt('limitBytes', options.limitBytes, 1, 2 ** 32);
    const low = options.lowWatermark === undefined ? -1 : checkInt('lowWatermark', options.lowWatermark, 0, 1 << 16);
    const high = options.highWatermark === undefined ? -1 : checkInt('highWatermark', options.highWatermark, 1, 1 << 16);
    const batch = options.batch === undefined ? -1 : checkInt('batch', options.batch, 1, 1 << 16);
    const prefill = options.prefill === undefined ? -1 : checkInt('prefill', options.prefill, 0, 1 << 20);
    const units = unit === 0 ? BUCKET_SIZES : [unit];
    const classes = units.length;
    const marks = units.map((u) => {
      const d = defaultWatermarks(u);
      const m = {
        low: low >= 0 ? low : d.low,
        high: high >= 0 ? high : d.high,
        batch: batch >= 0 ? batch : d.batch,
        prefill: prefill >= 0 ? prefill : d.prefill,
      };
      if (m.high <= m.low) {
        throw new RangeError(`highWatermark must be above lowWatermark, got low ${m.low} and high ${m.high} (unit ${u})`);
      }
      return m;
    });

    const id = heap.claimAllocatorId(unit);
    const bytes = regionWords(classes, heap.maxSlots) * 4;
    const pages = Math.ceil(bytes / heap.pageSize);
    const region = heap.takeRegion(bytes, id);
    if (region === 0) {
      heap.retireAllocator(id, true);
      throw new RangeError(`heap is full: no room for the allocator's ${bytes}-byte control region`);
    }
    const u32 = heap.u32;
    const R = region >>> 2;
    u32[R + AllocatorHeader.ID] = id;
    u32[R + AllocatorHeader.CLASSES] = classes;
    u32[R + AllocatorHeader.UNIT] = unit;
    u32[R + AllocatorHeader.LIMIT_PAGES] = limit === 0 ? 0 : Math.max(1, Math.floor(limit / heap.pageSize));
    u32[R + AllocatorHeader.REGION_PAGES] = pages;
    u32[R + AllocatorHeader.FLAGS] = options.debug === true ? AF_DEBUG : 0;
    for (let c = 0; c < classes; c++) {
      const cr = R + ALLOC_WORDS + c * CLASS_WORDS;
      const m = marks[c]!;
      u32[cr + ClassRow.UNIT] = units[c]!;
      u32[cr + ClassRow.LOW] = m.low;
      u32[cr + ClassRow.HIGH] = m.high;
      u32[cr + ClassRow.BATCH] = m.batch;
      u32[cr + ClassRow.PREFILL] = m.prefill;
      u32[cr + ClassRow.PER_SLAB] = objectsPerSlab(heap.pageSize, units[c]!);
    }
    heap.publishAllocator(id, region);
    return id;
  }

  /** A handle to post to other agents (heap.attachAllocator(handle) there). */
  get handle(): AllocatorHandle {
    return { kind: 'anyalloc.allocator', id: this.id };
  }

  /** Agents that have this allocator attached now (racy while agents attach or detach). */
  get attachedAgents(): number {
    return load(this.u32, this.R + AllocatorHeader.ATTACHED);
  }

  /** True when created with `debug: true` (see src/alloc/debug.ts). */
  get debug(): boolean {
    return (this.u32[this.R + AllocatorHeader.FLAGS]! & AF_DEBUG) !== 0;
  }

  /** True in fixed-size mode. */
  get fixed(): boolean {
    return this.unitSize !== 0;
  }

  /**
   * Allocates `size` bytes (bucketed mode) or one unit (fixed mode, where
   * `size` may be omitted and must not exceed unitSize). Returns the byte
   * offset of the object in the heap's buffer, 16-byte aligned, or 0 when
   * no memory is available (limit reached, heap full, or an empty cache in
   * nowait mode). The memory is not zeroed.
   *
   * Fast path (a cache hit): plain typed-array reads and writes, no
   * Atomics, no JS allocation, O(1).
   */
  alloc(size?: number): number {
    let c = 0;
    if (this.unitSize === 0) {
      const sz = size as number;
      if (typeof size !== 'number' || (sz >>> 0) !== sz || ((sz - 1) >>> 0) >= HOT_MAX_SMALL) return this.allocMiss(size);
      c = HOT_CLASS_BY_GRANULE[(sz - 1) >>> 4]!;
    } else if (size !== undefined) {
      // Fixed-size mode: alloc() is the fast path; a size is checked there.
      return this.allocMiss(size);
    }
    // Slab objects all lie below 2 GiB (see Heap.takePages), so the Int32
    // words hold them as non-negative small integers.
    const rec = this.cacheRec + c * HOT_ROW;
    const i32 = this.i32;
    const p = i32[rec]!;
    const n = i32[rec + HOT_COUNT]! - 1;
    // One compare for "at or above the low watermark after this pop" and
    // "this row is keyed with our generation" (a stale handle's is not):
    // see the cache row in ../shm/layout.ts.
    // (p | 0): a detached allocator's empty views read undefined.
    if (((n - i32[rec + HOT_LOW]! + this.key) >>> 0) >= HOT_KEY_RANGE || (p | 0) === 0) return this.allocSlow(c, size);
    i32[rec] = i32[p >>> 2]!;
    i32[rec + HOT_COUNT] = n;
    const off = p & this.pageMask;
    this.u8[p - off + (off >>> 4)] = HOT_ALLOCATED;
    return p;
  }

  /**
   * A pop that takes the cache below its low watermark: the pop, and a
   * refill in a microtask. An empty cache or a stale handle goes on to
   * allocMiss. It repeats alloc's pop rather than sharing it: with this
   * branch inside alloc, the inlined alloc grew and a pair got 1-2% slower
   * (paired A/B).
   *
   * Sizes matter here. V8 inlines a function into its caller only while
   * the function's bytecode plus all it inlined into its own optimized
   * code stays under 460 bytes. alloc (262 bytes on Node 20) with this
   * method and kick inlined, as they are once a program's start-up fill
   * ran them hot, is 454: alloc still inlines into the caller's loop.
   * Before, at 490, it did not, and a pair in that loop ran 1.6x slower
   * (13 ns vs 8.2 ns, same process). allocMiss and freeMiss are over 460,
   * so never inlined: a fill that empties the caches again and again runs
   * allocMiss hot, and inlined into alloc it took alloc over the limit
   * too. test/inline-budget.test.ts checks these sizes.
   */
  private allocSlow(c: number, size: number | undefined): number {
    const rec = this.cacheRec + c * HOT_ROW;
    const i32 = this.i32;
    const p = i32[rec]!;
    if ((p | 0) === 0 || i32[rec + HOT_OWNER] !== this.ownerGen) return this.allocMiss(size);
    i32[rec] = i32[p >>> 2]!;
    i32[rec + HOT_COUNT]!--;
    const off = p & this.pageMask;
    this.u8[p - off + (off >>> 4)] = HOT_ALLOCATED;
    this.kick(c);
    return p;
  }

  /**
   * Everything else alloc's fast path does not take: bad input, large
   * runs, an empty cache (a synchronous refill of one batch, or 0 and a
   * refill in a microtask with nowait), a stale handle.
   */
  private allocMiss(size: unknown): number {
    this.checkAttached('alloc');
    let c = 0;
    if (this.unitSize === 0 || size !== undefined) {
      if (typeof size !== 'number' || !Number.isSafeInteger(size)) {
        throw new TypeError(`${MISUSE.badSize} a positive safe integer, got ${describe(size)}`);
      }
      if (this.unitSize !== 0) {
        if (size < 1 || size > this.unitSize) {
          throw new RangeError(`${MISUSE.badSize} in [1, ${this.unitSize}] for this fixed-size allocator, got ${size}`);
        }
        return this.alloc();
      }
      if (size < 1 || size > MAX_SMALL) {
        const max = (this.heap.maxPages - this.heap.firstDataPage) * this.heap.pageSize;
        if (size < 1 || size > max) throw new RangeError(`${MISUSE.badSize} in [1, ${max}], got ${size}`);
        // A run of pages. (Here, not in a method of its own: this method
        // must stay over V8's inlining limit, see allocSlow.)
        const heap = this.heap;
        const k = Math.ceil(size / heap.pageSize);
        const R = this.R;
        if (!this.charge(k)) {
          add(this.u32, R + AllocatorHeader.LARGE_FAILURES, 1);
          return 0;
        }
        const first = heap.takePages(k);
        if (first === 0) {
          add(this.u32, R + AllocatorHeader.CHARGED_PAGES, -k);
          add(this.u32, R + AllocatorHeader.LARGE_FAILURES, 1);
          return 0;
        }
        const u32 = this.u32;
        tagLargeRun(heap, first, k, pageTag(KIND_LARGE, this.id, 0), pageTag(KIND_LARGE_TAIL, this.id, 0));
        add(u32, R + AllocatorHeader.LARGE_LIVE, 1);
        add(u32, R + AllocatorHeader.LARGE_LIVE_PAGES, k);
        add(u32, R + AllocatorHeader.LARGE_ALLOCS, 1);
        this.sampleOut(k * heap.pageSize);
        return first * heap.pageSize;
      }
      c = CLASS_BY_GRANULE[(size - 1) >>> 4]!;
    }
    const rec = this.cacheRec + c * CACHE_WORDS;
    const i32 = this.i32;
    // A row another agent keyed (its owner word is not ours) is not ours
    // to use even while the slot looks owned: alloc would only come back.
    if (this.slotLost() || i32[rec + CacheRow.OWNER] !== this.ownerGen) throw this.staleError('alloc');
    if (i32[rec] === 0 && (this.nowait || !this.refill(c))) {
      i32[rec + CacheRow.FAILURES]++;
      this.kick(c);
      return 0;
    }
    return this.alloc(size as number | undefined);
  }

  /**
   * Frees an object of this allocator, from any agent (it goes to this
   * agent's cache). free(0) does nothing. A pointer this allocator does
   * not own, not at an object start, or not allocated (double free) throws
   * a RangeError and changes nothing.
   *
   * Fast path: plain reads and writes, no Atomics, no JS allocation, O(1).
   */
  free(p: number): void {
    if (typeof p !== 'number') return this.freeMiss(p);
    const d = this.tags[p >>> this.pageShift]!;
    // The cache row comes from the tag checked last when the page has the
    // same tag (same allocator, kind and class): a branch the CPU predicts,
    // so the row's address does not wait for the tag load (measured: 10%
    // off a same-size alloc+free pair, 2% on a random mix of classes).
    let rec = this.freeRec;
    if ((p & 15) !== 0 || d !== this.freeTag) {
      if ((p & 15) !== 0 || ((d & ~0xf0) >>> 0) !== this.slabTagBase) return this.freeMiss(p);
      rec = this.cacheRec + ((d >>> 4) & 15) * HOT_ROW;
      this.freeTag = d;
      this.freeRec = rec;
    }
    const off = p & this.pageMask;
    const s = p - off + (off >>> 4);
    const u8 = this.u8;
    if (u8[s] !== HOT_ALLOCATED) return this.freeMiss(p);
    const i32 = this.i32;
    const n = i32[rec + HOT_COUNT]! + 1;
    // At or below the high watermark after this push, and a row keyed with
    // our generation, in one compare (see alloc).
    if (((i32[rec + HOT_HIGH]! - this.key - n) >>> 0) >= HOT_KEY_RANGE) return this.freeMiss(p);
    u8[s] = HOT_FREE;
    i32[p >>> 2] = i32[rec]!;
    i32[rec] = p;
    i32[rec + HOT_COUNT] = n;
    // The statistics counter is free's, not alloc's: allocs follow from
    // the row's counts (see the cache row in ../shm/layout.ts). Counting
    // here took 5-9% off a pair, counting in alloc did not (paired A/B).
    i32[rec + HOT_FREES]++;
  }

  /** The size class unit an allocation of `size` bytes gets (0 for a large run). */
  unitFor(size: number): number {
    checkInt('size', size, 1, 2 ** 32);
    if (this.unitSize !== 0) return this.unitSize;
    return size <= MAX_SMALL ? BUCKET_SIZES[CLASS_BY_GRANULE[(size - 1) >>> 4]!]! : 0;
  }

  /** Usable bytes of a live object (its unit, or the whole page run). */
  usableSize(p: number): number {
    const tag = this.tags[p >>> this.pageShift];
    if (tag === undefined || typeof p !== 'number' || !Number.isInteger(p) || p <= 0) {
      throw badPointer('usableSize', p, 'not a pointer into this heap');
    }
    if (tagAllocator(tag) === this.id && tagKind(tag) === KIND_SLAB) return this.units[tagClass(tag)]!;
    if (tagAllocator(tag) === this.id && tagKind(tag) === KIND_LARGE && (p & this.pageMask) === 0) {
      return load(this.u32, this.heap.argWord + (p >>> this.pageShift)) * this.heap.pageSize;
    }
    throw badPointer('usableSize', p, `not an object of allocator ${this.id}`);
  }

  /* --------------------------- deferred free ---------------------------- */

  /**
   * Frees a slab object (up to 4096 bytes, or any fixed-size unit) after a
   * grace period: it is reused only once every agent that might still be
   * reading it has left its read-side section (see ../reclaim/epoch.ts).
   * The kernel's bpf_mem_cache_free_rcu. The pointer is checked now (bad
   * pointers and double frees throw here); the object goes to this
   * agent's limbo list and is freed into this agent's cache later, from a
   * later freeDeferred or collectDeferred, or the microtask after it.
   * May allocate when the limbo list grows (rarely: it doubles).
   */
  freeDeferred(p: number): void {
    const d = this.tags[p >>> this.pageShift]!;
    const off = p & this.pageMask;
    const s = p - off + (off >>> 4);
    if ((p & 15) !== 0 || ((d & ~0xf0) >>> 0) !== this.slabTagBase || this.u8[s] !== ST_ALLOCATED || this.i32[this.cacheRec + HOT_OWNER] !== this.ownerGen) {
      if (p === 0) return;
      this.checkAttached('freeDeferred');
      // A stale handle must not append to a ring its slot's new agent owns;
      // nor go round again on a row whose owner word is not ours.
      if (this.slotLost() || this.i32[this.cacheRec + HOT_OWNER] !== this.ownerGen) throw this.staleError('freeDeferred', p);
      if (typeof p === 'number' && Number.isInteger(p) && p >= 0 && p < this.heap.viewBytes) {
        const t = this.tags[p >>> this.pageShift]!;
        if (tagKind(t) === KIND_LARGE && tagAllocator(t) === this.id) {
          throw badPointer('freeDeferred', p, `${MISUSE.largeDeferred}; free them directly`);
        }
      }
      // Same diagnosis as free; an ALLOCATED object past stale views retries.
      this.checkFreeable(p);
      return this.freeDeferred(p);
    }
    const heap = this.heap;
    const row = this.limboRow;
    const u32 = this.u32;
    let waiting = -1;
    // The owner keeps its ring's lock from an append until its next
    // collect (every COLLECT_EVERY appends, or the microtask after the
    // current job),
    // so that most deferred frees touch no atomic at all; the entries go
    // in unstamped (limbo.ts stampRow).
    if (this.ringHeld || (u32[row + HOT_L_LOCK] === 0 && cas(u32, row + HOT_L_LOCK, 0, this.lockId) === 0)) {
      this.ringHeld = true;
      const count = u32[row + HOT_L_COUNT]!;
      if (count < HOT_L_INLINE && u32[row + HOT_L_RING] === 0 && this.spill.length === 0) {
        // The usual case: room in the inline ring (appendRetired, unrolled).
        let i = u32[row + HOT_L_HEAD]! + count;
        if (i >= HOT_L_INLINE) i -= HOT_L_INLINE;
        u32[row + HOT_L_PENDING] = p;
        this.u8[s] = ST_RETIRED;
        const e = row + HOT_L_HEADER + 2 * i;
        u32[e] = p;
        u32[e + 1] = HOT_UNSTAMPED;
        u32[row + HOT_L_COUNT] = waiting = count + 1;
        u32[row + HOT_L_PENDING] = 0;
      } else {
        if (this.spill.length !== 0) this.unspill();
        if (appendRetired(heap, row, p, this.id)) waiting = rowCount(heap.u32, row);
      }
    } else {
      waiting = this.appendContended(p);
    }
    if (waiting < 0) {
      this.u8[s] = ST_RETIRED;
      this.spill.push(p);
    }
    if (++this.sinceCollect >= COLLECT_EVERY) this.collectSome();
    else if (!this.collectScheduled) {
      this.collectScheduled = true;
      queueMicrotask(this.collector);
    }
  }

  /**
   * freeDeferred found its ring locked by a collector, which holds it for
   * a few hundred nanoseconds unless it is descheduled: try for a while
   * before spilling (a spill list dies with its agent). Returns the ring's
   * count after the append (the lock then stays held, as in freeDeferred),
   * or -1 to spill.
   */
  private appendContended(p: number): number {
    const heap = this.heap;
    const row = this.limboRow;
    for (let i = 0; i < SPILL_AFTER_TRIES; i++) {
      if (!tryLockRow(heap, row, this.lockId)) continue;
      this.ringHeld = true;
      if (this.spill.length !== 0) this.unspill();
      return appendRetired(heap, row, p, this.id) ? rowCount(heap.u32, row) : -1;
    }
    return -1;
  }

  /** @internal Heap.validate(): this agent is quiet, its ring is free to check. */
  settle(): void {
    this.releaseRing();
  }

  /** Releases this agent's ring lock if it holds it. */
  private releaseRing(): void {
    if (!this.ringHeld) return;
    this.ringHeld = false;
    // A released slot's lock was let go by its releaser, and may be a new agent's now.
    if (this.i32[this.cacheRec + HOT_OWNER] === this.ownerGen) unlockRow(this.heap, this.limboRow);
  }

  /** Moves spilled entries into this agent's ring (lock held), as far as it can grow. */
  private unspill(): void {
    const heap = this.heap;
    let n = 0;
    while (n < this.spill.length) {
      const p = this.spill[n]!;
      // appendRetired marks the (already RETIRED) object again: harmless.
      if (!appendRetired(heap, this.limboRow, p, this.id)) break;
      n++;
    }
    this.spill.splice(0, n);
  }

  /** This agent's deferred frees still waiting for a grace period. */
  get deferredPending(): number {
    return rowCount(this.u32, this.limboRow) + this.spill.length;
  }

  /**
   * Objects of this allocator waiting for a grace period in every agent's
   * limbo ring (racy while agents run), plus this agent's spill list.
   */
  retiredObjects(): number {
    const u32 = this.heap.u32;
    let n = this.spill.length;
    for (let s = 0; s < this.heap.maxSlots; s++) n += rowCount(u32, limboRowAt(this.R, this.classes, this.heap.maxSlots, s));
    return n;
  }

  /**
   * Frees every object of this agent's limbo ring whose grace period has
   * passed, advancing the global epoch if the other agents allow it, into
   * this agent's caches. Also sweeps the rings that departed agents left
   * behind. With `everyAgent`, collects from every agent's ring (what a
   * writer out of memory does: another agent may sit idle on a full
   * ring). Returns how many of this agent's objects still wait.
   */
  collectDeferred(everyAgent = false): number {
    return this.collect(everyAgent, 2);
  }

  /**
   * The periodic collect of a busy agent (every COLLECT_EVERY deferred
   * frees): one epoch advance at most, which frees what the previous
   * collect stamped; what this one stamps goes at the next. Half the
   * traffic on the shared epoch word, for a ring that holds two rounds
   * (2 x COLLECT_EVERY = LIMBO_INLINE: the ring stays inline).
   */
  private collectSome(): void {
    this.collect(false, 1);
    // Also when the ring could not be collected: the next try is a round away.
    this.sinceCollect = 0;
  }

  private collect(everyAgent: boolean, advances: number): number {
    if (this.detached) return 0;
    if (this.i32[this.cacheRec + HOT_OWNER] !== this.ownerGen) {
      // A stale handle (its slot was released while it ran; maybe its
      // collect microtask): the ring is not its own any more.
      this.ringHeld = false;
      return 0;
    }
    const heap = this.heap;
    const row = this.limboRow;
    const orphans = load(this.u32, this.R + AllocatorHeader.LIMBO_ORPHANS) !== 0;
    if (!everyAgent && !orphans && rowCount(this.u32, row) === 0 && this.spill.length === 0) {
      this.releaseRing();
      return 0;
    }
    if (this.ringHeld || tryLockRow(heap, row, this.lockId)) {
      this.ringHeld = true;
      if (this.spill.length !== 0) this.unspill();
      if (rowCount(heap.u32, row) > 0) collectLocked(heap, row, this.pushRetired, advances, this.sinceCollect);
      this.sinceCollect = 0;
      this.releaseRing();
      this.settleRetired();
    }
    if (everyAgent || orphans) this.collectOthers(everyAgent);
    return this.deferredPending;
  }

  /** Collects from the other slots' rings: every one, or only those marked ORPHAN. */
  private collectOthers(every: boolean): void {
    const heap = this.heap;
    const me = heap.slot + 1;
    for (let s = 0; s < heap.maxSlots; s++) {
      if (s === heap.slot) continue;
      const row = limboRowAt(this.R, this.classes, heap.maxSlots, s);
      const u32 = heap.u32;
      if (rowCount(u32, row) === 0 && u32[row + LimboRow.ORPHAN] === 0) continue;
      if (!every && u32[row + LimboRow.ORPHAN] === 0) continue;
      if (!tryLockRow(heap, row, me)) continue;
      collectLocked(heap, row, this.pushRetired, 2);
      if (rowCount(heap.u32, row) === 0) clearOrphan(heap.u32, this.R, row);
      unlockRow(heap, row);
      this.settleRetired();
    }
  }

  /**
   * Puts objects taken out of a limbo ring into this agent's caches
   * (limbo.ts PushRetired): each one FREE and on its class's list before
   * the next, no watermark acted on (settleRetired does that once the take
   * is over). Debug mode, or a cache row this agent no longer owns (a
   * stale handle), goes through free() object by object instead.
   */
  private readonly pushRetired = (ring: number, head: number, cap: number, k: number): void => {
    const i32 = this.i32;
    if (this.retireThroughFree || i32[this.cacheRec + HOT_OWNER] !== this.ownerGen) {
      for (let m = 0, j = head; m < k; m++, j = j + 1 < cap ? j + 1 : 0) {
        const p = this.i32[ring + 2 * j]!;
        const off = p & this.pageMask;
        this.u8[p - off + (off >>> 4)] = HOT_ALLOCATED;
        this.free(p);
      }
      return;
    }
    const u8 = this.u8;
    const tags = this.tags;
    const pageMask = this.pageMask;
    const pageShift = this.pageShift;
    const cacheRec = this.cacheRec;
    let touched = this.retiredTouched;
    // Ring entries and objects lie below 2 GiB: Int32 words hold them.
    for (let m = 0, j = head; m < k; m++) {
      const p = i32[ring + 2 * j]!;
      j = j + 1 < cap ? j + 1 : 0;
      const c = (tags[p >>> pageShift]! >>> 4) & 15;
      const rec = cacheRec + c * HOT_ROW;
      const off = p & pageMask;
      u8[p - off + (off >>> 4)] = HOT_FREE;
      i32[p >>> 2] = i32[rec]!;
      i32[rec] = p;
      i32[rec + HOT_COUNT]!++;
      i32[rec + HOT_FREES]++;
      touched |= 1 << c;
    }
    this.retiredTouched = touched;
  };

  /** After a collect: the classes that took objects from limbo rings trim (now, or in the microtask) if above high. */
  private settleRetired(): void {
    let touched = this.retiredTouched;
    this.retiredTouched = 0;
    while (touched !== 0) {
      const c = 31 - Math.clz32(touched);
      touched &= ~(1 << c);
      const rec = this.cacheRec + c * HOT_ROW;
      const n = this.i32[rec + HOT_COUNT]!;
      if (n > this.high[c]!) this.kickTrim(c, n);
    }
  }

  private checkFreeable(p: unknown): void {
    if (typeof p !== 'number' || !Number.isInteger(p)) {
      throw new TypeError(`freeDeferred(${describe(p)}): ${MISUSE.notInteger}`);
    }
    const heap = this.heap;
    if (p < 0 || p >= heap.maxPages * heap.pageSize) throw badPointer('freeDeferred', p, MISUSE.outsideHeap);
    if (p >= heap.viewBytes) heap.refresh();
    if (p >= heap.viewBytes) throw badPointer('freeDeferred', p, `${MISUSE.outsideHeap} (beyond its committed pages)`);
    const tag = this.tags[p >>> this.pageShift]!;
    const kind = tagKind(tag);
    if (kind !== KIND_SLAB) throw badPointer('freeDeferred', p, 'not allocated: not a slab object');
    if (tagAllocator(tag) !== this.id) {
      throw badPointer('freeDeferred', p, `${MISUSE.wrongAllocator}: the object belongs to allocator ${tagAllocator(tag)}, not ${this.id}`);
    }
    if ((p & 15) !== 0) throw badPointer('freeDeferred', p, `${MISUSE.unalignedFree}: objects are 16-byte aligned`);
    const off = p & this.pageMask;
    const st = this.u8[p - off + (off >>> 4)];
    if (st === ST_FREE) throw badPointer('freeDeferred', p, MISUSE.doubleFree);
    if (st === ST_RETIRED) throw badPointer('freeDeferred', p, `${MISUSE.doubleFree}: already freed with freeDeferred, waiting for a grace period`);
    if (st === ST_NONE) throw badPointer('freeDeferred', p, MISUSE.notObjectStart);
  }

  /**
   * Carves slabs until the allocator holds at least `objects` objects of
   * its unit (fixed-size mode), all in the global pool: the preallocated
   * mode of the hash map. Returns false when the heap or the limit ran
   * out first.
   */
  reserve(objects: number): boolean {
    this.checkAttached('reserve');
    checkInt('objects', objects, 0, 2 ** 32);
    if (this.unitSize === 0) throw new RangeError('reserve needs a fixed-size allocator (unitSize)');
    const cr = this.R + ALLOC_WORDS;
    while (load(this.u32, cr + ClassRow.SLAB_PAGES) * this.perSlab[0]! < objects) {
      if (!this.carve(0, -1)) return false;
    }
    return true;
  }

  /* ------------------------------ slow paths ----------------------------- */

  private checkAttached(op: string): void {
    if (this.detached) throw new RangeError(`${op}: allocator ${this.id} ${MISUSE.detached}`);
  }

  /** Charges k pages to the limit; false (nothing charged) when over it. */
  private charge(k: number): boolean {
    const u32 = this.u32;
    const R = this.R;
    const limit = u32[R + AllocatorHeader.LIMIT_PAGES]!;
    const now = add(u32, R + AllocatorHeader.CHARGED_PAGES, k) + k;
    if (limit !== 0 && now > limit) {
      add(u32, R + AllocatorHeader.CHARGED_PAGES, -k);
      return false;
    }
    maxTo(u32, R + AllocatorHeader.PEAK_CHARGED_PAGES, now);
    return true;
  }

  /**
   * Everything free's fast path does not take, in one method too big to
   * inline (see allocMiss): free(0), bad pointers (diagnosed, nothing
   * changed), a push that takes the cache above its high watermark (the
   * push, then a trim: now if far above, else in a microtask), a stale
   * handle (caught before anything changes: releaseSlot zeroes a released
   * slot's high watermarks), and large runs.
   */
  private freeMiss(p: unknown): void {
    if (p === 0) return;
    this.checkAttached('free');
    if (typeof p !== 'number' || !Number.isInteger(p)) {
      throw new TypeError(`free(${describe(p)}): ${MISUSE.notInteger}`);
    }
    const heap = this.heap;
    if (p < 0 || p >= heap.maxPages * heap.pageSize) throw badPointer('free', p, MISUSE.outsideHeap);
    if (p >= heap.viewBytes) {
      heap.refresh();
      if (p >= heap.viewBytes) throw badPointer('free', p, `${MISUSE.outsideHeap} (beyond its committed pages)`);
      return this.free(p);
    }
    const page = p >>> this.pageShift;
    const tag = this.tags[page]!;
    const kind = tagKind(tag);
    const owner = tagAllocator(tag);
    if (kind === KIND_SLAB || kind === KIND_LARGE || kind === KIND_LARGE_TAIL) {
      if (owner !== this.id) throw badPointer('free', p, `${MISUSE.wrongAllocator}: the object belongs to allocator ${owner}, not ${this.id}`);
    }
    if (kind === KIND_SLAB) {
      if ((p & 15) !== 0) throw badPointer('free', p, `${MISUSE.unalignedFree}: objects are 16-byte aligned`);
      const off = p & this.pageMask;
      const st = this.u8[p - off + (off >>> 4)];
      if (st === ST_FREE) throw badPointer('free', p, MISUSE.doubleFree);
      if (st === ST_RETIRED) throw badPointer('free', p, `${MISUSE.doubleFree}: already freed with freeDeferred, waiting for a grace period`);
      if (st === ST_NONE) throw badPointer('free', p, MISUSE.notObjectStart);
      // ALLOCATED: above the high watermark, or a stale handle.
      if (this.slotLost()) throw this.staleError('free', p);
      const c = tagClass(tag);
      const rec = this.cacheRec + c * CACHE_WORDS;
      const i32 = this.i32;
      const n = i32[rec + CacheRow.COUNT]! + 1;
      this.u8[p - off + (off >>> 4)] = ST_FREE;
      i32[p >>> 2] = i32[rec]!;
      i32[rec] = p;
      i32[rec + CacheRow.COUNT] = n;
      i32[rec + CacheRow.FREES]++;
      if (n > this.high[c]!) this.kickTrim(c, n);
      return;
    }
    if (kind === KIND_LARGE) {
      if ((p & this.pageMask) !== 0) throw badPointer('free', p, `${MISUSE.notObjectStart} (inside a large allocation)`);
      return this.freeLarge(page, tag);
    }
    if (kind === KIND_LARGE_TAIL) throw badPointer('free', p, `${MISUSE.notObjectStart} (inside a large allocation)`);
    throw badPointer('free', p, `${MISUSE.notAllocated}: the page holds no objects (never allocated, or freed twice)`);
  }

  private freeLarge(page: number, tag: number): void {
    const heap = this.heap;
    const u32 = this.u32;
    // Of two racing frees of one run, one gets k, the other 0 (runs.ts).
    const k = freeLargeRun(heap, page, tag, pageTag(KIND_LARGE_TAIL, this.id, 0));
    if (k === 0) throw badPointer('free', page * heap.pageSize, MISUSE.doubleFree);
    add(u32, this.R + AllocatorHeader.CHARGED_PAGES, -k);
    add(u32, this.R + AllocatorHeader.LARGE_LIVE, -1);
    add(u32, this.R + AllocatorHeader.LARGE_LIVE_PAGES, -k);
    add(u32, this.R + AllocatorHeader.LARGE_FREES, 1);
  }

  /* ---------------------------- batch movement --------------------------- */

  /** Schedules the deferred refill/trim of class c (our irq_work). */
  private kick(c: number): void {
    this.pending |= 1 << c;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.deferred);
    }
  }

  /**
   * A free left the cache of class c above its high watermark, at n: a
   * trim in the microtask (our irq_work); now instead when the cache has
   * reached high + batch, or when `batch` frees (or collects that left it
   * above high, see settleRetired) have found it above high since the
   * last trim, microtask or flush. Without the
   * second rule a loop that never yields, after a burst of frees had left
   * the cache between high and high + batch, took free's slow path on
   * every free (measured: a pair at 4096 bytes after a start-up fill, 28
   * ns instead of 10).
   */
  private kickTrim(c: number, n: number): void {
    const waited = ++this.aboveHigh[c]!;
    if (n >= this.high[c]! + this.batch[c]! || waited >= this.batch[c]!) this.trim(c);
    else this.kick(c);
  }

  /**
   * True when this agent's slot was released (releaseSlot by another
   * agent, which must believe this one dead) or taken again since it
   * attached. Checked on the slow paths, where the fast paths send a
   * stale handle: releaseSlot zeroes the slot's high watermarks and empties
   * its caches, and an agent that takes the slot again keys the
   * watermarks with its own generation (see the cache row in layout.ts).
   */
  private slotLost(): boolean {
    return !this.heap.ownsSlot();
  }

  private staleError(op: string, p?: number): RangeError {
    const what = p === undefined ? op : `${op}(${p})`;
    return new RangeError(
      `${what}: ${MISUSE.stale}: this agent's worker slot ${this.heap.slot} was released (releaseSlot) while the agent still ran; nothing was changed`,
    );
  }

  /** The deferred work: bring every flagged cache between its watermarks. */
  private runDeferred(): void {
    this.scheduled = false;
    let pending = this.pending;
    this.pending = 0;
    this.aboveHigh.fill(0);
    if (this.detached || this.slotLost()) return;
    this.heap.heartbeat();
    while (pending !== 0) {
      const c = 31 - Math.clz32(pending);
      pending &= ~(1 << c);
      const countWord = this.cacheRec + c * CACHE_WORDS + CacheRow.COUNT;
      if (this.u32[countWord]! < this.low[c]!) {
        this.refill(c);
      } else if (this.u32[countWord]! > this.high[c]!) {
        this.trim(c);
      }
    }
  }

  /** Runs pending refills and trims now (they normally run in a microtask). */
  flushDeferred(): void {
    if (this.pending !== 0) this.runDeferred();
  }

  /** Adds one batch to the cache of class c. False when no memory is available. */
  private refill(c: number): boolean {
    const rec = this.cacheRec + c * CACHE_WORDS;
    const head = this.depotPop(c, rec, LOCK_TRIES);
    if (head !== 0) return this.spliceBatch(rec, head);
    if (this.carve(c, rec)) {
      this.u32[rec + CacheRow.REFILLS]++;
      return true;
    }
    // No new memory: the depot is the only source left; if it was only
    // busy, wait longer for its lock (bounded in time: its holder may be
    // descheduled for a time slice) before reporting failure.
    const headWord = this.R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.DEPOT_HEAD;
    const deadline = Date.now() + DEPOT_WAIT_MS;
    while (load(this.u32, headWord) !== 0 && Date.now() < deadline) {
      const last = this.depotPop(c, rec, LOCK_TRIES);
      if (last !== 0) return this.spliceBatch(rec, last);
    }
    return false;
  }

  /** Puts a batch popped from the depot at the front of the cache row `rec`. */
  private spliceBatch(rec: number, head: number): boolean {
    // Any object of the batch may lie in pages another agent committed
    // after our views were made (trims mix objects from all over the
    // heap): renew the views before walking or handing out any of them.
    this.heap.refresh();
    const u32 = this.u32;
    const n = u32[(head >>> 2) + O_COUNT]!;
    const tail = u32[(head >>> 2) + O_TAIL]!;
    u32[tail >>> 2] = u32[rec]!;
    u32[rec] = head;
    u32[rec + CacheRow.COUNT] += n;
    u32[rec + CacheRow.OBJS_IN] += n;
    u32[rec + CacheRow.INFLIGHT] = 0;
    u32[rec + CacheRow.REFILLS]++;
    this.sampleOut(0);
    return true;
  }

  /** Pops one batch from the depot of class c (recorded in the cache row as in flight). */
  private depotPop(c: number, rec: number, tries: number): number {
    const cr = this.R + ALLOC_WORDS + c * CLASS_WORDS;
    let u32 = this.u32;
    if (load(u32, cr + ClassRow.DEPOT_HEAD) === 0) return 0;
    if (!lockDepot(u32, cr, this.lockId, tries)) return 0;
    const h = load(u32, cr + ClassRow.DEPOT_HEAD);
    if (h !== 0) {
      if (h >= this.heap.viewBytes) {
        this.heap.refresh();
        u32 = this.u32;
      }
      u32[rec + CacheRow.INFLIGHT] = h;
      store(u32, cr + ClassRow.DEPOT_HEAD, u32[(h >>> 2) + O_NEXT_BATCH]!);
      store(u32, cr + ClassRow.DEPOT_OBJECTS, load(u32, cr + ClassRow.DEPOT_OBJECTS) - u32[(h >>> 2) + O_COUNT]!);
    }
    unlockDepot(u32, cr);
    return h;
  }


  /** Takes a new page, carves it into batches: one for the cache, the rest to the depot. */
  /** rec < 0: every batch goes to the depot (reserve). */
  private carve(c: number, rec: number): boolean {
    if (!this.charge(1)) return false;
    const heap = this.heap;
    const page = heap.takePages(1, true);
    if (page === 0) {
      add(this.u32, this.R + AllocatorHeader.CHARGED_PAGES, -1);
      return false;
    }
    const u32 = this.u32;
    const u8 = this.u8;
    const base = page * heap.pageSize;
    // The record a survivor needs if we die before every object of the
    // slab is in a list (the row of class c, even for a reserve).
    const row = this.cacheRec + c * CACHE_WORDS;
    u32[row + CacheRow.CARVE] = base | CARVE_BUILDING;
    store(u32, heap.argWord + page, 0);
    store(u32, heap.tagWord + page, (this.slabTagBase | (c << 4)) >>> 0);
    heap.claimDone();
    u8.fill(0, base, base + this.mapBytes);
    const unit = this.units[c]!;
    const perSlab = this.perSlab[c]!;
    const batch = this.batch[c]!;
    const first = base + this.mapBytes;
    for (let i = 0; i < perSlab; i++) u8[base + ((this.mapBytes + i * unit) >>> 4)] = ST_FREE;
    const cr = this.R + ALLOC_WORDS + c * CLASS_WORDS;
    add(u32, cr + ClassRow.SLAB_PAGES, 1);
    // The first batch goes to our cache, the others to the depot (into
    // our cache too when the depot's lock is busy: a trim moves them on).
    let locked = lockDepot(u32, cr, this.lockId, TRIM_LOCK_TRIES);
    while (!locked && rec < 0) locked = lockDepot(u32, cr, this.lockId, 1 << 20);
    if (locked) u32[row + CacheRow.CARVE] = base | CARVE_LINKING;
    for (let i = 0; i < perSlab; i += batch) {
      const n = Math.min(batch, perSlab - i);
      const head = first + i * unit;
      for (let j = 0; j < n - 1; j++) u32[(head + j * unit) >>> 2] = head + (j + 1) * unit;
      const tail = head + (n - 1) * unit;
      if ((i === 0 || !locked) && rec >= 0) {
        u32[tail >>> 2] = u32[rec]!;
        u32[rec] = head;
        u32[rec + CacheRow.COUNT] += n;
        u32[rec + CacheRow.OBJS_IN] += n;
      } else {
        u32[tail >>> 2] = 0;
        u32[(head >>> 2) + O_COUNT] = n;
        u32[(head >>> 2) + O_TAIL] = tail;
        linkLocked(u32, cr, head, n);
      }
    }
    u32[row + CacheRow.CARVE] = 0;
    if (locked) unlockDepot(u32, cr);
    this.sampleOut(0);
    return true;
  }

  /** Trims the cache of class c back to (low + high) / 2, in batches. */
  private trim(c: number): void {
    this.aboveHigh[c] = 0;
    const rec = this.cacheRec + c * CACHE_WORDS;
    const u32 = this.u32;
    const target = (this.low[c]! + this.high[c]!) >>> 1;
    const batch = this.batch[c]!;
    let excess = u32[rec + CacheRow.COUNT]! - target;
    if (excess <= 0) return;
    const cr = this.R + ALLOC_WORDS + c * CLASS_WORDS;
    // Walk the objects to move before taking the lock (the list is this
    // agent's, and the walk only reads): moveToDepot then finds them in
    // cache, and the lock every refill and trim of the class needs is held
    // for ~100 ns a batch instead of a cache miss per object.
    for (let x = u32[rec]!, i = 0; i < excess && x !== 0; i++) x = u32[x >>> 2]!;
    // Busy depot: keep the objects; a later free above the high watermark
    // tries again (after `batch` of them, see kickTrim, or at once from
    // high + batch on). (Not a new microtask: a lock held by an agent
    // that died would make that a loop that never yields.) A cache that is
    // far above its high watermark, because trims kept finding the depot
    // busy, tries as long as a refill does: preallocated maps size their
    // slack on caches staying near their bounds.
    const tries = excess >= this.high[c]! ? LOCK_TRIES : TRIM_LOCK_TRIES;
    if (!lockDepot(u32, cr, this.lockId, tries)) return;
    while (excess > 0) {
      const n = Math.min(batch, excess);
      moveToDepot(u32, cr, rec, n);
      excess -= n;
    }
    unlockDepot(u32, cr);
    u32[rec + CacheRow.TRIMS]++;
  }

  /** Samples bytes outside the depots for the peak statistic (batch moves only). */
  private sampleOut(extra: number): void {
    const u32 = this.u32;
    let out = extra + load(u32, this.R + AllocatorHeader.LARGE_LIVE_PAGES) * this.heap.pageSize;
    for (let c = 0; c < this.classes; c++) {
      const cr = this.R + ALLOC_WORDS + c * CLASS_WORDS;
      out += (load(u32, cr + ClassRow.SLAB_PAGES) * this.perSlab[c]! - load(u32, cr + ClassRow.DEPOT_OBJECTS)) * this.units[c]!;
    }
    maxTo(u32, this.R + AllocatorHeader.PEAK_OUT_BYTES_LO, Math.min(out, 0xffffffff));
  }

  /* ------------------------------ lifecycle ------------------------------ */

  /** @internal the heap renewed its views. */
  onViews(): void {
    if (this.detached) return;
    this.u8 = this.heap.u8;
    this.u32 = this.heap.u32;
    this.i32 = this.heap.i32;
  }

  /**
   * Gives this agent's cached objects back to the global pool and stops
   * this agent's use of the allocator. Further alloc/free here throw.
   */
  detach(): void {
    if (this.detached) return;
    if (this.slotLost()) {
      // Released behind our back: the slot's rows are someone else's now.
      this.heap.removeClient(this);
      this.kill();
      return;
    }
    this.leaveLimbo();
    this.flushCaches();
    const u32 = this.u32;
    u32[this.R + slotFlagWord(this.classes) + this.heap.slot] = 0;
    add(u32, this.R + AllocatorHeader.ATTACHED, -1);
    this.heap.removeClient(this);
    this.kill();
  }

  /**
   * Before detaching: collects what has passed its grace period and puts
   * the spill list into the ring; what still waits stays in the ring,
   * marked ORPHAN, for the agents that remain (or destroy()) to collect.
   */
  private leaveLimbo(): void {
    const heap = this.heap;
    for (let i = 0; i < 64 && this.collectDeferred() > 0; i++);
    // The lock is free unless a collector holds it for a moment.
    for (let i = 0; i < 1_000_000 && this.spill.length !== 0; i++) {
      if (tryLockRow(heap, this.limboRow, heap.slot + 1)) {
        this.unspill();
        unlockRow(heap, this.limboRow);
        if (this.spill.length !== 0) break; // no page for a bigger ring: those stay RETIRED
      }
    }
    markOrphan(heap.u32, this.R, this.limboRow);
  }

  /** @internal heap.detach() detaches every allocator of the agent. */
  detachFromHeap(): void {
    this.detach();
  }

  private kill(): void {
    this.detached = true;
    // Empty views make the fast paths fall through to the checks.
    this.u32 = new Uint32Array(0);
    this.i32 = new Int32Array(0);
    this.u8 = new Uint8Array(0);
    this.cacheRec = 0;
    this.freeTag = -1;
  }

  /** Moves every object of this agent's caches to the depots. */
  flushCaches(): void {
    this.checkAttached('flushCaches');
    this.aboveHigh.fill(0);
    for (let c = 0; c < this.classes; c++) {
      flushCacheRow(this.u32, classRowAt(this.R, c), this.cacheRec + c * CACHE_WORDS, this.batch[c]!, this.lockId);
    }
  }

  /**
   * Destroys the allocator: drains every cache (all agents must have
   * detached, or be gone and released), returns fully free slabs to the
   * heap and reports what is still allocated. Pages that still hold
   * leaked objects stay with the dead allocator id. Throws if another
   * agent is still attached.
   */
  destroy(): LeakReport {
    this.checkAttached('destroy');
    const heap = this.heap;
    let u32 = this.u32;
    const R = this.R;
    const others = load(u32, R + AllocatorHeader.ATTACHED) - 1;
    if (others > 0) throw new RangeError(`destroy: allocator ${this.id} is still attached in ${others} other agent(s); detach them or releaseSlot() the dead ones first`);
    // Every other agent is gone: collect from every ring (grace periods are
    // short; a bounded number of attempts), then give back region rings.
    for (let i = 0; i < 100_000 && (this.collectDeferred(true), this.retiredObjects() > 0); i++);
    for (let s = 0; s < heap.maxSlots; s++) {
      const row = limboRowAt(R, this.classes, heap.maxSlots, s);
      if (rowCount(heap.u32, row) === 0) {
        dropRing(heap, row);
        clearOrphan(heap.u32, R, row);
      }
    }
    this.flushCaches();
    heap.refresh();
    u32 = heap.u32;
    const u8 = heap.u8;
    const report: LeakReport = { leakedObjects: 0, leakedBytes: 0, classes: [], largeRuns: 0, pagesKept: 0 };
    const perClass = new Array<number>(this.classes).fill(0);
    const committed = heap.committedPages();
    for (let p = heap.firstDataPage; p < committed; p++) {
      const tag = load(u32, heap.tagWord + p);
      if (tagAllocator(tag) !== this.id) continue;
      const kind = tagKind(tag);
      if (kind === KIND_SLAB) {
        const c = tagClass(tag);
        const base = p * heap.pageSize;
        let live = 0;
        for (let i = 0; i < this.perSlab[c]!; i++) {
          const st = u8[base + ((this.mapBytes + i * this.units[c]!) >>> 4)];
          if (st === ST_ALLOCATED || st === ST_RETIRED) live++;
        }
        if (live === 0) {
          heap.givePages(p, 1);
        } else {
          perClass[c]! += live;
          report.pagesKept++;
        }
      } else if (kind === KIND_LARGE) {
        report.largeRuns++;
        const k = load(u32, heap.argWord + p);
        report.leakedBytes += k * heap.pageSize;
        report.pagesKept += k;
      }
    }
    for (let c = 0; c < this.classes; c++) {
      if (perClass[c]! > 0) {
        report.classes.push({ unit: this.units[c]!, objects: perClass[c]! });
        report.leakedObjects += perClass[c]!;
        report.leakedBytes += perClass[c]! * this.units[c]!;
      }
    }
    report.leakedObjects += report.largeRuns;
    heap.removeClient(this);
    this.kill();
    heap.retireAllocator(this.id, report.pagesKept === 0);
    heap.giveRegion(R * 4);
    return report;
  }

  /* -------------------------------- stats -------------------------------- */

  /** Counters per agent slot and class (racy reads: they need not be exact while agents run). */
  stats(): AllocatorStats {
    return allocatorStats(this.heap, this.R);
  }
}

function allocatorStats(heap: HeapCore, R: number): AllocatorStats {
  const u32 = heap.u32;
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  const unitSize = u32[R + AllocatorHeader.UNIT]!;
  const ps = heap.pageSize;
  // Slab pages and live large runs come from the page tags: the counters
  // (SLAB_PAGES, LARGE_LIVE) can be off by one page or run that an agent
  // was tagging or freeing when it died.
  const id = u32[R + AllocatorHeader.ID]!;
  const slabPages = new Array<number>(classes).fill(0);
  let largeLive = 0;
  let largePages = 0;
  const committed = heap.committedPages();
  for (let p = heap.firstDataPage; p < committed; p++) {
    const tag = load(u32, heap.tagWord + p);
    if (tagAllocator(tag) !== id) continue;
    if (tagKind(tag) === KIND_SLAB) slabPages[tagClass(tag)]!++;
    else if (tagKind(tag) === KIND_LARGE) {
      largeLive++;
      largePages += load(u32, heap.argWord + p);
    }
  }
  const out: AllocatorStats = {
    id: u32[R + AllocatorHeader.ID]!,
    mode: unitSize === 0 ? 'bucketed' : 'fixed',
    unitSize,
    limitBytes: u32[R + AllocatorHeader.LIMIT_PAGES]! * ps,
    chargedBytes: load(u32, R + AllocatorHeader.CHARGED_PAGES) * ps,
    peakChargedBytes: load(u32, R + AllocatorHeader.PEAK_CHARGED_PAGES) * ps,
    bytesInUse: 0,
    peakBytesOut: load(u32, R + AllocatorHeader.PEAK_OUT_BYTES_LO),
    failures: load(u32, R + AllocatorHeader.LARGE_FAILURES),
    classes: [],
    workers: [],
    large: {
      live: largeLive,
      liveBytes: largePages * ps,
      allocs: load(u32, R + AllocatorHeader.LARGE_ALLOCS),
      frees: load(u32, R + AllocatorHeader.LARGE_FREES),
      failures: load(u32, R + AllocatorHeader.LARGE_FAILURES),
    },
  };
  const cached = new Array<number>(classes).fill(0);
  for (let s = 0; s < heap.maxSlots; s++) {
    const attached = u32[R + slotFlagWord(classes) + s] !== 0;
    const rows: CacheStats[] = [];
    let any = attached;
    for (let c = 0; c < classes; c++) {
      const rec = cacheRowAt(R, classes, heap.maxSlots, s, c);
      const row: CacheStats = {
        unit: u32[R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.UNIT]!,
        cached: u32[rec + CacheRow.COUNT]!,
        allocs: (u32[rec + CacheRow.OBJS_IN]! - u32[rec + CacheRow.OBJS_OUT]! - u32[rec + CacheRow.COUNT]! + u32[rec + CacheRow.FREES]!) >>> 0,
        frees: u32[rec + CacheRow.FREES]!,
        refills: u32[rec + CacheRow.REFILLS]!,
        trims: u32[rec + CacheRow.TRIMS]!,
        failures: u32[rec + CacheRow.FAILURES]!,
      };
      if (row.allocs !== 0 || row.frees !== 0 || row.cached !== 0) any = true;
      cached[c]! += row.cached;
      out.failures += row.failures;
      rows.push(row);
    }
    if (any) out.workers.push({ slot: s, attached, classes: rows });
  }
  for (let c = 0; c < classes; c++) {
    const cr = R + ALLOC_WORDS + c * CLASS_WORDS;
    const unit = u32[cr + ClassRow.UNIT]!;
    const objects = slabPages[c]! * u32[cr + ClassRow.PER_SLAB]!;
    const depot = load(u32, cr + ClassRow.DEPOT_OBJECTS);
    const live = objects - depot - cached[c]!;
    out.classes.push({ unit, slabPages: slabPages[c]!, objects, depot, cached: cached[c]!, live, liveBytes: live * unit });
    out.bytesInUse += live * unit;
  }
  out.bytesInUse += out.large.liveBytes;
  return out;
}

/**
 * Checks one allocator's invariants; the heap must be quiet (no agent
 * allocating or freeing). Per class:
 *   slabPages * perSlab = depotObjects + sum(cached) + live
 *   every object in a depot batch or a cache list is FREE, in a slab of
 *   this class, at an object start, and in exactly one list;
 *   every FREE object of a slab is in some list (nothing lost).
 */
/**
 * Checks the heap's pages and every live allocator (see Heap.validate);
 * the caller's agent must be quiet. Returns the problems found.
 */
export function validateHeap(heap: HeapCore): string[] {
  heap.refresh();
  // This agent is quiet while it validates: its allocators let go of
  // their limbo rings (held between deferred frees, see freeDeferred).
  heap.settleClients();
  const errors = heap.validatePages();
  for (const id of heap.allocatorIds()) errors.push(...validateAllocator(heap, id).map((e) => `allocator ${id}: ${e}`));
  return errors;
}

export function validateAllocator(heap: HeapCore, id: number): string[] {
  heap.refresh();
  const errors: string[] = [];
  const row = heap.allocatorRow(id);
  if (row.state !== ALLOC_LIVE) return errors;
  const u32 = heap.u32;
  const u8 = heap.u8;
  const R = row.region >>> 2;
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  const mapBytes = heap.pageSize / GRANULE;
  const pageMask = heap.pageSize - 1;
  const seen = new Set<number>();
  const inList = new Array<number>(classes).fill(0);
  const check = (p: number, c: number, where: string): boolean => {
    const tag = load(u32, heap.tagWord + (p >>> heap.pageShift));
    if (tagKind(tag) !== KIND_SLAB || tagAllocator(tag) !== id || tagClass(tag) !== c) {
      errors.push(`${where}: object ${p} is not in a slab of class ${c} of allocator ${id}`);
      return false;
    }
    const off = p & pageMask;
    if (u8[p - off + (off >>> 4)] !== ST_FREE) {
      errors.push(`${where}: object ${p} is in a free list but its state is ${u8[p - off + (off >>> 4)]}`);
    }
    if (seen.has(p)) {
      errors.push(`${where}: object ${p} is in two free lists (would be handed out twice)`);
      return false;
    }
    seen.add(p);
    inList[c]!++;
    return true;
  };
  for (let c = 0; c < classes; c++) {
    const cr = R + ALLOC_WORDS + c * CLASS_WORDS;
    let depotCount = 0;
    for (let b = load(u32, cr + ClassRow.DEPOT_HEAD); b !== 0; b = u32[(b >>> 2) + O_NEXT_BATCH]!) {
      const n = u32[(b >>> 2) + O_COUNT]!;
      let p = b;
      let walked = 0;
      let last = 0;
      while (p !== 0 && walked <= n) {
        if (!check(p, c, `depot ${c}`)) break;
        walked++;
        last = p;
        p = u32[p >>> 2]!;
      }
      if (walked !== n) errors.push(`depot ${c}: batch ${b} says ${n} objects, chain has ${walked}`);
      if (last !== u32[(b >>> 2) + O_TAIL]) errors.push(`depot ${c}: batch ${b} tail mismatch`);
      depotCount += n;
      if (depotCount > 1e9) break;
    }
    if (depotCount !== load(u32, cr + ClassRow.DEPOT_OBJECTS)) {
      errors.push(`depot ${c}: counter says ${load(u32, cr + ClassRow.DEPOT_OBJECTS)}, batches hold ${depotCount}`);
    }
    for (let s = 0; s < heap.maxSlots; s++) {
      const rec = cacheRowAt(R, classes, heap.maxSlots, s, c);
      const n = u32[rec + CacheRow.COUNT]!;
      let walked = 0;
      for (let p = u32[rec]!; p !== 0 && walked <= n; p = u32[p >>> 2]!) {
        if (!check(p, c, `slot ${s} cache ${c}`)) break;
        walked++;
      }
      if (walked !== n) errors.push(`slot ${s} cache ${c}: count says ${n}, list has ${walked}`);
    }
  }
  // Every RETIRED object is in exactly one limbo ring (or a row's pending word).
  const waiting = new Set<number>();
  for (let s = 0; s < heap.maxSlots; s++) {
    const row = limboRowAt(R, classes, heap.maxSlots, s);
    if (load(u32, row + LimboRow.LOCK) !== 0) errors.push(`slot ${s} limbo ring: locked by slot ${load(u32, row + LimboRow.LOCK) - 1} in a quiet heap`);
    if (u32[row + LimboRow.TAKING] !== 0) errors.push(`slot ${s} limbo ring: a take of ${u32[row + LimboRow.TAKING]} was left unfinished`);
    const pending = u32[row + LimboRow.PENDING]!;
    for (const p of pending === 0 ? rowEntries(u32, row) : [...rowEntries(u32, row), pending]) {
      const tag = load(u32, heap.tagWord + (p >>> heap.pageShift));
      const off = p & pageMask;
      if (tagKind(tag) !== KIND_SLAB || tagAllocator(tag) !== id) errors.push(`slot ${s} limbo ring: ${p} is not an object of allocator ${id}`);
      else if (u8[p - off + (off >>> 4)] !== ST_RETIRED) errors.push(`slot ${s} limbo ring: object ${p} is waiting but its state is ${u8[p - off + (off >>> 4)]}`);
      if (waiting.has(p)) errors.push(`slot ${s} limbo ring: object ${p} is waiting twice (would be freed twice)`);
      waiting.add(p);
    }
  }
  let retired = 0;
  // Every FREE object must be in a list; count live objects per class.
  const freeInSlabs = new Array<number>(classes).fill(0);
  const committed = heap.committedPages();
  const slabPages = new Array<number>(classes).fill(0);
  for (let p = heap.firstDataPage; p < committed; p++) {
    const tag = load(u32, heap.tagWord + p);
    if (tagKind(tag) !== KIND_SLAB || tagAllocator(tag) !== id) continue;
    const c = tagClass(tag);
    slabPages[c]!++;
    const unit = u32[R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.UNIT]!;
    const per = u32[R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.PER_SLAB]!;
    const base = p * heap.pageSize;
    for (let i = 0; i < per; i++) {
      const obj = base + mapBytes + i * unit;
      const st = u8[base + ((mapBytes + i * unit) >>> 4)];
      if (st === ST_FREE) {
        freeInSlabs[c]!++;
        if (!seen.has(obj)) errors.push(`class ${c}: free object ${obj} is in no list (lost)`);
      } else if (st === ST_RETIRED) {
        retired++;
      } else if (st !== ST_ALLOCATED) {
        errors.push(`class ${c}: object ${obj} has bad state ${st}`);
      }
    }
  }
  for (let c = 0; c < classes; c++) {
    const cr = R + ALLOC_WORDS + c * CLASS_WORDS;
    if (freeInSlabs[c] !== inList[c]) errors.push(`class ${c}: ${freeInSlabs[c]} free objects in slabs, ${inList[c]} in lists`);
  }
  if (retired !== waiting.size) {
    errors.push(`${retired} objects are RETIRED, ${waiting.size} wait in limbo rings (the rest are lost, or in an agent's spill list)`);
  }
  return errors;
}

