/**
 * How an attach (or a survivor releasing a dead slot) and a destroy of the
 * same allocator meet, through two words that are never given back: the
 * allocator's table row (state) and each slot row's `using` word
 * (../shm/layout.ts, SlotRow.USING).
 *
 *   user (attach, release):          destroy():
 *     using := id                      state := CLOSING
 *     state == LIVE? else              wait until no other slot's
 *       using := 0, refuse               using names id
 *       (a release waits out           count the slot flags: others
 *        CLOSING and tries again)        attached? state := LIVE, refuse
 *     ... work in the allocator ...    else state := DESTROYED
 *     using := 0
 *
 * Both sides store, then load the other's word (sequentially consistent
 * atomics): a user that finds the state LIVE has its `using` seen by the
 * destroy, which waits for it to finish (an attach has then set its slot
 * flag); one that stored too late finds CLOSING or DESTROYED and touches
 * nothing. An attach refuses CLOSING (stale-handle, even if the destroy
 * then gives up); a release waits for the decision, since a destroy that
 * gives up because the dead agent's flag is still set needs that release.
 * So no agent writes into the allocator's region once destroy() has
 * decided, and the pages it gives back are nobody's.
 */
import { AllocatorEntry, ALLOC_CLOSING, ALLOC_DESTROYED, ALLOC_LIVE, ALLOC_ROW_WORDS, SLOT_ROW_WORDS, SlotRow } from '../shm/layout.js';
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
 * destroy() deciding: marks allocator `id` CLOSING (no attach starts in
 * it any more; a release waits for the decision), waits up to `ms` for
 * every other slot that names it to finish, then asks `others` how many
 * other agents have it attached. Decided: DESTROYED when none (returns
 * 0), else LIVE again (returns their count, or -1 when a slot still named
 * it after `ms`: an agent stalled, or dead, in an attach).
 */
export function closeAllocator(h: UsingHost, id: number, ms: number, others: () => number): number {
  const state = h.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE;
  store(h.u32, state, ALLOC_CLOSING);
  const deadline = Date.now() + ms;
  for (let s = 0; s < h.maxSlots; s++) {
    if (s === h.slot) continue;
    while (load(h.u32, h.slotWord + s * SLOT_ROW_WORDS + SlotRow.USING) === id) {
      if (Date.now() > deadline) {
        store(h.u32, state, ALLOC_LIVE);
        return -1;
      }
    }
  }
  const n = others();
  store(h.u32, state, n === 0 ? ALLOC_DESTROYED : ALLOC_LIVE);
  return n;
}

/** A destroy that gave up after closeAllocator (HashMap.destroy, when clearing the map threw): the allocator is LIVE again. */
export function reopenAllocator(h: UsingHost, id: number): void {
  store(h.u32, h.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE, ALLOC_LIVE);
}

/**
 * A release about to work in allocator `id`: waits while a destroy() is
 * deciding (CLOSING, at most its own wait and a count of flags), then
 * names `id` in this agent's slot row and says whether it is LIVE (else
 * the name is taken back). The caller clears the name when it is done.
 */
export function useForRelease(h: UsingHost, id: number): boolean {
  const state = h.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE;
  for (;;) {
    while (load(h.u32, state) === ALLOC_CLOSING);
    useAllocator(h, id);
    const now = load(h.u32, state);
    if (now === ALLOC_LIVE) return true;
    useAllocator(h, 0);
    if (now !== ALLOC_CLOSING) return false;
  }
}
