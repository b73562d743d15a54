/**
 * What a survivor does for a map when it releases a dead agent's slot
 * (Heap.releaseSlot). Layout and the slot row's records: ./layout.ts.
 *
 * 1. The bucket lock. A writer names the bucket in its INTENT word from
 *    just before its cas until after its unlocking store, and live writers
 *    that fail the cas clear it at once. So if the dead slot names bucket
 *    b, b stays locked, and no live slot names b for QUIET_MS of watching
 *    (a live writer names it for its whole hold, or for the instant
 *    around a failed cas), the dead slot holds it. If that cannot be
 *    settled within ALIEN_WAIT_MS the lock is left alone (writers there
 *    get BUSY) and so is the write in flight.
 * 2. The write in flight (OP != 0). Holding that bucket's lock (the dead
 *    writer's, or taken for the purpose) the chain cannot change. If the
 *    dead writer held it, the chain is as it left it, so whether the
 *    logged element is reachable says on which side of its linking or
 *    unlinking store the writer died. If it had released it, the write
 *    was published by that release (an insert that took the lock counts
 *    itself first), and another agent may have deleted or replaced the
 *    element since: reachability no longer tells, the record does. The
 *    survivor completes the bookkeeping that follows that store, or rolls
 *    back what preceded it: the slot's COUNT, the entry it took from or
 *    gave to its quota (an entry to give back goes straight to RESERVED),
 *    and the elements: an unlinked victim or an unused new element is
 *    retired into the dead slot's limbo ring (reused after a grace period,
 *    like any deleted element; the others collect that ring). A delete of
 *    a chain's first element is unlinked by the store that releases the
 *    lock, after its count and its entry went: found still linked with its
 *    entry given, it is completed (unlinked and retired), not rolled back.
 *    The record is cleared before the writer frees anything, so a logged
 *    element is still the dead writer's. A per-worker value it was writing
 *    in place (its seqlock odd) is zeroed and the seqlock made even.
 * 3. Entry reservations: its unused quota goes back to RESERVED (unless a
 *    writer near the limit took it back first: ../map/quota.ts). If it
 *    died inside a step that moves entries between its quota (or a mark,
 *    its own or another slot's) and RESERVED (MOVING != 0), which side it
 *    died on cannot be known: the amount is added to
 *    MapHeader.RESERVED_SLACK, the bound validate() allows.
 *
 * clear() and the batch deletes log each element as a delete, so an agent
 * terminated inside them is settled element by element too.
 */
import { add, cas, load, store } from '../shm/atomic.js';
import { appendRetired, tryLockRow, unlockRow } from '../reclaim/limbo.js';
import { SlotRow, SLOT_ATTACHED, SLOT_ROW_WORDS, ST_ALLOCATED } from '../shm/layout.js';
import type { HeapCore } from '../heap/core.js';
import {
  E_NEXT,
  MapHeader,
  MAP_HEADER_WORDS,
  MAP_LIVE,
  MAP_SLOT_WORDS,
  MapSlotRow,
  OP_DELETE,
  OP_INSERT,
  OP_QUOTA_NONE,
  OP_REPLACE,
  OP_SLOT_WRITE,
  markEntries,
} from '../map/layout.js';

/** How long a survivor watches for a live writer that names a locked bucket. */
const ALIEN_WAIT_MS = 100;
/** How long a locked bucket must stay unnamed by live slots to be the dead one's. */
const QUIET_MS = 3;
/** How long a survivor tries to take a bucket lock held by a live writer. */
const LOCK_WAIT_MS = 2000;

/** What releaseMapSlot needs besides the heap: the element allocator and the dead slot's limbo row for it. */
export interface MapRelease {
  heap: HeapCore;
  /** Byte offset of the map region. */
  map: number;
  slot: number;
  /** Element allocator id and the dead slot's limbo row in it (word index). */
  allocId: number;
  limboRow: number;
}

export function releaseMapSlot(r: MapRelease): void {
  const { heap, slot } = r;
  const u32 = heap.u32;
  const W = r.map >>> 2;
  if (load(u32, W + MapHeader.STATE) !== MAP_LIVE) return;
  const maxSlots = heap.maxSlots;
  const row = W + MAP_HEADER_WORDS + slot * MAP_SLOT_WORDS;
  const buckets = W + MAP_HEADER_WORDS + maxSlots * MAP_SLOT_WORDS;
  const intent = u32[row + MapSlotRow.INTENT]!;
  let held = -1; // bucket whose lock we hold now
  if (intent !== 0 && deadHolds(heap, W, buckets, intent - 1, slot)) held = intent - 1;
  u32[row + MapSlotRow.INTENT] = 0;

  const op = u32[row + MapSlotRow.OP]!;
  if (op === OP_SLOT_WRITE) {
    const e = u32[row + MapSlotRow.OP_ELEM]!;
    const rec = e + u32[W + MapHeader.VALUE_OFF]! + u32[W + MapHeader.VALUE_STRIDE]! * slot;
    const seq = load(u32, rec >>> 2);
    if ((seq & 1) !== 0) {
      heap.u8.fill(0, rec + 8, rec + 8 + u32[W + MapHeader.VALUE_SIZE]!);
      store(u32, rec >>> 2, (seq + 1) >>> 0);
    }
  } else if (op !== 0) {
    const b = u32[row + MapSlotRow.OP_BUCKET]! - 1;
    // Whether the dead writer still held the lock of its write's bucket:
    // if not, it had released it, with the store that publishes the write.
    const deadHeld = held === b;
    if (held !== b && held >= 0) unlockBucket(u32, buckets + held);
    if (held !== b) held = lockBucket(u32, buckets + b) ? b : -1;
    if (held === b) {
      redoOrUndo(r, W, row, buckets + b, op, deadHeld);
    }
  }
  u32[row + MapSlotRow.OP] = 0;
  if (held >= 0) unlockBucket(u32, buckets + held);

  const moving = u32[row + MapSlotRow.MOVING]!;
  if (moving !== 0) add(u32, W + MapHeader.RESERVED_SLACK, moving);
  u32[row + MapSlotRow.MOVING] = 0;
  // A cas: a live writer near the limit may be settling a mark on it (../map/quota.ts, reclaimQuotas).
  for (;;) {
    const quota = load(u32, row + MapSlotRow.QUOTA) | 0;
    if (quota === 0) break;
    if (cas(u32, row + MapSlotRow.QUOTA, quota >>> 0, 0) === quota >>> 0) {
      // Negative: a taker's mark, not settled (../map/quota.ts): the same entries.
      add(u32, W + MapHeader.RESERVED, -markEntries(quota));
      break;
    }
  }
}

/** True when the dead slot holds bucket b's lock (see 1. above). */
function deadHolds(heap: HeapCore, W: number, buckets: number, b: number, dead: number): boolean {
  const u32 = heap.u32;
  // A lock can be released and taken again between two looks, so one
  // look is not enough: the bucket must stay locked and unnamed by any
  // live slot for QUIET_MS of continuous watching (live writers hold a
  // lock for well under a microsecond and name it all the while).
  const start = Date.now();
  let quietSince = -1;
  for (;;) {
    if ((load(u32, buckets + b) & 1) === 0) return false;
    let named = false;
    for (let s = 0; s < heap.maxSlots && !named; s++) {
      if (s === dead) continue;
      if (load(u32, heap.slotWord + s * SLOT_ROW_WORDS + SlotRow.STATE) !== SLOT_ATTACHED) continue;
      if (load(u32, W + MAP_HEADER_WORDS + s * MAP_SLOT_WORDS + MapSlotRow.INTENT) === b + 1) named = true;
    }
    const now = Date.now();
    if (named) quietSince = -1;
    else if (quietSince < 0) quietSince = now;
    else if (now - quietSince >= QUIET_MS) return true;
    if (now - start > ALIEN_WAIT_MS) return false;
  }
}

function lockBucket(u32: Uint32Array, w: number): boolean {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let i = 0; ; i++) {
    const v = load(u32, w);
    if ((v & 1) === 0 && cas(u32, w, v, (v | 1) >>> 0) === v) return true;
    if ((i & 1023) === 1023 && Date.now() > deadline) return false;
  }
}

function unlockBucket(u32: Uint32Array, w: number): void {
  store(u32, w, (load(u32, w) & ~1) >>> 0);
}

function reachable(heap: HeapCore, bucketWord: number, e: number): boolean {
  let u32 = heap.u32;
  let p = (load(u32, bucketWord) & ~1) >>> 0;
  for (let n = 0; p !== 0 && n < 1 << 24; n++) {
    if (p === e) return true;
    if (p + 16 > heap.viewBytes) {
      heap.refresh();
      u32 = heap.u32;
    }
    p = load(u32, (p >>> 2) + E_NEXT);
  }
  return false;
}

/**
 * Completes or rolls back the dead writer's operation; the bucket's lock
 * is held (by the survivor now). deadHeld: the dead writer held it, so the
 * chain is as it left it; else it had released it, which it does only
 * once its write is published (or was refused, or never got the lock).
 *
 * Its entry: the record's OP_QUOTA is OP_QUOTA_NONE until the step that
 * takes or gives it (../map/quota.ts), then QUOTA before that step, so
 * QUOTA = OP_QUOTA - 1 says taken, QUOTA = OP_QUOTA + 1 or MOVING (a
 * batch on its way back after the give) says given. An entry to give back
 * goes straight to RESERVED: QUOTA may hold a taker's mark, which a live
 * taker may settle meanwhile (it saw INTENT clear), so a survivor changes
 * QUOTA only by cas (the final loop of releaseMapSlot).
 */
function redoOrUndo(r: MapRelease, W: number, row: number, bucketWord: number, op: number, deadHeld: boolean): void {
  const heap = r.heap;
  const u32 = heap.u32;
  const e = u32[row + MapSlotRow.OP_ELEM]!;
  const count0 = u32[row + MapSlotRow.OP_COUNT]! | 0;
  const count = u32[row + MapSlotRow.COUNT]! | 0;
  const quota0 = u32[row + MapSlotRow.OP_QUOTA]! | 0;
  const quota = u32[row + MapSlotRow.QUOTA]! | 0;
  const moving = u32[row + MapSlotRow.MOVING]! !== 0;
  const taken = quota0 !== OP_QUOTA_NONE && quota === quota0 - 1;
  const given = quota0 !== OP_QUOTA_NONE && (moving || quota === quota0 + 1);
  if (op === OP_INSERT) {
    // Counted (COUNT++ comes under the lock, after the entry is taken)
    // and the lock released by the writer: the insert was published,
    // whether or not another agent has deleted the element since (which
    // then retired it: it is not the dead writer's any more).
    const published = !deadHeld && count === count0 + 1;
    if (published || reachable(heap, bucketWord, e)) {
      u32[row + MapSlotRow.COUNT] = count0 + 1;
    } else {
      u32[row + MapSlotRow.COUNT] = count0;
      if (taken) add(u32, W + MapHeader.RESERVED, -1);
      retire(r, e);
    }
  } else if (op === OP_REPLACE) {
    // Published (the lock released), the old element is the writer's to
    // retire; the new one is in the map, or another agent removed it.
    if (!deadHeld || reachable(heap, bucketWord, e)) retire(r, u32[row + MapSlotRow.OP_OLD]!);
    else retire(r, e);
  } else if (op === OP_DELETE) {
    if (reachable(heap, bucketWord, e)) {
      if (given) {
        // A chain's first element is unlinked by the store that releases
        // the lock, after the count and the entry went: complete it.
        unlinkFrom(heap, bucketWord, e);
        u32[row + MapSlotRow.COUNT] = count0 - 1;
        retire(r, e);
      } else {
        u32[row + MapSlotRow.COUNT] = count0;
      }
    } else {
      u32[row + MapSlotRow.COUNT] = count0 - 1;
      if (!given) add(u32, W + MapHeader.RESERVED, -1);
      retire(r, e);
    }
  }
}

/** Unlinks element e from the chain of bucketWord (whose lock the caller holds). */
function unlinkFrom(heap: HeapCore, bucketWord: number, e: number): void {
  if (e + 16 > heap.viewBytes) heap.refresh();
  let u32 = heap.u32;
  const next = load(u32, (e >>> 2) + E_NEXT);
  const first = (load(u32, bucketWord) & ~1) >>> 0;
  if (first === e) {
    store(u32, bucketWord, (next | 1) >>> 0);
    return;
  }
  for (let p = first, n = 0; p !== 0 && n < 1 << 24; n++) {
    if (p + 16 > heap.viewBytes) heap.refresh();
    u32 = heap.u32;
    const q = load(u32, (p >>> 2) + E_NEXT);
    if (q === e) {
      store(u32, (p >>> 2) + E_NEXT, next);
      return;
    }
    p = q;
  }
}

/** Retires element e (still the dead writer's: ALLOCATED) into the dead slot's limbo ring. */
function retire(r: MapRelease, e: number): void {
  const heap = r.heap;
  if (e === 0) return;
  if (e + 16 > heap.viewBytes) heap.refresh();
  if (heap.st[e >>> 4] !== ST_ALLOCATED) return;
  const me = heap.slot + 1;
  for (let i = 0; i < 1_000_000; i++) {
    if (tryLockRow(heap, r.limboRow, me)) {
      appendRetired(heap, r.limboRow, e, r.allocId);
      unlockRow(heap, r.limboRow);
      return;
    }
  }
}
