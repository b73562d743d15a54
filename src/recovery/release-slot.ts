/**
 * The survivor protocol: what an agent does for a slot whose agent is gone
 * (worker.terminate() runs no cleanup in the worker), in order.
 *
 *   0. Take the slot: ATTACHED or RESERVED -> RELEASING (a CAS; the
 *      generation must match the caller's, if given).
 *   For every live allocator the dead agent had attached (its slot flag
 *   set), named meanwhile in this agent's slot row (SlotRow.USING: a
 *   destroy() deciding waits for it, ../heap/using.ts):
 *   1. its limbo row of the dead slot: the ring lock and a take in flight
 *      are repaired (the lock is freed first: step 2 may retire into it);
 *   2. every other slot's limbo row the dead agent was collecting from;
 *   3. the map the allocator holds elements of, if any: the bucket lock
 *      and the write in flight, its entry quota (map-slot.ts); elements it
 *      had in its hands are retired into the dead slot's ring;
 *   4. its caches: the depot lock, the batch in flight, an unfinished
 *      carve, and every cached object back to the depot (caches.ts); after
 *      the map, since a logged element is still the writer's;
 *   5. its limbo row is marked orphaned: live agents collect it;
 *   6. its slot flag cleared, the last write: from here the allocator may
 *      be destroyed.
 *   Then for the heap:
 *   7. the run its claim record names (pages it was taking or freeing);
 *   8. its pin and using words cleared (it no longer holds grace periods
 *      back, nor a destroy);
 *   9. the slot counted as released and made FREE (the final store).
 *
 * The objects the dead agent held live stay allocated (counted as live by
 * their allocators' stats() and listed by destroy()'s leak report).
 */
import { AllocatorEntry, AllocatorHeader, ALLOC_CLOSING, ALLOC_LIVE, ALLOC_ROW_WORDS, HeapHeader, SLOT_ATTACHED, SLOT_FREE, SLOT_RELEASING, SLOT_RESERVED, SLOT_ROW_WORDS, SlotRow } from '../shm/layout.js';
import { add, cas, load, store } from '../shm/atomic.js';
import type { HeapCore } from '../heap/core.js';
import { recoverClaim } from '../heap/runs.js';
import { markOrphan, releaseDeadCollector, repairLimboRow } from '../reclaim/limbo.js';
import { limboRowAt, slotFlagWord } from '../alloc/region.js';
import { clearUsing, useAllocator, useForRelease } from '../heap/using.js';
import { releaseMapSlot } from './map-slot.js';
import { releaseSlotCaches } from './caches.js';
import { rangeError } from '../errors.js';

/**
 * Releases `slot` (see the steps above). The caller must be sure the
 * agent no longer runs. Returns false when the slot was not ATTACHED or
 * RESERVED, or when `gen` is given and the slot's generation differs.
 */
export function releaseSlot(heap: HeapCore, slot: number, gen: number | undefined): boolean {
  const u32 = heap.u32;
  const w = heap.slotWord + slot * SLOT_ROW_WORDS;
  let st = load(u32, w + SlotRow.STATE);
  for (;;) {
    if (st !== SLOT_ATTACHED && st !== SLOT_RESERVED) return false;
    if (gen !== undefined && load(u32, w + SlotRow.GEN) !== gen) return false;
    // An agent that attached may have left locks and half-done work to
    // repair, which takes a slot of our own (lock ids, SlotRow.USING).
    if (st === SLOT_ATTACHED && heap.slot < 0) throw rangeError('detached', `releaseSlot(${slot}): this agent has detached from the heap; a slot whose agent attached is released from an attached agent`);
    const seen = cas(u32, w + SlotRow.STATE, st, SLOT_RELEASING);
    if (seen === st) break;
    st = seen;
  }
  // The allocator the dead agent was attaching, or working in as it
  // released another slot (it may hold that allocator's locks though its
  // flag there is 0); a destroy of it waits for this release.
  const using = load(u32, w + SlotRow.USING);
  // A reserved slot's agent never attached the heap: it holds nothing.
  const ids = st === SLOT_RESERVED ? 0 : heap.maxAllocators;
  for (let id = 1; id <= ids; id++) {
    const row = heap.allocWord + id * ALLOC_ROW_WORDS;
    const state = load(heap.u32, row + AllocatorEntry.STATE);
    if (state !== ALLOC_LIVE && state !== ALLOC_CLOSING) continue;
    // Named in our slot row once it is found live (a destroy() deciding is
    // waited out), until we are done: a destroy() waits for us
    // (../heap/using.ts).
    if (!useForRelease(heap, id)) continue;
    try {
      heap.refresh();
      const map = load(heap.u32, row + AllocatorEntry.MAP);
      const R = load(heap.u32, row + AllocatorEntry.REGION) >>> 2;
      const classes = heap.u32[R + AllocatorHeader.CLASSES]!;
      // An allocator the dead agent did not have attached holds nothing of
      // it (a detach gives everything back before it clears the flag; an
      // attach sets it before it uses anything), and another agent may
      // destroy it as we speak.
      const flag = R + slotFlagWord(classes) + slot;
      if (load(heap.u32, flag) === 0 && using !== id) continue;
      // (An attach that died before taking its slot block left nothing here.)
      const limbo = limboRowAt(heap.u32, R, classes, heap.maxSlots, slot);
      if (limbo === 0) continue;
      repairLimboRow(heap, R, limbo, slot);
      for (let s = 0; s < heap.maxSlots; s++) {
        const other = limboRowAt(heap.u32, R, classes, heap.maxSlots, s);
        if (s !== slot && other !== 0) releaseDeadCollector(heap, other, slot);
      }
      if (map !== 0) releaseMapSlot({ heap, map, slot, allocId: id, limboRow: limbo });
      releaseSlotCaches(heap.u32, heap, R, heap.maxSlots, slot, heap.slot + 1);
      markOrphan(heap.u32, R, limbo);
      // Last: the dead agent no longer counts as attached, and a destroy()
      // may go ahead; nothing of the allocator is touched after this.
      store(heap.u32, flag, 0);
    } finally {
      useAllocator(heap, 0);
    }
  }
  recoverClaim(heap, slot);
  heap.clearPin(slot);
  clearUsing(heap, slot);
  add(heap.u32, heap.hdr + HeapHeader.SLOTS_RELEASED, 1);
  store(heap.u32, w + SlotRow.STATE, SLOT_FREE);
  return true;
}
