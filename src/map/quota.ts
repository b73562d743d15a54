/**
 * The element count against maxEntries, without a hot shared word: each
 * worker slot counts its own inserts and deletes (COUNT in its slot row),
 * and reserves entries from the shared counter RESERVED in batches (QUOTA),
 * as the kernel's per-CPU counter does. Every step is bracketed in the
 * slot row (OP_QUOTA, MOVING) so that a survivor can settle the count of a
 * writer that died mid-step (../recovery/map-slot.ts; layout: ./layout.ts).
 */
import { add, cas, load } from '../shm/atomic.js';
import type { HeapCore } from '../heap/core.js';
import type { Allocator } from '../alloc/allocator.js';
import { MapHeader, MAP_HEADER_WORDS, MAP_SLOT_WORDS, MapSlotRow } from './layout.js';
import { MapState } from './state.js';

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

  protected constructor(heap: HeapCore, region: number, elems: Allocator) {
    super(heap, region, elems);
    this.quotaBatch = quotaBatch(this.maxEntries, heap.maxSlots);
  }

  /**
   * @internal
   * Reserves one entry against maxEntries: from this slot's quota, else a
   * batch of quotaBatch from RESERVED, else exactly one. Every change of
   * RESERVED is a CAS that keeps it <= maxEntries, so no transient
   * overshoot makes another agent see a full map. Quotas held by other
   * slots (at most maxWorkers x (2 x quotaBatch - 1), which quotaBatch
   * keeps under maxEntries / 2) can make FULL come early; small maps get
   * quotaBatch 0 and count exactly.
   */
  takeEntry(): boolean {
    const i32 = this.i32;
    const row = this.rowWord;
    if (i32[row + MapSlotRow.QUOTA]! === 0) {
      const u32 = this.u32;
      const r = this.W + MapHeader.RESERVED;
      const B = this.quotaBatch;
      for (;;) {
        const n = load(u32, r);
        const take = B > 0 && n + B <= this.maxEntries ? B : 1;
        if (n + take > this.maxEntries) return false;
        // MOVING brackets the atomic step, for a survivor (./layout.ts).
        i32[row + MapSlotRow.MOVING] = take;
        if (cas(u32, r, n, n + take) === n) {
          i32[row + MapSlotRow.QUOTA] = take;
          i32[row + MapSlotRow.MOVING] = 0;
          break;
        }
        i32[row + MapSlotRow.MOVING] = 0;
      }
    }
    // Taken iff QUOTA = OP_QUOTA - 1 (../recovery/map-slot.ts).
    i32[row + MapSlotRow.OP_QUOTA] = i32[row + MapSlotRow.QUOTA]!;
    i32[row + MapSlotRow.QUOTA]!--;
    return true;
  }

  /** @internal Gives one entry back: to this slot's quota, returning a batch to RESERVED when it holds two. */
  giveEntry(): void {
    const i32 = this.i32;
    const row = this.rowWord;
    const B = this.quotaBatch;
    // Given back iff QUOTA = OP_QUOTA + 1, or MOVING is set (../recovery/map-slot.ts).
    const n = i32[row + MapSlotRow.QUOTA]! + 1;
    i32[row + MapSlotRow.OP_QUOTA] = n - 1;
    i32[row + MapSlotRow.QUOTA] = n;
    if (n >= 2 * B) {
      const back = B > 0 ? B : 1;
      // Out of QUOTA before RESERVED: a death in between overcounts
      // RESERVED (FULL a little early), never undercounts it.
      i32[row + MapSlotRow.MOVING] = back;
      i32[row + MapSlotRow.QUOTA] = n - back;
      i32[row + MapSlotRow.OP_QUOTA] = n - back - 1;
      add(this.u32, this.W + MapHeader.RESERVED, -back);
      i32[row + MapSlotRow.MOVING] = 0;
    }
  }

  /** @internal Gives this slot's whole unused quota back to RESERVED (detach). */
  returnQuota(): void {
    const q = this.rowWord + MapSlotRow.QUOTA;
    const quota = this.i32[q]!;
    if (quota !== 0) add(this.u32, this.W + MapHeader.RESERVED, -quota);
    this.i32[q] = 0;
  }

  /** @internal Sum over worker slots of one slot-row word: COUNT gives the element count (racy while writers run). */
  sumSlotRows(word: number): number {
    let n = 0;
    const base = this.W + MAP_HEADER_WORDS;
    for (let s = 0; s < this.heap.maxSlots; s++) n += this.i32[base + s * MAP_SLOT_WORDS + word]!;
    return n;
  }
}
