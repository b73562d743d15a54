/**
 * Where things are in an allocator's shared region (layout and diagram in
 * ../shm/layout.ts): its header, one class row per size class, the slots'
 * attach flags, one cache row per (slot, class) and one limbo row per slot.
 */
import { ALLOC_WORDS, CACHE_WORDS, CLASS_WORDS, LIMBO_ROW_WORDS } from '../shm/layout.js';

/** Word offset (from the region start) of the per-slot attach flags. */
export function slotFlagWord(classes: number): number {
  return ALLOC_WORDS + classes * CLASS_WORDS;
}

/**
 * Cache rows start on a 64-byte boundary and each slot's rows are a whole
 * number of 64-byte lines (rows are 16 words), so two agents' caches never
 * share a cache line.
 */
function cacheRowsWord(classes: number, maxSlots: number): number {
  return Math.ceil((slotFlagWord(classes) + maxSlots) / 16) * 16;
}

/** Words in the region of an allocator with `classes` classes. */
export function regionWords(classes: number, maxSlots: number): number {
  return limboRowsWord(classes, maxSlots) + maxSlots * LIMBO_ROW_WORDS;
}

function limboRowsWord(classes: number, maxSlots: number): number {
  return cacheRowsWord(classes, maxSlots) + maxSlots * classes * CACHE_WORDS;
}

/** Word index of the limbo row of `slot` in the region at word R. */
export function limboRowAt(R: number, classes: number, maxSlots: number, slot: number): number {
  return R + limboRowsWord(classes, maxSlots) + slot * LIMBO_ROW_WORDS;
}

/** Word index of the cache row of (slot, class) in the region at word R. */
export function cacheRowAt(R: number, classes: number, maxSlots: number, slot: number, c: number): number {
  return R + cacheRowsWord(classes, maxSlots) + (slot * classes + c) * CACHE_WORDS;
}

/** Word index of the class row of class c. */
export function classRowAt(R: number, c: number): number {
  return R + ALLOC_WORDS + c * CLASS_WORDS;
}

