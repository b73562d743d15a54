/**
 * Size classes and slab sizes.
 *
 * Bucketed mode has 40 classes: every multiple of 16 up to 128, then four
 * per doubling up to 32 KiB (160 192 224 256, 320 384 448 512, ...,
 * 20480 24576 28672 32768), so rounding a request above 128 bytes up
 * adds less than a fifth of the object (at most 15 bytes below; the
 * kernel's eleven buckets, a power of two apart above 256, waste up to
 * half). One table indexed by (size - 1) >> 4 answers every
 * size with a single load. Unlike the kernel we keep no header in the
 * object (the state buffer says where objects start and whether they
 * are free), so alloc(16) really gets a 16-byte object.
 *
 * Each class has its own slab size (slabGeometry): a run of whole pages,
 * any number of them, that holds at least MIN_PER_SLAB objects and a
 * batch with at most 1/64 of it left in the tail where a run of up to
 * twice the fewest pages allows (most classes leave none). (Object
 * states live in the heap's state buffer, not in the slab.)
 */

import { GRANULE } from '../shm/layout.js';

/** The object sizes of a size-bucketed allocator's classes, in bytes. */
export const BUCKET_SIZES: readonly number[] = (() => {
  const sizes: number[] = [];
  for (let s = 16; s <= 128; s += 16) sizes.push(s);
  for (let base = 128; base < 32768; base *= 2) {
    for (let q = 1; q <= 4; q++) sizes.push(base + (base / 4) * q);
  }
  return sizes;
})();
/** Largest size served from a slab in bucketed mode; larger ones get page runs. */
export const MAX_SMALL = 32768;

/**
 * Class index for sizes 1..MAX_SMALL, by (size - 1) >> 4: every class is a
 * multiple of 16, so one table answers every size with a single load (no
 * branch between the table and a highest-bit rule).
 */
export const CLASS_BY_GRANULE: Uint8Array = (() => {
  const t = new Uint8Array(MAX_SMALL / 16);
  for (let i = 0; i < t.length; i++) {
    const size = (i + 1) * 16;
    t[i] = BUCKET_SIZES.findIndex((b) => b >= size);
  }
  return t;
})();

/** A slab holds at least this many objects where the size allows (see slabGeometry). */
export const MIN_PER_SLAB = 4;
/** Largest slab, in bytes (or one page, when pages are larger). */
export const MAX_SLAB_BYTES = 1 << 20;

/** A class's slab: its pages, and the objects it holds. */
export interface SlabGeometry {
  /** Pages of the slab: a run of whole pages, at least one. */
  pages: number;
  /** Objects of the class a slab holds. */
  perSlab: number;
}

/** A slab's tail (the bytes after its last object) is at most this share of it, where a slab of at most twice the least pages allows. */
export const MAX_TAIL_SHARE = 1 / 64;

/**
 * The slab of objects of `bytes` (rounded up to the 16-byte granule): a
 * run of whole pages, from the fewest that hold MIN_PER_SLAB objects and
 * a default batch of them (a new slab fills a cache to its low watermark
 * at once: a slab smaller than that would leave every alloc of a loop
 * that never yields on the slow path) up to twice as many, the first
 * whose tail is at most MAX_TAIL_SHARE of it, else the one with the
 * smallest tail; never more than MAX_SLAB_BYTES (or one page, when pages
 * are larger), where the run of those pages that leaves the smallest tail
 * is taken even if it holds fewer objects. perSlab is 0 when not even
 * MAX_SLAB_BYTES holds one object.
 */
export function slabGeometry(pageSize: number, bytes: number): SlabGeometry {
  const unit = Math.ceil(bytes / GRANULE) * GRANULE;
  const maxPages = Math.max(1, Math.floor(MAX_SLAB_BYTES / pageSize));
  const least = Math.max(MIN_PER_SLAB, defaultWatermarks(unit).batch);
  const fewest = Math.max(1, Math.ceil((least * unit) / pageSize));
  const tail = (pages: number): number => (pages * pageSize - Math.floor((pages * pageSize) / unit) * unit) / (pages * pageSize);
  let from = fewest;
  let to = Math.min(2 * fewest, maxPages);
  if (fewest > maxPages) {
    // Not even the largest slab holds `least`: the run with the smallest
    // tail that holds one object at least.
    from = Math.max(1, Math.ceil(unit / pageSize));
    to = maxPages;
    if (from > maxPages) return { pages: maxPages, perSlab: 0 };
  }
  let best = from;
  for (let k = from; k <= to; k++) {
    if (tail(k) <= MAX_TAIL_SHARE) return { pages: k, perSlab: Math.floor((k * pageSize) / unit) };
    if (tail(k) < tail(best)) best = k;
  }
  return { pages: best, perSlab: Math.floor((best * pageSize) / unit) };
}

/** Largest fixed unit, in bytes: one object in the largest slab. */
export function maxUnitSize(pageSize: number): number {
  return Math.max(pageSize, MAX_SLAB_BYTES);
}

/** A cache's watermarks, per size class (the kernel's low/high watermarks and batch). */
export interface Watermarks {
  /** Below this many cached objects a refill is scheduled. */
  low: number;
  /** Above this many cached objects a trim back to (low + high) / 2 is scheduled. */
  high: number;
  /** Objects moved per refill, and the most per batch pushed by a trim. */
  batch: number;
  /** Objects put in each cache when an agent attaches. */
  prefill: number;
}

/**
 * The kernel's watermarks (as of Linux 6.6): small units keep 32..96
 * objects and move 48 at a time; larger units keep proportionally fewer so
 * each cache holds about the same number of bytes.
 */
export function defaultWatermarks(unit: number): Watermarks {
  if (unit <= 256) return { low: 32, high: 96, batch: 48, prefill: 4 };
  const low = Math.max(Math.floor((32 * 256) / unit), 1);
  const high = Math.max(Math.floor((96 * 256) / unit), 3);
  const batch = Math.max(Math.floor(((high - low) * 3) / 4), 1);
  return { low, high, batch, prefill: 1 };
}

/**
 * Objects of `bytes` (rounded up to the 16-byte granule) one slab of
 * them holds (slabGeometry): what the hash map sizes a preallocated map's
 * pages and its elements' fit by.
 */
export function objectsPerSlab(pageSize: number, bytes: number): number {
  return slabGeometry(pageSize, bytes).perSlab;
}
