/**
 * Finding slabs and their objects from the page tags (layout in
 * ../shm/layout.ts): what every reader that walks an allocator's memory
 * (validate, stats, destroy, the survivor's rebuild) shares.
 *
 * A slab is a run of pages, each tagged alike, each with its first page's
 * number as its arg.
 */
import { GRANULE_SHIFT, KIND_SLAB, tagAllocator, tagKind } from '../shm/layout.js';
import { load } from '../shm/atomic.js';

/** What walking slabs needs from the heap. */
export interface SlabPages {
  readonly u32: Uint32Array;
  /** Word index of the page tags. */
  readonly tagWord: number;
  /** Word index of the page args. */
  readonly argWord: number;
  readonly pageShift: number;
  readonly firstDataPage: number;
  committedPages(): number;
}

/** Byte offset of object i of the slab at `base`, objects of `unit` bytes. */
export function slabObject(base: number, unit: number, i: number): number {
  return base + i * unit;
}

/** Index in the state buffer of the state byte of object i (see slabObject). */
export function slabState(base: number, unit: number, i: number): number {
  return (base + i * unit) >>> GRANULE_SHIFT;
}

/** Byte offset of the start of the slab that the slab object (or byte) `p` lies in: its page's arg. */
export function slabStart(h: Pick<SlabPages, 'u32' | 'argWord' | 'pageShift'>, p: number): number {
  return h.u32[h.argWord + (p >>> h.pageShift)]! * 2 ** h.pageShift;
}

/**
 * Calls `visit(base, tag, pages)` for every slab of allocator `id` (every
 * slab when id is 0), at its first page (the page whose arg is itself), in
 * address order; `pages`: the pages after it that carry its tag and name
 * it.
 */
export function forEachSlab(h: SlabPages, id: number, visit: (base: number, tag: number, pages: number) => void): void {
  const committed = h.committedPages();
  const pageBytes = 2 ** h.pageShift;
  for (let p = h.firstDataPage; p < committed; p++) {
    const tag = load(h.u32, h.tagWord + p);
    if (tagKind(tag) !== KIND_SLAB || (id !== 0 && tagAllocator(tag) !== id)) continue;
    if (load(h.u32, h.argWord + p) !== p) continue;
    let pages = 1;
    while (p + pages < committed && load(h.u32, h.tagWord + p + pages) === tag && load(h.u32, h.argWord + p + pages) === p) pages++;
    visit(p * pageBytes, tag, pages);
    p += pages - 1;
  }
}
