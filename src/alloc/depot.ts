/**
 * The depot: per size class, stacks of batches of free objects, one of
 * anyone's batches (the class row's DEPOT_HEAD) and one per slot (its
 * cache row's DEPOT: what that slot's agent trimmed or carved), with one
 * try-lock for all of them (DEPOT_LOCK) and a count of the objects in all
 * of them (DEPOT_OBJECTS). Layout in ../shm/layout.ts. Every change of a
 * stack and of the counter is made under the lock, so whoever repairs a
 * lock a dead agent held finds them as that agent left them, and can
 * recount (../recovery/caches.ts). Which stack a refill takes from is
 * ./batches.ts's business (depotPop).
 *
 * A batch is a singly linked list of objects whose head carries the
 * batch's count (O_COUNT), its tail (O_TAIL) and the next batch
 * (O_NEXT_BATCH).
 */
import { AllocatorHeader, CacheRow, ClassRow, O_COUNT, O_NEXT_BATCH, O_TAIL } from '../shm/layout.js';
import { cas, load, store } from '../shm/atomic.js';
import { cacheRowAt, classRowAt } from './region.js';

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
 * The words that hold the heads of class c's depot stacks, in the
 * allocator whose region starts at word R: anyone's (the class row's),
 * then each slot's that has a block within the views `u32`. The caller
 * holds the depot lock and renewed its views after taking it: a block
 * published since then lies past them, but its agent has not held the
 * lock since it attached, so its stack is empty.
 */
export function depotStacks(u32: Uint32Array, R: number, c: number, maxSlots: number): number[] {
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  const stacks = [classRowAt(R, c) + ClassRow.DEPOT_HEAD];
  for (let s = 0; s < maxSlots; s++) {
    const row = cacheRowAt(u32, R, classes, maxSlots, s, c);
    if (row !== 0 && row + CacheRow.DEPOT < u32.length) stacks.push(row + CacheRow.DEPOT);
  }
  return stacks;
}

/** The objects the batches of `stacks` hold (a survivor's recount). Depot lock held. */
export function countDepot(u32: Uint32Array, stacks: readonly number[]): number {
  let total = 0;
  for (const stack of stacks) {
    for (let x = load(u32, stack), n = 0; x !== 0 && n < 1 << 26; x = u32[(x >>> 2) + O_NEXT_BATCH]!, n++) total += u32[(x >>> 2) + O_COUNT]!;
  }
  return total;
}

/** Whether batch b is in one of `stacks`. Depot lock held. */
export function inDepot(u32: Uint32Array, stacks: readonly number[], b: number): boolean {
  for (const stack of stacks) {
    for (let x = load(u32, stack), n = 0; x !== 0 && n < 1 << 26; x = u32[(x >>> 2) + O_NEXT_BATCH]!, n++) {
      if (x === b) return true;
    }
  }
  return false;
}

/**
 * Links a batch whose header words (count, tail) are set onto the depot
 * stack whose head is at word `stack`, and counts it. Depot lock held:
 * every change of the stacks and of their counter happens under the lock,
 * so whoever repairs a lock a dead agent held finds them as that agent
 * left them, and can recount.
 */
export function linkLocked(u32: Uint32Array, cr: number, stack: number, head: number, n: number): void {
  u32[(head >>> 2) + O_NEXT_BATCH] = load(u32, stack);
  store(u32, stack, head);
  store(u32, cr + ClassRow.DEPOT_OBJECTS, load(u32, cr + ClassRow.DEPOT_OBJECTS) + n);
}

/**
 * Moves the first n objects of cache row rec to the depot stack at word
 * `stack` as one batch. Depot lock held. CacheRow.TRIM/CacheRow.TRIM_N
 * record the batch until it is linked.
 */
export function moveToDepot(u32: Uint32Array, cr: number, rec: number, n: number, stack: number): void {
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
  linkLocked(u32, cr, stack, head, n);
  u32[rec + CacheRow.TRIM] = 0;
}

/**
 * Empties one cache row into its depot as anyone's batches, batch by
 * batch, under the depot lock: run by the row's owner (detach,
 * flushCaches) or by whoever releases a dead owner's slot (with the lock
 * already held: `locked`). The row's own stack stays where it is: a
 * refill takes a stack whose slot no agent has attached as it takes
 * anyone's (./batches.ts, depotPop), and the slot's next agent takes it
 * as its own. Waits for the lock at most DEPOT_FLUSH_MS (neither runs on
 * an alloc or free path); if it cannot get it, the objects stay in the
 * row, which is a list like any other: nothing is lost, and the slot's
 * next agent uses them.
 */
export function flushCacheRow(u32: Uint32Array, cr: number, rec: number, batch: number, me: number, locked = false): void {
  if (u32[rec + CacheRow.COUNT] === 0) return;
  if (!locked) {
    const deadline = Date.now() + DEPOT_FLUSH_MS;
    while (!lockDepot(u32, cr, me, 1024)) if (Date.now() > deadline) return;
  }
  const anyone = cr + ClassRow.DEPOT_HEAD;
  while (u32[rec + CacheRow.COUNT]! > 0) moveToDepot(u32, cr, rec, Math.min(batch, u32[rec + CacheRow.COUNT]!), anyone);
  u32[rec] = 0;
  if (!locked) unlockDepot(u32, cr);
}

/**
 * Links `objects` into batches of at most `batch` (each head carrying its
 * count, tail and next batch), the last one followed by `next`, and
 * returns the first batch's head (`next` for no objects). The caller
 * publishes it as a stack's head under the depot lock.
 */
export function linkBatches(u32: Uint32Array, objects: readonly number[], batch: number, next = 0): number {
  let head = next;
  for (let end = objects.length; end > 0; end -= batch) {
    const start = Math.max(0, end - batch);
    for (let i = start; i < end - 1; i++) u32[objects[i]! >>> 2] = objects[i + 1]!;
    const first = objects[start]!;
    const last = objects[end - 1]!;
    u32[last >>> 2] = 0;
    u32[(first >>> 2) + O_COUNT] = end - start;
    u32[(first >>> 2) + O_TAIL] = last;
    u32[(first >>> 2) + O_NEXT_BATCH] = head;
    head = first;
  }
  return head;
}

/** How long a flush waits for the depot lock (never on an alloc or free path). */
export const DEPOT_FLUSH_MS = 2000;

/** Cache row CARVE flags (page offsets are page-aligned, so the low bits are free). */
export const CARVE_BUILDING = 1;
export const CARVE_LINKING = 2;
/** Not a carve: the row's agent is shrinking the depot (alloc/shrink.ts), which a survivor rebuilds. */
export const CARVE_SHRINKING = 4;
/**
 * With CARVE_SHRINKING: every object of the depot is marked and the stacks
 * are being rewritten, so a survivor rebuilds them from the marks. Without
 * it (before the marks are all set, or once the new stacks are published)
 * the stacks are whole, and a survivor only clears the marks it finds.
 */
export const CARVE_MARKED = 8;
