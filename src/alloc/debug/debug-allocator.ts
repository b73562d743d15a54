/**
 * Debug mode of the allocator (`heap.createAllocator({ debug: true })`);
 * what it finds and the errors it throws are described for users in
 * docs/debug.md.
 *
 * The flag lives in the allocator's shared region, so every agent that
 * creates or attaches such an allocator gets a DebugAllocator (open.ts).
 * It overrides the public methods and calls `super.*` for the real work,
 * so the release fast paths stay as they are. It adds:
 *
 * - a 16-byte header before every object of a size-bucketed allocator and
 *   an 8-byte canary just past the requested size: overflows are reported
 *   at free. A unit of at least size + 24 bytes (guard.ts has the details):
 *     [ header 16 B | size bytes (alloc returns their start) | canary 8 B | slack ]
 * - poisoning: a freed object is filled with 0x6b and marked; the poison is
 *   checked when the object leaves the quarantine and when it is handed
 *   out again: a write after free is reported;
 * - a quarantine (quarantine.ts): the last 64 objects (at most 4 MiB) an
 *   agent freed stay allocated, poisoned, before they really go back;
 * - every pointer check of release mode, with the same messages (objects.ts),
 *   plus the double free of an object in some agent's quarantine;
 * - a stale-agent check: an allocator whose heap slot was released or
 *   reused throws instead of using that slot's caches;
 * - validate() (validate.ts): heap.validate() plus every header, canary
 *   and poison.
 *
 * Fixed-size allocators keep their unit (no header, no canary); freed
 * units are poisoned and quarantined all the same.
 *
 * Costs: 24 bytes per bucketed object, rounded up to its size class; an
 * alloc+free pair roughly 10-40x slower than release mode; the quarantine
 * holds up to 64 objects or 4 MiB per agent. A throwing call about the
 * pointer passed in changes nothing; a write after free is about another
 * object and is thrown by the call that found it; the heap stays
 * consistent either way (docs/debug.md, "What a throwing call leaves behind").
 */
import { Allocator } from '../allocator.js';
import { validateHeap } from '../validate.js';
import type { AllocatorStats, AttachOptions, LeakReport } from '../types.js';
import { AllocatorMisuseError, MISUSE } from '../misuse.js';
import type { HeapCore } from '../../heap/core.js';
import { CacheRow, CACHE_WORDS, KIND_LARGE, pageTag, SlotRow, SLOT_ATTACHED, SLOT_ROW_WORDS, tagKind } from '../../shm/layout.js';
import { describe, hex, typeError, withCode } from '../../errors.js';
import { slotFlagWord } from '../region.js';
import { CLASS_BY_GRANULE, MAX_SMALL } from '../sizeclass.js';
import {
  DEBUG_HEADER,
  DEBUG_OVERHEAD,
  DEFR,
  LIVE,
  MARKER,
  canaryFault,
  checkWord,
  hasMarker,
  poison,
  poisonFault,
  quarantineFault,
  writeAfterFreeError,
  writeCanary,
  writeLiveHeader,
  writeQuarantinedHeader,
} from './guard.js';
import { checkLive, isFreeObject, largeUnit, misuseError, unitAt, userPointer, wipeMarkers } from './objects.js';
import { DEFAULT_QUARANTINE_BYTES, DEFAULT_QUARANTINE_OBJECTS, Quarantine, findOrphans } from './quarantine.js';
import { validateObjects } from './validate.js';
import { later } from '../../schedule.js';

const HEAD = DEBUG_HEADER;
const OVERHEAD = DEBUG_OVERHEAD;

/**
 * An allocator in debug mode. Same API as Allocator; every agent that
 * attaches an allocator created with `debug: true` gets one. In
 * size-bucketed mode alloc(size) returns a pointer 16 bytes into a unit of
 * at least size + 24 bytes; usableSize() reports the size asked for.
 */
export class DebugAllocator extends Allocator {
  /** Quarantine bound in objects, per agent (0: poison, check and free at once). */
  quarantineObjects = DEFAULT_QUARANTINE_OBJECTS;
  /** Quarantine bound in bytes of units, per agent. */
  quarantineBytes = DEFAULT_QUARANTINE_BYTES;

  /** @internal Page tag of this allocator's large runs. */
  readonly largeTag: number;
  /** Word of this agent's attached flag in the region. */
  private readonly flagWord: number;
  /** The largest size alloc accepts. */
  private readonly maxSize: number;
  /** Inside a call into the release allocator: its calls back into alloc/free pass through. */
  private through = false;
  /** Inside collectDeferred: free() receives objects whose grace period ended. */
  private collecting = false;
  /** detach/destroy: objects freed now skip the quarantine. */
  private noQuarantine = false;
  private gone = false;
  private stale = false;
  private pendingError: Error | null = null;
  private readonly q = new Quarantine();

  /** @internal use Heap.createAllocator / Heap.attachAllocator. */
  constructor(heap: HeapCore, id: number, options: AttachOptions, gen = 0) {
    super(heap, id, options, gen);
    this.retireThroughFree = true;
    this.flagWord = this.R + slotFlagWord(this.classes) + this.attachedSlot;
    this.largeTag = pageTag(KIND_LARGE, id, 0);
    this.maxSize = (heap.maxPages - heap.firstDataPage) * heap.pageSize - OVERHEAD;
  }

  /** The slot this agent attached in (the release allocator keeps it as slot + 1). */
  private get attachedSlot(): number {
    return this.lockId - 1;
  }

  /** That slot's generation then (the release allocator keeps it as an int32). */
  private get attachedGen(): number {
    return this.ownerGen >>> 0;
  }

  /* ------------------------------ alloc ------------------------------ */

  override alloc(size?: number): number {
    if (this.through) return super.alloc(size);
    this.enter('alloc');
    let c: number;
    let ask: number | undefined;
    if (!this.fixed) {
      if (typeof size !== 'number' || !Number.isSafeInteger(size)) {
        throw typeError('bad-size', `alloc size must be a positive safe integer, got ${describe(size)}`);
      }
      if (size < 1 || size > this.maxSize) {
        throw new AllocatorMisuseError(`alloc size must be in [1, ${this.maxSize}] (debug mode), got ${size}`, 'bad-size', NaN);
      }
      ask = size + OVERHEAD;
      c = ask <= MAX_SMALL ? CLASS_BY_GRANULE[(ask - 1) >>> 4]! : -1;
    } else {
      if (size !== undefined) {
        if (typeof size !== 'number' || !Number.isSafeInteger(size)) {
          throw typeError('bad-size', `alloc size must be a positive safe integer, got ${describe(size)}`);
        }
        if (size < 1 || size > this.unitSize) {
          throw new AllocatorMisuseError(
            `alloc size must be in [1, ${this.unitSize}] for this fixed-size allocator, got ${size}`,
            'bad-size',
            NaN,
          );
        }
      }
      c = 0;
    }
    if (c >= 0) this.checkCacheHead(c);
    const base = this.rawAlloc(ask);
    if (base === 0) return 0;
    const heap = this.heap;
    const u32 = heap.u32;
    const unit = c >= 0 ? this.units[c]! : largeUnit(this, base);
    if (c >= 0 && unit >= 2 * HEAD && hasMarker(heap, base, unit)) {
      const bad = poisonFault(heap, base, unit);
      if (bad >= 0) {
        const err = writeAfterFreeError(heap, 'alloc', userPointer(this, base), base, unit, bad, 'found as it was about to be handed out again');
        poison(heap, base, unit);
        this.rawFree(base);
        throw err;
      }
    }
    if (this.fixed) {
      // Remove what marks a freed unit: the state word and the marker.
      u32[(base >>> 2) + 1] = 0;
      if (unit >= 2 * HEAD) u32[(base + unit - MARKER) >>> 2] = 0;
      return base;
    }
    const sz = size as number;
    writeLiveHeader(u32, base, sz, heap.slot);
    u32[(base + unit - MARKER) >>> 2] = 0;
    u32[((base + unit - MARKER) >>> 2) + 1] = 0;
    writeCanary(heap, base, sz);
    return base + HEAD;
  }

  /* ------------------------------ free ------------------------------- */

  override free(p: number): void {
    if (this.collecting) return this.freeCollected(p);
    if (this.through) return super.free(p);
    if (p === 0) return;
    this.enter('free');
    const base = checkLive(this, 'free', p);
    const unit = unitAt(this, base);
    if (!this.fixed) this.checkCanary('free', p, base);
    this.quarantine(base, unit);
    const err = this.evict(this.quarantineObjects, this.quarantineBytes);
    if (err !== null) throw err;
  }

  override freeDeferred(p: number): void {
    if (this.through) return super.freeDeferred(p);
    if (p === 0) return;
    this.enter('freeDeferred');
    const base = checkLive(this, 'freeDeferred', p);
    const heap = this.heap;
    if (tagKind(heap.u32[heap.tagWord + (base >>> this.pageShift)]!) === KIND_LARGE) {
      throw misuseError('freeDeferred', p, `${MISUSE.largeDeferred}; free them directly`, 'large-deferred');
    }
    if (!this.fixed) {
      this.checkCanary('freeDeferred', p, base);
      heap.u32[(base >>> 2) + 1] = (DEFR ^ base) >>> 0;
    }
    try {
      this.rawFreeDeferred(base);
    } catch (e) {
      if (!this.fixed) this.heap.u32[(base >>> 2) + 1] = (LIVE ^ base) >>> 0;
      throw e;
    }
  }

  override collectDeferred(everyAgent = false): number {
    if (this.gone || this.stale) return 0;
    if (!this.current()) {
      // Called from a microtask of an agent whose slot was released: do nothing.
      this.stale = true;
      return 0;
    }
    const was = this.collecting;
    this.collecting = true;
    try {
      return super.collectDeferred(everyAgent);
    } finally {
      this.collecting = was;
    }
  }

  /**
   * The requested size of a live object (bucketed mode), or unitSize
   * (fixed mode). Throws for anything but a live object of this allocator.
   */
  override usableSize(p: number): number {
    this.enter('usableSize');
    const base = checkLive(this, 'usableSize', p);
    return this.fixed ? this.unitSize : this.heap.u32[base >>> 2]!;
  }

  /** The release unit an allocation of `size` bytes takes (size + 24 in bucketed mode; 0 for a page run). */
  override unitFor(size: number): number {
    if (this.fixed) return super.unitFor(size);
    super.unitFor(size);
    return size + OVERHEAD <= MAX_SMALL ? super.unitFor(size + OVERHEAD) : 0;
  }

  /* --------------------------- quarantine ---------------------------- */

  /** Objects in this agent's quarantine. */
  get quarantined(): number {
    return this.q.count;
  }

  /** Bytes (whole units) in this agent's quarantine. */
  get quarantinedBytes(): number {
    return this.q.bytes;
  }

  /**
   * Really frees every object of this agent's quarantine, checking each
   * one's poison. Throws the first write after free found, after all are freed.
   */
  flushQuarantine(): void {
    this.enter('flushQuarantine');
    const err = this.evict(0, 0);
    if (err !== null) throw err;
  }

  /**
   * Frees the objects left in the quarantine of agents that are gone (a
   * slot released with heap.releaseSlot, or since taken by another agent):
   * their poison is checked first. Returns how many were freed. Call it
   * when no agent is allocating or freeing, like validate(). Throws the
   * first write after free found, after all are freed.
   */
  reclaimOrphans(): number {
    this.enter('reclaimOrphans');
    const { freed, error } = this.sweepOrphans(false);
    if (error !== null) throw error;
    return freed;
  }

  /* ---------------------------- lifecycle ---------------------------- */

  /**
   * Releases this agent's quarantine (really frees it), then detaches.
   * A write after free found meanwhile is thrown once detached. An
   * allocator whose slot was released throws the stale error and touches
   * nothing.
   */
  override detach(): void {
    if (this.gone) return;
    if (this.stale || !this.current()) {
      // Released behind our back: let go, as release mode does, without
      // touching a slot that is not ours (the quarantine stays for
      // reclaimOrphans()).
      this.stale = true;
      this.rawDetach();
      return;
    }
    for (let i = 0; i < 64 && this.collectDeferred() > 0; i++);
    this.noQuarantine = true;
    const err = this.evict(0, 0);
    this.rawDetach();
    this.gone = true;
    if (err !== null) throw err;
  }

  /** @internal heap.detach(): a write after free found here is thrown from a microtask, after the heap detached. */
  override detachFromHeap(): void {
    try {
      this.detach();
    } catch (e) {
      if (!(e instanceof AllocatorMisuseError) || e.code !== 'write-after-free') throw e;
      later(() => {
        throw e;
      });
    }
  }

  /**
   * Finishes every deferred free, releases the quarantine of this agent
   * and those left by agents that are gone, wipes the free markers, then
   * destroys the allocator (see Allocator.destroy). A write after free
   * found meanwhile is thrown once destroyed, with the leak report on it.
   */
  override destroy(): LeakReport {
    this.enter('destroy');
    // Decided before anything is swept: no other agent has it, none can
    // attach it (throws otherwise, and nothing changed).
    this.close('destroy');
    for (let i = 0; i < 100_000 && (this.collectDeferred(true), this.retiredObjects() > 0); i++);
    this.noQuarantine = true;
    let err = this.evict(0, 0);
    const swept = this.sweepOrphans(true);
    err ??= swept.error;
    wipeMarkers(this);
    let report: LeakReport;
    try {
      report = this.rawDestroy();
    } catch (e) {
      this.noQuarantine = false;
      throw e;
    }
    this.gone = true;
    if (err !== null) {
      err.leakReport = report;
      throw err;
    }
    return report;
  }

  /** Release stats plus this agent's quarantine (quarantined objects count as live there). */
  override stats(): AllocatorStats & {
    /** This agent's quarantine. */
    quarantine: {
      /** Objects waiting in it. */
      objects: number;
      /** Their bytes (units). */
      bytes: number;
    };
  } {
    return { ...super.stats(), quarantine: { objects: this.q.count, bytes: this.q.bytes } };
  }

  /* ----------------------------- validate ---------------------------- */

  /**
   * heap.validate(), then every object of this allocator: the header and
   * canary of each live one, the poison of each quarantined one (in any
   * agent's quarantine) and of each really free one that was poisoned, and
   * this agent's quarantine list. Returns the problems (empty: all good).
   * Call it when no agent is allocating or freeing.
   */
  validate(): string[] {
    const heap = this.heap;
    const errors = validateHeap(heap);
    if (this.gone || heap.allocatorRow(this.id).region >>> 2 !== this.R) return errors;
    validateObjects(this, this.q, errors);
    if (this.pendingError !== null) errors.push(`allocator ${this.id}: not yet reported: ${this.pendingError.message}`);
    return errors;
  }

  /** validate(), throwing an Error that lists the problems. */
  assertValid(): void {
    const errors = this.validate();
    if (errors.length > 0) throw withCode(new Error(`heap is inconsistent:\n  ${errors.slice(0, 20).join('\n  ')}`), 'inconsistent');
  }

  /* ----------------------------- internals ---------------------------- */

  // Calls into the release allocator. Its own calls back into alloc/free
  // (a retry after refreshing views, an empty cache refilled) pass straight
  // through; objects whose grace period ends meanwhile go to freeCollected.
  private rawAlloc(size: number | undefined): number {
    const t = this.through;
    const c = this.collecting;
    this.through = true;
    this.collecting = false;
    try {
      return super.alloc(size);
    } finally {
      this.through = t;
      this.collecting = c;
    }
  }

  private rawFree(base: number): void {
    const t = this.through;
    const c = this.collecting;
    this.through = true;
    this.collecting = false;
    try {
      super.free(base);
    } finally {
      this.through = t;
      this.collecting = c;
    }
  }

  private rawFreeDeferred(base: number): void {
    const t = this.through;
    this.through = true;
    try {
      super.freeDeferred(base);
    } finally {
      this.through = t;
    }
  }

  private rawDetach(): void {
    const t = this.through;
    this.through = true;
    try {
      super.detach();
    } finally {
      this.through = t;
    }
  }

  private rawDestroy(): LeakReport {
    const t = this.through;
    this.through = true;
    try {
      return super.destroy();
    } finally {
      this.through = t;
    }
  }

  /** This agent still owns the slot it attached in, and the allocator is attached there. */
  private current(): boolean {
    const heap = this.heap;
    const u32 = heap.u32;
    const w = heap.slotWord + this.attachedSlot * SLOT_ROW_WORDS;
    return (
      heap.slot === this.attachedSlot &&
      u32[w + SlotRow.STATE] === SLOT_ATTACHED &&
      u32[w + SlotRow.GEN] === this.attachedGen &&
      u32[this.flagWord] === 1
    );
  }

  /** Checks at the start of every public operation. */
  private enter(op: string): void {
    if (this.pendingError !== null) {
      const e = this.pendingError;
      this.pendingError = null;
      throw e;
    }
    if (this.gone) {
      throw new AllocatorMisuseError(`${op}: allocator ${this.id} ${MISUSE.detached}`, 'detached', NaN);
    }
    if (this.stale || !this.current()) {
      this.stale = true;
      throw this.slotGoneError(op);
    }
  }

  private slotGoneError(op: string): AllocatorMisuseError {
    return new AllocatorMisuseError(
      `${op}: ${MISUSE.stale}: this agent's worker slot ${this.attachedSlot} (generation ${this.attachedGen}) was released ` +
        `(releaseSlot) or taken by another agent since; nothing was changed`,
      'stale',
      NaN,
    );
  }

  private checkCanary(op: string, p: number, base: number): void {
    const size = this.heap.u32[base >>> 2]!;
    const j = canaryFault(this.heap, base, size);
    if (j >= 0) {
      throw misuseError(
        op,
        p,
        `${MISUSE.canary}: byte ${size + j} (${j} past the end of the ${size}-byte object) was overwritten: a buffer overflow`,
        'canary',
      );
    }
  }

  /**
   * Before alloc pops from the cache of class c: the object at the head
   * and the link to the next must be free objects of this class. A broken
   * link (a write after free into a really freed unit's first bytes) is
   * reported instead of followed.
   */
  private checkCacheHead(c: number): void {
    const u32 = this.heap.u32;
    const h = u32[this.cacheRec + c * CACHE_WORDS + CacheRow.HEAD]!;
    if (h === 0) return;
    const next = u32[h >>> 2]!;
    if (next === 0 || isFreeObject(this, next, c)) return;
    const p = userPointer(this, h);
    throw new AllocatorMisuseError(
      `alloc: ${MISUSE.writeAfterFree} in object ${p} (${hex(p)}): the free-list link ` +
        `in its first bytes was overwritten (it reads ${next}); the allocator's free list is broken`,
      'write-after-free',
      p,
    );
  }

  /** Marks a live object quarantined, poisons it and appends it to this agent's quarantine. */
  private quarantine(base: number, unit: number): void {
    const heap = this.heap;
    writeQuarantinedHeader(heap.u32, base, heap.slotGen, heap.slot);
    poison(heap, base, unit);
    this.q.push(base, unit);
  }

  /**
   * Really frees the oldest quarantined objects until at most `objects`
   * and `bytes` remain, checking each one's poison first. A damaged one is
   * reported (the first is returned) and freed all the same, poisoned again.
   */
  private evict(objects: number, bytes: number): AllocatorMisuseError | null {
    const q = this.q;
    let first: AllocatorMisuseError | null = null;
    while (q.count > 0 && (q.count > objects || q.bytes > bytes)) {
      const base = q.oldestBase;
      const unit = q.oldestUnit;
      q.dropOldest();
      const e = this.release(base, unit, 'found as it left the quarantine');
      first ??= e;
    }
    return first;
  }

  /** Checks a quarantined object and really frees it; returns the misuse found, if any. */
  private release(base: number, unit: number, when: string): AllocatorMisuseError | null {
    let err: AllocatorMisuseError | null = null;
    const heap = this.heap;
    const bad = quarantineFault(heap, base, unit);
    if (bad !== -1) {
      err = writeAfterFreeError(heap, 'free', userPointer(this, base), base, unit, bad, when);
      poison(heap, base, unit);
    }
    try {
      this.rawFree(base);
    } catch (e) {
      err ??= e instanceof AllocatorMisuseError ? e : new AllocatorMisuseError(String(e), 'double-free', base);
    }
    return err;
  }

  /**
   * Frees the quarantined objects of agents that are gone (all of them
   * but this agent's own with `all`), checking them first.
   */
  private sweepOrphans(all: boolean): { freed: number; error: AllocatorMisuseError | null } {
    const orphans = findOrphans(this, this.q, all);
    let error: AllocatorMisuseError | null = null;
    for (const { base, unit } of orphans) error ??= this.release(base, unit, 'found as a gone agent\'s quarantine was released');
    return { freed: orphans.length, error };
  }

  /**
   * free() called back by the release allocator from collectDeferred: the
   * grace period of a deferred free ended (base is a raw object start,
   * ALLOCATED again). Never throws: what it finds is thrown by the next call.
   */
  private freeCollected(base: number): void {
    try {
      const unit = unitAt(this, base);
      if (!this.fixed) {
        const u32 = this.heap.u32;
        const size = u32[base >>> 2]!;
        const p = base + HEAD;
        if (u32[(base >>> 2) + 1] !== (DEFR ^ base) >>> 0 || u32[(base >>> 2) + 2] !== checkWord(size, u32[(base >>> 2) + 3]!, base)) {
          this.pendingError ??= misuseError(
            'collectDeferred',
            p,
            `${MISUSE.canary}: the header was overwritten while the object waited for its grace period`,
            'canary',
          );
        } else if (canaryFault(this.heap, base, size) >= 0) {
          this.pendingError ??= misuseError(
            'collectDeferred',
            p,
            `${MISUSE.canary}: the canary after the ${size}-byte object was overwritten while it waited for its grace period`,
            'canary',
          );
        }
      }
      if (this.noQuarantine) this.rawFree(base);
      else this.quarantine(base, unit);
    } catch (e) {
      this.pendingError ??= e instanceof Error ? e : new Error(String(e));
    }
  }
}
