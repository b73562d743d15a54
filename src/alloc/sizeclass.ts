/**
 * Size classes and watermarks.
 *
 * Bucketed mode has the kernel's eleven buckets:
 *   16 32 64 96 128 192 256 512 1024 2048 4096
 * (The kernel maps sizes up to 192 through a table and larger ones by
 * their highest bit; here one table indexed by (size - 1) >> 4 does both.)
 * Unlike the kernel we keep no header in the
 * object (a page's state map says where objects start and whether they are
 * free), so alloc(16) really gets a 16-byte object.
 */

import { GRANULE } from '../shm/layout.js';

/** The object sizes of a size-bucketed allocator's classes, in bytes. */
export const BUCKET_SIZES: readonly number[] = [16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096];
/** Largest size served from a slab in bucketed mode; larger ones get page runs. */
export const MAX_SMALL = 4096;

/**
 * Class index for sizes 1..4096, by (size - 1) >> 4: every bucket is a
 * multiple of 16, so one 256-entry table answers every size with a single
 * load (no branch between the table and the highest-bit rule).
 */
export const CLASS_BY_GRANULE: Uint8Array = (() => {
  const t = new Uint8Array(MAX_SMALL / 16);
  for (let i = 0; i < t.length; i++) {
    const size = (i + 1) * 16;
    t[i] = BUCKET_SIZES.findIndex((b) => b >= size);
  }
  return t;
})();

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
 * Objects of `bytes` (rounded up to the 16-byte granule) a slab page
 * holds: the page less its state map, one byte per granule. The
 * allocator's per-slab count, and what the hash map sizes a preallocated
 * map's pages and its elements' fit by.
 */
export function objectsPerSlab(pageSize: number, bytes: number): number {
  return Math.floor((pageSize - pageSize / GRANULE) / (Math.ceil(bytes / GRANULE) * GRANULE));
}
