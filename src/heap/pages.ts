/**
 * The page heap: runs of pages taken from and given back to a free-page
 * bitmap, or carved fresh from the end of the committed region.
 *
 * Lock-free: a run is claimed bit-word by bit-word with CAS (1 -> 0); a
 * claim that meets a word someone else changed puts back what it took and
 * searches on. A run nobody has freed yet comes from bumping the committed
 * page count (after growing the buffer far enough). Nobody ever waits. A
 * run may be asked to start at a multiple of a power of two (`align`). The
 * agent's claim record names the pages before each operation that may
 * claim them, so pages a worker that dies mid-claim leaves claimed and
 * untagged are given back by a survivor (runs.ts, recoverClaim).
 */
import { cas, load, or, store } from '../shm/atomic.js';

/** What the page heap needs from its heap: the views and the header fields. */
export interface PageHeapHost {
  readonly u32: Uint32Array;
  /** Word index of the header (base / 4). */
  readonly hdr: number;
  /** Word index of the free bitmap. */
  readonly bitmapWord: number;
  readonly bitmapWords: number;
  readonly maxPages: number;
  readonly pageSize: number;
  /** Make sure the buffer holds at least `bytes`; false when it cannot grow. */
  growTo(bytes: number): boolean;
  /**
   * Word index of this agent's claim record (SlotRow.CLAIM_FIRST; CLAIM_K
   * follows), or -1: named before every atomic operation that may claim.
   */
  readonly claimWord: number;
}

/** Names the run this agent is about to claim (layout.ts, slot row). */
function name(h: PageHeapHost, first: number, k: number): void {
  if (h.claimWord < 0) return;
  store(h.u32, h.claimWord, first);
  store(h.u32, h.claimWord + 1, k);
}

function ctz32(bit: number): number {
  return 31 - Math.clz32(bit);
}

/** Mask of bits [from, to) within one word, 0 <= from < to <= 32. */
function bitRange(from: number, to: number): number {
  const hi = to === 32 ? 0xffffffff : ((1 << to) >>> 0) - 1;
  const lo = ((1 << from) >>> 0) - 1;
  return (hi & ~lo) >>> 0;
}

/** Claims one free page below page `limit` from the bitmap; -1 when none is free. */
function claimOne(h: PageHeapHost, limit: number, cursorWord: number): number {
  const u32 = h.u32;
  const n = Math.min(h.bitmapWords, Math.ceil(limit / 32));
  const start = load(u32, cursorWord) % n;
  for (let i = 0; i < n; i++) {
    const w = (start + i) % n;
    let v = load(u32, h.bitmapWord + w);
    while (v !== 0) {
      const bit = (v & -v) >>> 0;
      name(h, w * 32 + ctz32(bit), 1);
      const seen = cas(u32, h.bitmapWord + w, v, (v & ~bit) >>> 0);
      if (seen === v) {
        const page = w * 32 + ctz32(bit);
        if (page >= limit) {
          releaseBits(h, page, 1);
          break;
        }
        if (w !== start) store(u32, cursorWord, w);
        return page;
      }
      v = seen;
    }
  }
  return -1;
}

/** Sets the free bits of pages [first, first + k). */
export function releaseBits(h: PageHeapHost, first: number, k: number): void {
  const u32 = h.u32;
  let p = first;
  const end = first + k;
  while (p < end) {
    const w = p >>> 5;
    const from = p & 31;
    const to = Math.min(32, from + (end - p));
    or(u32, h.bitmapWord + w, bitRange(from, to));
    p += to - from;
  }
}

/** Clears the free bits of [first, first+k) if all are set; all-or-nothing. */
function claimRange(h: PageHeapHost, first: number, k: number): boolean {
  const u32 = h.u32;
  name(h, first, k);
  let p = first;
  const end = first + k;
  while (p < end) {
    const w = p >>> 5;
    const from = p & 31;
    const to = Math.min(32, from + (end - p));
    const mask = bitRange(from, to);
    let v = load(u32, h.bitmapWord + w);
    for (;;) {
      if ((v & mask) >>> 0 !== mask) {
        if (p > first) releaseBits(h, first, p - first);
        return false;
      }
      const seen = cas(u32, h.bitmapWord + w, v, (v & ~mask) >>> 0);
      if (seen === v) break;
      v = seen;
    }
    p += to - from;
  }
  return true;
}

/** Index of the lowest set bit of a nonzero word. */
function lowestBit(v: number): number {
  return ctz32((v & -v) >>> 0);
}

/** Bit j of the result is set when bits j .. j+k-1 of v all are (1 <= k <= 32). */
function runStarts(v: number, k: number): number {
  let m = v;
  // Doubling: after each step bit j covers `have` bits from j.
  for (let have = 1; have < k; ) {
    const s = have < k - have ? have : k - have;
    m = (m & (m >>> s)) >>> 0;
    have += s;
  }
  return m;
}

/**
 * Claims the first run of k free pages below page `limit` whose first page
 * is a multiple of `align` (a power of two); -1 when there is none.
 *
 * One pass over the bitmap words that follows the stretch of free pages
 * reaching the current word from below: a word of 0 ends it, a word of all
 * ones extends it by 32, and a mixed word ends it after its trailing ones
 * and starts the next with its leading ones (count-trailing/leading-zeros
 * arithmetic, no loop over bits). A stretch from page s holds the run once
 * it reaches page alignUp(s) + k. Runs of fewer than 32 pages may also lie
 * inside one mixed word: a few shifts mark where they start. A run found
 * is claimed all-or-nothing; a claim that loses a race moves on, so the
 * pass stays bounded.
 */
function claimRun(h: PageHeapHost, k: number, limit: number, align: number): number {
  const u32 = h.u32;
  const words = Math.min(h.bitmapWords, Math.ceil(limit / 32));
  const down = -align;
  // Bits of a word at aligned pages (align <= 32; a word starts at a multiple of 32).
  let aligned = 0;
  for (let j = 0; j < 32 && align <= 32; j += align) aligned |= 1 << j;
  aligned >>>= 0;
  // The page the stretch reaching this word must reach to hold the run
  // (alignUp(its first page) + k); -1 when no free page reaches this word.
  let need = -1;
  for (let w = 0; w < words; w++) {
    // A plain read (Atomics.load costs several times more per word): it
    // only picks a candidate, and claimRange's CAS decides.
    const v = u32[h.bitmapWord + w]!;
    if (v === 0) {
      need = -1;
      continue;
    }
    const at = w * 32;
    if (v === 0xffffffff) {
      if (need < 0) need = ((at + align - 1) & down) + k;
      if (need <= at + 32) {
        if (need > limit) return -1;
        if (claimRange(h, need - k, k)) return need - k;
        need = -1;
      }
      continue;
    }
    // The stretch from below ends at this word's first clear bit.
    if (need >= 0 && need <= at + lowestBit(~v >>> 0)) {
      if (need > limit) return -1;
      if (claimRange(h, need - k, k)) return need - k;
    }
    if (k < 32) {
      const m = (runStarts(v, k) & (align <= 32 ? aligned : (at & (align - 1)) === 0 ? 1 : 0)) >>> 0;
      if (m !== 0) {
        const first = at + lowestBit(m);
        if (first + k > limit) return -1;
        if (claimRange(h, first, k)) return first;
      }
    }
    // The word's leading ones start the stretch into the next word.
    const top = Math.clz32(~v);
    need = top === 0 ? -1 : ((at + 32 - top + align - 1) & down) + k;
  }
  return -1;
}

/**
 * Takes a run of k pages ending at or below page `limit` whose first page is
 * a multiple of `align` (a power of two, default 1); returns the first page
 * number, or 0 when the heap cannot provide it (page 0 is always a meta
 * page, so 0 is "none").
 *
 * From the bump, an unaligned committed count n moves to alignUp(n) + k in
 * one CAS, and the gap pages [n, alignUp(n)) go to the bitmap as free. The
 * claim record names [n, alignUp(n) + k) from before the CAS until the gap
 * is free, then [alignUp(n), k): a survivor of a death in between gives
 * back whatever of it is still claimed and untagged (runs.ts, recoverClaim).
 */
export function takePages(h: PageHeapHost, k: number, limit: number, cursorWord: number, committedWord: number, align = 1): number {
  const found = k === 1 && align === 1 ? claimOne(h, limit, cursorWord) : claimRun(h, k, limit, align);
  if (found >= 0) return found;
  const u32 = h.u32;
  for (;;) {
    const n = load(u32, committedWord);
    const first = (n + align - 1) & -align;
    if (first + k > limit) return 0;
    if (!h.growTo((first + k) * h.pageSize)) return 0;
    name(h, n, first + k - n);
    if (cas(h.u32, committedWord, n, first + k) === n) {
      if (first > n) {
        releaseBits(h, n, first - n);
        name(h, first, k);
      }
      return first;
    }
  }
}

/** Counts free pages in the bitmap (racy unless the heap is quiet). */
export function countFreePages(h: Pick<PageHeapHost, 'u32' | 'bitmapWord' | 'bitmapWords'>): number {
  let total = 0;
  for (let w = 0; w < h.bitmapWords; w++) {
    let v = load(h.u32, h.bitmapWord + w);
    while (v !== 0) {
      v = (v & (v - 1)) >>> 0;
      total++;
    }
  }
  return total;
}

export function isPageFree(h: PageHeapHost, p: number): boolean {
  return ((load(h.u32, h.bitmapWord + (p >>> 5)) >>> (p & 31)) & 1) === 1;
}
