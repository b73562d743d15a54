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
 * quota of other slots (idle or dead ones alike) back into RESERVED
 * before it reports FULL (reclaimQuotas).
 *
 * A slot changes its own QUOTA with plain loads and stores, and only
 * while it holds a bucket lock (INTENT set before the lock's cas, which
 * orders that store before the QUOTA load): the insert and delete paths
 * pay no atomic operation for it. Taking another slot's quota is then a
 * Dekker handshake: the taker marks the quota (cas q -> a negative mark,
 * markEntries), and settles it (cas mark -> 0, and q back to RESERVED)
 * only once it has seen the
 * owner's INTENT clear after its mark: an owner that read q before the
 * mark had named its bucket before, and overwrites the mark with its
 * blind store before it clears INTENT, undoing the take (the second cas
 * fails). An owner that finds a mark settles it itself (claimMark).
 */
import { add, cas, load } from '../shm/atomic.js';
import type { HeapCore } from '../heap/core.js';
import type { Allocator } from '../alloc/allocator.js';
import { MapHeader, MAP_HEADER_WORDS, MAP_SLOT_WORDS, MapSlotRow, markEntries } from './layout.js';
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
  /** @internal This agent's marks made so far (their tags: markEntries). */
  markSeq: number;
  /**
   * @internal This agent's last refill found RESERVED above the low water
   * (it took one entry): it gives freed entries straight back. Read by
   * giveEntry instead of RESERVED, a word every agent's batch moves write.
   */
  nearLimit: boolean;

  protected constructor(heap: HeapCore, region: number, elems: Allocator) {
    super(heap, region, elems);
    this.quotaBatch = quotaBatch(this.maxEntries, heap.maxSlots);
    this.lowWater = this.quotaBatch * heap.maxSlots;
    this.markSeq = 0;
    this.nearLimit = false;
  }

  /**
   * @internal
   * Reserves one entry against maxEntries (the caller holds a bucket
   * lock): from this slot's quota, else (refill) a batch of quotaBatch
   * from RESERVED while RESERVED is below the low water, else exactly
   * one; when RESERVED is at maxEntries, other slots' unused quota is
   * taken back first. Every change of RESERVED keeps it <= maxEntries.
   * False: the map holds maxEntries elements (or writes in flight hold
   * the rest).
   */
  takeEntry(): boolean {
    const i32 = this.i32;
    const row = this.rowWord;
    let q = i32[row + MapSlotRow.QUOTA]!;
    if (q <= 0) {
      if (q < 0) this.claimMark(q);
      if (!this.refill()) return false;
      q = i32[row + MapSlotRow.QUOTA]!;
    }
    // Taken iff QUOTA = OP_QUOTA - 1 (../recovery/map-slot.ts): OP_QUOTA
    // was OP_QUOTA_NONE through the settled mark and the refill above.
    i32[row + MapSlotRow.OP_QUOTA] = q;
    i32[row + MapSlotRow.QUOTA] = q - 1;
    return true;
  }

  /**
   * @internal
   * This slot's quota was marked by a taker: settle it here, its entries
   * back to RESERVED, unless a taker does (another may mark over the mark
   * meanwhile: settle the mark found). QUOTA is 0 after: takers mark only
   * a nonzero quota.
   */
  private claimMark(mark: number): void {
    const qw = this.rowWord + MapSlotRow.QUOTA;
    for (let m = mark; m < 0; m = load(this.u32, qw) | 0) {
      if (settleMark(this, qw, m)) return;
    }
  }

  /** @internal A new mark of q entries, tagged by this agent's slot and attempt. */
  private newMark(q: number): number {
    const tag = ((this.markSeq++ * this.heap.maxSlots + this.heap.slot) % 0x3fffff) + 1;
    return -(q + tag * 256);
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
      const batch = B > 0 && n + B <= max - this.lowWater;
      const take = batch ? B : 1;
      if (n + take > max) {
        if (this.reclaimQuotas() > 0) continue;
        if (!this.othersInFlight()) return false;
        // Entries in flight in another slot (a batch move, a write that
        // may be taking from its quota, a mark not settled): moments.
        const now = Date.now();
        if (deadline === 0) deadline = now + RECLAIM_SPIN_MS;
        else if (now > deadline) return false;
        continue;
      }
      // MOVING brackets the atomic step, for a survivor (./layout.ts).
      i32[row + MapSlotRow.MOVING] = take;
      if (cas(u32, r, n, n + take) === n) {
        // QUOTA is 0 here, and takers mark only positive quotas.
        i32[row + MapSlotRow.QUOTA] = take;
        i32[row + MapSlotRow.MOVING] = 0;
        this.nearLimit = !batch;
        return true;
      }
      i32[row + MapSlotRow.MOVING] = 0;
    }
  }

  /**
   * @internal
   * Takes the unused quota of the other slots back into RESERVED (the
   * handshake above): marks every positive quota of a slot with no write
   * or move in flight, then settles each mark whose owner is seen outside
   * its bucket lock. Returns how many entries came back. This slot's
   * MOVING covers each settling cas and the add to RESERVED, for a
   * survivor (RESERVED_SLACK).
   */
  reclaimQuotas(): number {
    const u32 = this.u32;
    const base = this.W + MAP_HEADER_WORDS;
    const mine = this.heap.slot;
    let got = 0;
    for (let s = 0; s < this.heap.maxSlots; s++) {
      if (s === mine) continue;
      const row = base + s * MAP_SLOT_WORDS;
      const q = load(u32, row + MapSlotRow.QUOTA) | 0;
      if (q === 0) continue;
      if (q > 0 && (load(u32, row + MapSlotRow.OP) !== 0 || load(u32, row + MapSlotRow.MOVING) !== 0 || load(u32, row + MapSlotRow.INTENT) !== 0)) {
        continue; // a slot inside a write: it may be about to use its quota
      }
      // Marked by this taker now, also over a mark another left (so the
      // owner's INTENT is looked at after this mark was made).
      const mark = this.newMark(markEntries(q));
      if (cas(u32, row + MapSlotRow.QUOTA, q >>> 0, mark >>> 0) !== q >>> 0) continue;
      // Settled once the owner is seen outside a bucket lock (an owner
      // holds one for moments; one that stays is stalled or dead: leave
      // the mark, for the owner, a survivor or a later taker).
      let clear = false;
      for (let i = 0; i < 4096 && !clear; i++) clear = load(u32, row + MapSlotRow.INTENT) === 0;
      if (!clear) continue;
      if (settleMark(this, row + MapSlotRow.QUOTA, mark)) got += markEntries(mark);
    }
    return got;
  }

  /** @internal Whether another slot has entries in flight: a move between its QUOTA and RESERVED, a mark, or a write that may be taking from its quota. */
  private othersInFlight(): boolean {
    const u32 = this.u32;
    const base = this.W + MAP_HEADER_WORDS;
    for (let s = 0; s < this.heap.maxSlots; s++) {
      if (s === this.heap.slot) continue;
      const row = base + s * MAP_SLOT_WORDS;
      if (load(u32, row + MapSlotRow.MOVING) !== 0) return true;
      const q = load(u32, row + MapSlotRow.QUOTA) | 0;
      if (q < 0 || (q > 0 && (load(u32, row + MapSlotRow.OP) !== 0 || load(u32, row + MapSlotRow.INTENT) !== 0))) return true;
    }
    return false;
  }

  /**
   * @internal
   * Gives one entry back (the caller holds a bucket lock): to this slot's
   * quota, returning a batch to RESERVED when it holds two, and all of it
   * near the limit (this agent's last refill found RESERVED above the low
   * water), so that little is hoarded there; what a slot still holds when
   * the map fills, reclaimQuotas takes back.
   */
  giveEntry(): void {
    const i32 = this.i32;
    const row = this.rowWord;
    const B = this.quotaBatch;
    let q = i32[row + MapSlotRow.QUOTA]!;
    if (q < 0) {
      this.claimMark(q);
      q = 0;
    }
    // Given back iff QUOTA = OP_QUOTA + 1, or MOVING is set after this
    // store (../recovery/map-slot.ts): OP_QUOTA was OP_QUOTA_NONE through
    // the settled mark above, whose MOVING says nothing of this entry.
    i32[row + MapSlotRow.OP_QUOTA] = q;
    const n = q + 1;
    i32[row + MapSlotRow.QUOTA] = n;
    if (n >= 2 * B || this.nearLimit) {
      const back = n >= 2 * B && B > 0 ? B : n;
      // Out of QUOTA before RESERVED: a death in between overcounts
      // RESERVED (FULL a little early), never undercounts it.
      i32[row + MapSlotRow.MOVING] = back;
      i32[row + MapSlotRow.QUOTA] = n - back;
      i32[row + MapSlotRow.OP_QUOTA] = n - back - 1;
      add(this.u32, this.W + MapHeader.RESERVED, -back);
      i32[row + MapSlotRow.MOVING] = 0;
    }
  }

  /** @internal Gives this slot's whole unused quota back to RESERVED (detach; a mark on it is settled too). */
  returnQuota(): void {
    const q = this.rowWord + MapSlotRow.QUOTA;
    const moving = this.rowWord + MapSlotRow.MOVING;
    for (;;) {
      const quota = load(this.u32, q) | 0;
      if (quota === 0) return;
      // MOVING from before the cas to after the add: an agent terminated
      // in between leaves RESERVED over by at most this (RESERVED_SLACK).
      this.i32[moving] = markEntries(quota);
      if (cas(this.u32, q, quota >>> 0, 0) === quota >>> 0) {
        add(this.u32, this.W + MapHeader.RESERVED, -markEntries(quota));
        this.i32[moving] = 0;
        return;
      }
      this.i32[moving] = 0;
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

/**
 * Settles mark `mark` on the QUOTA word qw (this slot's or another's): a
 * cas to 0, and its entries back into RESERVED. m's MOVING brackets both,
 * from before the cas, so that an agent terminated between them leaves
 * RESERVED over by at most the mark's entries, which the survivor adds to
 * RESERVED_SLACK (if the cas was not done, the mark is still there and
 * counts). False: the word no longer holds that mark.
 */
function settleMark(m: MapQuota, qw: number, mark: number): boolean {
  const moving = m.rowWord + MapSlotRow.MOVING;
  const n = markEntries(mark);
  m.i32[moving] = n;
  const done = cas(m.u32, qw, mark >>> 0, 0) === mark >>> 0;
  if (done) add(m.u32, m.W + MapHeader.RESERVED, -n);
  m.i32[moving] = 0;
  return done;
}
