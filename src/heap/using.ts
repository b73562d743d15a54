/**
 * How an attach (or a survivor releasing a dead slot) and a destroy of the
 * same allocator meet, through two words that are never given back: the
 * allocator's table row (state) and each slot row's `using` word
 * (../shm/layout.ts, SlotRow.USING).
 *
 *   user (attach, release):          destroy():
 *     using := id                      state := DESTROYED
 *     state == LIVE? else              wait until no other slot's
 *       using := 0, refuse               using names id
 *     ... work in the allocator ...    count the slot flags: others
 *     using := 0                         attached? state := LIVE, refuse
 *
 * Both sides store, then load the other's word (sequentially consistent
 * atomics): a user that finds the state LIVE has its `using` seen by the
 * destroy, which waits for it to finish (an attach has then set its slot
 * flag); one that stored too late finds DESTROYED and touches nothing.
 * So no agent writes into the allocator's region once destroy() has
 * decided, and the pages it gives back are nobody's.
 */
import { AllocatorEntry, ALLOC_DESTROYED, ALLOC_LIVE, ALLOC_ROW_WORDS, SLOT_ROW_WORDS, SlotRow } from '../shm/layout.js';
import { load, store } from '../shm/atomic.js';

/** What the handshake reads of the heap. */
export interface UsingHost {
  readonly u32: Uint32Array;
  readonly slotWord: number;
  readonly allocWord: number;
  readonly maxSlots: number;
  readonly slot: number;
}

/**
 * Names allocator `id` in this agent's slot row (0: none), before the
 * caller checks that the allocator is live.
 */
export function useAllocator(h: UsingHost, id: number): void {
  if (h.slot >= 0) store(h.u32, h.slotWord + h.slot * SLOT_ROW_WORDS + SlotRow.USING, id);
}

/** Clears the `using` word of a released slot (its agent is gone). */
export function clearUsing(h: UsingHost, slot: number): void {
  store(h.u32, h.slotWord + slot * SLOT_ROW_WORDS + SlotRow.USING, 0);
}

/** Whether allocator `id` is LIVE now (after useAllocator: see the file's comment). */
export function allocatorLive(h: UsingHost, id: number): boolean {
  return load(h.u32, h.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE) === ALLOC_LIVE;
}

/**
 * destroy() deciding: marks allocator `id` DESTROYED (no attach or
 * release starts in it any more), then waits up to `ms` for every other
 * slot that names it to finish. False (the allocator LIVE again) when one
 * still names it: an agent stalled, or dead, in an attach.
 */
export function closeAllocator(h: UsingHost, id: number, ms: number): boolean {
  store(h.u32, h.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE, ALLOC_DESTROYED);
  const deadline = Date.now() + ms;
  for (let s = 0; s < h.maxSlots; s++) {
    if (s === h.slot) continue;
    while (load(h.u32, h.slotWord + s * SLOT_ROW_WORDS + SlotRow.USING) === id) {
      if (Date.now() > deadline) {
        reopenAllocator(h, id);
        return false;
      }
    }
  }
  return true;
}

/** destroy() refused after closeAllocator: the allocator is LIVE again. */
export function reopenAllocator(h: UsingHost, id: number): void {
  store(h.u32, h.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE, ALLOC_LIVE);
}
