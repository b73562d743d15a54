/**
 * What Heap.stats() reports: the page heap and the slot table, counted
 * from the shared tables without stopping anyone.
 */
import {
  HeapHeader,
  ALLOC_LIVE,
  ALLOC_ROW_WORDS,
  AllocatorEntry,
  KIND_FREE,
  SLOT_ATTACHED,
  SLOT_RESERVED,
  SLOT_ROW_WORDS,
  SlotRow,
  tagKind,
} from '../shm/layout.js';
import { load } from '../shm/atomic.js';
import { countFreePages } from './pages.js';

/** What Heap.stats() returns: the page heap and the slot table, read without stopping anyone. */
export interface HeapStats {
  /** Bytes in a page. */
  pageSize: number;
  /** Pages the buffer may grow to (maxBytes / pageSize). */
  maxPages: number;
  /** Pages the buffer holds now (it grows on demand). */
  committedPages: number;
  /** Pages the heap's own tables take (and a wasm module's reserved bytes). */
  metaPages: number;
  /** Data pages in use: slabs, large runs and control regions (counted from the page tags). */
  usedPages: number;
  /** Committed data pages free for any use. */
  freePages: number;
  /** Peak of used pages. */
  peakUsedPages: number;
  /**
   * The memory the heap holds: committedPages x pageSize, plus the state
   * buffer (stateBytes).
   */
  committedBytes: number;
  /** Bytes of the state buffer: one per 16 bytes of the committed pages. */
  stateBytes: number;
  /** usedPages x pageSize, plus their state bytes (a 16th of that). */
  usedBytes: number;
  /** peakUsedPages x pageSize, plus their state bytes. */
  peakUsedBytes: number;
  /** Slots held by attached agents. */
  slotsAttached: number;
  /** Slots reserved by reserveSlot() and not attached yet. */
  slotsReserved: number;
  /**
   * Slots released by releaseSlot: agents that went away without
   * detaching. The objects they held live stay allocated (counted as live
   * by their allocators' stats() and listed by destroy()'s leak report).
   */
  slotsReleased: number;
  /** Slots in the table (the maxWorkers option). */
  maxWorkers: number;
  /** Allocators live in the heap (maps' element allocators included). */
  allocatorsLive: number;
  /** Times the buffer could not grow (at its maximum, or the engine refused). */
  growFailures: number;
}

/** What counting needs of the heap (HeapCore is one). */
export interface StatsHost {
  readonly u32: Uint32Array;
  readonly hdr: number;
  readonly pageSize: number;
  readonly maxPages: number;
  readonly maxSlots: number;
  readonly maxAllocators: number;
  readonly firstDataPage: number;
  readonly slotWord: number;
  readonly allocWord: number;
  readonly tagWord: number;
  readonly bitmapWord: number;
  readonly bitmapWords: number;
  readonly states: SharedArrayBuffer;
}

/** Page and slot counts (see HeapStats). */
export function heapStats(h: StatsHost): HeapStats {
  const u32 = h.u32;
  let attached = 0;
  let reserved = 0;
  for (let s = 0; s < h.maxSlots; s++) {
    const st = load(u32, h.slotWord + s * SLOT_ROW_WORDS + SlotRow.STATE);
    if (st === SLOT_ATTACHED) attached++;
    else if (st === SLOT_RESERVED) reserved++;
  }
  let live = 0;
  for (let id = 1; id <= h.maxAllocators; id++) {
    if (load(u32, h.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE) === ALLOC_LIVE) live++;
  }
  const committedPages = load(u32, h.hdr + HeapHeader.COMMITTED_PAGES);
  // Counted from the tags: the USED_PAGES counter (kept for the peak)
  // can be off by the pages an agent was claiming when it died.
  let usedPages = 0;
  for (let p = h.firstDataPage; p < committedPages; p++) if (tagKind(load(u32, h.tagWord + p)) !== KIND_FREE) usedPages++;
  const peakUsedPages = load(u32, h.hdr + HeapHeader.PEAK_USED_PAGES);
  return {
    pageSize: h.pageSize,
    maxPages: h.maxPages,
    committedPages,
    metaPages: h.firstDataPage,
    usedPages,
    freePages: countFreePages(h),
    peakUsedPages,
    committedBytes: committedPages * h.pageSize + h.states.byteLength,
    stateBytes: h.states.byteLength,
    usedBytes: usedPages * (h.pageSize + h.pageSize / 16),
    peakUsedBytes: peakUsedPages * (h.pageSize + h.pageSize / 16),
    slotsAttached: attached,
    slotsReserved: reserved,
    maxWorkers: h.maxSlots,
    allocatorsLive: live,
    growFailures: load(u32, h.hdr + HeapHeader.GROW_FAILURES),
    slotsReleased: load(u32, h.hdr + HeapHeader.SLOTS_RELEASED),
  };
}
