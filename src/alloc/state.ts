/**
 * An allocator as one agent holds it: its views of the heap, where its
 * rows lie in the allocator's shared region (./region.ts), the class
 * constants copied out of the class rows, and the agent-local flags of
 * its deferred work. The slow paths (./batches.ts, ./deferred.ts) take
 * this state; the Allocator class (./allocator.ts) extends it with the
 * fast paths, attach and the rest of the lifecycle.
 *
 * Every field is assigned in the constructor, never first defined as
 * undefined (tsconfig: useDefineForClassFields false): V8 then keeps a
 * number field's representation as a small integer and a typed-array
 * field's map, and the hot paths skip those checks.
 */
import { AllocatorHeader, ALLOC_WORDS, ClassRow, CLASS_WORDS, KIND_SLAB, ownerKey, pageTag } from '../shm/layout.js';
import type { HeapCore } from '../heap/core.js';
import { cacheRowAt, limboRowAt } from './region.js';
import type { AttachOptions } from './types.js';
import type { PushRetired } from '../reclaim/limbo.js';
import { MISUSE } from './misuse.js';
import { rangeError } from '../errors.js';

/** @hidden The per-agent state of an allocator; see Allocator. */
export abstract class AllocatorState {
  /** The heap the allocator lives in (this agent's view of it). */
  readonly heap: HeapCore;
  /** The allocator's id in its heap (what its handle carries). */
  readonly id: number;
  /** 0 in bucketed mode, else the fixed object size. */
  readonly unitSize: number;
  /** Size classes: 1 in fixed-size mode, else one per bucket size. */
  readonly classes: number;
  /** Whether this agent attached with nowait (see AttachOptions.nowait). */
  readonly nowait: boolean;

  // Hot-path state, all per agent.
  /** @internal The heap's state bytes (HeapCore.st): object p's is st[p >> 4]. */
  st: Uint8Array;
  /** @internal */
  u32: Uint32Array;
  /** @internal */
  i32: Int32Array;
  /** @internal */
  readonly tags: Uint32Array;
  /** @internal */
  readonly pageShift: number;
  /** @internal */
  readonly pageMask: number;
  /** @internal Word index of this agent's first cache row. */
  cacheRec: number;
  /** @internal Page tag of this allocator's slabs with class 0. */
  readonly slabTagBase: number;
  /** @internal */
  readonly low: Uint32Array;
  /** @internal */
  readonly high: Uint32Array;
  /** @internal */
  readonly batch: Uint32Array;
  /** @internal */
  readonly units: Uint32Array;
  /** @internal */
  readonly perSlab: Uint32Array;
  /** @internal Per class: frees that found the cache above high since the last trim or microtask (see kickTrim). */
  readonly aboveHigh: Uint32Array;
  /** @internal Word index of the region. */
  readonly R: number;
  /** @internal Per class: the pages of a slab. */
  readonly slabPages: Uint32Array;
  /** @internal Per class: 1 when a refill or trim is due in the microtask. */
  readonly due: Uint8Array;
  /** @internal The microtask is queued. */
  scheduled: boolean;
  /** @internal Word index of this agent's limbo row (deferred frees; ../reclaim/limbo.ts). */
  readonly limboRow: number;
  /** @internal This agent's slot generation as the cache rows' OWNER word holds it (int32). */
  readonly ownerGen: number;
  /** @internal ownerKey(ownerGen): added to this agent's cache-row watermarks (see the cache row in layout.ts). */
  readonly key: number;
  /** @internal This agent's value in lock words (slot + 1). */
  readonly lockId: number;
  /**
   * @internal
   * Deferred frees that found this agent's limbo row locked by a collector
   * (or the heap without a page for a bigger ring): they go into the row
   * at the next chance. Almost always empty.
   */
  readonly spill: number[];
  /** @internal Objects whose grace period ended go through free() (the debug allocator's override checks them). */
  retireThroughFree: boolean;
  /** @internal This agent holds its limbo row's lock (see freeDeferred). */
  ringHeld: boolean;
  /**
   * @internal
   * Deferred frees since this agent last collected its own ring: when the
   * next periodic collect is due, and how many unstamped entries it will
   * find (a hint for stampRow, which checks it; spilled ones or a ring let
   * go meanwhile only make it too large, which is safe).
   */
  sinceCollect: number;
  /** @internal The collect microtask is queued. */
  collectScheduled: boolean;
  /** @internal Per class: 1 when its cache took objects from limbo rings since the last settleRetired. */
  readonly retiredTouched: Uint8Array;
  /** @internal The collect microtask (assigned by Allocator's constructor). */
  collector!: () => void;
  /** @internal Puts objects a collect took out of a limbo ring into this agent's caches (./deferred.ts retiredPusher). */
  readonly pushRetired: PushRetired;
  /** @internal */
  detached: boolean;
  /** @internal free()'s last slow-checked page tag (-1: none) and the cache row it maps to. */
  freeTag: number;
  /** @internal */
  freeRec: number;

  /**
   * Reads the allocator's region into this agent's state; writes nothing
   * shared (Allocator's constructor checks and attaches). `retiredPusher`
   * makes pushRetired (it lives with deferred free, above this module).
   *
   * The fields are assigned in this order, and Allocator's constructor
   * adds `deferred` and `collector` after them: V8 lays an object out in
   * the order its fields are first assigned, and the hot paths' machine
   * code depends on the offsets. Assigning pushRetired last instead moved
   * every field after it by one slot, and an alloc+free pair got 3-4%
   * slower bucketed and 7-8% slower in fixed-size mode (paired A/B, same
   * bytecode otherwise).
   */
  constructor(heap: HeapCore, id: number, options: AttachOptions, retiredPusher: (s: AllocatorState) => PushRetired) {
    const region = heap.allocatorRow(id).region;
    this.due = new Uint8Array(heap.u32[(region >>> 2) + AllocatorHeader.CLASSES]!);
    this.scheduled = false;
    this.spill = [];
    this.retireThroughFree = false;
    this.ringHeld = false;
    this.sinceCollect = 0;
    this.collectScheduled = false;
    this.retiredTouched = new Uint8Array(heap.u32[(region >>> 2) + AllocatorHeader.CLASSES]!);
    this.detached = false;
    this.freeTag = -1;
    this.freeRec = 0;
    this.pushRetired = retiredPusher(this);
    this.heap = heap;
    this.id = id;
    this.R = region >>> 2;
    this.st = heap.st;
    this.u32 = heap.u32;
    this.i32 = heap.i32;
    const u32 = this.u32;
    this.classes = u32[this.R + AllocatorHeader.CLASSES]!;
    this.unitSize = u32[this.R + AllocatorHeader.UNIT]!;
    this.nowait = options.nowait === true;
    this.tags = new Uint32Array(heap.u32.buffer, heap.tagWord * 4, heap.maxPages);
    this.pageShift = heap.pageShift;
    this.pageMask = heap.pageSize - 1;
    this.slabTagBase = pageTag(KIND_SLAB, id, 0);
    this.cacheRec = cacheRowAt(u32, this.R, this.classes, heap.maxSlots, heap.slot, 0);
    this.limboRow = limboRowAt(u32, this.R, this.classes, heap.maxSlots, heap.slot);
    this.lockId = heap.slot + 1;
    this.ownerGen = heap.slotGen | 0;
    this.key = ownerKey(heap.slotGen);
    this.low = new Uint32Array(this.classes);
    this.high = new Uint32Array(this.classes);
    this.batch = new Uint32Array(this.classes);
    this.units = new Uint32Array(this.classes);
    this.perSlab = new Uint32Array(this.classes);
    this.slabPages = new Uint32Array(this.classes);
    this.aboveHigh = new Uint32Array(this.classes);
    for (let c = 0; c < this.classes; c++) {
      const cr = this.R + ALLOC_WORDS + c * CLASS_WORDS;
      this.low[c] = u32[cr + ClassRow.LOW]!;
      this.high[c] = u32[cr + ClassRow.HIGH]!;
      this.batch[c] = u32[cr + ClassRow.BATCH]!;
      this.units[c] = u32[cr + ClassRow.UNIT]!;
      this.perSlab[c] = u32[cr + ClassRow.PER_SLAB]!;
      this.slabPages[c] = u32[cr + ClassRow.SLAB_PAGES]!;
    }
  }

  /** @internal The page tag of this allocator's slabs of class c. */
  slabTag(c: number): number {
    return pageTag(KIND_SLAB, this.id, c);
  }

  /** @internal Schedules the deferred refill/trim of class c (our irq_work; Allocator.kick). */
  abstract kick(c: number): void;
  /** Frees an object (Allocator.free, or the debug allocator's override). */
  abstract free(p: number): void;
  /** Frees an object after a grace period (Allocator.freeDeferred, or the debug allocator's override). */
  abstract freeDeferred(p: number): void;

  /** @internal */
  checkAttached(op: string): void {
    if (this.detached) throw rangeError('detached', `${op}: allocator ${this.id} ${MISUSE.detached}`);
  }

  /**
   * @internal
   * True when this agent's slot was released (releaseSlot by another
   * agent, which must believe this one dead) or taken again since it
   * attached. Checked on the slow paths, where the fast paths send a
   * stale handle: releaseSlot zeroes the slot's high watermarks and empties
   * its caches, and an agent that takes the slot again keys the
   * watermarks with its own generation (see the cache row in layout.ts).
   */
  slotLost(): boolean {
    return !this.heap.ownsSlot();
  }

  /** @internal */
  staleError(op: string, p?: number): RangeError {
    const what = p === undefined ? op : `${op}(${p})`;
    return rangeError(
      'stale',
      `${what}: ${MISUSE.stale}: this agent's worker slot ${this.heap.slot} was released (releaseSlot) while the agent still ran; nothing was changed`,
    );
  }
}
