/**
 * Where things are in an allocator's shared memory (layout and diagram in
 * ../shm/layout.ts): its region (header, one class row per size class,
 * the slots' attach flags, the table of slot blocks) and each slot's block
 * (its cache rows, one per class, and its limbo row), taken from the page
 * heap when an agent first attaches in that slot.
 */
import { AllocatorHeader, ALLOC_WORDS, CACHE_WORDS, CLASS_WORDS, KIND_REGION, LIMBO_ROW_WORDS, LimboRow, pageTag } from '../shm/layout.js';
import { cas, load } from '../shm/atomic.js';
import type { HeapCore } from '../heap/core.js';

/** Word offset (from the region start) of the per-slot attach flags. */
export function slotFlagWord(classes: number): number {
  return ALLOC_WORDS + classes * CLASS_WORDS;
}

/** Word offset (from the region start) of the block table: one word per group of slots. */
function blockTableWord(classes: number, maxSlots: number): number {
  return slotFlagWord(classes) + maxSlots;
}

/** Words of one slot's block: its limbo row, then its cache rows (a whole number of 64-byte lines). */
export function blockWords(classes: number): number {
  return classes * CACHE_WORDS + LIMBO_ROW_WORDS;
}

/** Slots whose blocks share one run of pages: as many as fit a page, at least one. */
export function slotsPerGroup(classes: number, pageSize: number): number {
  return Math.max(1, Math.floor(pageSize / (blockWords(classes) * 4)));
}

/** Words in the region of an allocator with `classes` classes (slot blocks are apart). */
export function regionWords(classes: number, maxSlots: number, pageSize: number): number {
  const groups = Math.ceil(maxSlots / slotsPerGroup(classes, pageSize));
  return Math.ceil((blockTableWord(classes, maxSlots) + groups) / 16) * 16;
}

/** Word index of the block of `slot` in the region at word R, or 0 when no agent ever attached there. */
function blockAt(u32: Uint32Array, R: number, classes: number, maxSlots: number, slot: number): number {
  const k = u32[R + AllocatorHeader.SLOT_GROUP]!;
  const group = load(u32, R + blockTableWord(classes, maxSlots) + Math.floor(slot / k));
  return group === 0 ? 0 : (group >>> 2) + (slot % k) * blockWords(classes);
}

/** Word index of the limbo row of `slot` in the region at word R; 0 when the slot has no block. */
export function limboRowAt(u32: Uint32Array, R: number, classes: number, maxSlots: number, slot: number): number {
  return blockAt(u32, R, classes, maxSlots, slot);
}

/**
 * Word index of the cache row of (slot, class) in the region at word R; 0
 * when the slot has no block. The rows follow the limbo row: a row at the
 * start of a page shares its address bits below 4 KiB with the state
 * bytes of small objects at the start of slabs, and a CPU that guesses a
 * load's dependence on earlier stores from those bits alone stalls alloc
 * on them (a pair of 16-byte objects ran ~3% slower). Measured when the
 * state bytes lay in the slabs; they are in the state buffer now, whose
 * address bits differ, and the placement costs nothing.
 */
export function cacheRowAt(u32: Uint32Array, R: number, classes: number, maxSlots: number, slot: number, c: number): number {
  const b = blockAt(u32, R, classes, maxSlots, slot);
  return b === 0 ? 0 : b + LIMBO_ROW_WORDS + c * CACHE_WORDS;
}

/** The agents that have the allocator at word R attached: its slot flags set. */
export function attachedSlots(u32: Uint32Array, R: number, classes: number, maxSlots: number): number {
  const flags = R + slotFlagWord(classes);
  let n = 0;
  for (let s = 0; s < maxSlots; s++) if (load(u32, flags + s) !== 0) n++;
  return n;
}

/** Word index of the class row of class c. */
export function classRowAt(R: number, c: number): number {
  return R + ALLOC_WORDS + c * CLASS_WORDS;
}

/**
 * Makes sure `slot` has its block in the allocator whose region starts at
 * word R: the first agent to attach in any slot of a group takes a zeroed
 * run of pages for the group's blocks and publishes it with a CAS (a loser
 * gives its run back). False when the heap has no room. A death between
 * the run's tagging and the CAS strands that run, tagged REGION of this
 * allocator and named nowhere, until destroy() gives it back
 * (strandedRegions): a few pages, once per such death.
 */
export function ensureSlotBlock(heap: HeapCore, R: number, slot: number): boolean {
  const u32 = heap.u32;
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  const k = u32[R + AllocatorHeader.SLOT_GROUP]!;
  const word = R + blockTableWord(classes, heap.maxSlots) + Math.floor(slot / k);
  if (load(u32, word) !== 0) return true;
  const at = heap.takeRegion(k * blockWords(classes) * 4, u32[R + AllocatorHeader.ID]!);
  if (at === 0) return false;
  if (cas(heap.u32, word, 0, at) !== 0) heap.giveRegion(at);
  return true;
}

/**
 * The control regions tagged with allocator `id` that nothing names: not
 * its region (word R), not a published slot block, not a limbo row's
 * ring. An agent that died between taking such a run (a slot block, a
 * ring growing) and publishing it, or while giving one back, left them.
 * Pairs [first page, pages still tagged], for destroy() to give back
 * while the id is still this allocator's.
 */
export function strandedRegions(heap: HeapCore, R: number, id: number): number[] {
  const u32 = heap.u32;
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  const named = new Set<number>([R * 4]);
  const k = u32[R + AllocatorHeader.SLOT_GROUP]!;
  const table = R + blockTableWord(classes, heap.maxSlots);
  for (let g = 0; g < Math.ceil(heap.maxSlots / k); g++) {
    const at = load(u32, table + g);
    if (at !== 0) named.add(at);
  }
  for (let s = 0; s < heap.maxSlots; s++) {
    const row = limboRowAt(u32, R, classes, heap.maxSlots, s);
    if (row !== 0 && u32[row + LimboRow.RING] !== 0) named.add(u32[row + LimboRow.RING]!);
  }
  const tag = pageTag(KIND_REGION, id, 0);
  const out: number[] = [];
  const committed = heap.committedPages();
  for (let p = heap.firstDataPage; p < committed; p++) {
    if (load(u32, heap.tagWord + p) !== tag) continue;
    const pages = load(u32, heap.argWord + p);
    if (pages === 0) continue;
    // Only the pages from the head that still carry the tag: a dead
    // agent may have tagged a few of them (takeRegion tags upwards) or
    // untagged a few (giveRun clears from the last page down), and the
    // untagged ones went back with its claim, perhaps to someone else,
    // even to this allocator as another region (its head has an arg: a
    // run's other pages have none).
    let held = 1;
    while (held < pages && p + held < committed && load(u32, heap.tagWord + p + held) === tag && load(u32, heap.argWord + p + held) === 0) held++;
    if (!named.has(p * heap.pageSize)) out.push(p, held);
    p += held - 1;
  }
  return out;
}

/** Gives back every slot block of the region at word R (destroy, once no agent is attached). */
export function giveSlotBlocks(heap: HeapCore, R: number): void {
  const u32 = heap.u32;
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  const k = u32[R + AllocatorHeader.SLOT_GROUP]!;
  const table = R + blockTableWord(classes, heap.maxSlots);
  for (let g = 0; g < Math.ceil(heap.maxSlots / k); g++) {
    const at = load(u32, table + g);
    if (at !== 0 && cas(u32, table + g, at, 0) === at) heap.giveRegion(at);
  }
}
