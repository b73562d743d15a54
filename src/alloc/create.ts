/**
 * A new allocator's shared region: its options checked, each class's
 * watermarks chosen (./sizeclass.ts defaults where not given), and the
 * header and class rows written before the allocator is published to
 * other agents. Layout in ../shm/layout.ts, addresses in ./region.ts.
 */
import { AllocatorHeader, AF_DEBUG, AF_PREFILL, ALLOC_WORDS, ClassRow, CLASS_WORDS, GRANULE } from '../shm/layout.js';
import { checkInt, rangeError, typeError } from '../errors.js';
import type { HeapCore } from '../heap/core.js';
import { ensureSlotBlock, regionWords, slotsPerGroup } from './region.js';
import { BUCKET_SIZES, defaultWatermarks, maxUnitSize, slabGeometry } from './sizeclass.js';
import type { AllocatorOptions } from './types.js';

/** @internal Initialises the shared region of a new allocator; returns its id (Allocator.create). */
export function createAllocatorRegion(heap: HeapCore, options: AllocatorOptions): number {
  // The names and types were checked by the caller (checkOptions); this is a backstop for internal callers.
  if (options === null || typeof options !== 'object') throw typeError('bad-option', 'options must be an object');
  const maxUnit = maxUnitSize(heap.pageSize);
  let unit = 0;
  if (options.unitSize !== undefined) {
    unit = checkInt('unitSize', options.unitSize, 1, maxUnit, 'bad-option');
    unit = Math.ceil(unit / GRANULE) * GRANULE;
  }
  const limit = options.limitBytes === undefined ? 0 : checkInt('limitBytes', options.limitBytes, 1, 2 ** 32, 'bad-option');
  const low = options.lowWatermark === undefined ? -1 : checkInt('lowWatermark', options.lowWatermark, 0, 1 << 16, 'bad-option');
  const high = options.highWatermark === undefined ? -1 : checkInt('highWatermark', options.highWatermark, 1, 1 << 16, 'bad-option');
  const batch = options.batch === undefined ? -1 : checkInt('batch', options.batch, 1, 1 << 16, 'bad-option');
  const prefill = options.prefill === undefined ? -1 : checkInt('prefill', options.prefill, 0, 1 << 20, 'bad-option');
  const units = unit === 0 ? BUCKET_SIZES : [unit];
  const classes = units.length;
  const marks = units.map((u) => {
    const d = defaultWatermarks(u);
    const m = {
      low: low >= 0 ? low : d.low,
      high: high >= 0 ? high : d.high,
      batch: batch >= 0 ? batch : d.batch,
      prefill: prefill >= 0 ? prefill : d.prefill,
    };
    if (m.high <= m.low) {
      throw rangeError('bad-option', `highWatermark must be above lowWatermark, got low ${m.low} and high ${m.high} (unit ${u})`);
    }
    return m;
  });

  const id = heap.claimAllocatorId(unit);
  const bytes = regionWords(classes, heap.maxSlots, heap.pageSize) * 4;
  const pages = Math.ceil(bytes / heap.pageSize);
  const region = heap.takeRegion(bytes, id);
  if (region === 0) {
    heap.retireAllocator(id, true);
    throw rangeError('heap-full', `heap is full: no room for the allocator's ${bytes}-byte control region`);
  }
  const u32 = heap.u32;
  const R = region >>> 2;
  u32[R + AllocatorHeader.ID] = id;
  u32[R + AllocatorHeader.CLASSES] = classes;
  u32[R + AllocatorHeader.UNIT] = unit;
  u32[R + AllocatorHeader.LIMIT_PAGES] = limit === 0 ? 0 : Math.max(1, Math.floor(limit / heap.pageSize));
  u32[R + AllocatorHeader.REGION_PAGES] = pages;
  u32[R + AllocatorHeader.SLOT_GROUP] = slotsPerGroup(classes, heap.pageSize);
  u32[R + AllocatorHeader.FLAGS] = (options.debug === true ? AF_DEBUG : 0) | (options.prefill !== undefined ? AF_PREFILL : 0);
  for (let c = 0; c < classes; c++) {
    const cr = R + ALLOC_WORDS + c * CLASS_WORDS;
    const m = marks[c]!;
    u32[cr + ClassRow.UNIT] = units[c]!;
    u32[cr + ClassRow.LOW] = m.low;
    u32[cr + ClassRow.HIGH] = m.high;
    u32[cr + ClassRow.BATCH] = m.batch;
    u32[cr + ClassRow.PREFILL] = m.prefill;
    const slab = slabGeometry(heap.pageSize, units[c]!);
    u32[cr + ClassRow.PER_SLAB] = slab.perSlab;
    u32[cr + ClassRow.SLAB_PAGES] = slab.pages;
  }
  // The creator's slot block (its caches) now, so that a heap too full
  // for it fails the create, not the attach that follows with the
  // allocator already live.
  if (!ensureSlotBlock(heap, R, heap.slot)) {
    heap.giveRegion(region);
    heap.retireAllocator(id, true);
    throw rangeError('heap-full', `heap is full: no room for the allocator's control region and this worker slot's caches`);
  }
  heap.publishAllocator(id, region);
  return id;
}
