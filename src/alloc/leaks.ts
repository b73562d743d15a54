/**
 * What destroy() gives back and what it reports leaked: every slab of the
 * allocator with no live object goes back to the page heap; slabs with
 * live (or retired) objects and large runs stay with the allocator's id
 * and are counted in the report; empty limbo rings and the control regions
 * go back, the id last.
 */
import { KIND_LARGE, ST_ALLOCATED, ST_RETIRED, tagAllocator, tagClass, tagKind } from '../shm/layout.js';
import { load } from '../shm/atomic.js';
import type { HeapCore } from '../heap/core.js';
import { forEachSlab, slabState } from './slabs.js';
import { giveSlotBlocks, limboRowAt, strandedRegions } from './region.js';
import { clearOrphan, dropRing, rowCount } from '../reclaim/limbo.js';
import type { LeakReport } from './types.js';

/**
 * Gives back allocator `id`'s slabs that hold no live object and reports
 * the rest; `units` and `perSlab` per class. Every agent's caches must
 * already be in the depots, and no agent may be using the allocator.
 */
export function sweepForDestroy(heap: HeapCore, id: number, units: Uint32Array, perSlab: Uint32Array): LeakReport {
  heap.refresh();
  const u32 = heap.u32;
  const st = heap.st;
  const report: LeakReport = { leakedObjects: 0, leakedBytes: 0, classes: [], largeRuns: 0, pagesKept: 0 };
  const perClass = new Array<number>(units.length).fill(0);
  forEachSlab(heap, id, (base, tag, pages) => {
    const c = tagClass(tag);
    let live = 0;
    for (let i = 0; i < perSlab[c]!; i++) {
      const state = st[slabState(base, units[c]!, i)];
      if (state === ST_ALLOCATED || state === ST_RETIRED) live++;
    }
    if (live === 0) {
      heap.givePages(base >>> heap.pageShift, pages);
    } else {
      perClass[c]! += live;
      report.pagesKept += pages;
    }
  });
  const committed = heap.committedPages();
  for (let p = heap.firstDataPage; p < committed; p++) {
    const tag = load(u32, heap.tagWord + p);
    if (tagAllocator(tag) !== id || tagKind(tag) !== KIND_LARGE) continue;
    report.largeRuns++;
    const k = load(u32, heap.argWord + p);
    report.leakedBytes += k * heap.pageSize;
    report.pagesKept += k;
  }
  for (let c = 0; c < units.length; c++) {
    if (perClass[c]! > 0) {
      report.classes.push({ unit: units[c]!, objects: perClass[c]! });
      report.leakedObjects += perClass[c]!;
      report.leakedBytes += perClass[c]! * units[c]!;
    }
  }
  report.leakedObjects += report.largeRuns;
  return report;
}

/** destroy(), once every ring is collected: gives back the rings of limbo rows left empty. */
export function dropEmptyRings(heap: HeapCore, R: number, classes: number): void {
  for (let s = 0; s < heap.maxSlots; s++) {
    const row = limboRowAt(heap.u32, R, classes, heap.maxSlots, s);
    if (row !== 0 && rowCount(heap.u32, row) === 0) {
      dropRing(heap, row);
      clearOrphan(heap.u32, R, row);
    }
  }
}

/**
 * destroy()'s last step: gives back the allocator's control regions (runs
 * a dead agent left stranded, the slot blocks, the region at word R) and
 * frees id `id` if no page is kept with it (`reusable`). The id stays out
 * of reach (DESTROYED, no attach, no create) until the last page tagged
 * with it has gone back: a create that took it meanwhile would count these
 * regions as its own stranded runs and give them back a second time.
 */
export function giveBackRegions(heap: HeapCore, R: number, id: number, reusable: boolean): void {
  heap.retireAllocator(id, false);
  const stranded = strandedRegions(heap, R, id);
  for (let i = 0; i < stranded.length; i += 2) heap.givePages(stranded[i]!, stranded[i + 1]!);
  giveSlotBlocks(heap, R);
  heap.giveRegion(R * 4);
  if (reusable) heap.freeAllocatorId(id);
}
