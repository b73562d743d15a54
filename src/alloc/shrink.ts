/**
 * Empty slabs back to the page heap, so that memory a size class no longer
 * needs serves any class, any allocator of the heap and large runs.
 *
 * A slab is empty when every one of its objects is free; it can be given
 * back when, besides, every object is in its class's depot (an object in
 * some agent's cache belongs to that agent until it allocates or trims
 * it). So the depot is the only place to look, and it is looked at under
 * its lock, which every change of it takes anyway: no counter on the
 * alloc/free path, and nothing an agent's cache holds is ever touched.
 *
 *   shrink(class c), depot lock held, the record CARVE_SHRINKING in this
 *   agent's cache row of c:
 *     1. walk the batches of every stack of the depot (anyone's and each
 *        slot's, ./depot.ts), counting objects per slab;
 *     2. slabs whose count is perSlab lie wholly in the depot: keep `keep`
 *        of them (hysteresis: a class that frees and allocates around a
 *        boundary should not carve and give back all the time), the rest
 *        are released;
 *     3. mark every object of the depot SHRINKING in the state buffer,
 *        then add CARVE_MARKED to the record;
 *     4. give each released slab's pages back (heap/runs.ts, its claim
 *        record covers a death in there), count it off the class and the
 *        limit;
 *     5. relink the other objects into new batches, each on the stack it
 *        was on, but the kept whole slabs' on anyone's (no agent has a
 *        line of them in use); publish the heads (the count went out
 *        before 4);
 *     6. take CARVE_MARKED off the record, mark the kept objects FREE again
 *        (those of released slabs keep the mark: a carve zeroes its slab's
 *        states before it marks them FREE);
 *     7. clear the record, unlock.
 *
 * While the record says CARVE_MARKED (4 and 5) the stacks name batches
 * whose links are being rewritten, in pages that may be someone else's
 * already; nobody follows them (the lock is held). An agent that dies
 * there leaves a depot that only the marks describe: the survivor that
 * releases its slot finds the record, empties the class's stacks and puts
 * every object marked SHRINKING in a slab still whole on anyone's stack.
 * It looks at nothing else: live agents' caches keep changing while it
 * looks, and their objects are FREE, never SHRINKING. Without
 * CARVE_MARKED (1 to 3, and 6) the stacks are whole; the survivor clears
 * the marks it finds (../recovery/caches.ts, recoverShrink).
 *
 * When: the page heap ran dry (carve or a large run found no pages: every
 * class of every allocator this agent has attached, keep 0; another
 * agent may destroy any other meanwhile), and after a trim filled a
 * depot past SHRINK_SLABS slabs' worth beyond what the last look left (that
 * class only, keep KEEP_SLABS; both in bytes at least SHRINK_BYTES and
 * KEEP_BYTES). Allocators that reserved their objects (a
 * preallocated map's elements) keep their slabs: their memory is promised.
 */
import { AllocatorHeader, AF_RESERVED, CacheRow, ClassRow, O_COUNT, O_NEXT_BATCH, ST_FREE, ST_SHRINKING } from '../shm/layout.js';
import { add, load, store } from '../shm/atomic.js';
import type { HeapCore } from '../heap/core.js';
import { cacheRowAt, classRowAt, slotFlagWord } from './region.js';
import { CARVE_MARKED, CARVE_SHRINKING, depotStacks, linkBatches, lockDepot, unlockDepot } from './depot.js';

/**
 * Whole empty slabs a class keeps in its depot after a look that a trim
 * started: KEEP_SLABS, or as many as make KEEP_BYTES (small slabs hold
 * only a few batches).
 */
export const KEEP_SLABS = 2;
export const KEEP_BYTES = 64 * 1024;
/** A trim looks again once the depot grew by SHRINK_SLABS slabs' worth (at least SHRINK_BYTES) since the last look. */
export const SHRINK_SLABS = 4;
export const SHRINK_BYTES = 128 * 1024;

/**
 * Gives back the slabs of class c of the allocator whose region starts at
 * word R that lie wholly in its depot, but `keep` of them. Takes the depot
 * lock with at most `tries` attempts (returns 0 when it is busy). Returns
 * the pages given back. Only where this agent has attached the allocator
 * (0 otherwise): its slot's cache row holds the record, its claim record
 * covers the pages, and its attachment keeps the allocator alive.
 */
export function shrinkClass(heap: HeapCore, R: number, c: number, keep: number, tries: number): number {
  if (heap.slot < 0) return 0;
  heap.refresh();
  let u32 = heap.u32;
  const cr = classRowAt(R, c);
  const perSlab = u32[cr + ClassRow.PER_SLAB]!;
  if (perSlab === 0 || load(u32, cr + ClassRow.DEPOT_OBJECTS) < perSlab * (keep + 1)) return 0;
  // Only an allocator this agent has attached: nobody can destroy it
  // meanwhile (destroy() needs every other agent detached), so its region
  // and slot blocks are not given back and reused under our feet. (A slot
  // block page serves a group of slots, so having a row there does not
  // say this agent attached.)
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  if (u32[R + slotFlagWord(classes) + heap.slot] === 0) return 0;
  const rec = cacheRowAt(u32, R, classes, heap.maxSlots, heap.slot, c);
  if (rec === 0) return 0;
  const me = heap.slot + 1;
  if (!lockDepot(u32, cr, me, tries)) return 0;
  u32[rec + CacheRow.CARVE] = CARVE_SHRINKING;
  let released = 0;
  try {
    // 1. Objects per slab, over every stack of the depot (a batch may hold
    //    objects of pages this agent's views do not reach yet: renew them
    //    first).
    heap.refresh();
    u32 = heap.u32;
    const pages = u32[cr + ClassRow.SLAB_PAGES]!;
    // An object's slab is its page's arg: the slab's first page.
    const args = heap.argWord;
    const pageShift = heap.pageShift;
    const stacks = depotStacks(u32, R, c, heap.maxSlots);
    const perPage = new Map<number, number>();
    let total = 0;
    for (const stack of stacks) {
      for (let b = load(u32, stack); b !== 0; b = u32[(b >>> 2) + O_NEXT_BATCH]!) {
        let x = b;
        for (let i = u32[(b >>> 2) + O_COUNT]!; i > 0 && x !== 0; i--, x = u32[x >>> 2]!) {
          const slab = u32[args + (x >>> pageShift)]!;
          perPage.set(slab, (perPage.get(slab) ?? 0) + 1);
          total++;
        }
      }
    }
    // 2. Whole slabs, but `keep` of them.
    const whole: number[] = [];
    for (const [page, n] of perPage) if (n === perSlab) whole.push(page);
    store(u32, cr + ClassRow.SHRINK_MARK, total);
    if (whole.length <= keep) return 0;
    whole.sort((a, b) => a - b);
    const release = new Set(whole.slice(keep));
    const kept = new Set(whole.slice(0, keep));
    // 3. Every object of the depot marked SHRINKING (what a survivor
    //    rebuilds the depot from if we die before 6), and the objects of
    //    the slabs that stay collected, each for the stack it was on, but
    //    those of the whole slabs kept, which no agent has a line of in
    //    use: those are anyone's (collected first: relinking rewrites the
    //    links the walk follows).
    const st = heap.st;
    const lists = stacks.map(() => [] as number[]);
    for (let k = 0; k < stacks.length; k++) {
      for (let b = load(u32, stacks[k]!); b !== 0; b = u32[(b >>> 2) + O_NEXT_BATCH]!) {
        let x = b;
        for (let i = u32[(b >>> 2) + O_COUNT]!; i > 0 && x !== 0; i--, x = u32[x >>> 2]!) {
          st[x >>> 4] = ST_SHRINKING;
          const slab = u32[args + (x >>> pageShift)]!;
          if (!release.has(slab)) lists[kept.has(slab) ? 0 : k]!.push(x);
        }
      }
    }
    // Every object marked: from here until 6 a survivor rebuilds from the marks.
    u32[rec + CacheRow.CARVE] = CARVE_SHRINKING | CARVE_MARKED;
    // The count first, the slabs after: stats() read meanwhile sees the
    // released objects in no list for a moment, never twice (which made
    // `live` negative).
    let count = 0;
    for (const list of lists) count += list.length;
    store(u32, cr + ClassRow.DEPOT_OBJECTS, count);
    // 4. The released slabs' pages back to the page heap (heap/runs.ts:
    //    its claim record covers a death in there). The stacks still name
    //    batches in them, which nobody follows: we hold the lock, and a
    //    survivor rebuilds from the marks.
    for (const slab of release) {
      heap.givePages(slab, pages);
      add(u32, cr + ClassRow.SLABS, -1);
      add(u32, R + AllocatorHeader.CHARGED_PAGES, -pages);
      released += pages;
    }
    // 5. The objects that stay, relinked into new batches; the heads and
    //    the count published.
    const batch = Math.max(1, u32[cr + ClassRow.BATCH]!);
    for (let k = 0; k < stacks.length; k++) store(u32, stacks[k]!, linkBatches(u32, lists[k]!, batch));
    store(u32, cr + ClassRow.SHRINK_MARK, count);
    // 6. The stacks are whole again: a survivor only clears marks now.
    u32[rec + CacheRow.CARVE] = CARVE_SHRINKING;
    for (const list of lists) for (const x of list) st[x >>> 4] = ST_FREE;
    return released;
  } finally {
    // 7.
    heap.u32[rec + CacheRow.CARVE] = 0;
    unlockDepot(heap.u32, cr);
  }
}

/**
 * The page heap ran dry: every allocator this agent has attached that did
 * not reserve its objects gives back every slab that lies wholly in a
 * depot. Returns the pages given back.
 */
export function shrinkHeap(heap: HeapCore, tries: number): number {
  let released = 0;
  // Only allocators this agent has attached: another agent may destroy any
  // other one meanwhile, and its region be reused for anything.
  for (const R of heap.attachedRegions()) {
    if ((heap.u32[R + AllocatorHeader.FLAGS]! & AF_RESERVED) !== 0) continue;
    const classes = heap.u32[R + AllocatorHeader.CLASSES]!;
    for (let c = 0; c < classes; c++) released += shrinkClass(heap, R, c, 0, tries);
  }
  return released;
}

/**
 * After a trim of class c: if its depot grew by SHRINK_SLABS slabs' worth
 * since the last look, look again, keeping KEEP_SLABS whole slabs.
 */
export function shrinkAfterTrim(heap: HeapCore, R: number, c: number, tries: number): void {
  const u32 = heap.u32;
  const cr = classRowAt(R, c);
  const perSlab = u32[cr + ClassRow.PER_SLAB]!;
  const slabBytes = u32[cr + ClassRow.SLAB_PAGES]! * heap.pageSize;
  const grown = Math.max(SHRINK_SLABS, Math.ceil(SHRINK_BYTES / slabBytes)) * perSlab;
  if (load(u32, cr + ClassRow.DEPOT_OBJECTS) < u32[cr + ClassRow.SHRINK_MARK]! + grown) return;
  if ((u32[R + AllocatorHeader.FLAGS]! & AF_RESERVED) !== 0) return;
  shrinkClass(heap, R, c, Math.max(KEEP_SLABS, Math.ceil(KEEP_BYTES / slabBytes)), tries);
}
