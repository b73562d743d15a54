/**
 * Where the objects of a debug allocator are: the object a user pointer
 * designates (or exactly what is wrong with the pointer), the unit and
 * state of an object, and a walk over every object of the allocator.
 * These read the release allocator's own fields through DebugShape.
 */
import type { HeapCore } from '../../heap/core.js';
import { describe, hex, typeError } from '../../errors.js';
import { AllocatorMisuseError, MISUSE, type MisuseCode } from '../misuse.js';
import {
  CLASS_MASK,
  KIND_LARGE,
  KIND_LARGE_TAIL,
  KIND_SLAB,
  ST_ALLOCATED,
  ST_FREE,
  ST_NONE,
  ST_RETIRED,
  ST_SHRINKING,
  tagAllocator,
  tagClass,
  tagKind,
} from '../../shm/layout.js';
import { slabObject, slabStart, slabState } from '../slabs.js';
import { DEBUG_HEADER, DEFR, MARKER, isLiveHead, isQuarantinedHead } from './guard.js';

const HEAD = DEBUG_HEADER;

/** What these functions read of a DebugAllocator: mostly the release allocator's fields. */
export interface DebugShape {
  readonly heap: HeapCore;
  readonly id: number;
  /** A fixed-size allocator (unitSize): objects have no header, alloc returns the unit itself. */
  readonly fixed: boolean;
  readonly pageShift: number;
  readonly pageMask: number;
  /** The page tag of this allocator's slabs of class c. */
  slabTag(c: number): number;
  readonly units: Uint32Array;
  readonly perSlab: Uint32Array;
  readonly slabTagBase: number;
  /** Page tag of this allocator's large runs. */
  readonly largeTag: number;
}

/** `op(pointer (0xhex)): why`, the form of every misuse about a pointer. */
export function misuseError(op: string, p: number, why: string, code: MisuseCode): AllocatorMisuseError {
  const shown = Number.isSafeInteger(p) && p >= 0 ? `${p} (${hex(p)})` : describe(p);
  return new AllocatorMisuseError(`${op}(${shown}): ${why}`, code, p);
}

/** The pointer the user holds for the object at base. */
export function userPointer(a: DebugShape, base: number): number {
  return a.fixed ? base : base + HEAD;
}

/** The state byte (ST_*) of the slab object at base. */
export function stateOf(a: DebugShape, base: number): number {
  return a.heap.st[base >>> 4]!;
}

/** Bytes of the page run that starts at base. */
export function largeUnit(a: DebugShape, base: number): number {
  const heap = a.heap;
  return heap.u32[heap.argWord + (base >>> a.pageShift)]! * heap.pageSize;
}

/** Unit of a live object at base (slab class unit, or the whole page run). */
export function unitAt(a: DebugShape, base: number): number {
  const heap = a.heap;
  const tag = heap.u32[heap.tagWord + (base >>> a.pageShift)]!;
  return tagKind(tag) === KIND_SLAB ? a.units[tagClass(tag)]! : largeUnit(a, base);
}

/**
 * Calls visit for every object of the allocator's committed pages, in
 * address order: each page run (state ST_ALLOCATED) and each slab unit
 * with its state byte.
 */
export function forEachObject(a: DebugShape, visit: (base: number, unit: number, state: number) => void): void {
  const heap = a.heap;
  const committed = heap.committedPages();
  for (let pg = heap.firstDataPage; pg < committed; pg++) {
    const tag = heap.u32[heap.tagWord + pg]!;
    if (tagAllocator(tag) !== a.id) continue;
    const kind = tagKind(tag);
    if (kind === KIND_LARGE) {
      const base = pg * heap.pageSize;
      visit(base, largeUnit(a, base), ST_ALLOCATED);
    } else if (kind === KIND_SLAB) {
      const c = tagClass(tag);
      const unit = a.units[c]!;
      const start = pg * heap.pageSize;
      if (heap.u32[heap.argWord + pg] !== pg) continue; // not the slab's first page
      for (let i = 0; i < a.perSlab[c]!; i++) visit(slabObject(start, unit, i), unit, heap.st[slabState(start, unit, i)]!);
    }
  }
}

/**
 * destroy(): removes the free markers from this allocator's slabs before
 * their pages go back, so a page that later comes back to another debug
 * allocator carries none.
 */
export function wipeMarkers(a: DebugShape): void {
  const heap = a.heap;
  heap.refresh();
  forEachObject(a, (base, unit, state) => {
    if (state !== ST_FREE || unit < 2 * HEAD) return;
    const m = (base + unit - MARKER) >>> 2;
    heap.u32[m] = 0;
    heap.u32[m + 1] = 0;
  });
}

/** p is a free object of class c of this allocator (a sound free-list link). */
export function isFreeObject(a: DebugShape, p: number, c: number): boolean {
  const heap = a.heap;
  if (p >= heap.viewBytes) heap.refresh();
  if ((p & 15) !== 0 || p >= heap.viewBytes) return false;
  if (heap.u32[heap.tagWord + (p >>> a.pageShift)] !== a.slabTag(c)) return false;
  if ((p - slabStart(heap, p)) % a.units[c]! !== 0) return false;
  return heap.st[p >>> 4] === ST_FREE;
}

/**
 * Returns the base of the live object the user pointer p designates, or
 * throws the misuse it is. Changes nothing.
 */
export function checkLive(a: DebugShape, op: string, p: unknown): number {
  const heap = a.heap;
  if (typeof p === 'number' && p >>> 0 === p && (p & 15) === 0 && p !== 0 && p < heap.viewBytes) {
    const u32 = heap.u32;
    const tag = u32[heap.tagWord + (p >>> a.pageShift)]!;
    if (((tag & ~CLASS_MASK) >>> 0) === a.slabTagBase) {
      if (a.fixed) {
        if (heap.st[p >>> 4] === ST_ALLOCATED && !isQuarantinedHead(heap, p)) return p;
      } else if (p - slabStart(heap, p) >= HEAD) {
        // (A pointer less than a header past the slab's start has no object of this slab behind it.)
        const base = p - HEAD;
        if (heap.st[base >>> 4] === ST_ALLOCATED && isLiveHead(heap, base)) return base;
      }
    } else if (tag === a.largeTag && (p & a.pageMask) === HEAD && isLiveHead(heap, p - HEAD)) {
      return p - HEAD;
    }
  }
  return diagnose(a, op, p);
}

/** The slow half of checkLive: says exactly what is wrong with p (or returns the base after all). */
function diagnose(a: DebugShape, op: string, p: unknown): number {
  if (typeof p !== 'number' || !Number.isInteger(p)) {
    throw typeError('bad-argument', `${op}(${describe(p)}): ${MISUSE.notInteger}`);
  }
  const heap = a.heap;
  if (p < 0 || p >= heap.maxPages * heap.pageSize) throw misuseError(op, p, MISUSE.outsideHeap, 'out-of-range');
  if (p >= heap.viewBytes) {
    heap.refresh();
    if (p >= heap.viewBytes) {
      throw misuseError(op, p, `${MISUSE.outsideHeap} (beyond its committed pages)`, 'out-of-range');
    }
    return checkLive(a, op, p);
  }
  if (p >>> a.pageShift >= heap.committedPages()) {
    throw misuseError(op, p, `${MISUSE.outsideHeap} (beyond its committed pages)`, 'out-of-range');
  }
  if (p === 0) throw misuseError(op, p, `${MISUSE.notAllocated}: the null pointer`, 'not-allocated');
  const tag = heap.u32[heap.tagWord + (p >>> a.pageShift)]!;
  const kind = tagKind(tag);
  const owner = tagAllocator(tag);
  const freeing = op === 'free' || op === 'freeDeferred';
  if ((kind === KIND_SLAB || kind === KIND_LARGE || kind === KIND_LARGE_TAIL) && owner !== a.id) {
    throw misuseError(op, p, `${MISUSE.wrongAllocator}: the object belongs to allocator ${owner}, not ${a.id}`, 'wrong-allocator');
  }
  const inLarge = `${MISUSE.notObjectStart} (inside a large allocation)`;
  if (kind === KIND_SLAB || kind === KIND_LARGE) {
    if ((p & 15) !== 0) {
      throw misuseError(op, p, `${freeing ? MISUSE.unalignedFree : 'invalid unaligned pointer'}: objects are 16-byte aligned`, 'unaligned');
    }
    const head = a.fixed ? 0 : HEAD;
    if (kind === KIND_LARGE && (p & a.pageMask) !== head) throw misuseError(op, p, inLarge, 'not-allocated');
    if (kind === KIND_SLAB && p - slabStart(heap, p) < head) throw misuseError(op, p, MISUSE.notObjectStart, 'not-allocated');
    const base = p - head;
    const st = kind === KIND_LARGE ? ST_ALLOCATED : stateOf(a, base);
    const gone = (why: string): AllocatorMisuseError =>
      freeing
        ? misuseError(op, p, `${MISUSE.doubleFree}${why}`, 'double-free')
        : misuseError(op, p, `${MISUSE.notAllocated}: the object was freed${why}`, 'not-allocated');
    if (st === ST_FREE || st === ST_SHRINKING) throw gone('');
    if (st === ST_RETIRED) throw gone(': already freed with freeDeferred, waiting for a grace period');
    if (st === ST_NONE) throw misuseError(op, p, MISUSE.notObjectStart, 'not-allocated');
    const u32 = heap.u32;
    const w = base >>> 2;
    if (isQuarantinedHead(heap, base)) throw gone(` (the object is in the quarantine of agent slot ${u32[w + 3]})`);
    if (a.fixed || isLiveHead(heap, base)) return base;
    if (u32[w + 1] === (DEFR ^ base) >>> 0) throw gone(': already freed with freeDeferred, waiting for a grace period');
    throw misuseError(
      op,
      p,
      `${MISUSE.canary}: the 16-byte header before the object was overwritten (an underflow, or an overflow of the object before it)`,
      'canary',
    );
  }
  if (kind === KIND_LARGE_TAIL) throw misuseError(op, p, inLarge, 'not-allocated');
  throw misuseError(op, p, `${MISUSE.notAllocated}: the page holds no objects (never allocated, or freed twice)`, 'not-allocated');
}
