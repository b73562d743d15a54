/**
 * Helpers over an allocator's shared region (layout in ../shm/layout.ts):
 * where a slot's cache rows are, and the depot operations that any agent
 * may run, including one releasing a dead agent's slot.
 */
import { A, ALLOC_WORDS, C, CACHE_WORDS, CLASS_WORDS, K, LIMBO_ROW_WORDS, O_COUNT, O_NEXT_BATCH, O_TAIL } from '../shm/layout.js';
import { add, cas, load } from '../shm/atomic.js';

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
export function limboRow(R: number, classes: number, maxSlots: number, slot: number): number {
  return R + limboRowsWord(classes, maxSlots) + slot * LIMBO_ROW_WORDS;
}

/** Word index of the cache row of (slot, class) in the region at word R. */
export function cacheRow(R: number, classes: number, maxSlots: number, slot: number, c: number): number {
  return R + cacheRowsWord(classes, maxSlots) + (slot * classes + c) * CACHE_WORDS;
}

/** Word index of the class row of class c. */
export function classRow(R: number, c: number): number {
  return R + ALLOC_WORDS + c * CLASS_WORDS;
}

/**
 * Pushes a batch (head..tail, n objects linked through word 0) onto the
 * depot of the class row at word cr. Lock-free, any agent: the batch
 * header words are written before the CAS that publishes them.
 */
export function depotPush(u32: Uint32Array, cr: number, head: number, tail: number, n: number): void {
  const hw = head >>> 2;
  u32[hw + O_COUNT] = n;
  u32[hw + O_TAIL] = tail;
  depotLink(u32, cr, head);
  add(u32, cr + C.DEPOT_OBJECTS, n);
}

/** Links a batch whose header words are already set onto the depot (no counting). */
function depotLink(u32: Uint32Array, cr: number, head: number): void {
  const hw = head >>> 2;
  let old = load(u32, cr + C.DEPOT_HEAD);
  for (;;) {
    u32[hw + O_NEXT_BATCH] = old;
    const seen = cas(u32, cr + C.DEPOT_HEAD, old, head);
    if (seen === old) break;
    old = seen;
  }
}

/**
 * Empties one cache row into its depot, batch by batch. Run by the row's
 * owner (detach) or by whoever releases a dead owner's slot.
 */
export function flushCacheRow(u32: Uint32Array, cr: number, rec: number, batch: number): void {
  u32[rec + K.INFLIGHT] = 0;
  while (u32[rec + K.COUNT]! > 0) {
    const n = Math.min(batch, u32[rec + K.COUNT]!);
    const head = u32[rec]!;
    let tail = head;
    for (let i = 1; i < n; i++) tail = u32[tail >>> 2]!;
    u32[rec] = u32[tail >>> 2]!;
    u32[rec + K.COUNT] -= n;
    u32[rec + K.OBJS_OUT] += n;
    u32[tail >>> 2] = 0;
    depotPush(u32, cr, head, tail, n);
  }
  u32[rec] = 0;
}

/**
 * A dead agent may have died holding a depot's pop lock. While the lock is
 * still held nobody else pops, so the stack below the head is stable: if
 * the batch the agent recorded as in flight is no longer in the stack, its
 * CAS went through and the batch is in no list (the splice into the cache
 * happens only after the unlock), so it is pushed back. Then the lock is
 * released. Returns true when a batch was put back.
 */
function repairDepotLock(u32: Uint32Array, cr: number, rec: number, slot: number): boolean {
  if (load(u32, cr + C.DEPOT_LOCK) !== slot + 1) return false;
  const inflight = u32[rec + K.INFLIGHT]!;
  let restored = false;
  if (inflight !== 0) {
    let found = false;
    for (let b = load(u32, cr + C.DEPOT_HEAD); b !== 0; b = u32[(b >>> 2) + O_NEXT_BATCH]!) {
      if (b === inflight) {
        found = true;
        break;
      }
    }
    if (!found) {
      // The popper subtracts the batch from DEPOT_OBJECTS only after it
      // unlocks, so the counter still includes it: relink without counting.
      depotLink(u32, cr, inflight);
      restored = true;
    }
    u32[rec + K.INFLIGHT] = 0;
  }
  cas(u32, cr + C.DEPOT_LOCK, slot + 1, 0);
  return restored;
}

/**
 * Flushes every cache of `slot` in the allocator region at word R and
 * clears its attach flag; first repairs a depot pop lock the slot's dead
 * agent may have held.
 */
export function releaseSlotCaches(u32: Uint32Array, R: number, maxSlots: number, slot: number): void {
  const classes = u32[R + A.CLASSES]!;
  for (let c = 0; c < classes; c++) {
    const cr = classRow(R, c);
    const rec = cacheRow(R, classes, maxSlots, slot, c);
    repairDepotLock(u32, cr, rec, slot);
    flushCacheRow(u32, cr, rec, u32[cr + C.BATCH]!);
    // Should the agent still run after all (a stale handle), its next free
    // goes to the slow path, which finds the slot released and throws.
    u32[rec + K.HIGH] = 0;
  }
  const flag = R + slotFlagWord(classes) + slot;
  if (u32[flag] !== 0) {
    u32[flag] = 0;
    add(u32, R + A.ATTACHED, -1);
  }
}
