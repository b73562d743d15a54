/**
 * Recovery of a dead agent's caches in one allocator: the depot lock it may
 * have held, the batch it was moving, the slab it was carving, and the
 * objects in its cache rows, all put back into the depot.
 */
import { AllocatorHeader, CacheRow, ClassRow, KIND_FREE, KIND_SLAB, O_COUNT, O_NEXT_BATCH, O_TAIL, ST_FREE, ST_SHRINKING, pageTag } from '../shm/layout.js';
import { slabObject, slabState } from '../alloc/slabs.js';
import { add, load, store } from '../shm/atomic.js';
import { cacheRowAt, classRowAt } from '../alloc/region.js';
import { CARVE_BUILDING, CARVE_LINKING, CARVE_MARKED, CARVE_SHRINKING, countDepot, DEPOT_FLUSH_MS, depotStacks, inDepot, linkBatches, flushCacheRow, linkLocked, lockDepot, unlockDepot } from '../alloc/depot.js';

/** What releaseRow needs to see a slab's objects, and to find the slabs of a class (the heap is one). */
export interface SlabGeometry {
  /** The state bytes (HeapCore.st). */
  st: Uint8Array;
  pageSize: number;
  /** Word index of the page tags. */
  tagWord: number;
  /** Word index of the page args (a slab page's: the slab's first page). */
  argWord: number;
  /** The word view (HeapCore.u32), and its renewal. */
  readonly u32: Uint32Array;
  refresh(): boolean;
  firstDataPage: number;
  maxSlots: number;
  committedPages(): number;
}

/**
 * Whether every page of the slab at `base` (`pages` pages) carries `tag`.
 * A slab whose pages do not was being tagged by a carve or given back by
 * a shrink when its agent died: the pages that still carry the tag are
 * tagged FREE, so that the dead agent's claim record, which names them,
 * gives them back (../heap/runs.ts recoverClaim, a later step).
 */
function completeSlab(u32: Uint32Array, g: SlabGeometry, base: number, pages: number, tag: number): boolean {
  const first = base / g.pageSize;
  let all = true;
  for (let p = first; p < first + pages; p++) if (load(u32, g.tagWord + p) !== tag) all = false;
  if (all) return true;
  for (let p = first; p < first + pages; p++) if (load(u32, g.tagWord + p) === tag) store(u32, g.tagWord + p, pageTag(KIND_FREE, 0, 0));
  return false;
}

/** The tag and pages of class c's slabs in the region at word R. */
function slabOf(u32: Uint32Array, R: number, c: number): { tag: number; pages: number } {
  return { tag: pageTag(KIND_SLAB, u32[R + AllocatorHeader.ID]!, c), pages: u32[classRowAt(R, c) + ClassRow.SLAB_PAGES]! };
}

/**
 * A carve the dead agent did not finish: every FREE object of the slab
 * that is in no list (neither the depot, which nobody popped since the
 * dead agent took its lock, nor the dead row) is linked into the depot in
 * batches. Depot lock held. A slab it had not finished tagging holds no
 * object anyone has seen: its pages go back (completeSlab).
 */
function finishCarve(u32: Uint32Array, g: SlabGeometry, R: number, c: number, rec: number, base: number): void {
  const cr = classRowAt(R, c);
  const slab = slabOf(u32, R, c);
  if (!completeSlab(u32, g, base, slab.pages, slab.tag)) {
    add(u32, cr + ClassRow.SLABS, -1);
    add(u32, R + AllocatorHeader.CHARGED_PAGES, -slab.pages);
    return;
  }
  const inList = new Set<number>();
  for (const stack of depotStacks(u32, R, c, g.maxSlots)) {
    for (let b = load(u32, stack); b !== 0; b = u32[(b >>> 2) + O_NEXT_BATCH]!) {
      let x = b;
      for (let i = u32[(b >>> 2) + O_COUNT]!; i > 0 && x !== 0; i--, x = u32[x >>> 2]!) inList.add(x);
    }
  }
  const anyone = cr + ClassRow.DEPOT_HEAD;
  for (let x = u32[rec]!, i = 0; x !== 0 && i < 1 << 26; x = u32[x >>> 2]!, i++) inList.add(x);
  const unit = u32[cr + ClassRow.UNIT]!;
  const per = u32[cr + ClassRow.PER_SLAB]!;
  const batch = u32[cr + ClassRow.BATCH]!;
  let head = 0;
  let tail = 0;
  let n = 0;
  for (let i = 0; i < per; i++) {
    const p = slabObject(base, unit, i);
    if (g.st[slabState(base, unit, i)] !== ST_FREE || inList.has(p)) continue;
    if (n === 0) head = p;
    else u32[tail >>> 2] = p;
    tail = p;
    if (++n === batch) {
      u32[tail >>> 2] = 0;
      u32[(head >>> 2) + O_COUNT] = n;
      u32[(head >>> 2) + O_TAIL] = tail;
      linkLocked(u32, cr, anyone, head, n);
      n = 0;
    }
  }
  if (n > 0) {
    u32[tail >>> 2] = 0;
    u32[(head >>> 2) + O_COUNT] = n;
    u32[(head >>> 2) + O_TAIL] = tail;
    linkLocked(u32, cr, anyone, head, n);
  }
}


/**
 * Releasing a dead slot's row of class row cr: takes the depot lock (it is
 * the dead agent's, or taken for the purpose), settles the batch the agent
 * was moving, recounts the depot, recounts the row's list, flushes it.
 *
 * - A trim/flush batch (CacheRow.TRIM): in one of the depot's stacks, it was
 *   linked; else if the row still starts with it, it was never cut; else it
 *   is cut and in no list: link it (on anyone's stack, as everything put
 *   back here).
 * - A popped batch (CacheRow.INFLIGHT): if it is still in a stack (the agent
 *   died holding the lock, before its store), nothing moved; else if the
 *   row starts with it, it was spliced; else it is in no list: link it.
 *
 * The row's own stack stays: a refill takes a stack whose slot no agent
 * has attached as anyone's, and the slot's next agent takes it as its own.
 *
 * Returns false (and leaves the row alone) if the lock stays held by a
 * live agent for DEPOT_FLUSH_MS.
 */
function releaseRow(u32: Uint32Array, g: SlabGeometry, R: number, c: number, rec: number, slot: number, me: number): boolean {
  const cr = classRowAt(R, c);
  const dead = slot + 1;
  const deadHeld = load(u32, cr + ClassRow.DEPOT_LOCK) === dead;
  if (deadHeld) {
    store(u32, cr + ClassRow.DEPOT_LOCK, me);
  } else {
    const deadline = Date.now() + DEPOT_FLUSH_MS;
    while (!lockDepot(u32, cr, me, 1024)) if (Date.now() > deadline) return false;
  }
  // Views renewed under the lock: they reach every stack that can hold a batch (depotStacks).
  g.refresh();
  u32 = g.u32;
  if (deadHeld && (u32[rec + CacheRow.CARVE]! & CARVE_SHRINKING) !== 0) {
    // It died shrinking the depot: the old batches' links may be rewritten
    // already; the marks in the state buffer are the truth (recoverShrink).
    recoverShrink(u32, g, R, c, (u32[rec + CacheRow.CARVE]! & CARVE_MARKED) !== 0);
    u32[rec + CacheRow.TRIM] = 0;
    u32[rec + CacheRow.INFLIGHT] = 0;
    u32[rec + CacheRow.CARVE] = 0;
    let count = 0;
    for (let x = u32[rec]!; x !== 0 && count < 1 << 26; x = u32[x >>> 2]!) count++;
    u32[rec + CacheRow.COUNT] = count;
    flushCacheRow(u32, cr, rec, u32[cr + ClassRow.BATCH]!, me, true);
    unlockDepot(u32, cr);
    return true;
  }
  const stacks = depotStacks(u32, R, c, g.maxSlots);
  const anyone = cr + ClassRow.DEPOT_HEAD;
  const trim = u32[rec + CacheRow.TRIM]!;
  if (trim !== 0 && !inDepot(u32, stacks, trim) && u32[rec] !== trim) {
    const n = u32[rec + CacheRow.TRIM_N]!;
    let tail = trim;
    for (let i = 1; i < n; i++) tail = u32[tail >>> 2]!;
    u32[tail >>> 2] = 0;
    u32[(trim >>> 2) + O_COUNT] = n;
    u32[(trim >>> 2) + O_TAIL] = tail;
    linkLocked(u32, cr, anyone, trim, n);
  }
  u32[rec + CacheRow.TRIM] = 0;
  const popped = u32[rec + CacheRow.INFLIGHT]!;
  if (popped !== 0 && !inDepot(u32, stacks, popped) && u32[rec] !== popped) {
    const tail = u32[(popped >>> 2) + O_TAIL]!;
    u32[tail >>> 2] = 0;
    linkLocked(u32, cr, anyone, popped, u32[(popped >>> 2) + O_COUNT]!);
  }
  u32[rec + CacheRow.INFLIGHT] = 0;
  const carve = u32[rec + CacheRow.CARVE]!;
  // Batches of a carve that got the lock went to the depot only while the
  // dead agent held it (it clears the record first): then nobody can have
  // popped them since. Without the lock, everything went to its row.
  if (carve !== 0 && ((carve & CARVE_LINKING) === 0 || deadHeld)) finishCarve(u32, g, R, c, rec, (carve & ~15) >>> 0);
  u32[rec + CacheRow.CARVE] = 0;
  // Recount: nobody changes the stacks or their counter without the lock.
  store(u32, cr + ClassRow.DEPOT_OBJECTS, countDepot(u32, stacks));
  // The row's count may be a store behind its list.
  let count = 0;
  for (let x = u32[rec]!; x !== 0 && count < 1 << 26; x = u32[x >>> 2]!) count++;
  u32[rec + CacheRow.COUNT] = count;
  flushCacheRow(u32, cr, rec, u32[cr + ClassRow.BATCH]!, me, true);
  unlockDepot(u32, cr);
  return true;
}

/**
 * Flushes every cache of `slot` in the allocator region at word R (see
 * releaseRow) and clears its attach flag. `me` is the releasing agent's
 * slot + 1.
 */
export function releaseSlotCaches(u32: Uint32Array, g: SlabGeometry, R: number, maxSlots: number, slot: number, me: number): void {
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  for (let c = 0; c < classes; c++) {
    const rec = cacheRowAt(u32, R, classes, maxSlots, slot, c);
    if (rec === 0) break;
    releaseRow(u32, g, R, c, rec, slot, me);
    // Should the agent still run after all (a stale handle), its next free
    // goes to the slow path, which finds the slot released and throws.
    u32[rec + CacheRow.HIGH] = 0;
    u32[rec + CacheRow.OWNER] = 0;
  }
}

/**
 * A shrink of class c's depot whose agent died, depot lock held (see
 * ../alloc/shrink.ts). Once every object was marked and before the new
 * stacks were published (`marked`), their links may be half rewritten:
 * every stack is emptied, and every object marked SHRINKING in a slab of
 * the class that is still whole goes on anyone's stack, FREE. Otherwise
 * the stacks are whole: the marks found are cleared. Either way nothing else
 * is looked at: objects in live agents' caches, which keep changing
 * meanwhile, are FREE, never SHRINKING. A slab the dead agent was giving
 * back (its first page still tagged, not all the others) is given back
 * (completeSlab); the class's slabs are recounted from the page tags, and
 * the allocator's charge follows (a death between giving a slab back and
 * counting it off). A slab a live agent is carving (its cache row's CARVE
 * names it) is counted, as the carve counted it when it made the record,
 * and left alone. (A carve that records its slab after this looked at the
 * records and has not tagged its first page when the scan passes it is
 * missed by one: the recount races it, as it races nothing else.)
 */
function recoverShrink(u32: Uint32Array, g: SlabGeometry, R: number, c: number, marked: boolean): void {
  const cr = classRowAt(R, c);
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  const slab = slabOf(u32, R, c);
  const unit = u32[cr + ClassRow.UNIT]!;
  const per = u32[cr + ClassRow.PER_SLAB]!;
  const batch = Math.max(1, u32[cr + ClassRow.BATCH]!);
  const carving = new Set<number>();
  for (let s = 0; s < g.maxSlots; s++) {
    const row = cacheRowAt(u32, R, classes, g.maxSlots, s, c);
    if (row === 0) continue;
    const carve = u32[row + CacheRow.CARVE]!;
    if ((carve & (CARVE_BUILDING | CARVE_LINKING)) !== 0) carving.add((carve & ~15) >>> 0);
  }
  const found: number[] = [];
  let slabs = 0;
  const committed = g.committedPages();
  for (let p = g.firstDataPage; p < committed; p++) {
    // A slab exists once its first page (the one whose arg is itself)
    // carries the tag: a carve tags it last, a give-back clears it last.
    if (load(u32, g.tagWord + p) !== slab.tag || load(u32, g.argWord + p) !== p) continue;
    const base = p * g.pageSize;
    if (carving.has(base)) {
      // Counted below, with those not tagged yet.
      p += slab.pages - 1;
      continue;
    }
    if (!completeSlab(u32, g, base, slab.pages, slab.tag)) continue;
    slabs++;
    for (let i = 0; i < per; i++) {
      const at = slabState(base, unit, i);
      if (g.st[at] !== ST_SHRINKING) continue;
      g.st[at] = ST_FREE;
      found.push(slabObject(base, unit, i));
    }
    p += slab.pages - 1;
  }
  // A carve counts its slab as soon as it records it (../alloc/batches.ts).
  slabs += carving.size;
  const stacks = depotStacks(u32, R, c, g.maxSlots);
  if (marked) {
    for (const stack of stacks) store(u32, stack, 0);
    store(u32, cr + ClassRow.DEPOT_HEAD, linkBatches(u32, found, batch));
  }
  const total = countDepot(u32, stacks);
  store(u32, cr + ClassRow.DEPOT_OBJECTS, total);
  store(u32, cr + ClassRow.SHRINK_MARK, total);
  const counted = load(u32, cr + ClassRow.SLABS);
  if (counted !== slabs) {
    store(u32, cr + ClassRow.SLABS, slabs);
    add(u32, R + AllocatorHeader.CHARGED_PAGES, (slabs - counted) * slab.pages);
  }
}
