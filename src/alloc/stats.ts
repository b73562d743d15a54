/**
 * An allocator's statistics (Allocator.stats), read from its shared
 * region and the page tags by any agent, with racy reads: they need not
 * be exact while agents run.
 */
import { AllocatorHeader, ALLOC_WORDS, CacheRow, ClassRow, CLASS_WORDS, KIND_LARGE, tagAllocator, tagClass, tagKind } from '../shm/layout.js';
import { forEachSlab } from './slabs.js';
import { load } from '../shm/atomic.js';
import type { HeapCore } from '../heap/core.js';
import { cacheRowAt, slotFlagWord } from './region.js';
import type { AllocatorStats, CacheStats } from './types.js';

/** Counters per agent slot and class of the allocator whose region starts at word R. */
export function allocatorStats(heap: HeapCore, R: number): AllocatorStats {
  const u32 = heap.u32;
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  const unitSize = u32[R + AllocatorHeader.UNIT]!;
  const ps = heap.pageSize;
  // Slab pages and live large runs come from the page tags: the counters
  // (SLABS, LARGE_LIVE) can be off by one page or run that an agent
  // was tagging or freeing when it died.
  const id = u32[R + AllocatorHeader.ID]!;
  const slabs = new Array<number>(classes).fill(0);
  let largeLive = 0;
  let largePages = 0;
  forEachSlab(heap, id, (_base, tag) => {
    slabs[tagClass(tag)]!++;
  });
  const committed = heap.committedPages();
  for (let p = heap.firstDataPage; p < committed; p++) {
    const tag = load(u32, heap.tagWord + p);
    if (tagAllocator(tag) === id && tagKind(tag) === KIND_LARGE) {
      largeLive++;
      largePages += load(u32, heap.argWord + p);
    }
  }
  const out: AllocatorStats = {
    id: u32[R + AllocatorHeader.ID]!,
    mode: unitSize === 0 ? 'bucketed' : 'fixed',
    unitSize,
    limitBytes: u32[R + AllocatorHeader.LIMIT_PAGES]! * ps,
    chargedBytes: load(u32, R + AllocatorHeader.CHARGED_PAGES) * ps,
    peakChargedBytes: load(u32, R + AllocatorHeader.PEAK_CHARGED_PAGES) * ps,
    bytesInUse: 0,
    peakBytesOut: load(u32, R + AllocatorHeader.PEAK_OUT_BYTES_LO),
    failures: load(u32, R + AllocatorHeader.LARGE_FAILURES),
    classes: [],
    workers: [],
    large: {
      live: largeLive,
      liveBytes: largePages * ps,
      allocs: load(u32, R + AllocatorHeader.LARGE_ALLOCS),
      frees: load(u32, R + AllocatorHeader.LARGE_FREES),
      failures: load(u32, R + AllocatorHeader.LARGE_FAILURES),
    },
  };
  const cached = new Array<number>(classes).fill(0);
  for (let s = 0; s < heap.maxSlots; s++) {
    const attached = u32[R + slotFlagWord(classes) + s] !== 0;
    if (cacheRowAt(u32, R, classes, heap.maxSlots, s, 0) === 0) continue;
    const rows: CacheStats[] = [];
    let any = attached;
    for (let c = 0; c < classes; c++) {
      const rec = cacheRowAt(u32, R, classes, heap.maxSlots, s, c);
      const row: CacheStats = {
        unit: u32[R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.UNIT]!,
        cached: u32[rec + CacheRow.COUNT]!,
        allocs: (u32[rec + CacheRow.OBJS_IN]! - u32[rec + CacheRow.OBJS_OUT]! - u32[rec + CacheRow.COUNT]! + u32[rec + CacheRow.FREES]!) >>> 0,
        frees: u32[rec + CacheRow.FREES]!,
        refills: u32[rec + CacheRow.REFILLS]!,
        trims: u32[rec + CacheRow.TRIMS]!,
        failures: u32[rec + CacheRow.FAILURES]!,
      };
      if (row.allocs !== 0 || row.frees !== 0 || row.cached !== 0) any = true;
      cached[c]! += row.cached;
      out.failures += row.failures;
      rows.push(row);
    }
    if (any) out.workers.push({ slot: s, attached, classes: rows });
  }
  for (let c = 0; c < classes; c++) {
    const cr = R + ALLOC_WORDS + c * CLASS_WORDS;
    const unit = u32[cr + ClassRow.UNIT]!;
    const slabPages = slabs[c]! * u32[cr + ClassRow.SLAB_PAGES]!;
    const objects = slabs[c]! * u32[cr + ClassRow.PER_SLAB]!;
    const depot = load(u32, cr + ClassRow.DEPOT_OBJECTS);
    const live = objects - depot - cached[c]!;
    out.classes.push({ unit, slabPages, objects, depot, cached: cached[c]!, live, liveBytes: live * unit });
    out.bytesInUse += live * unit;
  }
  out.bytesInUse += out.large.liveBytes;
  return out;
}
