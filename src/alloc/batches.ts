/**
 * Moving batches between an agent's cache and its class's depot: the
 * refill of a cache below its low watermark (a batch popped from the
 * depot, or a new slab carved), the trim of a cache above its high
 * watermark (batches pushed to the depot), and the microtask that runs
 * both (our irq_work). Also the page charge against the allocator's limit
 * and the peak sample that carving and large runs share.
 *
 * The ownership rules are in ./allocator.ts: a cache row is written only
 * by the agent that owns its slot, with plain reads and writes; a depot's
 * stacks and counter only under its lock (./depot.ts).
 */
import { AllocatorHeader, ALLOC_WORDS, CACHE_WORDS, CLASS_WORDS, CacheRow, ClassRow, GRANULE_SHIFT, O_COUNT, O_NEXT_BATCH, O_TAIL, ST_FREE } from '../shm/layout.js';
import { add, load, maxTo, store } from '../shm/atomic.js';
import { CARVE_BUILDING, CARVE_LINKING, linkLocked, lockDepot, moveToDepot, unlockDepot } from './depot.js';
import { cacheRowAt, slotFlagWord } from './region.js';
import type { AllocatorState } from './state.js';
import { shrinkAfterTrim, shrinkHeap } from './shrink.js';

/**
 * Tries at a depot's lock before a refill carves a new slab instead.
 * The lock is held for a few stores, but its holder may be
 * descheduled by the OS; spinning a few microseconds first keeps memory
 * from growing under contention.
 */
export const LOCK_TRIES = 4096;
/** Tries of a trim (or a carve's depot part) for the depot lock before it leaves the objects in its cache. */
const TRIM_LOCK_TRIES = 64;
/** When no new slab can be had (limit, full heap), the refill waits up to this long for the lock. */
const DEPOT_WAIT_MS = 200;

/**
 * @internal
 * A free left the cache of class c above its high watermark, at n: a
 * trim in the microtask (our irq_work); now instead when the cache has
 * reached high + batch, or when `batch` frees (or collects that left it
 * above high, see settleRetired) have found it above high since the
 * last trim, microtask or flush. Without the
 * second rule a loop that never yields, after a burst of frees had left
 * the cache between high and high + batch, took free's slow path on
 * every free (measured: a pair at 4096 bytes after a start-up fill, 28
 * ns instead of 10).
 */
export function kickTrim(s: AllocatorState, c: number, n: number): void {
  const waited = ++s.aboveHigh[c]!;
  if (n >= s.high[c]! + s.batch[c]! || waited >= s.batch[c]!) trim(s, c);
  else s.kick(c);
}

/** @internal The deferred work: bring every flagged cache between its watermarks. */
export function runDeferred(s: AllocatorState): void {
  s.scheduled = false;
  const due = s.due;
  s.aboveHigh.fill(0);
  if (s.detached || s.slotLost()) {
    due.fill(0);
    return;
  }
  s.heap.heartbeat();
  for (let c = s.classes - 1; c >= 0; c--) {
    if (due[c] === 0) continue;
    due[c] = 0;
    const countWord = s.cacheRec + c * CACHE_WORDS + CacheRow.COUNT;
    if (s.u32[countWord]! < s.low[c]!) {
      refill(s, c);
    } else if (s.u32[countWord]! > s.high[c]!) {
      trim(s, c);
    }
  }
}

/**
 * @internal Adds one batch from the depot to the cache of class c, carving
 * nothing (an attaching agent's prefill; see depotPop for which batch).
 * False when the depot has none to give.
 */
export function refillFromDepot(s: AllocatorState, c: number): boolean {
  const rec = s.cacheRec + c * CACHE_WORDS;
  const head = depotPop(s, c, rec, LOCK_TRIES, false);
  return head !== 0 && spliceBatch(s, rec, head);
}

/** @internal Adds one batch to the cache of class c. False when no memory is available. */
export function refill(s: AllocatorState, c: number): boolean {
  const rec = s.cacheRec + c * CACHE_WORDS;
  const head = depotPop(s, c, rec, LOCK_TRIES, false);
  if (head !== 0) return spliceBatch(s, rec, head);
  if (carve(s, c, rec)) {
    s.u32[rec + CacheRow.REFILLS]++;
    return true;
  }
  // No new memory: the depot is the only source left, other agents'
  // batches included; if it was only busy, wait longer for its lock
  // (bounded in time: its holder may be descheduled for a time slice)
  // before reporting failure.
  const objectsWord = s.R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.DEPOT_OBJECTS;
  const deadline = Date.now() + DEPOT_WAIT_MS;
  while (load(s.u32, objectsWord) !== 0 && Date.now() < deadline) {
    const last = depotPop(s, c, rec, LOCK_TRIES, true);
    if (last !== 0) return spliceBatch(s, rec, last);
  }
  return false;
}

/** Puts a batch popped from the depot at the front of the cache row `rec`. */
function spliceBatch(s: AllocatorState, rec: number, head: number): boolean {
  // Any object of the batch may lie in pages another agent committed
  // after our views were made (trims mix objects from all over the
  // heap): renew the views before walking or handing out any of them.
  s.heap.refresh();
  const u32 = s.u32;
  const n = u32[(head >>> 2) + O_COUNT]!;
  const tail = u32[(head >>> 2) + O_TAIL]!;
  u32[tail >>> 2] = u32[rec]!;
  u32[rec] = head;
  u32[rec + CacheRow.COUNT] += n;
  u32[rec + CacheRow.OBJS_IN] += n;
  u32[rec + CacheRow.INFLIGHT] = 0;
  // No peak sample here (sampleOut): a sample reads every class row,
  // lines that other agents' depot moves write, and a refill should touch
  // only its own class's shared lines.
  u32[rec + CacheRow.REFILLS]++;
  return true;
}

/**
 * Another agent's depot stack is taken from (not its agent's leftover:
 * those of slots no agent has attached are anyone's) only once the
 * class's depot holds this many bytes, all of them other agents' at that
 * point; or when no slab can be had.
 */
export const STEAL_BYTES = 32 * 1024;

/**
 * Takes one batch from the depot of class c (recorded in the cache row as
 * in flight): from this agent's own stack, else anyone's, else the stack
 * of a slot no agent has attached, else, once the others' batches pass
 * STEAL_BYTES or with `any` (no slab can be had), another agent's. 0 when
 * there is none to take (the refill then carves).
 *
 * Why: a batch of this agent's own holds objects that went round its
 * cache, in slabs it carved, so their lines (links, state bytes) are
 * written by it alone. Taking another agent's batch makes both agents
 * write lines of the same slabs from then on, and passing lines between
 * cores is what two workers of one allocator then wait on: mixed sizes at
 * 2 workers ran at 0.46x of a heap per worker when every refill took the
 * first batch of one shared stack, and dipped to 0.7-0.8x when it took
 * another agent's as soon as it had none of its own. A surplus that
 * piles up in another agent's stack (a producer's objects freed by its
 * consumer) is taken all the same: carving instead cost a server
 * workload (Larson) half its speed and twice its memory.
 */
function depotPop(s: AllocatorState, c: number, rec: number, tries: number, any: boolean): number {
  const cr = s.R + ALLOC_WORDS + c * CLASS_WORDS;
  let u32 = s.u32;
  const objects = load(u32, cr + ClassRow.DEPOT_OBJECTS);
  if (objects === 0) return 0;
  const own = rec + CacheRow.DEPOT;
  const anyone = cr + ClassRow.DEPOT_HEAD;
  if (!lockDepot(u32, cr, s.lockId, tries)) return 0;
  let h = 0;
  try {
    let stack = 0;
    if (load(u32, own) !== 0) stack = own;
    else if (load(u32, anyone) !== 0) stack = anyone;
    else {
      stack = otherStack(s, c, any || load(u32, cr + ClassRow.DEPOT_OBJECTS) * s.units[c]! >= STEAL_BYTES);
      u32 = s.u32;
    }
    if (stack !== 0) {
      h = load(u32, stack);
      if (h >= s.heap.viewBytes) {
        s.heap.refresh();
        u32 = s.u32;
      }
      u32[rec + CacheRow.INFLIGHT] = h;
      store(u32, stack, u32[(h >>> 2) + O_NEXT_BATCH]!);
      store(u32, cr + ClassRow.DEPOT_OBJECTS, load(u32, cr + ClassRow.DEPOT_OBJECTS) - u32[(h >>> 2) + O_COUNT]!);
    }
  } finally {
    // (Nothing in there should throw; a lock left held would stop the
    // class's depot for good, as this agent is alive and nobody repairs it.)
    unlockDepot(s.u32, cr);
  }
  return h;
}

/**
 * The head word of another slot's non-empty stack of class c: the first
 * (after this agent's slot) whose slot no agent has attached, else, with
 * `attached`, the first of an attached one; 0 for none. Depot lock held.
 */
function otherStack(s: AllocatorState, c: number, attached: boolean): number {
  // Another slot's block may lie in pages committed after our views were
  // made: renewed now, under the lock, the views reach every block whose
  // stack can hold anything (see depotStacks).
  s.heap.refresh();
  const u32 = s.u32;
  const maxSlots = s.heap.maxSlots;
  const flags = s.R + slotFlagWord(s.classes);
  let found = 0;
  for (let i = 1; i < maxSlots; i++) {
    const slot = (s.heap.slot + i) % maxSlots;
    const row = cacheRowAt(u32, s.R, s.classes, maxSlots, slot, c);
    if (row === 0 || row + CacheRow.DEPOT >= u32.length || load(u32, row + CacheRow.DEPOT) === 0) continue;
    if (u32[flags + slot] === 0) return row + CacheRow.DEPOT;
    if (found === 0 && attached) found = row + CacheRow.DEPOT;
  }
  return found;
}

/**
 * @internal
 * Takes a new slab (a run of the class's pages), carves it into batches: one for the cache, the rest to the depot.
 * rec < 0: every batch goes to the depot (reserve).
 */
export function carve(s: AllocatorState, c: number, rec: number): boolean {
  const heap = s.heap;
  const k = s.slabPages[c]!;
  if (!charge(s, k)) return false;
  let page = heap.takePages(k, true);
  // The page heap ran dry: slabs lying wholly in depots go back to it first.
  if (page === 0 && shrinkHeap(heap, LOCK_TRIES) > 0) page = heap.takePages(k, true);
  if (page === 0) {
    add(s.u32, s.R + AllocatorHeader.CHARGED_PAGES, -k);
    return false;
  }
  const u32 = s.u32;
  const st = s.st;
  const base = page * heap.pageSize;
  // The record a survivor needs if we die before every object of the
  // slab is in a list (the row of class c, even for a reserve).
  const row = s.cacheRec + c * CACHE_WORDS;
  const cr = s.R + ALLOC_WORDS + c * CLASS_WORDS;
  u32[row + CacheRow.CARVE] = base | CARVE_BUILDING;
  // Counted at once: a survivor that finds the record counts the slab off
  // again if it was not finished (../recovery/caches.ts finishCarve).
  add(u32, cr + ClassRow.SLABS, 1);
  // The states first, then the tags, the first page's last: a slab
  // exists once its first page carries the tag, and its states are ready
  // by then. A survivor finds a slab whose pages do not all carry the tag
  // (we died tagging) and gives them back (../recovery/caches.ts).
  // The slab's range of the state buffer may hold what an earlier slab
  // there left: all of it NONE, then each object's byte FREE.
  st.fill(0, base >>> GRANULE_SHIFT, (base + k * heap.pageSize) >>> GRANULE_SHIFT);
  const unit = s.units[c]!;
  const perSlab = s.perSlab[c]!;
  const batch = s.batch[c]!;
  for (let i = 0; i < perSlab; i++) st[(base + i * unit) >>> GRANULE_SHIFT] = ST_FREE;
  // Every page's arg: the slab's first page.
  const tag = s.slabTag(c);
  for (let p = page + k - 1; p >= page; p--) {
    store(u32, heap.argWord + p, page);
    store(u32, heap.tagWord + p, tag);
  }
  heap.claimDone();
  // The first batch goes to our cache, the others to the depot (into
  // our cache too when the depot's lock is busy: a trim moves them on).
  let locked = lockDepot(u32, cr, s.lockId, TRIM_LOCK_TRIES);
  while (!locked && rec < 0) locked = lockDepot(u32, cr, s.lockId, 1 << 20);
  if (locked) u32[row + CacheRow.CARVE] = base | CARVE_LINKING;
  for (let i = 0; i < perSlab; i += batch) {
    const n = Math.min(batch, perSlab - i);
    const head = base + i * unit;
    for (let j = 0; j < n - 1; j++) u32[(head + j * unit) >>> 2] = head + (j + 1) * unit;
    const tail = head + (n - 1) * unit;
    if ((i === 0 || !locked) && rec >= 0) {
      u32[tail >>> 2] = u32[rec]!;
      u32[rec] = head;
      u32[rec + CacheRow.COUNT] += n;
      u32[rec + CacheRow.OBJS_IN] += n;
    } else {
      u32[tail >>> 2] = 0;
      u32[(head >>> 2) + O_COUNT] = n;
      u32[(head >>> 2) + O_TAIL] = tail;
      // Ours, for our next refills (a reserve's: anyone's).
      linkLocked(u32, cr, rec >= 0 ? row + CacheRow.DEPOT : cr + ClassRow.DEPOT_HEAD, head, n);
    }
  }
  u32[row + CacheRow.CARVE] = 0;
  if (locked) unlockDepot(u32, cr);
  sampleOut(s);
  return true;
}

/** @internal Trims the cache of class c back to (low + high) / 2, in batches. */
export function trim(s: AllocatorState, c: number): void {
  s.aboveHigh[c] = 0;
  const rec = s.cacheRec + c * CACHE_WORDS;
  const u32 = s.u32;
  const target = (s.low[c]! + s.high[c]!) >>> 1;
  const batch = s.batch[c]!;
  let excess = u32[rec + CacheRow.COUNT]! - target;
  if (excess <= 0) return;
  const cr = s.R + ALLOC_WORDS + c * CLASS_WORDS;
  // Walk the objects to move before taking the lock (the list is this
  // agent's, and the walk only reads): moveToDepot then finds them in
  // cache, and the lock every refill and trim of the class needs is held
  // for ~100 ns a batch instead of a cache miss per object.
  for (let x = u32[rec]!, i = 0; i < excess && x !== 0; i++) x = u32[x >>> 2]!;
  // Busy depot: keep the objects; a later free above the high watermark
  // tries again (after `batch` of them, see kickTrim, or at once from
  // high + batch on). (Not a new microtask: a lock held by an agent
  // that died would make that a loop that never yields.) A cache that is
  // far above its high watermark, because trims kept finding the depot
  // busy, tries as long as a refill does: preallocated maps size their
  // slack on caches staying near their bounds.
  const tries = excess >= s.high[c]! ? LOCK_TRIES : TRIM_LOCK_TRIES;
  if (!lockDepot(u32, cr, s.lockId, tries)) return;
  while (excess > 0) {
    const n = Math.min(batch, excess);
    moveToDepot(u32, cr, rec, n, rec + CacheRow.DEPOT);
    excess -= n;
  }
  unlockDepot(u32, cr);
  u32[rec + CacheRow.TRIMS]++;
  shrinkAfterTrim(s.heap, s.R, c, TRIM_LOCK_TRIES);
}

/** @internal Charges k pages to the limit; false (nothing charged) when over it. */
export function charge(s: AllocatorState, k: number): boolean {
  const u32 = s.u32;
  const R = s.R;
  const limit = u32[R + AllocatorHeader.LIMIT_PAGES]!;
  const now = add(u32, R + AllocatorHeader.CHARGED_PAGES, k) + k;
  if (limit !== 0 && now > limit) {
    add(u32, R + AllocatorHeader.CHARGED_PAGES, -k);
    return false;
  }
  maxTo(u32, R + AllocatorHeader.PEAK_CHARGED_PAGES, now);
  return true;
}

/**
 * @internal Samples bytes outside the depots for the peak statistic: at a
 * new slab (its class's depot ran dry, so that class's objects are all
 * out) and a large run.
 */
export function sampleOut(s: AllocatorState): void {
  const u32 = s.u32;
  let out = load(u32, s.R + AllocatorHeader.LARGE_LIVE_PAGES) * s.heap.pageSize;
  for (let c = 0; c < s.classes; c++) {
    const cr = s.R + ALLOC_WORDS + c * CLASS_WORDS;
    out += (load(u32, cr + ClassRow.SLABS) * s.perSlab[c]! - load(u32, cr + ClassRow.DEPOT_OBJECTS)) * s.units[c]!;
  }
  maxTo(u32, s.R + AllocatorHeader.PEAK_OUT_BYTES_LO, Math.min(out, 0xffffffff));
}
