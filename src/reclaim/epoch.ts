/**
 * Grace periods by epochs: the allocator's deferred free (the kernel's
 * bpf_mem_cache_free_rcu) and the hash map's safe reuse of elements.
 *
 * Algorithm (epoch-based reclamation over the heap's worker slots):
 * - A reader pins before it follows shared pointers: it stores the global
 *   epoch E into its slot's pin word, and unpins (stores 0) when done.
 *   Sections nest (one depth per agent); pin and unpin are one plain read
 *   and one Atomics.store each; nobody waits.
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
 *     stores a plain read of the epoch, and the agent may be descheduled
 *     between the read and the store); a lagging pin holds the next advance back
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

/** What pinning needs: the epoch host and this agent's nesting depth. */
export interface PinHost extends EpochHost {
  /**
   * Read-side sections this agent is in: one pin word per slot, so one
   * depth per agent, whatever the map; only the outermost enter and leave
   * store the pin.
   */
  pinDepth: number;
}

/** Word index of this agent's pin word. */
export function pinWordOf(h: EpochHost): number {
  return h.slotWord + h.slot * SLOT_ROW_WORDS + SlotRow.PIN;
}

/**
 * Enters a read-side section: from now on this agent may hold shared
 * pointers that others retire. The outermost one stores the current epoch
 * into the pin word. A plain read of the epoch: a stale value is an older
 * epoch, and a pin older than the current epoch only holds the next
 * advance back (tryAdvance lets an epoch go only past pins equal to it),
 * never lets one through early. The store is atomic: it must be visible
 * before this reader loads any shared pointer. No allocation.
 */
export function enterRead(h: PinHost, u32: Uint32Array, pinWord: number): void {
  if (h.pinDepth++ === 0) store(u32, pinWord, u32[h.hdr + HeapHeader.EPOCH]!);
}

/** Leaves a read-side section; the outermost one clears the pin word. No allocation. */
export function leaveRead(h: PinHost, u32: Uint32Array, pinWord: number): void {
  if (--h.pinDepth === 0) store(u32, pinWord, 0);
}

/** enterRead for this agent's own pin word. */
export function pin(h: PinHost): void {
  enterRead(h, h.u32, pinWordOf(h));
}

/** leaveRead for this agent's own pin word. */
export function unpin(h: PinHost): void {
  leaveRead(h, h.u32, pinWordOf(h));
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
