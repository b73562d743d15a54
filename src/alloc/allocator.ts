/**
 * The any-context allocator (the kernel's bpf_mem_alloc, for JS agents).
 *
 * Design in one sentence: every agent allocates from and frees into its own
 * per-size-class cache with plain typed-array reads and writes; batches of
 * objects move between those caches and a depot per class when a cache
 * crosses its watermarks (each agent's batches on a stack of its own), and
 * the depot is fed from slabs carved out of the page heap.
 *
 *      agent 0 caches        agent 1 caches                agent N caches
 *   16 32 64 ... 4096     16 32 64 ... 4096     ...     16 32 64 ... 4096
 *    |  |  |       |       |  |  |       |               |  |  |       |
 *    '--+--+-------+---+---'--+--+-------+------...------'--+--+-------'
 *                      | batches (refill below low, trim above high)
 *                      v
 *     per-class depots: stacks of batches under a try-lock
 *                      |  new slab when a depot is empty
 *                      v
 *              page heap (bitmap + bump, growable buffer)
 *
 * Ownership rules
 * - A cache row is written only by the agent that owns its slot (or, once
 *   that agent is gone, by whoever releases the slot). No Atomics there.
 * - Free goes to the freeing agent's cache whichever agent allocated the
 *   object. A trim puts the batch on the agent's own stack of the depot,
 *   and a refill takes from its own stack first, so objects mostly keep
 *   going round the agent that carved their slab; they pass to another
 *   agent through the depot when the other's surplus grows, or its agent
 *   leaves (./batches.ts, depotPop).
 * - Every change of a class's depot stacks is made under its try-lock, so
 *   there is no ABA. It is held for a few stores; an agent that cannot get
 *   it within LOCK_TRIES carves a new slab, and waits longer (bounded in
 *   time) only when no new slab can be had.
 * - Refill and trim run in a microtask of the same agent (our irq_work).
 *   An empty cache is refilled synchronously with one batch, unless the
 *   agent attached with `nowait`, in which case alloc returns 0 (as the
 *   kernel does) and the refill follows in the microtask. A cache that
 *   keeps growing in a synchronous loop is trimmed synchronously once it
 *   reaches high + batch, so it stays bounded.
 *
 * Object states live in the heap's state buffer, one byte per 16 bytes at
 * index p >> 4 (see ../shm/layout.ts), so free needs no header, no size,
 * and no division to check a pointer:
 *   free(p): tag(page(p)) must be this allocator's slab; state(p) must be
 *   ALLOCATED (else: not an object start, or a double free).
 *
 * Where the code is: this file holds the Allocator class (attach, the
 * alloc and free fast paths and their miss paths, detach and destroy);
 * ./state.ts the per-agent state it extends, which the slow paths take;
 * ./batches.ts refill, trim and carve; ./deferred.ts deferred free and
 * its collection; ./create.ts a new allocator's region; ./stats.ts and
 * ./validate.ts the readers of an allocator's shared memory.
 */
import {
  AllocatorHeader,
  AF_DEBUG,
  AF_PREFILL,
  AF_RESERVED,
  ALLOC_WORDS,
  ClassRow,
  CACHE_WORDS,
  CLASS_WORDS,
  CacheRow,
  KEY_RANGE,
  KIND_LARGE,
  KIND_LARGE_TAIL,
  KIND_SLAB,
  ST_ALLOCATED,
  ST_FREE,
  ST_NONE,
  ST_RETIRED,
  ST_SHRINKING,
  pageTag,
  CLASS_MASK,
  tagAllocator,
  tagClass,
  tagKind,
} from '../shm/layout.js';
import { add, load, or, store } from '../shm/atomic.js';
import { badPointer, checkInt, describe, rangeError, typeError } from '../errors.js';
import type { HeapCore } from '../heap/core.js';
import { freeLargeRun, tagLargeRun } from '../heap/runs.js';
import { attachedSlots, classRowAt, ensureSlotBlock, slotFlagWord } from './region.js';
import { allocatorLive, closeAllocator, reopenAllocator, useAllocator } from '../heap/using.js';
import { dropEmptyRings, giveBackRegions, sweepForDestroy } from './leaks.js';
import { flushCacheRow } from './depot.js';
import { clearOrphan, markOrphan, tryLockRow, unlockRow } from '../reclaim/limbo.js';
import { BUCKET_SIZES, CLASS_BY_GRANULE, MAX_SMALL } from './sizeclass.js';
import type { AllocatorHandle, AllocatorOptions, AllocatorStats, AttachOptions, LeakReport } from './types.js';
import { MISUSE } from './misuse.js';
import { AllocatorState } from './state.js';
import { LOCK_TRIES, carve, charge, kickTrim, refill, refillFromDepot, runDeferred, sampleOut } from './batches.js';
import { shrinkAfterTrim, shrinkHeap } from './shrink.js';
import { collect, deferFree, deferredPending, releaseRing, retiredObjects, retiredPusher, unspill } from './deferred.js';
import { createAllocatorRegion } from './create.js';
import { later } from '../schedule.js';
import { allocatorStats } from './stats.js';

/** @internal How long destroy() waits for an attach that is under way (heap/using.ts); tests shorten it. */
export const CLOSE_WAIT = { ms: 2000 };

// Hot-path copies of layout constants. V8 reads an imported binding through
// a cell on every use; a module-local const it folds, which is worth ~2 ns
// per alloc+free pair. Same values as ../shm/layout.ts and ./sizeclass.ts.
const HOT_COUNT: number = CacheRow.COUNT;
const HOT_FREES: number = CacheRow.FREES;
const HOT_MAX_SMALL: number = MAX_SMALL;
const HOT_LOW: number = CacheRow.LOW;
const HOT_HIGH: number = CacheRow.HIGH;
const HOT_OWNER: number = CacheRow.OWNER;
/** Tag bits that differ between this allocator's slabs of different classes. */
const HOT_CLASS_BITS: number = CLASS_MASK;
const HOT_KEY_RANGE: number = KEY_RANGE;
const HOT_ROW: number = CACHE_WORDS;
const HOT_ALLOCATED: number = ST_ALLOCATED;
const HOT_FREE: number = ST_FREE;
const HOT_CLASS_BY_GRANULE: Uint8Array = CLASS_BY_GRANULE;

/**
 * An allocator as seen from one agent. Create with heap.createAllocator(),
 * attach in another agent with heap.attachAllocator(handle).
 */
export class Allocator extends AllocatorState {
  /** The microtask that runs this agent's pending refills and trims. */
  private readonly deferred: () => void;
  /**
   * The generation of this allocator's id (its handle's `gen`), read when
   * it was attached: the handle of a destroyed allocator stays its own
   * after another allocator takes the id.
   */
  readonly generation: number;
  /** destroy() has decided (close): no other agent has it, none can attach it. */
  private closed = false;

  /**
   * @internal use Heap.createAllocator / Heap.attachAllocator. `gen`: the
   * generation the caller's handle names (0: the id's current one),
   * checked again once the allocator is found live under the handshake.
   */
  constructor(heap: HeapCore, id: number, options: AttachOptions, gen = 0) {
    if (heap.slot < 0) throw rangeError('detached', 'attach the heap in this agent first (Heap.attach)');
    // Checked before anything is written: the slot's rows may be another
    // agent's (a released slot taken again, or this allocator attached).
    if (!heap.ownsSlot()) {
      throw rangeError(
        'stale',
        `allocator ${id}: stale heap handle: this agent's worker slot ${heap.slot} was released (releaseSlot) while the agent still ran; nothing was changed`,
      );
    }
    // Named in our slot row before the allocator is found live, until our
    // slot flag is set: a destroy() deciding meanwhile waits (heap/using.ts).
    useAllocator(heap, id);
    const refuse = (e: Error): never => {
      useAllocator(heap, 0);
      throw e;
    };
    if (!allocatorLive(heap, id)) refuse(rangeError('stale-handle', `allocator ${id} is not live (destroyed or being destroyed, or never created)`));
    const row = heap.allocatorRow(id);
    if (gen !== 0 && heap.allocatorGen(id) !== gen) refuse(rangeError('stale-handle', `allocator ${id} of generation ${gen} was destroyed; id ${id} now holds a newer allocator`));
    const flag0 = (row.region >>> 2) + slotFlagWord(heap.u32[(row.region >>> 2) + AllocatorHeader.CLASSES]!) + heap.slot;
    if (heap.u32[flag0] !== 0) refuse(rangeError('already-attached', `allocator ${id} is already attached in this agent's slot ${heap.slot}`));
    // This slot's caches and limbo ring: taken from the heap by the first agent to attach in it.
    if (!ensureSlotBlock(heap, row.region >>> 2, heap.slot)) {
      refuse(rangeError('heap-full', `allocator ${id}: heap is full: no room for this worker slot's caches (a page)`));
    }
    super(heap, id, options, retiredPusher);
    this.generation = heap.allocatorGen(id);
    const u32 = this.u32;
    for (let c = 0; c < this.classes; c++) {
      u32[this.cacheRec + c * CACHE_WORDS + CacheRow.LOW] = this.low[c]! + this.key;
      u32[this.cacheRec + c * CACHE_WORDS + CacheRow.HIGH] = this.high[c]! + this.key;
      u32[this.cacheRec + c * CACHE_WORDS + CacheRow.OWNER] = heap.slotGen;
    }
    this.deferred = () => runDeferred(this);
    this.collector = () => {
      this.collectScheduled = false;
      if (!this.detached) this.collectDeferred();
    };
    store(u32, flag0, 1);
    useAllocator(heap, 0);
    // Entries a previous agent of this slot left in the ring are ours to collect now.
    clearOrphan(u32, this.R, this.limboRow);
    heap.addClient(this);
    // Prefill: the kernel's first program run should not find empty caches.
    // A class nobody has used has no slab yet; carving one for every class
    // at attach would make an empty allocator cost a slab per class, so
    // unless prefill was asked for at create, only depots that hold
    // objects are drawn on (the first miss of a new class refills it).
    const carve = (u32[this.R + AllocatorHeader.FLAGS]! & AF_PREFILL) !== 0;
    for (let c = 0; c < this.classes; c++) {
      const want = u32[this.R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.PREFILL]!;
      while (this.u32[this.cacheRec + c * CACHE_WORDS + CacheRow.COUNT]! < want) {
        if (!(carve ? refill(this, c) : refillFromDepot(this, c))) break;
      }
    }
  }

  /** Initialises the shared region of a new allocator; returns its id. */
  static create(heap: HeapCore, options: AllocatorOptions): number {
    return createAllocatorRegion(heap, options);
  }

  /** A handle to post to other agents (heap.attachAllocator(handle) there). */
  get handle(): AllocatorHandle {
    return { kind: 'anyalloc.allocator', id: this.id, gen: this.generation, heap: this.heap.id };
  }

  /** Agents that have this allocator attached now (racy while agents attach or detach). */
  get attachedAgents(): number {
    return attachedSlots(this.u32, this.R, this.classes, this.heap.maxSlots);
  }

  /** True when created with `debug: true` (see src/alloc/debug/). */
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
    this.st[p >>> 4] = HOT_ALLOCATED;
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
   * too. test/unit/inline-budget.test.ts checks these sizes.
   */
  private allocSlow(c: number, size: number | undefined): number {
    const rec = this.cacheRec + c * HOT_ROW;
    const i32 = this.i32;
    const p = i32[rec]!;
    if ((p | 0) === 0 || i32[rec + HOT_OWNER] !== this.ownerGen) return this.allocMiss(size);
    i32[rec] = i32[p >>> 2]!;
    i32[rec + HOT_COUNT]!--;
    this.st[p >>> 4] = HOT_ALLOCATED;
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
        throw typeError('bad-size', `${MISUSE.badSize} a positive safe integer, got ${describe(size)}`);
      }
      if (this.unitSize !== 0) {
        if (size < 1 || size > this.unitSize) {
          throw rangeError('bad-size', `${MISUSE.badSize} in [1, ${this.unitSize}] for this fixed-size allocator, got ${size}`);
        }
        return this.alloc();
      }
      if (size < 1 || size > MAX_SMALL) {
        const max = (this.heap.maxPages - this.heap.firstDataPage) * this.heap.pageSize;
        if (size < 1 || size > max) throw rangeError('bad-size', `${MISUSE.badSize} in [1, ${max}], got ${size}`);
        // A run of pages. (Here, not in a method of its own: this method
        // must stay over V8's inlining limit, see allocSlow.)
        const heap = this.heap;
        const k = Math.ceil(size / heap.pageSize);
        const R = this.R;
        if (!charge(this, k)) {
          add(this.u32, R + AllocatorHeader.LARGE_FAILURES, 1);
          return 0;
        }
        let first = heap.takePages(k);
        // The page heap ran dry: slabs lying wholly in depots go back to it first.
        if (first === 0 && shrinkHeap(heap, LOCK_TRIES) > 0) first = heap.takePages(k);
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
        // (LARGE_LIVE_PAGES, added to above, counts the run.)
        sampleOut(this);
        return first * heap.pageSize;
      }
      c = CLASS_BY_GRANULE[(size - 1) >>> 4]!;
    }
    const rec = this.cacheRec + c * CACHE_WORDS;
    const i32 = this.i32;
    // A row another agent keyed (its owner word is not ours) is not ours
    // to use even while the slot looks owned: alloc would only come back.
    if (this.slotLost() || i32[rec + CacheRow.OWNER] !== this.ownerGen) throw this.staleError('alloc');
    if (i32[rec] === 0 && (this.nowait || !refill(this, c))) {
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
  override free(p: number): void {
    if (typeof p !== 'number') return this.freeMiss(p);
    const pg = p >>> this.pageShift;
    const d = this.tags[pg]!;
    // The cache row comes from the tag checked last when the page has the
    // same tag (same allocator, kind and class): a branch the CPU predicts,
    // so the row's address does not wait for the tag load (measured: 10%
    // off a same-size alloc+free pair, 2% on a random mix of classes).
    let rec = this.freeRec;
    // (p & -16) !== p: not a multiple of 16, a fraction, or past 2^31 (no
    // slab lies there); the state byte's index below drops p's low bits.
    if ((p & -16) !== p || d !== this.freeTag) {
      if ((p & -16) !== p || ((d & ~HOT_CLASS_BITS) >>> 0) !== this.slabTagBase) return this.freeMiss(p);
      rec = this.cacheRec + ((d >>> 4) & 63) * HOT_ROW;
      this.freeTag = d;
      this.freeRec = rec;
    }
    const s = p >>> 4;
    const st = this.st;
    if (st[s] !== HOT_ALLOCATED) return this.freeMiss(p);
    const i32 = this.i32;
    const n = i32[rec + HOT_COUNT]! + 1;
    // At or below the high watermark after this push, and a row keyed with
    // our generation, in one compare (see alloc).
    if (((i32[rec + HOT_HIGH]! - this.key - n) >>> 0) >= HOT_KEY_RANGE) return this.freeMiss(p);
    st[s] = HOT_FREE;
    i32[p >>> 2] = i32[rec]!;
    i32[rec] = p;
    i32[rec + HOT_COUNT] = n;
    // The statistics counter is free's, not alloc's: allocs follow from
    // the row's counts (see the cache row in ../shm/layout.ts). Counting
    // here took 5-9% off a pair, counting in alloc did not (paired A/B).
    i32[rec + HOT_FREES]++;
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
      throw typeError('bad-argument', `free(${describe(p)}): ${MISUSE.notInteger}`);
    }
    const heap = this.heap;
    if (p < 0 || p >= heap.maxPages * heap.pageSize) throw badPointer('free', p, MISUSE.outsideHeap);
    if (p >= heap.viewBytes) {
      heap.refresh();
      if (p >= heap.viewBytes) throw badPointer('free', p, `${MISUSE.outsideHeap} (beyond its committed pages)`);
      return this.free(p);
    }
    const page = p >>> this.pageShift;
    if (page >= heap.committedPages()) throw badPointer('free', p, `${MISUSE.outsideHeap} (beyond its committed pages)`);
    const tag = this.tags[page]!;
    const kind = tagKind(tag);
    const owner = tagAllocator(tag);
    if (kind === KIND_SLAB || kind === KIND_LARGE || kind === KIND_LARGE_TAIL) {
      if (owner !== this.id) throw badPointer('free', p, `${MISUSE.wrongAllocator}: the object belongs to allocator ${owner}, not ${this.id}`);
    }
    if (kind === KIND_SLAB) {
      if ((p & 15) !== 0) throw badPointer('free', p, `${MISUSE.unalignedFree}: objects are 16-byte aligned`);
      const at = p >>> 4;
      const st = this.st[at];
      if (st === ST_FREE || st === ST_SHRINKING) throw badPointer('free', p, MISUSE.doubleFree);
      if (st === ST_RETIRED) throw badPointer('free', p, `${MISUSE.doubleFree}: already freed with freeDeferred, waiting for a grace period`);
      if (st === ST_NONE) throw badPointer('free', p, MISUSE.notObjectStart);
      // ALLOCATED: above the high watermark, or a stale handle.
      if (this.slotLost()) throw this.staleError('free', p);
      const c = tagClass(tag);
      const rec = this.cacheRec + c * CACHE_WORDS;
      const i32 = this.i32;
      const n = i32[rec + CacheRow.COUNT]! + 1;
      this.st[at] = ST_FREE;
      i32[p >>> 2] = i32[rec]!;
      i32[rec] = p;
      i32[rec + CacheRow.COUNT] = n;
      i32[rec + CacheRow.FREES]++;
      if (n > this.high[c]!) kickTrim(this, c, n);
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

  /** The size class unit an allocation of `size` bytes gets (0 for a large run). */
  unitFor(size: number): number {
    checkInt('size', size, 1, 2 ** 32);
    if (this.unitSize !== 0) return this.unitSize;
    return size <= MAX_SMALL ? BUCKET_SIZES[CLASS_BY_GRANULE[(size - 1) >>> 4]!]! : 0;
  }

  /** Usable bytes of a live object (its unit, or the whole page run). */
  usableSize(p: number): number {
    const tag = this.tags[p >>> this.pageShift];
    if (tag === undefined || typeof p !== 'number' || !Number.isInteger(p) || p <= 0 || p >= this.heap.maxPages * this.heap.pageSize) {
      throw badPointer('usableSize', p, 'not a pointer into this heap');
    }
    if (tagAllocator(tag) === this.id && tagKind(tag) === KIND_SLAB) return this.units[tagClass(tag)]!;
    if (tagAllocator(tag) === this.id && tagKind(tag) === KIND_LARGE && (p & this.pageMask) === 0) {
      return load(this.u32, this.heap.argWord + (p >>> this.pageShift)) * this.heap.pageSize;
    }
    throw badPointer('usableSize', p, `not an object of allocator ${this.id}`);
  }

  /* -------------------- deferred free (./deferred.ts) -------------------- */

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
  override freeDeferred(p: number): void {
    deferFree(this, p);
  }

  /** @internal Heap.validate(): this agent is quiet, its ring is free to check. */
  settle(): void {
    releaseRing(this);
  }

  /** This agent's deferred frees still waiting for a grace period. */
  get deferredPending(): number {
    return deferredPending(this);
  }

  /**
   * Objects of this allocator waiting for a grace period in every agent's
   * limbo ring (racy while agents run), plus this agent's spill list.
   */
  retiredObjects(): number {
    return retiredObjects(this);
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
    return collect(this, everyAgent, 2);
  }

  /* ------------------- refill and trim (./batches.ts) -------------------- */

  /** @internal Schedules the deferred refill/trim of class c (our irq_work). */
  override kick(c: number): void {
    this.due[c] = 1;
    // The flag is set only once the work is scheduled: a scope that cannot
    // schedule leaves it clear, and the next kick tries again.
    if (!this.scheduled) this.scheduled = later(this.deferred);
  }

  /** Runs pending refills and trims now (they normally run in a microtask). */
  flushDeferred(): void {
    if (this.due.includes(1)) runDeferred(this);
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
    if (this.unitSize === 0) throw rangeError('wrong-mode', 'reserve needs a fixed-size allocator (unitSize)');
    const cr = this.R + ALLOC_WORDS;
    // Reserved objects are promised: no shrink gives their slabs back.
    or(this.u32, this.R + AllocatorHeader.FLAGS, AF_RESERVED);
    while (load(this.u32, cr + ClassRow.SLABS) * this.perSlab[0]! < objects) {
      if (!carve(this, 0, -1)) return false;
    }
    return true;
  }

  /* ------------------------------ lifecycle ------------------------------ */

  /** @internal this allocator's region while this agent has it attached (see shrinkHeap). */
  attachedRegion(): number {
    return this.detached ? 0 : this.R;
  }

  /** @internal the heap renewed its views. */
  onViews(): void {
    if (this.detached) return;
    this.st = this.heap.st;
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
    store(this.u32, this.R + slotFlagWord(this.classes) + this.heap.slot, 0);
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
        unspill(this);
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
    this.st = new Uint8Array(0);
    this.cacheRec = 0;
    this.freeTag = -1;
  }

  /** Moves every object of this agent's caches to the depots. */
  flushCaches(): void {
    this.checkAttached('flushCaches');
    this.aboveHigh.fill(0);
    for (let c = 0; c < this.classes; c++) {
      flushCacheRow(this.u32, classRowAt(this.R, c), this.cacheRec + c * CACHE_WORDS, this.batch[c]!, this.lockId);
      shrinkAfterTrim(this.heap, this.R, c, LOCK_TRIES);
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
    const R = this.R;
    this.close('destroy');
    // Every other agent is gone: collect from every ring (grace periods are
    // short; a bounded number of attempts), then give back region rings.
    for (let i = 0; i < 100_000 && (this.collectDeferred(true), this.retiredObjects() > 0); i++);
    dropEmptyRings(heap, R, this.classes);
    this.flushCaches();
    const report = sweepForDestroy(heap, this.id, this.units, this.perSlab);
    heap.removeClient(this);
    this.kill();
    giveBackRegions(heap, R, this.id, report.pagesKept === 0);
    return report;
  }

  /**
   * @internal The decision of a destroy: no attach (nor a release of a
   * dead slot) starts in this allocator from here on, and no other agent
   * has it attached; else it throws (still-attached; busy when an attach
   * seems stuck) and the allocator stays as it was. Once decided, a destroy
   * that follows (HashMap.destroy closes its elements first) goes on.
   */
  close(what: string, name = `allocator ${this.id}`): void {
    if (this.closed) return;
    const wait = CLOSE_WAIT.ms;
    const others = closeAllocator(this.heap, this.id, wait, () => attachedSlots(this.u32, this.R, this.classes, this.heap.maxSlots) - 1);
    if (others < 0) {
      throw rangeError('busy', `${what}: ${name}: an agent has been attaching it for ${wait} ms (stalled, or dead: releaseSlot() it)`);
    }
    if (others > 0) {
      throw rangeError('still-attached', `${what}: ${name} is still attached in ${others} other agent(s); detach them or releaseSlot() the dead ones first`);
    }
    this.closed = true;
  }

  /** @internal A destroy that closed the allocator gave up (HashMap.destroy, when clearing the map threw): it is LIVE again. */
  reopen(): void {
    if (!this.closed) return;
    this.closed = false;
    reopenAllocator(this.heap, this.id);
  }

  /* -------------------------------- stats -------------------------------- */

  /** Counters per agent slot and class (racy reads: they need not be exact while agents run). */
  stats(): AllocatorStats {
    return allocatorStats(this.heap, this.R);
  }
}
