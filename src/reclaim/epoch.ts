/**
 * Grace periods by epochs: the allocator's deferred free (the kernel's
 * bpf_mem_cache_free_rcu) and the hash map's safe reuse of elements.
 *
 * Algorithm (epoch-based reclamation over the heap's worker slots):
 * - A reader pins before it follows shared pointers: it stores the global
 *   epoch E into its slot's pin word, and unpins (stores 0) when done.
 *   Pin and unpin are one Atomics.load and two Atomics.store; nobody waits.
 * - An object unlinked from every shared structure is retired into the
 *   retiring agent's limbo ring, and stamped with an epoch r read at or
 *   after the unlink (by the ring's next collector, in one batch: a later
 *   epoch only makes it wait longer).
 * - The global epoch moves from E to E + 1 only when every ATTACHED slot
 *   is either unpinned or pinned at E (any agent may try; a CAS decides).
 * - An object retired at r is freed once the global epoch reaches r + 2:
 *   by then every slot has been unpinned or re-pinned since r + 1 began,
 *   so no reader that could have seen the object before it was unlinked
 *   is still reading.
 *
 * Invariants
 *   pin(s) in {0} U [.., E]  for every attached slot s: a pin may lag (it
 *     was stored just as the epoch moved, or, for a map's pin, which
 *     stores a plain read of the epoch, by an agent descheduled between
 *     the read and the store); a lagging pin holds the next advance back
 *     until it is unpinned, never lets one through early. While a slot is
 *     pinned, the epoch stays at most one past any value read after its
 *     pin store became visible.
 *   limbo entries are in non-decreasing epoch order (epochs only grow).
 *
 * An idle agent is unpinned and never holds reclamation back; a released
 * (dead) slot is not ATTACHED and stops counting at once. An agent pinned
 * for a long time holds every free back: keep pinned sections short (the
 * map pins for one operation).
 */
import { HeapHeader, SlotRow, SLOT_ATTACHED, SLOT_ROW_WORDS } from '../shm/layout.js';
import { cas, load, store } from '../shm/atomic.js';

/** What the epoch code needs from the heap. */
export interface EpochHost {
  readonly u32: Uint32Array;
  readonly hdr: number;
  readonly slotWord: number;
  readonly maxSlots: number;
  readonly slot: number;
}

export function currentEpoch(h: EpochHost): number {
  return load(h.u32, h.hdr + HeapHeader.EPOCH);
}

/** Announces that this agent reads shared pointers from now on. */
export function pin(h: EpochHost): void {
  const u32 = h.u32;
  const w = h.slotWord + h.slot * SLOT_ROW_WORDS + SlotRow.PIN;
  const e = load(u32, h.hdr + HeapHeader.EPOCH);
  store(u32, w, e);
  // If the epoch moved between the load and the store, take the new one so
  // this reader does not hold the next advance back needlessly.
  const now = load(u32, h.hdr + HeapHeader.EPOCH);
  if (now !== e) store(u32, w, now);
}

/** Announces that this agent holds no shared pointer any more. */
export function unpin(h: EpochHost): void {
  store(h.u32, h.slotWord + h.slot * SLOT_ROW_WORDS + SlotRow.PIN, 0);
}

/** Clears the pin of a slot (attach, release). */
export function clearPin(u32: Uint32Array, slotWord: number, slot: number): void {
  store(u32, slotWord + slot * SLOT_ROW_WORDS + SlotRow.PIN, 0);
}

/**
 * Moves the global epoch forward by one if every attached slot is
 * quiescent or pinned at the current epoch. Returns the epoch after the
 * attempt. Cost: one or two atomic loads per slot ever used.
 */
export function tryAdvance(h: EpochHost): number {
  const u32 = h.u32;
  const e = load(u32, h.hdr + HeapHeader.EPOCH);
  // Slots above the highest ever used were never pinned.
  const used = load(u32, h.hdr + HeapHeader.SLOTS_USED);
  for (let s = 0; s < used; s++) {
    const row = h.slotWord + s * SLOT_ROW_WORDS;
    const p = load(u32, row + SlotRow.PIN);
    if (p === 0 || p === e) continue;
    if (load(u32, row + SlotRow.STATE) !== SLOT_ATTACHED) continue;
    return e;
  }
  const seen = cas(u32, h.hdr + HeapHeader.EPOCH, e, (e + 1) >>> 0 || 1);
  return seen === e ? (e + 1) >>> 0 || 1 : seen;
}

/**
 * True once an object retired at `retired` may be reused at global epoch
 * `now`: two advances since. The epoch skips 0 when it wraps, so an
 * interval across the wrap is one advance shorter than its difference.
 */
export function gracePassed(retired: number, now: number): boolean {
  return ((now - retired) >>> 0) - (now < retired ? 1 : 0) >= 2;
}
