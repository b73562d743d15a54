/**
 * The floor with the checks: the floor's pop and push (floor.ts), plus
 * only what the allocator's specification asks of every cache hit, so the
 * tables can say how much of anyalloc's distance from the floor those
 * checks are by themselves.
 *
 * Each check, and the rule it stands for:
 *   alloc  size is a number in [1, 4096]        bad sizes throw (TypeError/RangeError)
 *          size -> class by a table lookup      one cache per size class
 *          one stack per class                  (the class picks the stack)
 *          count - 1 >= low                     the class's low watermark (refill below it)
 *          state byte := allocated              double frees are detected
 *   free   a number, 16-byte aligned, an        not on an object boundary: RangeError
 *          integer below 2^31 (one test,
 *          (p & -16) !== p, as anyalloc's)
 *          the page's tag is this allocator's   outside the heap, or another allocator's
 *          the tag's class picks the stack      free(p) has no size
 *          state byte == allocated, := free     double free, or never allocated
 *          count + 1 <= high                    the class's high watermark (trim above it)
 *          frees counter += 1                   stats() per bucket (in the stack's header,
 *                                               as anyalloc's is in its cache row)
 *
 * What it leaves out, and anyalloc has: the cache rows live in shared
 * memory at a per-worker offset, keyed with the worker slot's generation
 * (a stale handle must not use them), and the free list is threaded
 * through the objects rather than kept in an array. A check that fails
 * throws here; anyalloc takes its slow path instead.
 *
 * It has anyalloc's shape: a class whose fields are typed arrays and
 * whose alloc and free are small methods that V8 inlines into the loop.
 * Its arrays are on SharedArrayBuffers, as the floor's and anyalloc's are,
 * but only this variant uses them. The state byte sits where anyalloc
 * keeps it, in a state array of one byte per 16 bytes of the heap, at
 * p >> 4; pages are 4 KiB, as anyalloc's are by default. The objects are
 * offsets only, never written, so every class places its 16 a page at
 * 16-byte steps.
 */
import type { PairFactory, PairVariant } from './types.js';

const PAGE_SHIFT = 12;
const PAGES = 2048;
/** The specification's buckets. */
const BUCKETS = [16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096];
const CLASSES = BUCKETS.length;
/**
 * Objects per class stack. A class's part of `stacks`: its count, its low
 * and high watermarks (configurable per class, so read, not constants;
 * high at most DEPTH), its frees counter, then the entries.
 */
const DEPTH = 1024;
const HEADER = 4;
const STRIDE = HEADER + DEPTH;
/** A page's tag: the allocator's id above 4 bits of size class. */
const MINE = 0x5a0;
const ALLOCATED = 1;
const FREE = 0;

/** A bucketed allocator's cache hit and nothing else: full class stacks, no refill, no trim. */
export class CheckedFloor {
  readonly stacks: Int32Array;
  readonly classOf: Uint8Array;
  /** Per page: MINE | class for the pages of the stacks' objects, 0 elsewhere. */
  readonly tags: Int32Array;
  /** One state byte per 16 bytes of the pages: the state of the object at p is state[p >> 4]. */
  readonly state: Uint8Array;

  /** Every class stack full of 16-byte aligned offsets on pages tagged as this allocator's. */
  constructor() {
    this.stacks = new Int32Array(new SharedArrayBuffer(CLASSES * STRIDE * 4));
    this.classOf = new Uint8Array(new SharedArrayBuffer(256));
    for (let g = 0; g < 256; g++) this.classOf[g] = BUCKETS.findIndex((u) => u >= (g + 1) * 16);
    this.tags = new Int32Array(new SharedArrayBuffer(PAGES * 4));
    this.state = new Uint8Array(new SharedArrayBuffer((PAGES << PAGE_SHIFT) >>> 4));
    for (let k = 0; k < CLASSES; k++) {
      const b = k * STRIDE;
      // 16 objects a page at 16-byte steps, 64 pages a class, from page 1
      // (0 stays null).
      for (let i = 0; i < DEPTH; i++) this.stacks[b + HEADER + i] = ((1 + k * 64 + (i >>> 4)) << PAGE_SHIFT) + (i & 15) * 16;
      this.stacks[b] = DEPTH;
      this.stacks[b + 1] = 2;
      this.stacks[b + 2] = DEPTH;
      for (let pg = 0; pg < 64; pg++) this.tags[1 + k * 64 + pg] = MINE | k;
    }
  }

  alloc(size: number): number {
    if (typeof size !== 'number' || size >>> 0 !== size || (size - 1) >>> 0 >= 4096) throw badSize(size);
    const st = this.stacks;
    const b = this.classOf[(size - 1) >>> 4]! * STRIDE;
    const n = st[b]!;
    if (n - 1 < st[b + 1]!) throw new Error('below the low watermark (the floor does not refill)');
    const p = st[b + HEADER - 1 + n]!;
    st[b] = n - 1;
    this.state[p >>> 4] = ALLOCATED;
    return p;
  }

  free(p: number): void {
    if (typeof p !== 'number') throw badPointer(p, 'not a number');
    const tag = this.tags[p >>> PAGE_SHIFT]!;
    if ((p & -16) !== p || (tag & ~15) !== MINE) throw badPointer(p, 'not an object of this allocator');
    const s = p >>> 4;
    if (this.state[s] !== ALLOCATED) throw badPointer(p, 'not allocated (double free?)');
    const st = this.stacks;
    const b = (tag & 15) * STRIDE;
    const n = st[b]! + 1;
    if (n > st[b + 2]!) throw new Error('above the high watermark (the floor does not trim)');
    this.state[s] = FREE;
    st[b + HEADER - 1 + n] = p;
    st[b] = n;
    st[b + 3]!++;
  }
}

// The errors are built out of line. A template literal such as
// `${p} is not ...` in the throw's own branch got its number-to-string
// conversion scheduled ahead of the branch by V8's optimizing compiler:
// a call on every free, 1.3x the pair's time.
function badSize(size: unknown): Error {
  return typeof size === 'number'
    ? new RangeError(`size must be an integer in [1, 4096], got ${size}`)
    : new TypeError(`size must be a number, got ${typeof size}`);
}

function badPointer(p: unknown, why: string): Error {
  return typeof p === 'number' ? new RangeError(`${p} is ${why}`) : new TypeError(`a pointer must be a number, got ${typeof p}`);
}

export const create: PairFactory = (): PairVariant => {
  let f = new CheckedFloor();
  return {
    prepare(): void {
      f = new CheckedFloor();
    },
    run(size: number, iters: number): number {
      const a = f;
      let acc = 0;
      for (let i = 0; i < iters; i++) {
        const p = a.alloc(size);
        acc = (acc + p) | 0;
        a.free(p);
      }
      return acc;
    },
  };
};
