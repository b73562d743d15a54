/**
 * Helpers over an allocator's shared region (layout in ../shm/layout.ts):
 * where a slot's cache rows are, and the depot operations that any agent
 * may run, including one releasing a dead agent's slot.
 */
import { AllocatorHeader, ALLOC_WORDS, ClassRow, CACHE_WORDS, CLASS_WORDS, GRANULE_SHIFT, CacheRow, LIMBO_ROW_WORDS, O_COUNT, O_NEXT_BATCH, O_TAIL, ST_FREE } from '../shm/layout.js';
import { add, cas, load, store } from '../shm/atomic.js';

/** Word offset (from the region start) of the per-slot attach flags. */
export function slotFlagWord(classes: number): number {
  return ALLOC_WORDS + classes * CLASS_WORDS;
}

/**
 * Cache rows start on a 64-byte boundary and each slot's rows are a whole
 * number of 64-byte lines (rows are 16 words), so two agents' caches never
 * share a cache line.
 */
function cacheRowsWord(classes: number, maxSlots: number): number {
  return Math.ceil((slotFlagWord(classes) + maxSlots) / 16) * 16;
}

/** Words in the region of an allocator with `classes` classes. */
export function regionWords(classes: number, maxSlots: number): number {
  return limboRowsWord(classes, maxSlots) + maxSlots * LIMBO_ROW_WORDS;
}

function limboRowsWord(classes: number, maxSlots: number): number {
  return cacheRowsWord(classes, maxSlots) + maxSlots * classes * CACHE_WORDS;
}

/** Word index of the limbo row of `slot` in the region at word R. */
export function limboRowAt(R: number, classes: number, maxSlots: number, slot: number): number {
  return R + limboRowsWord(classes, maxSlots) + slot * LIMBO_ROW_WORDS;
}

/** Word index of the cache row of (slot, class) in the region at word R. */
export function cacheRowAt(R: number, classes: number, maxSlots: number, slot: number, c: number): number {
  return R + cacheRowsWord(classes, maxSlots) + (slot * classes + c) * CACHE_WORDS;
}

/** Word index of the class row of class c. */
export function classRowAt(R: number, c: number): number {
  return R + ALLOC_WORDS + c * CLASS_WORDS;
}

/** Takes the depot lock of the class row at word cr for `me` (slot + 1); at most `tries` attempts. */
export function lockDepot(u32: Uint32Array, cr: number, me: number, tries: number): boolean {
  for (let i = 0; i < tries; i++) {
    if (u32[cr + ClassRow.DEPOT_LOCK] === 0 && cas(u32, cr + ClassRow.DEPOT_LOCK, 0, me) === 0) return true;
  }
  return false;
}

export function unlockDepot(u32: Uint32Array, cr: number): void {
  store(u32, cr + ClassRow.DEPOT_LOCK, 0);
}

/**
 * Links a batch whose header words (count, tail) are set onto the depot
 * and counts it. Depot lock held: every change of the stack and of its
 * counter happens under the lock, so whoever repairs a lock a dead agent
 * held finds both as that agent left them, and can recount.
 */
export function linkLocked(u32: Uint32Array, cr: number, head: number, n: number): void {
  u32[(head >>> 2) + O_NEXT_BATCH] = load(u32, cr + ClassRow.DEPOT_HEAD);
  store(u32, cr + ClassRow.DEPOT_HEAD, head);
  store(u32, cr + ClassRow.DEPOT_OBJECTS, load(u32, cr + ClassRow.DEPOT_OBJECTS) + n);
}

/**
 * Moves the first n objects of cache row rec to the depot as one batch.
 * Depot lock held. K.TRIM/K.TRIM_N record the batch until it is linked.
 */
export function moveToDepot(u32: Uint32Array, cr: number, rec: number, n: number): void {
  const head = u32[rec]!;
  let tail = head;
  for (let i = 1; i < n; i++) tail = u32[tail >>> 2]!;
  u32[rec + CacheRow.TRIM_N] = n;
  u32[rec + CacheRow.TRIM] = head;
  u32[rec] = u32[tail >>> 2]!;
  u32[rec + CacheRow.COUNT] -= n;
  u32[rec + CacheRow.OBJS_OUT] += n;
  u32[tail >>> 2] = 0;
  u32[(head >>> 2) + O_COUNT] = n;
  u32[(head >>> 2) + O_TAIL] = tail;
  linkLocked(u32, cr, head, n);
  u32[rec + CacheRow.TRIM] = 0;
}

/**
 * Empties one cache row into its depot, batch by batch, under the depot
 * lock: run by the row's owner (detach) or by whoever releases a dead
 * owner's slot (with the lock already held: `locked`). Waits for the lock
 * at most DEPOT_FLUSH_MS (neither runs on an alloc or free path); if it
 * cannot get it, the objects stay in the row, which is a list like any
 * other: nothing is lost, and the slot's next agent uses them.
 */
export function flushCacheRow(u32: Uint32Array, cr: number, rec: number, batch: number, me: number, locked = false): void {
  if (u32[rec + CacheRow.COUNT] === 0) return;
  if (!locked) {
    const deadline = Date.now() + DEPOT_FLUSH_MS;
    while (!lockDepot(u32, cr, me, 1024)) if (Date.now() > deadline) return;
  }
  while (u32[rec + CacheRow.COUNT]! > 0) moveToDepot(u32, cr, rec, Math.min(batch, u32[rec + CacheRow.COUNT]!));
  u32[rec] = 0;
  if (!locked) unlockDepot(u32, cr);
}

const DEPOT_FLUSH_MS = 2000;

/** Cache row K.CARVE flags (page offsets are page-aligned, so the low bits are free). */
export const CARVE_BUILDING = 1;
export const CARVE_LINKING = 2;

/** What releaseRow needs to see a slab's objects. */
export interface SlabGeometry {
  u8: Uint8Array;
  pageSize: number;
}

/**
 * A carve the dead agent did not finish: every FREE object of the slab
 * that is in no list (neither the depot, which nobody popped since the
 * dead agent took its lock, nor the dead row) is linked into the depot in
 * batches. Depot lock held.
 */
function finishCarve(u32: Uint32Array, g: SlabGeometry, cr: number, rec: number, base: number): void {
  const inList = new Set<number>();
  for (let b = load(u32, cr + ClassRow.DEPOT_HEAD); b !== 0; b = u32[(b >>> 2) + O_NEXT_BATCH]!) {
    let x = b;
    for (let i = u32[(b >>> 2) + O_COUNT]!; i > 0 && x !== 0; i--, x = u32[x >>> 2]!) inList.add(x);
  }
  for (let x = u32[rec]!, i = 0; x !== 0 && i < 1 << 26; x = u32[x >>> 2]!, i++) inList.add(x);
  const unit = u32[cr + ClassRow.UNIT]!;
  const per = u32[cr + ClassRow.PER_SLAB]!;
  const batch = u32[cr + ClassRow.BATCH]!;
  const mapBytes = g.pageSize >>> GRANULE_SHIFT;
  let head = 0;
  let tail = 0;
  let n = 0;
  for (let i = 0; i < per; i++) {
    const p = base + mapBytes + i * unit;
    if (g.u8[base + ((mapBytes + i * unit) >>> GRANULE_SHIFT)] !== ST_FREE || inList.has(p)) continue;
    if (n === 0) head = p;
    else u32[tail >>> 2] = p;
    tail = p;
    if (++n === batch) {
      u32[tail >>> 2] = 0;
      u32[(head >>> 2) + O_COUNT] = n;
      u32[(head >>> 2) + O_TAIL] = tail;
      linkLocked(u32, cr, head, n);
      n = 0;
    }
  }
  if (n > 0) {
    u32[tail >>> 2] = 0;
    u32[(head >>> 2) + O_COUNT] = n;
    u32[(head >>> 2) + O_TAIL] = tail;
    linkLocked(u32, cr, head, n);
  }
}

function inStack(u32: Uint32Array, cr: number, b: number): boolean {
  let n = 0;
  for (let x = load(u32, cr + ClassRow.DEPOT_HEAD); x !== 0 && n < 1 << 26; x = u32[(x >>> 2) + O_NEXT_BATCH]!, n++) {
    if (x === b) return true;
  }
  return false;
}

/**
 * Releasing a dead slot's row of class row cr: takes the depot lock (it is
 * the dead agent's, or taken for the purpose), settles the batch the agent
 * was moving, recounts the depot, recounts the row's list, flushes it.
 *
 * - A trim/flush batch (K.TRIM): in the stack, it was linked; else if the
 *   row still starts with it, it was never cut; else it is cut and in no
 *   list: link it.
 * - A popped batch (K.INFLIGHT): if it is still in the stack (the agent
 *   died holding the lock, before its store), nothing moved; else if the
 *   row starts with it, it was spliced; else it is in no list: link it.
 *
 * Returns false (and leaves the row alone) if the lock stays held by a
 * live agent for DEPOT_FLUSH_MS.
 */
function releaseRow(u32: Uint32Array, g: SlabGeometry, cr: number, rec: number, slot: number, me: number): boolean {
  const dead = slot + 1;
  const deadHeld = load(u32, cr + ClassRow.DEPOT_LOCK) === dead;
  if (deadHeld) {
    store(u32, cr + ClassRow.DEPOT_LOCK, me);
  } else {
    const deadline = Date.now() + DEPOT_FLUSH_MS;
    while (!lockDepot(u32, cr, me, 1024)) if (Date.now() > deadline) return false;
  }
  const trim = u32[rec + CacheRow.TRIM]!;
  if (trim !== 0 && !inStack(u32, cr, trim) && u32[rec] !== trim) {
    const n = u32[rec + CacheRow.TRIM_N]!;
    let tail = trim;
    for (let i = 1; i < n; i++) tail = u32[tail >>> 2]!;
    u32[tail >>> 2] = 0;
    u32[(trim >>> 2) + O_COUNT] = n;
    u32[(trim >>> 2) + O_TAIL] = tail;
    linkLocked(u32, cr, trim, n);
  }
  u32[rec + CacheRow.TRIM] = 0;
  const popped = u32[rec + CacheRow.INFLIGHT]!;
  if (popped !== 0 && !inStack(u32, cr, popped) && u32[rec] !== popped) {
    const tail = u32[(popped >>> 2) + O_TAIL]!;
    u32[tail >>> 2] = 0;
    linkLocked(u32, cr, popped, u32[(popped >>> 2) + O_COUNT]!);
  }
  u32[rec + CacheRow.INFLIGHT] = 0;
  const carve = u32[rec + CacheRow.CARVE]!;
  // Batches of a carve that got the lock went to the depot only while the
  // dead agent held it (it clears the record first): then nobody can have
  // popped them since. Without the lock, everything went to its row.
  if (carve !== 0 && ((carve & CARVE_LINKING) === 0 || deadHeld)) finishCarve(u32, g, cr, rec, (carve & ~15) >>> 0);
  u32[rec + CacheRow.CARVE] = 0;
  // Recount: nobody changes the stack or its counter without the lock.
  let total = 0;
  for (let x = load(u32, cr + ClassRow.DEPOT_HEAD), i = 0; x !== 0 && i < 1 << 26; x = u32[(x >>> 2) + O_NEXT_BATCH]!, i++) {
    total += u32[(x >>> 2) + O_COUNT]!;
  }
  store(u32, cr + ClassRow.DEPOT_OBJECTS, total);
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
    const cr = classRowAt(R, c);
    const rec = cacheRowAt(R, classes, maxSlots, slot, c);
    releaseRow(u32, g, cr, rec, slot, me);
    // Should the agent still run after all (a stale handle), its next free
    // goes to the slow path, which finds the slot released and throws.
    u32[rec + CacheRow.HIGH] = 0;
    u32[rec + CacheRow.OWNER] = 0;
  }
  const flag = R + slotFlagWord(classes) + slot;
  if (u32[flag] !== 0) {
    u32[flag] = 0;
    add(u32, R + AllocatorHeader.ATTACHED, -1);
  }
}
