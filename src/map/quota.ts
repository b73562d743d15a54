/**
 * The element count against maxEntries, without a hot shared word: each
 * worker slot counts its own inserts and deletes (COUNT in its slot row),
 * and reserves entries from the shared counter RESERVED in batches (QUOTA),
 * as the kernel's per-CPU counter does. Every step is bracketed in the
 * slot row (OP_QUOTA, MOVING) so that a survivor can settle the count of a
 * writer that died mid-step (../recovery/map-slot.ts; layout: ./layout.ts).
 *
 * FULL comes exactly at maxEntries, as the kernel's percpu_counter_compare
 * makes E2BIG exact: far from the limit a slot reserves a batch; once
 * RESERVED is within maxSlots x quotaBatch of maxEntries (the low water)
 * slots reserve one entry at a time and give every freed entry straight
 * back; and a writer that finds RESERVED at maxEntries takes the unused
 * quota other slots hold (idle, detached-without-returning or dead ones
 * alike) back into RESERVED with a cas on their QUOTA word before it
 * reports FULL. So a slot's own changes of its QUOTA are cas/add too (on
 * its own line: uncontended), while count() stays a sum of plain words.
 */
import { add, cas, load, store } from '../shm/atomic.js';
import type { HeapCore } from '../heap/core.js';
import type { Allocator } from '../alloc/allocator.js';
import { MapHeader, MAP_HEADER_WORDS, MAP_SLOT_WORDS, MapSlotRow } from './layout.js';
import { MapState } from './state.js';

/** How long a writer that finds the map full waits for other slots' entries in flight (a write or a batch move in progress) before it reports FULL. */
const RECLAIM_SPIN_MS = 20;
/** Largest entry quota a slot takes at once from the shared counter. */
const QUOTA_BATCH_MAX = 32;

/**
 * @internal
 * Entries a slot reserves at once: at most QUOTA_BATCH_MAX, and small
 * enough that what other slots hold unused stays under maxEntries / 2
 * (see takeEntry); 0 for small maps, which then count exactly.
 */
export function quotaBatch(maxEntries: number, maxSlots: number): number {
  return Math.min(QUOTA_BATCH_MAX, Math.floor(maxEntries / (4 * maxSlots)));
}

/** @hidden HashMap's layer of entry accounting (the layers: ./state.ts). */
export class MapQuota extends MapState {
  /** @internal Entries a slot reserves at once (see takeEntry). */
  readonly quotaBatch: number;
  /** @internal RESERVED above maxEntries - lowWater: slots reserve one entry at a time and hoard none (see takeEntry). */
  readonly lowWater: number;

  protected constructor(heap: HeapCore, region: number, elems: Allocator) {
    super(heap, region, elems);
    this.quotaBatch = quotaBatch(this.maxEntries, heap.maxSlots);
    this.lowWater = this.quotaBatch * heap.maxSlots;
  }

  /**
   * @internal
   * Reserves one entry against maxEntries: from this slot's quota, else
   * (refill) a batch of quotaBatch from RESERVED while RESERVED is below
   * the low water, else exactly one; when RESERVED is at maxEntries, other
   * slots' unused quota is reclaimed first. Every change of RESERVED is a
   * cas or add that keeps it <= maxEntries. False: the map holds
   * maxEntries elements (or writes in flight hold the rest).
   */
  takeEntry(): boolean {
    const u32 = this.u32;
    const row = this.rowWord;
    const qw = row + MapSlotRow.QUOTA;
    for (;;) {
      const q = u32[qw]! | 0;
      if (q > 0) {
        // Taken iff QUOTA = OP_QUOTA - 1 (../recovery/map-slot.ts). A cas:
        // a writer near the limit may take this slot's quota meanwhile.
        this.i32[row + MapSlotRow.OP_QUOTA] = q;
        if (cas(u32, qw, q, q - 1) === q) return true;
      } else if (!this.refill()) {
        return false;
      }
    }
  }

  /** @internal takeEntry's slow path: moves entries from RESERVED to this slot's QUOTA (which is 0 here). */
  private refill(): boolean {
    const u32 = this.u32;
    const i32 = this.i32;
    const row = this.rowWord;
    const r = this.W + MapHeader.RESERVED;
    const B = this.quotaBatch;
    const max = this.maxEntries;
    let deadline = 0;
    for (;;) {
      const n = load(u32, r);
      const take = B > 0 && n + B <= max - this.lowWater ? B : 1;
      if (n + take > max) {
        if (this.reclaimQuotas() > 0) continue;
        if (!this.othersInFlight()) return false;
        // Entries in flight in another slot (a batch move, or a quota a
        // writer is taking from): they land within moments.
        const now = Date.now();
        if (deadline === 0) deadline = now + RECLAIM_SPIN_MS;
        else if (now > deadline) return false;
        continue;
      }
      // MOVING brackets the atomic step, for a survivor (./layout.ts).
      i32[row + MapSlotRow.MOVING] = take;
      if (cas(u32, r, n, n + take) === n) {
        // QUOTA is 0, and other slots take only positive quotas: no race.
        store(u32, row + MapSlotRow.QUOTA, take);
        i32[row + MapSlotRow.MOVING] = 0;
        return true;
      }
      i32[row + MapSlotRow.MOVING] = 0;
    }
  }

  /**
   * @internal
   * Takes the unused quota of every other slot that has no write or move
   * in flight back into RESERVED (a cas on its QUOTA, so its owner's own
   * cas fails and it refills). Returns how many entries came back. This
   * slot's MOVING covers the step between the cas and RESERVED, for a
   * survivor (RESERVED_SLACK).
   */
  reclaimQuotas(): number {
    const u32 = this.u32;
    const i32 = this.i32;
    const base = this.W + MAP_HEADER_WORDS;
    const mine = this.heap.slot;
    let got = 0;
    for (let s = 0; s < this.heap.maxSlots; s++) {
      if (s === mine) continue;
      const row = base + s * MAP_SLOT_WORDS;
      const q = load(u32, row + MapSlotRow.QUOTA) | 0;
      if (q <= 0 || load(u32, row + MapSlotRow.OP) !== 0 || load(u32, row + MapSlotRow.MOVING) !== 0) continue;
      i32[this.rowWord + MapSlotRow.MOVING] = q;
      if (cas(u32, row + MapSlotRow.QUOTA, q, 0) === q) {
        add(u32, this.W + MapHeader.RESERVED, -q);
        got += q;
      }
      i32[this.rowWord + MapSlotRow.MOVING] = 0;
    }
    return got;
  }

  /** @internal Whether another slot has entries in flight: a move between its QUOTA and RESERVED, or a write that may be taking from its quota. */
  private othersInFlight(): boolean {
    const u32 = this.u32;
    const base = this.W + MAP_HEADER_WORDS;
    for (let s = 0; s < this.heap.maxSlots; s++) {
      if (s === this.heap.slot) continue;
      const row = base + s * MAP_SLOT_WORDS;
      if (load(u32, row + MapSlotRow.MOVING) !== 0) return true;
      if ((load(u32, row + MapSlotRow.QUOTA) | 0) > 0 && load(u32, row + MapSlotRow.OP) !== 0) return true;
    }
    return false;
  }

  /**
   * @internal
   * Gives one entry back: to this slot's quota, returning a batch to
   * RESERVED when it holds two, and all of it near the limit (RESERVED
   * above the low water), so that no freed entry is hoarded there.
   */
  giveEntry(): void {
    const u32 = this.u32;
    const i32 = this.i32;
    const row = this.rowWord;
    const qw = row + MapSlotRow.QUOTA;
    const B = this.quotaBatch;
    // Given back iff QUOTA = OP_QUOTA + 1, or MOVING is set (../recovery/map-slot.ts).
    i32[row + MapSlotRow.OP_QUOTA] = u32[qw]! | 0;
    const n = (add(u32, qw, 1) | 0) + 1;
    if (n >= 2 * B || u32[this.W + MapHeader.RESERVED]! > this.maxEntries - this.lowWater) {
      const back = n >= 2 * B && B > 0 ? B : n;
      // Out of QUOTA before RESERVED: a death in between overcounts
      // RESERVED (FULL a little early), never undercounts it. A failed
      // cas: another slot took the quota meanwhile.
      i32[row + MapSlotRow.MOVING] = back;
      if (cas(u32, qw, n, n - back) === n) {
        i32[row + MapSlotRow.OP_QUOTA] = n - back - 1;
        add(u32, this.W + MapHeader.RESERVED, -back);
      }
      i32[row + MapSlotRow.MOVING] = 0;
    }
  }

  /** @internal Gives this slot's whole unused quota back to RESERVED (detach). */
  returnQuota(): void {
    const q = this.rowWord + MapSlotRow.QUOTA;
    for (;;) {
      const quota = load(this.u32, q) | 0;
      if (quota <= 0) return;
      if (cas(this.u32, q, quota, 0) === quota) {
        add(this.u32, this.W + MapHeader.RESERVED, -quota);
        return;
      }
    }
  }

  /** @internal Sum over worker slots of one slot-row word: COUNT gives the element count (racy while writers run). */
  sumSlotRows(word: number): number {
    let n = 0;
    const base = this.W + MAP_HEADER_WORDS;
    for (let s = 0; s < this.heap.maxSlots; s++) n += this.i32[base + s * MAP_SLOT_WORDS + word]!;
    return n;
  }
}
