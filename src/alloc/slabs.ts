/**
 * Finding slabs and their objects from the page tags (layout in
 * ../shm/layout.ts): what every reader that walks an allocator's memory
 * (validate, stats, destroy, the survivor's rebuild) shares.
 *
 * A slab is an aligned run of 2^k pages, each tagged alike; its first page
 * is the one whose byte offset is a multiple of the slab's bytes.
 */
import { GRANULE_SHIFT, KIND_SLAB, tagAllocator, tagKind, tagSlabMask } from '../shm/layout.js';
import { load } from '../shm/atomic.js';

/** What walking slabs needs from the heap. */
export interface SlabPages {
  readonly u32: Uint32Array;
  /** Word index of the page tags. */
  readonly tagWord: number;
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

/**
 * Calls `visit(base, tag)` for every slab of allocator `id` (every slab
 * when id is 0), at its first page, in address order.
 */
export function forEachSlab(h: SlabPages, id: number, visit: (base: number, tag: number, pages: number) => void): void {
  const committed = h.committedPages();
  const pageBytes = 2 ** h.pageShift;
  for (let p = h.firstDataPage; p < committed; p++) {
    const tag = load(h.u32, h.tagWord + p);
    if (tagKind(tag) !== KIND_SLAB || (id !== 0 && tagAllocator(tag) !== id)) continue;
    const base = p * pageBytes;
    const mask = tagSlabMask(tag);
    if ((base & mask) !== 0) continue;
    const pages = Math.max(1, (mask + 1) / pageBytes);
    visit(base, tag, pages);
    p += pages - 1;
  }
}
