/**
 * Runs of pages and the claim record that makes taking and giving them
 * back safe when an agent dies in the middle.
 *
 * A run is k consecutive pages taken from the page heap (pages.ts) and
 * then tagged by its taker: a slab page, a large run (head LARGE with arg
 * k, tails LARGE_TAIL with arg first) or a control region (REGION, head arg
 * k). Between the claim in the bitmap and the last tag, and between the
 * first tag cleared and the bits given back, the pages are in no list a
 * survivor could find. The agent's claim record (slot row words CLAIM_FIRST
 * and CLAIM_K, see ../shm/layout.ts) names them meanwhile:
 *
 *   take:  name [first, k) -> claim bits -> tag pages -> clear the record
 *   free:  name [first, k) -> CAS head tag (the winner of two racing frees)
 *          -> tags FREE -> give bits back -> clear the record
 *
 * recoverClaim() is the survivor's half: pages a dead agent's record
 * names that are claimed in the bitmap, tagged FREE and named by no live
 * agent are given back (tails of a large run it was freeing included).
 */
import { HeapHeader, KIND_FREE, KIND_LARGE_TAIL, KIND_REGION, SLOT_ATTACHED, SLOT_ROW_WORDS, SlotRow, pageTag, tagKind } from '../shm/layout.js';
import { add, cas, load, maxTo, store } from '../shm/atomic.js';
import { isPageFree, releaseBits, takePages, type PageHeapHost } from './pages.js';

/** Slabs stay below this offset (2 GiB). */
const LOW_PAGES_BYTES = 2 * 1024 * 1024 * 1024;

/** What runs need from the heap. */
export interface RunHost extends PageHeapHost {
  readonly u8: Uint8Array;
  /** Byte length the current views cover. */
  readonly viewBytes: number;
  /** Word index of the page tags and of the page args. */
  readonly tagWord: number;
  readonly argWord: number;
  readonly slotWord: number;
  readonly maxSlots: number;
  readonly firstDataPage: number;
  /** This agent's slot, -1 when detached. */
  readonly slot: number;
  refresh(): boolean;
}

/**
 * Takes a run of k pages for the caller to tag; 0 when the heap is full.
 * `low` keeps the run below 2 GiB: slabs live there, so the pointers the
 * fast paths handle are always small non-negative integers in V8. `align`
 * (a power of two) makes the first page a multiple of it (the allocator's
 * slabs no longer ask for it: a page's arg gives a slab's start). The
 * claim record names the run until claimDone(). USED_PAGES counts the k
 * pages only: a gap the bump skipped to align the run went back free.
 */
export function takeRun(h: RunHost, k: number, low: boolean, align = 1): number {
  const limit = low ? Math.min(h.maxPages, LOW_PAGES_BYTES / h.pageSize) : h.maxPages;
  const p = takePages(h, k, limit, h.hdr + HeapHeader.FREE_CURSOR, h.hdr + HeapHeader.COMMITTED_PAGES, align);
  if (p === 0) {
    claimDone(h);
    return 0;
  }
  const used = add(h.u32, h.hdr + HeapHeader.USED_PAGES, k) + k;
  maxTo(h.u32, h.hdr + HeapHeader.PEAK_USED_PAGES, used);
  if ((p + k) * h.pageSize > h.viewBytes) h.refresh();
  return p;
}

/** The run from the last takeRun is tagged: this agent's claim record is cleared. */
export function claimDone(h: RunHost): void {
  if (h.slot >= 0) store(h.u32, h.slotWord + h.slot * SLOT_ROW_WORDS + SlotRow.CLAIM_K, 0);
}

/** Names a run in this agent's claim record (before any step a survivor must be able to finish). */
function nameRun(h: RunHost, first: number, k: number): void {
  const w = h.claimWord;
  if (w < 0) return;
  store(h.u32, w, first);
  store(h.u32, w + 1, k);
}

/**
 * Tags a run from takeRun as a large run (tails first, each with arg first,
 * then the head with arg k) and clears the claim record.
 */
export function tagLargeRun(h: RunHost, first: number, k: number, headTag: number, tailTag: number): void {
  const u32 = h.u32;
  for (let p = first + 1; p < first + k; p++) {
    store(u32, h.argWord + p, first);
    store(u32, h.tagWord + p, tailTag);
  }
  store(u32, h.argWord + first, k);
  store(u32, h.tagWord + first, headTag);
  claimDone(h);
}

/**
 * Frees the large run whose head page `first` carries `headTag`. The CAS
 * of the head to `markTag` (a LARGE_TAIL tag; arg still k) decides which of
 * two racing frees wins. Returns the run's length, or 0 when the head no
 * longer carried headTag (the run was freed already).
 */
export function freeLargeRun(h: RunHost, first: number, headTag: number, markTag: number): number {
  const u32 = h.u32;
  const k = load(u32, h.argWord + first);
  // Named first, so that a survivor can finish the free if we die in it.
  nameRun(h, first, k);
  if (cas(u32, h.tagWord + first, headTag, markTag) !== headTag) {
    claimDone(h);
    return 0;
  }
  giveRun(h, first, k);
  claimDone(h);
  return k;
}

/** Gives pages [first, first + k) back; their tags are cleared first (from the last page to the head). */
export function giveRun(h: RunHost, first: number, k: number): void {
  const u32 = h.u32;
  // Named while its tags say FREE and its bits do not yet: a survivor
  // gives back what a death in between leaves (recoverClaim).
  const outer = h.slot >= 0 ? load(u32, h.slotWord + h.slot * SLOT_ROW_WORDS + SlotRow.CLAIM_K) : 0;
  nameRun(h, first, k);
  for (let p = first + k - 1; p >= first; p--) {
    store(u32, h.tagWord + p, pageTag(KIND_FREE, 0, 0));
    store(u32, h.argWord + p, 0);
  }
  add(u32, h.hdr + HeapHeader.USED_PAGES, -k);
  releaseBits(h, first, k);
  if (outer === 0) claimDone(h);
}

/**
 * Takes a zeroed, page-aligned control region of at least `bytes` for a
 * shared structure (tag REGION, owner id `owner`, 0 for none). Returns
 * its byte offset, or 0 when the heap is full.
 */
export function takeRegion(h: RunHost, bytes: number, owner: number): number {
  const k = Math.max(1, Math.ceil(bytes / h.pageSize));
  const first = takeRun(h, k, false);
  if (first === 0) return 0;
  const at = first * h.pageSize;
  h.u8.fill(0, at, at + k * h.pageSize);
  store(h.u32, h.argWord + first, k);
  for (let p = first; p < first + k; p++) store(h.u32, h.tagWord + p, pageTag(KIND_REGION, owner, 0));
  claimDone(h);
  return at;
}

/** Gives back a region from takeRegion. */
export function giveRegion(h: RunHost, at: number): void {
  const first = at / h.pageSize;
  giveRun(h, first, load(h.u32, h.argWord + first));
}

/**
 * Gives back the pages a dead slot had claimed and not yet tagged (see
 * the slot row in layout.ts): claimed in the bitmap, tagged FREE, and
 * named by no live slot's claim record. The same record names a large
 * run being freed: if the dead agent won the free (its head reads
 * LARGE_TAIL with arg k) its tail pages, tagged LARGE_TAIL with arg
 * first or already FREE, are given back too. Returns how many.
 */
export function recoverClaim(h: RunHost, dead: number): number {
  const u32 = h.u32;
  const row = h.slotWord + dead * SLOT_ROW_WORDS;
  const first = load(u32, row + SlotRow.CLAIM_FIRST);
  const k = load(u32, row + SlotRow.CLAIM_K);
  store(u32, row + SlotRow.CLAIM_K, 0);
  let given = 0;
  const committed = load(u32, h.hdr + HeapHeader.COMMITTED_PAGES);
  // A run whose head is not (or no longer) a live LARGE head was being
  // tagged or freed: its tails (LARGE_TAIL, arg = first) and a head
  // marked LARGE_TAIL with arg k (a free in progress) are the dead one's.
  const headKind = k > 0 && first < committed ? tagKind(load(u32, h.tagWord + first)) : KIND_FREE;
  const partial = headKind === KIND_FREE || (headKind === KIND_LARGE_TAIL && load(u32, h.argWord + first) === k);
  for (let p = first; p < first + k && p < committed; p++) {
    if (p < h.firstDataPage || isPageFree(h, p)) continue;
    if (partial && namedByLive(h, p, dead)) continue;
    if (partial) {
      const t = load(u32, h.tagWord + p);
      const ours = tagKind(t) === KIND_LARGE_TAIL && load(u32, h.argWord + p) === (p === first ? k : first);
      if (ours) store(u32, h.tagWord + p, pageTag(KIND_FREE, 0, 0));
    }
    // Order matters: claimed (seen above), then no live claimer names it,
    // then still untagged: a live claimer names its pages from before
    // its claim until after its tags.
    if (namedByLive(h, p, dead) || tagKind(load(u32, h.tagWord + p)) !== KIND_FREE) continue;
    store(u32, h.argWord + p, 0);
    add(u32, h.hdr + HeapHeader.USED_PAGES, -1);
    releaseBits(h, p, 1);
    given++;
  }
  return given;
}

/** True when a live slot other than `dead` names page p in its claim record. */
function namedByLive(h: RunHost, p: number, dead: number): boolean {
  const u32 = h.u32;
  for (let s = 0; s < h.maxSlots; s++) {
    if (s === dead) continue;
    const w = h.slotWord + s * SLOT_ROW_WORDS;
    if (load(u32, w + SlotRow.STATE) !== SLOT_ATTACHED) continue;
    const f = load(u32, w + SlotRow.CLAIM_FIRST);
    const n = load(u32, w + SlotRow.CLAIM_K);
    if (n !== 0 && p >= f && p < f + n) return true;
  }
  return false;
}
