/**
 * What a survivor does for a map when it releases a dead agent's slot
 * (Heap.releaseSlot): the dead agent's bucket lock and its unused entry
 * quota. Layout: ./layout.ts.
 *
 * A writer changes a chain only while it holds the bucket's lock, and each
 * change is one atomic store that leaves the chain consistent: an insert is
 * published by the unlocking store itself, a replace or delete in the middle
 * of the chain by the store into the predecessor. So a chain left locked by
 * a dead writer is consistent as it stands; clearing the lock bit is the
 * whole repair. What the writer had in its hands and not yet linked or
 * retired (a new element, an unlinked old one) stays allocated: a leak
 * bounded by one or two elements per dead writer.
 */
import { add, cas, load } from '../shm/atomic.js';
import { M, MAP_HEADER_WORDS, MAP_LIVE, MAP_SLOT_WORDS, MS } from './layout.js';

export function releaseMapSlot(u32: Uint32Array, map: number, maxSlots: number, slot: number): void {
  const W = map >>> 2;
  if (load(u32, W + M.STATE) !== MAP_LIVE) return;
  const row = W + MAP_HEADER_WORDS + slot * MAP_SLOT_WORDS;
  const locked = u32[row + MS.LOCKED_BUCKET]!;
  if (locked !== 0) {
    const w = W + MAP_HEADER_WORDS + maxSlots * MAP_SLOT_WORDS + (locked - 1);
    // The record is set only while the slot holds the lock (hashmap.ts,
    // lock/unlock), so the lock bit is the dead writer's.
    const v = load(u32, w);
    if ((v & 1) !== 0) cas(u32, w, v, (v & ~1) >>> 0);
    u32[row + MS.LOCKED_BUCKET] = 0;
  }
  const quota = u32[row + MS.QUOTA]! | 0;
  if (quota !== 0) add(u32, W + M.RESERVED, -quota);
  u32[row + MS.QUOTA] = 0;
}
