/**
 * The depot: per size class, a stack of batches of free objects shared by
 * every agent (the class row's DEPOT_HEAD), with a try-lock for poppers
 * (DEPOT_LOCK) and a count of the objects in it (DEPOT_OBJECTS). Layout in
 * ../shm/layout.ts. Every change of the stack and of its counter is made
 * under the lock, so whoever repairs a lock a dead agent held finds both
 * as that agent left them, and can recount (../recovery/caches.ts).
 *
 * A batch is a singly linked list of objects whose head carries the batch's
 * owner and count (O_COUNT), its tail (O_TAIL) and the next batch
 * (O_NEXT_BATCH).
 */
import { batchWord, CacheRow, ClassRow, O_COUNT, O_NEXT_BATCH, O_TAIL } from '../shm/layout.js';
import { cas, load, store } from '../shm/atomic.js';

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
 * Moves the first n objects of cache row rec to the depot as one batch of
 * `owner` (slot + 1, or 0 for anyone's). Depot lock held.
 * CacheRow.TRIM/CacheRow.TRIM_N record the batch until it is linked.
 */
export function moveToDepot(u32: Uint32Array, cr: number, rec: number, n: number, owner: number): void {
  const head = u32[rec]!;
  let tail = head;
  for (let i = 1; i < n; i++) tail = u32[tail >>> 2]!;
  u32[rec + CacheRow.TRIM_N] = n;
  u32[rec + CacheRow.TRIM] = head;
  u32[rec] = u32[tail >>> 2]!;
  u32[rec + CacheRow.COUNT] -= n;
  u32[rec + CacheRow.OBJS_OUT] += n;
  u32[tail >>> 2] = 0;
  u32[(head >>> 2) + O_COUNT] = batchWord(n, owner);
  u32[(head >>> 2) + O_TAIL] = tail;
  linkLocked(u32, cr, head, n);
  u32[rec + CacheRow.TRIM] = 0;
}

/**
 * Empties one cache row into its depot, batch by batch, under the depot
 * lock: run by the row's owner (detach) or by whoever releases a dead
 * owner's slot (with the lock already held: `locked`). The batches are
 * anyone's: their agent is leaving. Waits for the lock
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
  while (u32[rec + CacheRow.COUNT]! > 0) moveToDepot(u32, cr, rec, Math.min(batch, u32[rec + CacheRow.COUNT]!), 0);
  u32[rec] = 0;
  if (!locked) unlockDepot(u32, cr);
}

/**
 * Links `objects` into batches of at most `batch` with owner and fresh
 * bits `mark` (batchMark; 0: anyone's), each head carrying those, its
 * count, tail and next batch, the last one followed by `next`, and
 * returns the first batch's head (`next` for no objects). The caller
 * publishes it as the depot's head under the lock.
 */
export function linkBatches(u32: Uint32Array, objects: readonly number[], batch: number, mark = 0, next = 0): number {
  let head = next;
  for (let end = objects.length; end > 0; end -= batch) {
    const start = Math.max(0, end - batch);
    for (let i = start; i < end - 1; i++) u32[objects[i]! >>> 2] = objects[i + 1]!;
    const first = objects[start]!;
    const last = objects[end - 1]!;
    u32[last >>> 2] = 0;
    u32[(first >>> 2) + O_COUNT] = ((end - start) | mark) >>> 0;
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
