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
 * Each class has its own slab size (slabGeometry): the smallest aligned
 * run of pages that holds at least MIN_PER_SLAB objects with at most
 * 1/10 of it left in the tail. (Object states live in the heap's state
 * buffer, not in the slab.)
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

/** A class's slab: log2 of its bytes, and the objects it holds. */
export interface SlabGeometry {
  /** log2 of the slab's bytes (a power of two, at least one page). */
  log: number;
  /** Objects of the class a slab holds. */
  perSlab: number;
}

/**
 * The slab of objects of `bytes` (rounded up to the 16-byte granule):
 * the smallest power-of-two run of pages, from one page up to
 * MAX_SLAB_BYTES, that holds MIN_PER_SLAB objects and a default batch of
 * them (a new slab fills a cache to its low watermark at once: a slab
 * smaller than that would leave every alloc of a loop that never yields
 * on the slow path), and uses at least 9/10 of its bytes for them (the
 * tail takes the rest); where none does, the one
 * that uses the most. perSlab is 0 when not even MAX_SLAB_BYTES holds
 * one object.
 */
export function slabGeometry(pageSize: number, bytes: number): SlabGeometry {
  const unit = Math.ceil(bytes / GRANULE) * GRANULE;
  const maxBytes = Math.max(pageSize, MAX_SLAB_BYTES);
  const least = Math.max(MIN_PER_SLAB, defaultWatermarks(unit).batch);
  let best: SlabGeometry = { log: Math.log2(pageSize), perSlab: 0 };
  let bestUse = 0;
  for (let size = pageSize; size <= maxBytes; size *= 2) {
    const perSlab = Math.floor(size / unit);
    const use = (perSlab * unit) / size;
    if (perSlab >= least && use >= 0.9) return { log: Math.log2(size), perSlab };
    if (use > bestUse + 1 / 64) {
      best = { log: Math.log2(size), perSlab };
      bestUse = use;
    }
  }
  return best;
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
