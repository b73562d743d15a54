/**
 * Limbo rings: where an allocator's deferred frees wait for their grace
 * period, in shared memory (row layout: L in ../shm/layout.ts).
 *
 * Each worker slot has one ring per allocator. Its agent appends to it;
 * any agent may collect from any ring (it frees what has passed its grace
 * period into its own cache); whoever releases a dead slot repairs its
 * ring. All of them hold the row's try-lock while they touch it, and
 * nobody ever waits for that lock: a busy ring is skipped (collectors) or
 * appended to later (its owner spills meanwhile). Because the rings are
 * shared, an agent that goes idle, detaches or dies leaves its waiting
 * objects where the others reclaim them.
 *
 * Functions here take the heap and read its current views (heap.u32,
 * heap.st) at each step: a ring region or a waiting object may lie in
 * pages another agent committed, and refresh() renews the views.
 */
import { AllocatorHeader, LimboRow, LIMBO_HEADER_WORDS, LIMBO_INLINE, ST_RETIRED } from '../shm/layout.js';
import { add, cas, load, store } from '../shm/atomic.js';
import { currentEpoch, gracePassed, tryAdvance } from './epoch.js';
import type { HeapCore } from '../heap/core.js';

/** The epoch word of an entry no collector has stamped yet (no epoch is 0). */
export const UNSTAMPED = 0;

/** Byte offset of the row's ring entries (the inline ring until it overflows). */
function ringAt(u32: Uint32Array, row: number): number {
  return u32[row + LimboRow.RING]! || (row + LIMBO_HEADER_WORDS) * 4;
}

function capOf(u32: Uint32Array, row: number): number {
  return u32[row + LimboRow.CAP]! || LIMBO_INLINE;
}

/** Makes sure this agent's views cover [0, end). */
function reach(heap: HeapCore, end: number): void {
  if (end > heap.viewBytes) heap.refresh();
}

export function tryLockRow(heap: HeapCore, row: number, me: number): boolean {
  const u32 = heap.u32;
  return u32[row + LimboRow.LOCK] === 0 && cas(u32, row + LimboRow.LOCK, 0, me) === 0;
}

export function unlockRow(heap: HeapCore, row: number): void {
  store(heap.u32, row + LimboRow.LOCK, 0);
}

/** Entries waiting in the ring (racy unless the lock is held). */
export function rowCount(u32: Uint32Array, row: number): number {
  return u32[row + LimboRow.COUNT]!;
}

/**
 * Makes room for one more entry, moving the ring into a region of twice
 * the capacity when it is full. Lock held. False when the heap has no
 * page for it.
 */
function ensureRoom(heap: HeapCore, row: number, owner: number): boolean {
  let u32 = heap.u32;
  const cap = capOf(u32, row);
  const count = u32[row + LimboRow.COUNT]!;
  if (count < cap) return true;
  const newCap = Math.max(cap * 2, heap.pageSize / 8);
  const at = heap.takeRegion(newCap * 8, owner);
  if (at === 0) return false;
  u32 = heap.u32;
  const old = moveRing(u32, row, at, newCap);
  if (old !== 0) heap.giveRegion(old);
  return true;
}

/** Copies the entries, oldest first, to a ring at byte offset `to` of capacity `newCap`; gives a region ring back. */
function moveRing(u32: Uint32Array, row: number, to: number, newCap: number): number {
  const from = ringAt(u32, row);
  const cap = capOf(u32, row);
  const head = u32[row + LimboRow.HEAD]!;
  const count = u32[row + LimboRow.COUNT]!;
  const src = from >>> 2;
  const dst = to >>> 2;
  for (let i = 0; i < count; i++) {
    const j = head + i < cap ? head + i : head + i - cap;
    u32[dst + 2 * i] = u32[src + 2 * j]!;
    u32[dst + 2 * i + 1] = u32[src + 2 * j + 1]!;
  }
  const inline = (row + LIMBO_HEADER_WORDS) * 4;
  u32[row + LimboRow.RING] = to === inline ? 0 : to;
  u32[row + LimboRow.CAP] = to === inline ? 0 : newCap;
  u32[row + LimboRow.HEAD] = 0;
  return from === inline ? 0 : from;
}

/**
 * Records object p in the ring, not yet stamped (epoch UNSTAMPED: the
 * next collector stamps it, see stampRow); turns its state byte RETIRED.
 * Lock held. False (and nothing changed) when the ring is full and cannot
 * grow.
 */
export function appendRetired(heap: HeapCore, row: number, p: number, owner: number): boolean {
  if (!ensureRoom(heap, row, owner)) return false;
  const u32 = heap.u32;
  const ring = ringAt(u32, row);
  const cap = capOf(u32, row);
  reach(heap, ring + cap * 8);
  u32[row + LimboRow.PENDING] = p;
  heap.st[p >>> 4] = ST_RETIRED;
  const head = u32[row + LimboRow.HEAD]!;
  const count = u32[row + LimboRow.COUNT]!;
  const i = head + count < cap ? head + count : head + count - cap;
  u32[(ring >>> 2) + 2 * i] = p;
  u32[(ring >>> 2) + 2 * i + 1] = UNSTAMPED;
  u32[row + LimboRow.COUNT] = count + 1;
  u32[row + LimboRow.PENDING] = 0;
  return true;
}

/** Epoch word of the i-th entry from the head. */
function epochAt(u32: Uint32Array, ring: number, cap: number, head: number, i: number): number {
  const j = head + i;
  return u32[ring + 2 * (j < cap ? j : j - cap) + 1]!;
}

/**
 * Stamps the entries not yet stamped (always the newest ones) with epoch
 * `now`, which the caller read after it took the lock: every entry was
 * unlinked before its append, the append before the lock was last
 * released, so `now` is at least the epoch of each unlink, which is all
 * a retire epoch must be. Stamping late only makes an object wait longer;
 * it spares the retiring agent an atomic load per deferred free. Oldest
 * first, so that a collector that dies midway leaves the unstamped ones
 * newest. Lock held.
 *
 * `fresh`: how many entries the caller knows it appended since the ring
 * was last stamped (its own ring), or -1. A hint, checked: if the entry
 * before those is not stamped, the unstamped suffix is found by walking
 * back from the tail. (Too large a hint only stamps some entries again,
 * later: they wait longer.)
 */
export function stampRow(heap: HeapCore, row: number, now: number, fresh = -1): void {
  const u32 = heap.u32;
  const cap = capOf(u32, row);
  const ring = ringAt(u32, row) >>> 2;
  const head = u32[row + LimboRow.HEAD]!;
  const count = u32[row + LimboRow.COUNT]!;
  let k = count - fresh;
  if (fresh < 0 || k < 0 || (k > 0 && epochAt(u32, ring, cap, head, k - 1) === UNSTAMPED)) {
    // Walk back over the unstamped suffix.
    k = count;
    while (k > 0 && epochAt(u32, ring, cap, head, k - 1) === UNSTAMPED) k--;
  }
  for (; k < count; k++) {
    const j = head + k;
    u32[ring + 2 * (j < cap ? j : j - cap) + 1] = now;
  }
}

/** Epoch of the newest entry (the ring must not be empty). */
export function newestEpoch(heap: HeapCore, row: number): number {
  const u32 = heap.u32;
  const cap = capOf(u32, row);
  const last = u32[row + LimboRow.HEAD]! + u32[row + LimboRow.COUNT]! - 1;
  return u32[(ringAt(u32, row) >>> 2) + 2 * (last < cap ? last : last - cap) + 1]!;
}

/**
 * Puts k objects, taken out of a ring, into the collector's caches: the
 * entries at ring positions head, head + 1, ... (mod cap) of the ring at
 * word `ring`. Each object must go FREE into a cache list one at a time,
 * so that a collector that dies midway leaves each either still RETIRED
 * or in its cache (repairTake). It must not move objects on to the global
 * pool (no trim): the take is still recorded while it runs.
 */
export type PushRetired = (ring: number, head: number, cap: number, k: number) => void;

/** Most entries one take record covers. */
const TAKE_MAX = 64;

/**
 * Takes out of the ring every entry whose grace period has passed at
 * epoch `now` (oldest first, so it stops at the first that has not, or
 * at one not stamped yet: stamp first with stampRow), in takes of up to
 * TAKE_MAX entries: each take is recorded (take head, take count, then
 * taking = its size), head and count move past it, `push` puts its
 * objects, still RETIRED, into the collector's caches, and the record is
 * cleared. Lock held. A region ring that has shrunk to half the inline
 * capacity moves back inline. Returns the entries taken.
 */
export function collectRow(heap: HeapCore, row: number, now: number, push: PushRetired): number {
  let u32 = heap.u32;
  const ring = ringAt(u32, row) >>> 2;
  const cap = capOf(u32, row);
  reach(heap, ring * 4 + cap * 8);
  let taken = 0;
  for (;;) {
    u32 = heap.u32;
    const head = u32[row + LimboRow.HEAD]!;
    const count = u32[row + LimboRow.COUNT]!;
    let k = 0;
    let end = 0;
    for (let j = head; k < count && k < TAKE_MAX; k++) {
      const retired = u32[ring + 2 * j + 1]!;
      if (retired === UNSTAMPED || !gracePassed(retired, now)) break;
      const p = u32[ring + 2 * j]!;
      if (p > end) end = p;
      j = j + 1 < cap ? j + 1 : 0;
    }
    if (k === 0) break;
    // Objects may lie in pages committed after this agent's views.
    reach(heap, end + 16);
    u32 = heap.u32;
    // Recorded first: a collector that dies inside the take leaves its
    // releaser enough to finish it or put the objects back (repairTake).
    u32[row + LimboRow.TAKE_HEAD] = head;
    u32[row + LimboRow.TAKE_COUNT] = count;
    u32[row + LimboRow.TAKING] = k;
    u32[row + LimboRow.HEAD] = head + k < cap ? head + k : head + k - cap;
    u32[row + LimboRow.COUNT] = count - k;
    push(ring, head, cap, k);
    heap.u32[row + LimboRow.TAKING] = 0;
    taken += k;
    if (k < TAKE_MAX) break;
  }
  u32 = heap.u32;
  if (u32[row + LimboRow.RING] !== 0 && u32[row + LimboRow.COUNT]! <= LIMBO_INLINE / 2) {
    const old = moveRing(u32, row, (row + LIMBO_HEADER_WORDS) * 4, LIMBO_INLINE);
    if (old !== 0) heap.giveRegion(old);
  }
  return taken;
}

/**
 * A collector's work on a row whose lock it holds: stamps the new
 * entries with the epoch read now (`fresh`: see stampRow), moves the
 * global epoch on (at most `advances` times, while the newest entry needs
 * it and the readers allow it; two are enough for everything stamped
 * now), then frees every entry whose grace period has passed. Returns how
 * many it freed.
 */
export function collectLocked(heap: HeapCore, row: number, push: PushRetired, advances: number, fresh = -1): number {
  let now = currentEpoch(heap);
  stampRow(heap, row, now, fresh);
  for (let round = 0; round < advances && !gracePassed(newestEpoch(heap, row), now); round++) {
    const next = tryAdvance(heap);
    if (next === now) break;
    now = next;
  }
  return collectRow(heap, row, now, push);
}

/** Marks the row ORPHAN (its agent is gone, entries remain) once, counting it in AllocatorHeader.LIMBO_ORPHANS. */
export function markOrphan(u32: Uint32Array, R: number, row: number): void {
  if (u32[row + LimboRow.COUNT]! > 0 && cas(u32, row + LimboRow.ORPHAN, 0, 1) === 0) add(u32, R + AllocatorHeader.LIMBO_ORPHANS, 1);
}

/** Clears the ORPHAN mark (the row has drained, or a new agent owns it). */
export function clearOrphan(u32: Uint32Array, R: number, row: number): void {
  if (load(u32, row + LimboRow.ORPHAN) === 1 && cas(u32, row + LimboRow.ORPHAN, 1, 0) === 1) add(u32, R + AllocatorHeader.LIMBO_ORPHANS, -1);
}

/**
 * Releaser of a dead slot: if its agent died holding the ring's lock,
 * records the object it was retiring (if that got as far as RETIRED and
 * not yet into the ring) and releases the lock; then marks the row ORPHAN
 * if anything waits in it. The caller makes sure the agent no longer runs.
 */
export function repairLimboRow(heap: HeapCore, R: number, row: number, slot: number): void {
  const u32 = heap.u32;
  if (load(u32, row + LimboRow.LOCK) === slot + 1) {
    repairTake(heap, row);
    const p = u32[row + LimboRow.PENDING]!;
    if (p !== 0) {
      reach(heap, p + 16);
      const ring = ringAt(u32, row);
      const cap = capOf(u32, row);
      const count = u32[row + LimboRow.COUNT]!;
      const last = u32[row + LimboRow.HEAD]! + count - 1;
      const inRing = count > 0 && u32[(ring >>> 2) + 2 * (last < cap ? last : last - cap)] === p;
      if (!inRing && heap.st[p >>> 4] === ST_RETIRED) {
        // The owner grew the ring before it set pending: there is room.
        const i = last + 1 < cap ? last + 1 : last + 1 - cap;
        u32[(ring >>> 2) + 2 * i] = p;
        u32[(ring >>> 2) + 2 * i + 1] = UNSTAMPED;
        u32[row + LimboRow.COUNT] = count + 1;
      }
      u32[row + LimboRow.PENDING] = 0;
    }
    store(u32, row + LimboRow.LOCK, 0);
  }
  markOrphan(u32, R, row);
}

/**
 * A collector died taking entries out of this row (TAKING = how many): if
 * head or count had moved, makes both agree with the take and puts every
 * object of it that had not yet reached the collector's cache (still
 * RETIRED) back at the tail, unstamped, to wait again; those in its cache
 * go back to the pool with the cache. If neither had moved, nothing was
 * taken (a take of the whole ring moves head round to where it was: then
 * only the count tells). The caller holds the dead collector's lock on the
 * row, before the dead slot's caches are flushed.
 */
function repairTake(heap: HeapCore, row: number): void {
  let u32 = heap.u32;
  const k = u32[row + LimboRow.TAKING]!;
  if (k === 0) return;
  const th = u32[row + LimboRow.TAKE_HEAD]!;
  const tc = u32[row + LimboRow.TAKE_COUNT]!;
  if (u32[row + LimboRow.HEAD] !== th || u32[row + LimboRow.COUNT] !== tc) {
    const ring = ringAt(u32, row) >>> 2;
    const cap = capOf(u32, row);
    const head = th + k < cap ? th + k : th + k - cap;
    let count = tc - k;
    u32[row + LimboRow.HEAD] = head;
    u32[row + LimboRow.COUNT] = count;
    for (let m = 0, j = th; m < k; m++) {
      const p = u32[ring + 2 * j]!;
      j = j + 1 < cap ? j + 1 : 0;
      reach(heap, p + 16);
      u32 = heap.u32;
      if (heap.st[p >>> 4] !== ST_RETIRED) continue;
      // The free slots after the tail are the taken ones, in order, and
      // this one has been read: the tail never overtakes the reading.
      const tail = head + count < cap ? head + count : head + count - cap;
      u32[ring + 2 * tail] = p;
      u32[ring + 2 * tail + 1] = UNSTAMPED;
      u32[row + LimboRow.COUNT] = ++count;
    }
  }
  u32[row + LimboRow.TAKING] = 0;
}

/** Releaser of a dead slot: a lock it held on another slot's row (it was collecting there) is repaired and released. */
export function releaseDeadCollector(heap: HeapCore, row: number, slot: number): void {
  if (load(heap.u32, row + LimboRow.LOCK) !== slot + 1) return;
  repairTake(heap, row);
  store(heap.u32, row + LimboRow.LOCK, 0);
}

/** Gives back the region ring of a row (destroy; the ring must be empty). */
export function dropRing(heap: HeapCore, row: number): void {
  const at = heap.u32[row + LimboRow.RING]!;
  if (at !== 0) {
    heap.u32[row + LimboRow.RING] = 0;
    heap.u32[row + LimboRow.CAP] = 0;
    heap.giveRegion(at);
  }
}

/** Every entry of a row, for validate(): [pointer, epoch] pairs. */
export function rowEntries(u32: Uint32Array, row: number): number[] {
  const out: number[] = [];
  const ring = ringAt(u32, row) >>> 2;
  const cap = capOf(u32, row);
  const head = u32[row + LimboRow.HEAD]!;
  const count = Math.min(u32[row + LimboRow.COUNT]!, cap);
  for (let i = 0; i < count; i++) {
    const j = head + i < cap ? head + i : head + i - cap;
    out.push(u32[ring + 2 * j]!);
  }
  return out;
}
