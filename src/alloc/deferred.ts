/**
 * Deferred free (the kernel's bpf_mem_cache_free_rcu) and its collection.
 * A deferred free checks the pointer now, marks the object RETIRED and
 * appends it to this agent's limbo ring (../reclaim/limbo.ts); a collect
 * takes out of a ring every object whose grace period has passed
 * (../reclaim/epoch.ts) and puts it into this agent's caches.
 *
 * Ownership: a limbo row is appended to by the agent of its slot, under
 * the row's lock, which the owner keeps from an append until its next
 * collect, so that most deferred frees touch no atomic at all. A
 * collector of another slot's ring (an orphan, or every ring when memory
 * runs out) takes the lock for the collect only. What cannot go into the
 * ring (locked by a collector for too long, or no page for a bigger ring)
 * waits in the agent's spill list, in JS memory.
 */
import { AllocatorHeader, LimboRow, LIMBO_HEADER_WORDS, LIMBO_INLINE, CACHE_WORDS, CacheRow, KIND_LARGE, KIND_SLAB, CLASS_MASK, ST_ALLOCATED, ST_FREE, ST_NONE, ST_RETIRED, ST_SHRINKING, tagAllocator, tagKind } from '../shm/layout.js';
import { cas, load } from '../shm/atomic.js';
import { badPointer, describe, typeError } from '../errors.js';
import { limboRowAt } from './region.js';
import { appendRetired, clearOrphan, collectLocked, rowCount, UNSTAMPED, tryLockRow, unlockRow, type PushRetired } from '../reclaim/limbo.js';
import { kickTrim } from './batches.js';
import type { AllocatorState } from './state.js';
import { MISUSE } from './misuse.js';
import { later } from '../schedule.js';

/** A busy agent collects its limbo ring after this many deferred frees (half of LIMBO_INLINE). */
const COLLECT_EVERY = LIMBO_INLINE / 2;
/** Tries of a deferred free for its own limbo ring's lock (held by a collector) before it spills. */
const SPILL_AFTER_TRIES = 100_000;

// Hot-path copies of layout constants (see the same in ./allocator.ts: V8
// folds a module-local const, and reads an imported binding through a cell).
const HOT_COUNT: number = CacheRow.COUNT;
const HOT_FREES: number = CacheRow.FREES;
const HOT_OWNER: number = CacheRow.OWNER;
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

/** @internal Allocator.freeDeferred (which see). */
export function deferFree(s: AllocatorState, p: number): void {
  const d = s.tags[p >>> s.pageShift]!;
  // (p & -16) !== p: unaligned, a fraction, or past 2^31 (as in free).
  const o = p >>> 4;
  if ((p & -16) !== p || ((d & ~CLASS_MASK) >>> 0) !== s.slabTagBase || s.st[o] !== ST_ALLOCATED || s.i32[s.cacheRec + HOT_OWNER] !== s.ownerGen) {
    if (p === 0) return;
    s.checkAttached('freeDeferred');
    // A stale handle must not append to a ring its slot's new agent owns;
    // nor go round again on a row whose owner word is not ours.
    if (s.slotLost() || s.i32[s.cacheRec + HOT_OWNER] !== s.ownerGen) throw s.staleError('freeDeferred', p);
    if (typeof p === 'number' && Number.isInteger(p) && p >= 0 && p < s.heap.viewBytes) {
      const t = s.tags[p >>> s.pageShift]!;
      if (tagKind(t) === KIND_LARGE && tagAllocator(t) === s.id) {
        throw badPointer('freeDeferred', p, `${MISUSE.largeDeferred}; free them directly`);
      }
    }
    // Same diagnosis as free; an ALLOCATED object past stale views retries.
    checkFreeable(s, p);
    return s.freeDeferred(p);
  }
  const heap = s.heap;
  const row = s.limboRow;
  const u32 = s.u32;
  let waiting = -1;
  // The owner keeps its ring's lock from an append until its next
  // collect (every COLLECT_EVERY appends, or the microtask after the
  // current job),
  // so that most deferred frees touch no atomic at all; the entries go
  // in unstamped (limbo.ts stampRow).
  if (s.ringHeld || (u32[row + HOT_L_LOCK] === 0 && cas(u32, row + HOT_L_LOCK, 0, s.lockId) === 0)) {
    s.ringHeld = true;
    const count = u32[row + HOT_L_COUNT]!;
    if (count < HOT_L_INLINE && u32[row + HOT_L_RING] === 0 && s.spill.length === 0) {
      // The usual case: room in the inline ring (appendRetired, unrolled).
      let i = u32[row + HOT_L_HEAD]! + count;
      if (i >= HOT_L_INLINE) i -= HOT_L_INLINE;
      u32[row + HOT_L_PENDING] = p;
      s.st[o] = ST_RETIRED;
      const e = row + HOT_L_HEADER + 2 * i;
      u32[e] = p;
      u32[e + 1] = HOT_UNSTAMPED;
      u32[row + HOT_L_COUNT] = waiting = count + 1;
      u32[row + HOT_L_PENDING] = 0;
    } else {
      if (s.spill.length !== 0) unspill(s);
      if (appendRetired(heap, row, p, s.id)) waiting = rowCount(heap.u32, row);
    }
  } else {
    waiting = appendContended(s, p);
  }
  if (waiting < 0) {
    s.st[o] = ST_RETIRED;
    s.spill.push(p);
  }
  if (++s.sinceCollect >= COLLECT_EVERY) collectSome(s);
  else if (!s.collectScheduled) s.collectScheduled = later(s.collector);
}

/**
 * freeDeferred found its ring locked by a collector, which holds it for
 * a few hundred nanoseconds unless it is descheduled: try for a while
 * before spilling (a spill list dies with its agent). Returns the ring's
 * count after the append (the lock then stays held, as in freeDeferred),
 * or -1 to spill.
 */
function appendContended(s: AllocatorState, p: number): number {
  const heap = s.heap;
  const row = s.limboRow;
  for (let i = 0; i < SPILL_AFTER_TRIES; i++) {
    if (!tryLockRow(heap, row, s.lockId)) continue;
    s.ringHeld = true;
    if (s.spill.length !== 0) unspill(s);
    return appendRetired(heap, row, p, s.id) ? rowCount(heap.u32, row) : -1;
  }
  return -1;
}

/** @internal Releases this agent's ring lock if it holds it. */
export function releaseRing(s: AllocatorState): void {
  if (!s.ringHeld) return;
  s.ringHeld = false;
  // A released slot's lock was let go by its releaser, and may be a new agent's now.
  if (s.i32[s.cacheRec + HOT_OWNER] === s.ownerGen) unlockRow(s.heap, s.limboRow);
}

/** @internal Moves spilled entries into this agent's ring (lock held), as far as it can grow. */
export function unspill(s: AllocatorState): void {
  const heap = s.heap;
  let n = 0;
  while (n < s.spill.length) {
    const p = s.spill[n]!;
    // appendRetired marks the (already RETIRED) object again: harmless.
    if (!appendRetired(heap, s.limboRow, p, s.id)) break;
    n++;
  }
  s.spill.splice(0, n);
}

/** @internal This agent's deferred frees still waiting for a grace period. */
export function deferredPending(s: AllocatorState): number {
  return rowCount(s.u32, s.limboRow) + s.spill.length;
}

/** @internal Allocator.retiredObjects (which see). */
export function retiredObjects(s: AllocatorState): number {
  const u32 = s.heap.u32;
  let n = s.spill.length;
  for (let slot = 0; slot < s.heap.maxSlots; slot++) {
    const row = limboRowAt(u32, s.R, s.classes, s.heap.maxSlots, slot);
    if (row !== 0) n += rowCount(u32, row);
  }
  return n;
}

/**
 * The periodic collect of a busy agent (every COLLECT_EVERY deferred
 * frees): one epoch advance at most, which frees what the previous
 * collect stamped; what this one stamps goes at the next. Half the
 * traffic on the shared epoch word, for a ring that holds two rounds
 * (2 x COLLECT_EVERY = LIMBO_INLINE: the ring stays inline).
 */
function collectSome(s: AllocatorState): void {
  collect(s, false, 1);
  // Also when the ring could not be collected: the next try is a round away.
  s.sinceCollect = 0;
}

/** @internal Allocator.collectDeferred (which see), with up to `advances` epoch advances. */
export function collect(s: AllocatorState, everyAgent: boolean, advances: number): number {
  if (s.detached) return 0;
  if (s.i32[s.cacheRec + HOT_OWNER] !== s.ownerGen) {
    // A stale handle (its slot was released while it ran; maybe its
    // collect microtask): the ring is not its own any more.
    s.ringHeld = false;
    return 0;
  }
  const heap = s.heap;
  const row = s.limboRow;
  const orphans = load(s.u32, s.R + AllocatorHeader.LIMBO_ORPHANS) !== 0;
  if (!everyAgent && !orphans && rowCount(s.u32, row) === 0 && s.spill.length === 0) {
    releaseRing(s);
    return 0;
  }
  if (s.ringHeld || tryLockRow(heap, row, s.lockId)) {
    s.ringHeld = true;
    if (s.spill.length !== 0) unspill(s);
    if (rowCount(heap.u32, row) > 0) collectLocked(heap, row, s.pushRetired, advances, s.sinceCollect);
    s.sinceCollect = 0;
    releaseRing(s);
    settleRetired(s);
  }
  if (everyAgent || orphans) collectOthers(s, everyAgent);
  return deferredPending(s);
}

/** Collects from the other slots' rings: every one, or only those marked ORPHAN. */
function collectOthers(s: AllocatorState, every: boolean): void {
  const heap = s.heap;
  const me = heap.slot + 1;
  for (let slot = 0; slot < heap.maxSlots; slot++) {
    if (slot === heap.slot) continue;
    const u32 = heap.u32;
    const row = limboRowAt(u32, s.R, s.classes, heap.maxSlots, slot);
    if (row === 0) continue;
    if (rowCount(u32, row) === 0 && u32[row + LimboRow.ORPHAN] === 0) continue;
    if (!every && u32[row + LimboRow.ORPHAN] === 0) continue;
    if (!tryLockRow(heap, row, me)) continue;
    collectLocked(heap, row, s.pushRetired, 2);
    if (rowCount(heap.u32, row) === 0) clearOrphan(heap.u32, s.R, row);
    unlockRow(heap, row);
    settleRetired(s);
  }
}

/**
 * @internal
 * Makes the function that puts objects taken out of a limbo ring into
 * this agent's caches (limbo.ts PushRetired): each one FREE and on its
 * class's list before the next, no watermark acted on (settleRetired does
 * that once the take is over). Debug mode, or a cache row this agent no
 * longer owns (a stale handle), goes through free() object by object
 * instead.
 */
export function retiredPusher(s: AllocatorState): PushRetired {
  return (ring: number, head: number, cap: number, k: number): void => {
    const i32 = s.i32;
    if (s.retireThroughFree || i32[s.cacheRec + HOT_OWNER] !== s.ownerGen) {
      for (let m = 0, j = head; m < k; m++, j = j + 1 < cap ? j + 1 : 0) {
        const p = s.i32[ring + 2 * j]!;
        s.st[p >>> 4] = HOT_ALLOCATED;
        s.free(p);
      }
      return;
    }
    const st = s.st;
    const tags = s.tags;
    const pageShift = s.pageShift;
    const cacheRec = s.cacheRec;
    const touched = s.retiredTouched;
    // Ring entries and objects lie below 2 GiB: Int32 words hold them.
    for (let m = 0, j = head; m < k; m++) {
      const p = i32[ring + 2 * j]!;
      j = j + 1 < cap ? j + 1 : 0;
      const c = (tags[p >>> pageShift]! >>> 4) & 63;
      const rec = cacheRec + c * HOT_ROW;
      st[p >>> 4] = HOT_FREE;
      i32[p >>> 2] = i32[rec]!;
      i32[rec] = p;
      i32[rec + HOT_COUNT]!++;
      i32[rec + HOT_FREES]++;
      touched[c] = 1;
    }
  };
}

/** After a collect: the classes that took objects from limbo rings trim (now, or in the microtask) if above high. */
function settleRetired(s: AllocatorState): void {
  const touched = s.retiredTouched;
  for (let c = 0; c < s.classes; c++) {
    if (touched[c] === 0) continue;
    touched[c] = 0;
    const rec = s.cacheRec + c * HOT_ROW;
    const n = s.i32[rec + HOT_COUNT]!;
    if (n > s.high[c]!) kickTrim(s, c, n);
  }
}

/** Diagnoses a pointer freeDeferred's fast path refused (throws), or returns to retry it. */
function checkFreeable(s: AllocatorState, p: unknown): void {
  if (typeof p !== 'number' || !Number.isInteger(p)) {
    throw typeError('bad-argument', `freeDeferred(${describe(p)}): ${MISUSE.notInteger}`);
  }
  const heap = s.heap;
  if (p < 0 || p >= heap.maxPages * heap.pageSize) throw badPointer('freeDeferred', p, MISUSE.outsideHeap);
  if (p >= heap.viewBytes) heap.refresh();
  if (p >= heap.viewBytes || p >>> s.pageShift >= heap.committedPages()) {
    throw badPointer('freeDeferred', p, `${MISUSE.outsideHeap} (beyond its committed pages)`);
  }
  const tag = s.tags[p >>> s.pageShift]!;
  const kind = tagKind(tag);
  if (kind !== KIND_SLAB) throw badPointer('freeDeferred', p, 'not allocated: not a slab object');
  if (tagAllocator(tag) !== s.id) {
    throw badPointer('freeDeferred', p, `${MISUSE.wrongAllocator}: the object belongs to allocator ${tagAllocator(tag)}, not ${s.id}`);
  }
  if ((p & 15) !== 0) throw badPointer('freeDeferred', p, `${MISUSE.unalignedFree}: objects are 16-byte aligned`);
  const st = s.st[p >>> 4];
  if (st === ST_FREE || st === ST_SHRINKING) throw badPointer('freeDeferred', p, MISUSE.doubleFree);
  if (st === ST_RETIRED) throw badPointer('freeDeferred', p, `${MISUSE.doubleFree}: already freed with freeDeferred, waiting for a grace period`);
  if (st === ST_NONE) throw badPointer('freeDeferred', p, MISUSE.notObjectStart);
}
