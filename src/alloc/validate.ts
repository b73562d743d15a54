/**
 * The allocator's invariants, checked over the shared memory of a quiet
 * heap (Heap.validate).
 */
import { AllocatorHeader, ALLOC_LIVE, ALLOC_WORDS, CacheRow, ClassRow, CLASS_WORDS, KIND_SLAB, LimboRow, O_COUNT, O_NEXT_BATCH, O_TAIL, ST_ALLOCATED, ST_FREE, ST_NONE, ST_RETIRED, tagAllocator, tagClass, tagKind } from '../shm/layout.js';
import { slabObject, slabState } from './slabs.js';
import { load } from '../shm/atomic.js';
import type { HeapCore } from '../heap/core.js';
import { cacheRowAt, limboRowAt } from './region.js';
import { rowEntries } from '../reclaim/limbo.js';

/**
 * Checks the heap's pages and every live allocator (see Heap.validate);
 * the caller's agent must be quiet. Returns the problems found.
 */
export function validateHeap(heap: HeapCore): string[] {
  heap.refresh();
  // This agent is quiet while it validates: its allocators let go of
  // their limbo rings (held between deferred frees, see freeDeferred).
  heap.settleClients();
  const errors = heap.validatePages();
  for (const id of heap.allocatorIds()) errors.push(...validateAllocator(heap, id).map((e) => `allocator ${id}: ${e}`));
  return errors;
}

/**
 * Checks one allocator's invariants; the heap must be quiet (no agent
 * allocating or freeing). Per class:
 *   slabs * perSlab = depotObjects + sum(cached) + live
 *   every object in a depot batch or a cache list is FREE, in a slab of
 *   this class, at an object start, and in exactly one list (a cache, or
 *   a batch on one of the depot's stacks);
 *   every FREE object of a slab is in some list (nothing lost).
 */
export function validateAllocator(heap: HeapCore, id: number): string[] {
  heap.refresh();
  const errors: string[] = [];
  const row = heap.allocatorRow(id);
  if (row.state !== ALLOC_LIVE) return errors;
  const u32 = heap.u32;
  const st = heap.st;
  const R = row.region >>> 2;
  const classes = u32[R + AllocatorHeader.CLASSES]!;
  const seen = new Set<number>();
  const inList = new Array<number>(classes).fill(0);
  const check = (p: number, c: number, where: string): boolean => {
    const tag = load(u32, heap.tagWord + (p >>> heap.pageShift));
    if (tagKind(tag) !== KIND_SLAB || tagAllocator(tag) !== id || tagClass(tag) !== c) {
      errors.push(`${where}: object ${p} is not in a slab of class ${c} of allocator ${id}`);
      return false;
    }
    if ((p & 15) !== 0) errors.push(`${where}: object ${p} is not 16-byte aligned`);
    else if (st[p >>> 4] !== ST_FREE) errors.push(`${where}: object ${p} is in a free list but its state is ${st[p >>> 4]}`);
    if (seen.has(p)) {
      errors.push(`${where}: object ${p} is in two free lists (would be handed out twice)`);
      return false;
    }
    seen.add(p);
    inList[c]!++;
    return true;
  };
  for (let c = 0; c < classes; c++) {
    const cr = R + ALLOC_WORDS + c * CLASS_WORDS;
    let depotCount = 0;
    // The depot's stacks: anyone's, then each slot's.
    for (let s = -1; s < heap.maxSlots; s++) {
      const rec = s < 0 ? 0 : cacheRowAt(u32, R, classes, heap.maxSlots, s, c);
      if (s >= 0 && rec === 0) continue;
      const stack = s < 0 ? cr + ClassRow.DEPOT_HEAD : rec + CacheRow.DEPOT;
      const where = s < 0 ? `depot ${c}` : `depot ${c}, slot ${s}'s stack`;
      for (let b = load(u32, stack); b !== 0 && depotCount <= 1e9; b = u32[(b >>> 2) + O_NEXT_BATCH]!) {
        const n = u32[(b >>> 2) + O_COUNT]!;
        let p = b;
        let walked = 0;
        let last = 0;
        while (p !== 0 && walked <= n) {
          if (!check(p, c, where)) break;
          walked++;
          last = p;
          p = u32[p >>> 2]!;
        }
        if (walked !== n) errors.push(`${where}: batch ${b} says ${n} objects, chain has ${walked}`);
        if (last !== u32[(b >>> 2) + O_TAIL]) errors.push(`${where}: batch ${b} tail mismatch`);
        depotCount += n;
      }
    }
    if (depotCount !== load(u32, cr + ClassRow.DEPOT_OBJECTS)) {
      errors.push(`depot ${c}: counter says ${load(u32, cr + ClassRow.DEPOT_OBJECTS)}, batches hold ${depotCount}`);
    }
    for (let s = 0; s < heap.maxSlots; s++) {
      const rec = cacheRowAt(u32, R, classes, heap.maxSlots, s, c);
      if (rec === 0) continue;
      const n = u32[rec + CacheRow.COUNT]!;
      let walked = 0;
      for (let p = u32[rec]!; p !== 0 && walked <= n; p = u32[p >>> 2]!) {
        if (!check(p, c, `slot ${s} cache ${c}`)) break;
        walked++;
      }
      if (walked !== n) errors.push(`slot ${s} cache ${c}: count says ${n}, list has ${walked}`);
    }
  }
  // Every RETIRED object is in exactly one limbo ring (or a row's pending word).
  const waiting = new Set<number>();
  for (let s = 0; s < heap.maxSlots; s++) {
    const row = limboRowAt(u32, R, classes, heap.maxSlots, s);
    if (row === 0) continue;
    if (load(u32, row + LimboRow.LOCK) !== 0) errors.push(`slot ${s} limbo ring: locked by slot ${load(u32, row + LimboRow.LOCK) - 1} in a quiet heap`);
    if (u32[row + LimboRow.TAKING] !== 0) errors.push(`slot ${s} limbo ring: a take of ${u32[row + LimboRow.TAKING]} was left unfinished`);
    const pending = u32[row + LimboRow.PENDING]!;
    for (const p of pending === 0 ? rowEntries(u32, row) : [...rowEntries(u32, row), pending]) {
      const tag = load(u32, heap.tagWord + (p >>> heap.pageShift));
      if (tagKind(tag) !== KIND_SLAB || tagAllocator(tag) !== id) errors.push(`slot ${s} limbo ring: ${p} is not an object of allocator ${id}`);
      else if (st[p >>> 4] !== ST_RETIRED) errors.push(`slot ${s} limbo ring: object ${p} is waiting but its state is ${st[p >>> 4]}`);
      if (waiting.has(p)) errors.push(`slot ${s} limbo ring: object ${p} is waiting twice (would be freed twice)`);
      waiting.add(p);
    }
  }
  let retired = 0;
  // Every FREE object must be in a list; count live objects per class.
  const freeInSlabs = new Array<number>(classes).fill(0);
  const committed = heap.committedPages();
  for (let p = heap.firstDataPage; p < committed; p++) {
    const tag = load(u32, heap.tagWord + p);
    if (tagKind(tag) !== KIND_SLAB || tagAllocator(tag) !== id) continue;
    const c = tagClass(tag);
    const cr = R + ALLOC_WORDS + c * CLASS_WORDS;
    const pages = u32[cr + ClassRow.SLAB_PAGES]!;
    const head = load(u32, heap.argWord + p);
    if (head !== p) {
      // Not a first page: its arg names the first page of its slab, which
      // carries the same tag and spans it.
      if (head < heap.firstDataPage || head > p || p - head >= pages || load(u32, heap.tagWord + head) !== tag || load(u32, heap.argWord + head) !== head) {
        errors.push(`page ${p}: tagged as a slab of class ${c}, but its arg ${head} names no first page of a ${pages}-page slab of that class before it`);
      }
      continue;
    }
    const base = p * heap.pageSize;
    for (let q = p + 1; q < p + pages; q++) {
      if (q >= committed || load(u32, heap.tagWord + q) !== tag) errors.push(`slab at page ${p} (class ${c}): its page ${q} is not tagged alike`);
      else if (load(u32, heap.argWord + q) !== p) errors.push(`slab at page ${p} (class ${c}): page ${q}'s arg is ${load(u32, heap.argWord + q)}, not its first page ${p}`);
    }
    const unit = u32[cr + ClassRow.UNIT]!;
    const per = u32[cr + ClassRow.PER_SLAB]!;
    // A state byte that is not an object's start must be NONE, or a
    // pointer into an object (or the tail) would pass for one.
    for (let g = base >>> 4, next = base >>> 4, i = 0; g < (base + pages * heap.pageSize) >>> 4; g++) {
      if (g === next && i < per) {
        next = slabState(base, unit, ++i);
        continue;
      }
      if (st[g] !== ST_NONE) errors.push(`slab at page ${p} (class ${c}): byte ${g * 16} is no object's start, but its state is ${st[g]}`);
    }
    for (let i = 0; i < per; i++) {
      const obj = slabObject(base, unit, i);
      const state = st[slabState(base, unit, i)];
      if (state === ST_FREE) {
        freeInSlabs[c]!++;
        if (!seen.has(obj)) errors.push(`class ${c}: free object ${obj} is in no list (lost)`);
      } else if (state === ST_RETIRED) {
        retired++;
      } else if (state !== ST_ALLOCATED) {
        errors.push(`class ${c}: object ${obj} has bad state ${state}`);
      }
    }
  }
  for (let c = 0; c < classes; c++) {
    if (freeInSlabs[c] !== inList[c]) errors.push(`class ${c}: ${freeInSlabs[c]} free objects in slabs, ${inList[c]} in lists`);
  }
  if (retired !== waiting.size) {
    errors.push(`${retired} objects are RETIRED, ${waiting.size} wait in limbo rings (the rest are lost, or in an agent's spill list)`);
  }
  return errors;
}

