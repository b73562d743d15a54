/**
 * What HashMap.create decides before it takes any memory: the options
 * checked, and the map's geometry (buckets, where an element keeps its key
 * and value, how big an element is, how many a preallocated map reserves);
 * and the map header that records it for every agent that attaches
 * (./layout.ts).
 */
import { store } from '../shm/atomic.js';
import { checkInt, checkOptions, describe, rangeError, typeError } from '../errors.js';
import type { HeapCore } from '../heap/core.js';
import { MAX_SLAB_BYTES, slabGeometry } from '../alloc/sizeclass.js';
import { E_KEY_OFF, MapHeader, MAP_LIVE, MAP_MAGIC } from './layout.js';

/** Options of HashMap.create. */
export interface HashMapOptions {
  /** Key size in bytes, 1..512. */
  keySize: number;
  /**
   * Value size in bytes, 1..65536 (per slot for per-worker maps). An
   * element (its header, the key and the value copies) must fit the
   * largest slab (1 MiB): every value size does, with any key; a
   * per-worker map of 64 workers up to 16,368 bytes per slot with 8-byte
   * keys. create() says when it does not fit.
   */
  valueSize: number;
  /** Most elements the map holds. */
  maxEntries: number;
  /** 'prealloc' (every element reserved at create) or 'dynamic' (default). */
  mode?: 'prealloc' | 'dynamic';
  /** One value per worker slot for each key (the kernel's per-CPU hash). */
  perWorker?: boolean;
  /** Hash seed; random by default (against hash flooding). */
  seed?: number;
  /** Buckets (rounded up to a power of two). Default: maxEntries / 4 rounded up. */
  buckets?: number;
  /**
   * Update existing keys in place (default true; not for per-worker maps,
   * which always write their own slot in place). Each element then holds
   * two copies of the value and a version word: an update writes the copy
   * no reader uses and flips, without the bucket lock or a new element,
   * so writers on different keys share no cache line they write. false:
   * every update builds a new element and frees the old one after a grace
   * period (elements smaller by valueSize padded to 8). By default, an
   * element whose two copies would pass IN_PLACE_MAX_BYTES (60 KiB) gets
   * one copy, as with false: large values would double their memory for
   * updates that copy them whole anyway; true asks for two regardless.
   */
  inPlace?: boolean;
}

/** Largest element that gets two copies of its value by default (see MapOptions.inPlace). */
export const IN_PLACE_MAX_BYTES = 60 * 1024;

/**
 * @internal
 * Bytes of elements an agent's cache of a map holds at its high watermark.
 * Small elements get the fixed watermarks below (a cache of up to 128); a
 * large element's cache holds fewer, so that what a preallocated map keeps
 * aside for agents' caches (its slack) is bounded in bytes, not a multiple
 * of maxWorkers large elements.
 */
const CACHE_BYTES = 16 << 10;

/** @internal The element allocator's watermarks for elements of `elemSize` bytes. */
export function elemMarks(elemSize: number): { lowWatermark: number; highWatermark: number; batch: number; prefill: number } {
  const high = Math.max(2, Math.min(128, Math.floor(CACHE_BYTES / elemSize)));
  return { lowWatermark: Math.max(1, high >>> 3), highWatermark: high, batch: Math.max(1, high >>> 2), prefill: Math.min(16, Math.max(1, high >>> 3)) };
}

/**
 * @internal Elements that may wait in one agent's limbo list for their
 * grace period, counted in a preallocated map's slack: 64, fewer for large
 * elements (at least 4; past it a writer waits for a grace period, bounded
 * in time, before NO_MEMORY).
 */
function limboSlack(elemSize: number): number {
  return Math.max(4, Math.min(64, Math.floor((CACHE_BYTES * 8) / elemSize / 2)));
}

/** @internal The checked options and what follows from them: the contents of the map header. */
export interface MapGeometry {
  keySize: number;
  valueSize: number;
  maxEntries: number;
  mode: 'prealloc' | 'dynamic';
  perWorker: boolean;
  seed: number;
  /** A power of two. */
  buckets: number;
  keyOff: number;
  valueOff: number;
  /** 2: values updated in place (two copies); 1 else. */
  copies: 1 | 2;
  /** Per-worker: bytes per slot record; in place: bytes per copy; else valueSize. */
  stride: number;
  /** Bytes per element, before the allocator rounds it to its unit. */
  elemSize: number;
  /** Elements a preallocated map reserves (maxEntries plus slack). */
  capacity: number;
  /** Preallocated maps: the element allocator's byte limit. */
  limitBytes: number | undefined;
}

function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** The option names of HashMap.create and their types (checkOptions). */
const MAP_OPTIONS = {
  keySize: 'integer',
  valueSize: 'integer',
  maxEntries: 'integer',
  mode: 'string',
  perWorker: 'boolean',
  seed: 'integer',
  buckets: 'integer',
  inPlace: 'boolean',
} as const;

/** @internal Checks create's options and computes the map's geometry; throws on bad options or elements too big for the largest slab. */
export function mapGeometry(heap: HeapCore, options: HashMapOptions): MapGeometry {
  checkOptions<HashMapOptions>('HashMap.create', options, MAP_OPTIONS, true);
  const keySize = checkInt('keySize', options.keySize, 1, 512, 'bad-option');
  const valueSize = checkInt('valueSize', options.valueSize, 1, 65536, 'bad-option');
  const maxEntries = checkInt('maxEntries', options.maxEntries, 1, 1 << 26, 'bad-option');
  const mode = options.mode ?? 'dynamic';
  if (mode !== 'prealloc' && mode !== 'dynamic') throw typeError('bad-option', `mode must be 'prealloc' or 'dynamic', got ${describe(mode)}`);
  const perWorker = options.perWorker === true;
  const seed = options.seed === undefined ? (Math.random() * 2 ** 32) >>> 0 : checkInt('seed', options.seed, 0, 0xffffffff, 'bad-option');
  // Default: a quarter as many buckets as entries (chains of ~4 when
  // full), so the table costs ~1 byte per entry and a dynamic map's
  // memory follows its element count.
  const buckets = pow2AtLeast(options.buckets === undefined ? Math.ceil(maxEntries / 4) : checkInt('buckets', options.buckets, 1, 1 << 26, 'bad-option'));
  const keyOff = E_KEY_OFF;
  const valueOff = keyOff + Math.ceil(keySize / 8) * 8;
  const padded = Math.ceil(valueSize / 8) * 8;
  // In place by default; with large values, one copy (updates replace
  // the element) unless inPlace: true asks.
  let copies: 1 | 2 = !perWorker && options.inPlace !== false ? 2 : 1;
  if (copies === 2 && options.inPlace === undefined && valueOff + 2 * padded > IN_PLACE_MAX_BYTES) copies = 1;
  // Per-worker: bytes per slot record; in place: bytes per copy.
  const stride = perWorker ? 8 + padded : copies === 2 ? padded : valueSize;
  const elemSize = valueOff + (perWorker ? stride * heap.maxSlots : copies === 2 ? 2 * padded : valueSize);
  // Preallocated maps keep slack for what agents' caches and limbo lists
  // hold at any moment, so maxEntries live elements always fit.
  const marks = elemMarks(elemSize);
  const slack = heap.maxSlots * (marks.highWatermark + marks.batch + limboSlack(elemSize));
  const capacity = maxEntries + slack;
  const slab = slabGeometry(heap.pageSize, elemSize);
  if (slab.perSlab < 1) {
    const hint = copies === 2 ? ' (in place: two copies of the value; inPlace: false keeps one)' : '';
    const most = Math.max(heap.pageSize, MAX_SLAB_BYTES);
    throw rangeError('bad-option', `elements of ${elemSize} bytes do not fit the largest slab (${most} bytes)${hint}`);
  }
  const limitBytes = mode === 'prealloc' ? Math.ceil(capacity / slab.perSlab) * slab.pages * heap.pageSize : undefined;
  return { keySize, valueSize, maxEntries, mode, perWorker, seed, buckets, keyOff, valueOff, copies, stride, elemSize, capacity, limitBytes };
}

/**
 * @internal
 * Writes the header of a new map region (word index W) and publishes it:
 * STATE and MAGIC go last, with atomic stores, so an agent that attaches
 * sees a live map only once the rest is written.
 */
export function writeMapHeader(u32: Uint32Array, W: number, g: MapGeometry, elemsId: number, elemUnit: number): void {
  u32[W + MapHeader.KEY_SIZE] = g.keySize;
  u32[W + MapHeader.VALUE_SIZE] = g.valueSize;
  u32[W + MapHeader.MAX_ENTRIES] = g.maxEntries;
  u32[W + MapHeader.BUCKETS] = g.buckets;
  u32[W + MapHeader.SEED] = g.seed;
  u32[W + MapHeader.MODE] = g.mode === 'prealloc' ? 0 : 1;
  u32[W + MapHeader.PER_WORKER] = g.perWorker ? 1 : 0;
  u32[W + MapHeader.ELEM_ALLOC] = elemsId;
  u32[W + MapHeader.KEY_OFF] = g.keyOff;
  u32[W + MapHeader.VALUE_OFF] = g.valueOff;
  u32[W + MapHeader.VALUE_STRIDE] = g.stride;
  u32[W + MapHeader.VALUE_COPIES] = g.copies;
  u32[W + MapHeader.ELEM_SIZE] = elemUnit;
  u32[W + MapHeader.CAPACITY] = g.mode === 'prealloc' ? g.capacity : 0;
  store(u32, W + MapHeader.STATE, MAP_LIVE);
  store(u32, W + MapHeader.MAGIC, MAP_MAGIC);
}
