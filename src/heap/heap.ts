/**
 * The heap: one shared buffer (a growable SharedArrayBuffer, or the buffer
 * of a shared WebAssembly.Memory) that every attached agent maps with its
 * own fixed-length typed-array views.
 *
 * - Memory is handed out in pages (see pages.ts); allocators carve pages
 *   into slabs and large runs (see ../alloc/allocator.ts).
 * - Any agent may grow the buffer. Views are fixed-length (length-tracking
 *   views over a growable buffer are ~30x slower on Node 20) and are renewed
 *   when an agent meets memory beyond them: on refill, on a free of a
 *   pointer past its views, or on an explicit refresh().
 * - Each attached agent owns one row of the slot table. The slot number
 *   picks the agent's caches in every allocator, as the CPU number does in
 *   the kernel.
 *
 * The layout of everything in the buffer is in ../shm/layout.ts.
 */
import {
  AllocatorHeader,
  LimboRow,
  ALLOC_CREATING,
  ALLOC_DESTROYED,
  ALLOC_FREE,
  ALLOC_LIVE,
  ALLOC_ROW_WORDS,
  AllocatorEntry,
  HeapHeader,
  HEADER_BYTES,
  HEAP_MAGIC,
  KIND_FREE,
  KIND_LARGE_TAIL,
  KIND_META,
  KIND_REGION,
  KIND_RESERVED,
  LAYOUT_VERSION,
  MAX_ALLOCATOR_ID,
  SlotRow,
  SLOT_ATTACHED,
  SLOT_FREE,
  SLOT_RELEASING,
  SLOT_RESERVED,
  SLOT_ROW_WORDS,
  pageTag,
  tagKind,
} from '../shm/layout.js';
import { add, cas, load, maxTo, store } from '../shm/atomic.js';
import { checkInt, describe } from '../errors.js';
import { limboRowAt, releaseSlotCaches } from '../alloc/region.js';
import { markOrphan, releaseDeadCollector, repairLimboRow } from '../reclaim/limbo.js';
import { releaseMapSlot } from '../recovery/map-slot.js';
import { clearPin, currentEpoch, type EpochHost } from '../reclaim/epoch.js';
import { Allocator, validateAllocator, type AllocatorHandle, type AllocatorOptions, type AttachOptions } from '../alloc/allocator.js';
import { openAllocator } from '../alloc/debug.js';
import { countFreePages, isPageFree, releaseBits, takePages, type PageHeapHost } from './pages.js';

/** Options of Heap.create. */
export interface HeapOptions {
  /**
   * Bytes the buffer may grow to. Default 1 GiB; at most 4 GiB; rounded up
   * to a multiple of pageSize. Pointers above 2 GiB are not small integers
   * in V8, so hot paths may box them: keep heaps at or below 2 GiB where
   * that matters.
   */
  maxBytes?: number;
  /** Bytes to commit at creation. Default: the meta pages plus 16 pages. */
  initialBytes?: number;
  /** Page size, a power of two from 8 KiB to 1 MiB. Default 64 KiB. */
  pageSize?: number;
  /** Worker slots: how many agents may be attached at once. Default 64, at most 1024. */
  maxWorkers?: number;
  /** Allocators that may exist at once in the heap. Default 64, at most 4095. */
  maxAllocators?: number;
  /**
   * Use this shared WebAssembly.Memory instead of a new SharedArrayBuffer,
   * so wasm code can read and write the objects. The heap takes over the
   * memory from `reserveBytes` on. Give `maxBytes` as the memory's
   * maximum in bytes (default 4 GiB).
   */
  memory?: WebAssembly.Memory;
  /** With `memory`: bytes at the start left to the wasm module (rounded up to pageSize). Default 0. */
  reserveBytes?: number;
}

/** A structured-cloneable description of a heap, to post to another agent. */
export interface HeapHandle {
  readonly kind: 'anyalloc.heap';
  readonly buffer?: SharedArrayBuffer;
  readonly memory?: WebAssembly.Memory;
  /** Byte offset of the heap header. */
  readonly base: number;
  /** A slot reserved for the receiving agent by reserveSlot(), if any. */
  readonly slot?: number;
  readonly gen?: number;
}

/** Something that lives in one agent and must see new views after a grow. */
export interface ViewClient {
  onViews(): void;
  /** Let go of what this agent holds between calls (validate() runs in a quiet heap). */
  settle?(): void;
  /** Give back this agent's cached memory; called by detach(). */
  detachFromHeap(): void;
}

/** One taken worker slot, as heap.slots() sees it. */
export interface SlotInfo {
  slot: number;
  gen: number;
  state: 'attached' | 'reserved';
  /** True for the slot of the agent asking. */
  self: boolean;
  /** Milliseconds since the slot's agent last beat (attach, heartbeat(), a deferred refill or trim). */
  silentMs: number;
}

export interface HeapStats {
  pageSize: number;
  maxPages: number;
  committedPages: number;
  metaPages: number;
  usedPages: number;
  freePages: number;
  peakUsedPages: number;
  committedBytes: number;
  usedBytes: number;
  peakUsedBytes: number;
  slotsAttached: number;
  slotsReserved: number;
  /**
   * Slots released by releaseSlot: agents that went away without
   * detaching. The objects they held live stay allocated (counted as live
   * by their allocators' stats() and listed by destroy()'s leak report).
   */
  slotsReleased: number;
  maxWorkers: number;
  allocatorsLive: number;
  growFailures: number;
}

const GiB = 1024 * 1024 * 1024;
const MAX_BUFFER = 4 * GiB;
const WASM_PAGE = 65536;
/** Slabs stay below this offset (2 GiB). */
const LOW_PAGES_BYTES = 2 * GiB;

function isPow2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Where the tables go, computed from the parameters (same in every agent). */
interface MetaLayout {
  slotTable: number;
  allocTable: number;
  pageTags: number;
  pageArgs: number;
  freeBitmap: number;
  bitmapWords: number;
  end: number;
}

function metaLayout(base: number, maxSlots: number, maxAllocators: number, maxPages: number): MetaLayout {
  const slotTable = base + HEADER_BYTES;
  const allocTable = slotTable + maxSlots * SLOT_ROW_WORDS * 4;
  const pageTags = allocTable + (maxAllocators + 1) * ALLOC_ROW_WORDS * 4;
  const pageArgs = pageTags + maxPages * 4;
  const freeBitmap = pageArgs + maxPages * 4;
  const bitmapWords = Math.ceil(maxPages / 32);
  return { slotTable, allocTable, pageTags, pageArgs, freeBitmap, bitmapWords, end: freeBitmap + bitmapWords * 4 };
}

export class Heap implements PageHeapHost, EpochHost {
  /** Views over the whole buffer; renewed after a grow (re-read them, do not keep them). */
  u8!: Uint8Array;
  u32!: Uint32Array;
  i32!: Int32Array;
  f64!: Float64Array;
  /** Byte length the current views cover. */
  viewBytes = 0;
  /** Bumped each time this agent renews its views. */
  viewGeneration = 0;
  /**
   * @internal Read-side sections this agent is in (the maps' pin and
   * unpin): one pin word per slot, so one depth per agent, whatever the
   * map; only the outermost pin and unpin store it.
   */
  pinDepth = 0;

  readonly sab: SharedArrayBuffer | undefined;
  readonly memory: WebAssembly.Memory | undefined;
  readonly base: number;
  readonly hdr: number;
  readonly pageSize: number;
  readonly pageShift: number;
  readonly maxPages: number;
  readonly maxSlots: number;
  readonly maxAllocators: number;
  readonly firstDataPage: number;
  readonly bitmapWord: number;
  readonly bitmapWords: number;
  readonly slotWord: number;
  readonly allocWord: number;
  readonly tagWord: number;
  readonly argWord: number;
  /** This agent's slot, or -1 after detach. */
  slot: number;
  /** The generation of this agent's slot when it attached. */
  slotGen: number;

  private readonly clients = new Set<ViewClient>();

  private constructor(sab: SharedArrayBuffer | undefined, memory: WebAssembly.Memory | undefined, base: number) {
    this.sab = sab;
    this.memory = memory;
    this.base = base;
    this.hdr = base >>> 2;
    this.renewViews();
    const u32 = this.u32;
    if (u32[this.hdr + HeapHeader.MAGIC] !== HEAP_MAGIC) {
      throw new TypeError(`no anyalloc heap at byte ${base} of this buffer (bad magic)`);
    }
    if (u32[this.hdr + HeapHeader.VERSION] !== LAYOUT_VERSION) {
      throw new TypeError(`heap layout version ${u32[this.hdr + HeapHeader.VERSION]} is not supported (want ${LAYOUT_VERSION})`);
    }
    this.pageShift = u32[this.hdr + HeapHeader.PAGE_SHIFT]!;
    // A shift, not 2 ** n: V8 keeps the field (and every mask derived from it)
    // a small integer instead of a boxed double.
    this.pageSize = 1 << this.pageShift;
    this.maxPages = u32[this.hdr + HeapHeader.MAX_PAGES]!;
    this.maxSlots = u32[this.hdr + HeapHeader.MAX_SLOTS]!;
    this.maxAllocators = u32[this.hdr + HeapHeader.MAX_ALLOCATORS]!;
    this.firstDataPage = u32[this.hdr + HeapHeader.FIRST_DATA_PAGE]!;
    const m = metaLayout(base, this.maxSlots, this.maxAllocators, this.maxPages);
    this.slotWord = m.slotTable >>> 2;
    this.allocWord = m.allocTable >>> 2;
    this.tagWord = m.pageTags >>> 2;
    this.argWord = m.pageArgs >>> 2;
    this.bitmapWord = m.freeBitmap >>> 2;
    this.bitmapWords = m.bitmapWords;
    this.slot = -1;
    this.slotGen = 0;
  }

  /** Creates a heap in a new growable SharedArrayBuffer (or in `memory`) and attaches this agent. */
  static create(options: HeapOptions = {}): Heap {
    const pageSize = options.pageSize === undefined ? 65536 : checkInt('pageSize', options.pageSize, 8192, 1 << 20);
    if (!isPow2(pageSize)) throw new RangeError(`pageSize must be a power of two, got ${pageSize}`);
    const maxSlots = options.maxWorkers === undefined ? 64 : checkInt('maxWorkers', options.maxWorkers, 1, 1024);
    const maxAllocators =
      options.maxAllocators === undefined ? 64 : checkInt('maxAllocators', options.maxAllocators, 1, MAX_ALLOCATOR_ID);
    const memory = options.memory;
    let maxBytes: number;
    let base = 0;
    if (memory !== undefined) {
      if (!(memory instanceof WebAssembly.Memory) || !(memory.buffer instanceof SharedArrayBuffer)) {
        throw new TypeError('memory must be a shared WebAssembly.Memory (created with shared: true)');
      }
      const reserve = options.reserveBytes === undefined ? 0 : checkInt('reserveBytes', options.reserveBytes, 0, MAX_BUFFER);
      base = roundUp(reserve, pageSize);
      // WebAssembly.Memory does not expose its maximum: the creator states
      // it (the `maximum` it gave, in bytes); growth past the real maximum
      // just fails cleanly (alloc returns 0).
      maxBytes = options.maxBytes === undefined ? MAX_BUFFER : checkInt('maxBytes', options.maxBytes, 1, MAX_BUFFER);
    } else {
      if (options.reserveBytes !== undefined) throw new TypeError('reserveBytes needs memory');
      maxBytes = options.maxBytes === undefined ? GiB : checkInt('maxBytes', options.maxBytes, 1, MAX_BUFFER);
    }
    maxBytes = Math.min(Math.floor(maxBytes / pageSize) * pageSize, MAX_BUFFER);
    const maxPages = maxBytes / pageSize;
    const m = metaLayout(base, maxSlots, maxAllocators, maxPages);
    const metaEnd = roundUp(m.end, pageSize);
    const firstDataPage = metaEnd / pageSize;
    if (firstDataPage + 1 > maxPages) {
      throw new RangeError(`maxBytes ${maxBytes} leaves no room for data pages (the tables need ${metaEnd} bytes)`);
    }
    let initial = options.initialBytes === undefined ? metaEnd + 16 * pageSize : checkInt('initialBytes', options.initialBytes, 0, maxBytes);
    initial = Math.min(maxBytes, Math.max(metaEnd, roundUp(initial, pageSize)));

    let sab: SharedArrayBuffer | undefined;
    if (memory !== undefined) {
      const have = memory.buffer.byteLength;
      if (have < initial) memory.grow(Math.ceil((initial - have) / WASM_PAGE));
    } else {
      sab = new SharedArrayBuffer(initial, { maxByteLength: maxBytes });
    }
    const buf = memory !== undefined ? (memory.buffer as unknown as SharedArrayBuffer) : sab!;
    const u32 = new Uint32Array(buf, 0, buf.byteLength >>> 2);
    const hdr = base >>> 2;
    // Zero the meta area (a wasm memory may hold anything there).
    new Uint8Array(buf, base, metaEnd - base).fill(0);
    u32[hdr + HeapHeader.PAGE_SHIFT] = Math.log2(pageSize);
    u32[hdr + HeapHeader.MAX_PAGES] = maxPages;
    const committed = Math.floor(buf.byteLength / pageSize);
    u32[hdr + HeapHeader.COMMITTED_PAGES] = Math.min(committed, maxPages);
    u32[hdr + HeapHeader.FIRST_DATA_PAGE] = firstDataPage;
    u32[hdr + HeapHeader.MAX_SLOTS] = maxSlots;
    u32[hdr + HeapHeader.MAX_ALLOCATORS] = maxAllocators;
    u32[hdr + HeapHeader.SLOT_TABLE] = m.slotTable;
    u32[hdr + HeapHeader.ALLOC_TABLE] = m.allocTable;
    u32[hdr + HeapHeader.PAGE_TAGS] = m.pageTags;
    u32[hdr + HeapHeader.PAGE_ARGS] = m.pageArgs;
    u32[hdr + HeapHeader.FREE_BITMAP] = m.freeBitmap;
    u32[hdr + HeapHeader.BASE] = base;
    const tags = m.pageTags >>> 2;
    const reservedPages = base / pageSize;
    for (let p = 0; p < firstDataPage; p++) u32[tags + p] = pageTag(p < reservedPages ? KIND_RESERVED : KIND_META, 0, 0);
    // Pages already committed beyond the meta pages start out free.
    const bitmap = m.freeBitmap >>> 2;
    for (let p = firstDataPage; p < u32[hdr + HeapHeader.COMMITTED_PAGES]!; p++) {
      u32[bitmap + (p >>> 5)] = (u32[bitmap + (p >>> 5)]! | (1 << (p & 31))) >>> 0;
    }
    u32[hdr + HeapHeader.EPOCH] = 1;
    u32[hdr + HeapHeader.VERSION] = LAYOUT_VERSION;
    // Publish: an agent that sees the magic sees everything above.
    store(u32, hdr + HeapHeader.MAGIC, HEAP_MAGIC);
    const heap = new Heap(sab, memory, base);
    heap.claimSlot(-1, 0);
    return heap;
  }

  /** Attaches this agent to a heap made elsewhere; takes a worker slot. */
  static attach(handle: HeapHandle): Heap {
    if (handle === null || typeof handle !== 'object' || handle.kind !== 'anyalloc.heap') {
      throw new TypeError(`attach needs a heap handle (heap.handle), got ${describe(handle)}`);
    }
    const heap = new Heap(handle.buffer, handle.memory, handle.base);
    heap.claimSlot(handle.slot ?? -1, handle.gen ?? 0);
    return heap;
  }

  /** A handle to post to another agent; Heap.attach(handle) there takes any free slot. */
  get handle(): HeapHandle {
    return this.sab !== undefined
      ? { kind: 'anyalloc.heap', buffer: this.sab, base: this.base }
      : { kind: 'anyalloc.heap', memory: this.memory!, base: this.base };
  }

  /**
   * Reserves a slot for an agent that is about to start and returns a
   * handle that attaches to exactly that slot. The creator then knows the
   * slot even if the worker dies before it says anything, and can
   * releaseSlot(handle.slot) after its death.
   */
  reserveSlot(): HeapHandle & { slot: number; gen: number } {
    const { slot, gen } = this.takeFreeSlot(SLOT_RESERVED);
    return { ...this.handle, slot, gen };
  }

  /** Moves a FREE slot to `state` with a fresh generation (published by the final store). */
  private takeFreeSlot(state: number): { slot: number; gen: number } {
    const u32 = this.u32;
    for (let s = 0; s < this.maxSlots; s++) {
      const w = this.slotWord + s * SLOT_ROW_WORDS;
      if (load(u32, w + SlotRow.STATE) !== SLOT_FREE) continue;
      if (cas(u32, w + SlotRow.STATE, SLOT_FREE, SLOT_RELEASING) !== SLOT_FREE) continue;
      const gen = (add(u32, this.hdr + HeapHeader.SLOT_GEN, 1) + 1) >>> 0;
      store(u32, w + SlotRow.GEN, gen);
      store(u32, w + SlotRow.BEAT, Date.now() >>> 0);
      clearPin(u32, this.slotWord, s);
      maxTo(u32, this.hdr + HeapHeader.SLOTS_USED, s + 1);
      store(u32, w + SlotRow.STATE, state);
      return { slot: s, gen };
    }
    throw new RangeError(`no free worker slot: all ${this.maxSlots} are taken (maxWorkers)`);
  }

  private claimSlot(wanted: number, gen: number): void {
    if (wanted >= 0) {
      checkInt('slot', wanted, 0, this.maxSlots - 1);
      const w = this.slotWord + wanted * SLOT_ROW_WORDS;
      if (load(this.u32, w + SlotRow.GEN) !== gen || cas(this.u32, w + SlotRow.STATE, SLOT_RESERVED, SLOT_ATTACHED) !== SLOT_RESERVED) {
        throw new RangeError(`slot ${wanted} is no longer reserved for this handle (released or already attached)`);
      }
      this.slot = wanted;
      this.slotGen = gen;
      this.heartbeat();
      return;
    }
    const taken = this.takeFreeSlot(SLOT_ATTACHED);
    this.slot = taken.slot;
    this.slotGen = taken.gen;
    this.heartbeat();
  }

  /**
   * Records that this agent runs (its slot's beat word). Attach and the
   * allocators' deferred refill/trim beat on their own; an agent that may
   * go a long time without allocating and wants to look alive to
   * slots() calls this from its loop. One Date.now() and one atomic store.
   */
  heartbeat(): void {
    if (this.slot >= 0) store(this.u32, this.slotWord + this.slot * SLOT_ROW_WORDS + SlotRow.BEAT, Date.now() >>> 0);
  }

  /**
   * The liveness check a survivor can run: every taken slot with its
   * generation, state, and the milliseconds since its agent last beat.
   * A slot silent for long may belong to a dead agent, or to one that
   * is blocked or busy without allocating: only the host knows which. In
   * Node, a worker's 'exit' event is certain (see watchWorker in
   * anyalloc/node); in a browser, a worker the page terminated. Release a
   * slot only when its agent is known to be gone: releaseSlot(slot, gen).
   */
  slots(): SlotInfo[] {
    const out: SlotInfo[] = [];
    const now = Date.now() >>> 0;
    const used = load(this.u32, this.hdr + HeapHeader.SLOTS_USED);
    for (let s = 0; s < used; s++) {
      const w = this.slotWord + s * SLOT_ROW_WORDS;
      const st = load(this.u32, w + SlotRow.STATE);
      if (st !== SLOT_ATTACHED && st !== SLOT_RESERVED) continue;
      out.push({
        slot: s,
        gen: load(this.u32, w + SlotRow.GEN),
        state: st === SLOT_ATTACHED ? 'attached' : 'reserved',
        self: s === this.slot,
        silentMs: (now - load(this.u32, w + SlotRow.BEAT)) >>> 0,
      });
    }
    return out;
  }

  /**
   * True while this agent still owns its slot: attached, and not released
   * by another agent (releaseSlot) in the meantime. Plain reads: a check
   * for slow paths.
   */
  ownsSlot(): boolean {
    if (this.slot < 0) return false;
    const row = this.slotWord + this.slot * SLOT_ROW_WORDS;
    return this.u32[row + SlotRow.GEN] === this.slotGen && this.u32[row + SlotRow.STATE] === SLOT_ATTACHED;
  }

  /** True while this agent is attached. */
  get attached(): boolean {
    return this.slot >= 0;
  }

  /** State of a slot (SLOT_* from the layout) and its generation. */
  slotState(slot: number): { state: number; gen: number } {
    const w = this.slotWord + slot * SLOT_ROW_WORDS;
    return { state: load(this.u32, w + SlotRow.STATE), gen: load(this.u32, w + SlotRow.GEN) };
  }

  /**
   * Detaches this agent: every allocator it attached gives its cached
   * objects back to the global pool, then the slot is freed for reuse.
   */
  detach(): void {
    if (this.slot < 0) return;
    if (!this.ownsSlot()) {
      // The slot was released (and maybe taken again) while this agent
      // ran: leave it alone; the allocators see it too and only let go.
      for (const c of [...this.clients]) c.detachFromHeap();
      this.pinDepth = 0;
      this.slot = -1;
      return;
    }
    for (const c of [...this.clients]) c.detachFromHeap();
    const w = this.slotWord + this.slot * SLOT_ROW_WORDS;
    // Detached inside a read-side section (map.read): the unpin that ends
    // it must not store into a slot another agent may hold by then.
    this.pinDepth = 0;
    clearPin(this.u32, this.slotWord, this.slot);
    store(this.u32, w + SlotRow.STATE, SLOT_FREE);
    this.slot = -1;
  }

  /**
   * Releases the slot of an agent that is gone (worker.terminate() runs no
   * cleanup in the worker): its cached objects in every live allocator go
   * back to the global pool and the slot becomes free. The caller must be
   * sure the agent no longer runs. Pass the generation from the handle
   * (reserveSlot().gen) so a slot that was meanwhile detached and taken by
   * another agent is left alone. Returns false if there was nothing to
   * release.
   */
  releaseSlot(slot: number, gen?: number): boolean {
    checkInt('slot', slot, 0, this.maxSlots - 1);
    if (gen !== undefined) checkInt('gen', gen, 0, 0xffffffff);
    if (slot === this.slot) throw new RangeError(`releaseSlot(${slot}): that is this agent's own slot; use detach()`);
    const u32 = this.u32;
    const w = this.slotWord + slot * SLOT_ROW_WORDS;
    let st = load(u32, w + SlotRow.STATE);
    for (;;) {
      if (st !== SLOT_ATTACHED && st !== SLOT_RESERVED) return false;
      if (gen !== undefined && load(u32, w + SlotRow.GEN) !== gen) return false;
      const seen = cas(u32, w + SlotRow.STATE, st, SLOT_RELEASING);
      if (seen === st) break;
      st = seen;
    }
    for (let id = 1; id <= this.maxAllocators; id++) {
      const row = this.allocWord + id * ALLOC_ROW_WORDS;
      if (load(u32, row + AllocatorEntry.STATE) !== ALLOC_LIVE) continue;
      this.refresh();
      const map = load(this.u32, row + AllocatorEntry.MAP);
      const R = load(this.u32, row + AllocatorEntry.REGION) >>> 2;
      const limbo = limboRowAt(R, this.u32[R + AllocatorHeader.CLASSES]!, this.maxSlots, slot);
      // Limbo first (frees its lock), then the map (which may retire the
      // elements a dead writer had in its hands into that ring), then the
      // caches (after the map: a logged element is still the writer's).
      repairLimboRow(this, R, limbo, slot);
      // It may have died collecting from another slot's ring.
      for (let s = 0; s < this.maxSlots; s++) {
        const other = limboRowAt(R, this.u32[R + AllocatorHeader.CLASSES]!, this.maxSlots, s);
        if (s !== slot) releaseDeadCollector(this, other, slot);
      }
      if (map !== 0) releaseMapSlot({ heap: this, map, slot, allocId: id, limboRow: limbo });
      releaseSlotCaches(this.u32, this, R, this.maxSlots, slot, this.slot + 1);
      markOrphan(this.u32, R, limbo);
    }
    this.recoverClaim(slot);
    clearPin(u32, this.slotWord, slot);
    add(u32, this.hdr + HeapHeader.SLOTS_RELEASED, 1);
    store(u32, w + SlotRow.STATE, SLOT_FREE);
    return true;
  }

  /* ----------------------------- views ---------------------------------- */

  private currentBuffer(): SharedArrayBuffer {
    return this.sab ?? (this.memory!.buffer as unknown as SharedArrayBuffer);
  }

  private renewViews(): void {
    const buf = this.currentBuffer();
    const bytes = buf.byteLength - (buf.byteLength & 7);
    this.u8 = new Uint8Array(buf, 0, bytes);
    this.u32 = new Uint32Array(buf, 0, bytes >>> 2);
    this.i32 = new Int32Array(buf, 0, bytes >>> 2);
    this.f64 = new Float64Array(buf, 0, bytes >>> 3);
    this.viewBytes = bytes;
    this.viewGeneration++;
  }

  /**
   * Renews this agent's views if the buffer grew (in any agent). Call it
   * before touching a pointer received from another agent; alloc and free
   * call it themselves when they meet memory past the views.
   * Returns true when the views changed (old views must not be used then).
   */
  refresh(): boolean {
    const len = this.currentBuffer().byteLength;
    if (len - (len & 7) === this.viewBytes) return false;
    this.renewViews();
    for (const c of this.clients) c.onViews();
    return true;
  }

  /** Grows the buffer to at least `bytes`. False when it is at its maximum. */
  growTo(bytes: number): boolean {
    const buf = this.currentBuffer();
    if (buf.byteLength < bytes) {
      try {
        if (this.sab !== undefined) {
          this.sab.grow(bytes);
        } else {
          const have = this.memory!.buffer.byteLength;
          if (have < bytes) this.memory!.grow(Math.ceil((bytes - have) / WASM_PAGE));
        }
      } catch {
        // Another agent may have grown it past `bytes` meanwhile (grow to a
        // smaller size throws); only a buffer still too short is a failure.
        if (this.currentBuffer().byteLength < bytes) {
          add(this.u32, this.hdr + HeapHeader.GROW_FAILURES, 1);
          return false;
        }
      }
    }
    this.refresh();
    return true;
  }

  addClient(c: ViewClient): void {
    this.clients.add(c);
  }

  removeClient(c: ViewClient): void {
    this.clients.delete(c);
  }

  /* --------------------------- page heap -------------------------------- */

  /**
   * Takes a run of k pages for the caller to tag; 0 when the heap is full.
   * `low` keeps the run below 2 GiB: slabs live there, so the pointers the
   * fast paths handle are always small non-negative integers in V8.
   */
  takePages(k: number, low = false): number {
    const limit = low ? Math.min(this.maxPages, LOW_PAGES_BYTES / this.pageSize) : this.maxPages;
    const p = takePages(this, k, limit, this.hdr + HeapHeader.FREE_CURSOR, this.hdr + HeapHeader.COMMITTED_PAGES);
    if (p === 0) {
      this.claimDone();
      return 0;
    }
    const used = add(this.u32, this.hdr + HeapHeader.USED_PAGES, k) + k;
    maxTo(this.u32, this.hdr + HeapHeader.PEAK_USED_PAGES, used);
    if ((p + k) * this.pageSize > this.viewBytes) this.refresh();
    return p;
  }

  /**
   * @internal The pages from the last takePages are tagged: this agent's
   * claim record is cleared (a survivor would otherwise look at them).
   */
  claimDone(): void {
    if (this.slot >= 0) store(this.u32, this.slotWord + this.slot * SLOT_ROW_WORDS + SlotRow.CLAIM_K, 0);
  }

  /** @internal Names a run this agent is about to free (see recoverClaim). */
  nameRun(first: number, k: number): void {
    const w = this.claimWord;
    if (w < 0) return;
    store(this.u32, w, first);
    store(this.u32, w + 1, k);
  }

  /** Word index of this agent's claim record (pages.ts), -1 when detached. */
  get claimWord(): number {
    return this.slot < 0 ? -1 : this.slotWord + this.slot * SLOT_ROW_WORDS + SlotRow.CLAIM_FIRST;
  }

  /**
   * Gives back the pages a dead slot had claimed and not yet tagged (see
   * the slot row in layout.ts): claimed in the bitmap, tagged FREE, and
   * named by no live slot's claim record. The same record names a large
   * run being freed: if the dead agent won the free (its head reads
   * LARGE_TAIL with arg k) its tail pages, tagged LARGE_TAIL with arg
   * first or already FREE, are given back too. Returns how many.
   */
  private recoverClaim(dead: number): number {
    const u32 = this.u32;
    const row = this.slotWord + dead * SLOT_ROW_WORDS;
    const first = load(u32, row + SlotRow.CLAIM_FIRST);
    const k = load(u32, row + SlotRow.CLAIM_K);
    store(u32, row + SlotRow.CLAIM_K, 0);
    let given = 0;
    const committed = load(u32, this.hdr + HeapHeader.COMMITTED_PAGES);
    // A run whose head is not (or no longer) a live LARGE head was being
    // tagged or freed: its tails (LARGE_TAIL, arg = first) and a head
    // marked LARGE_TAIL with arg k (a free in progress) are the dead one's.
    const headKind = k > 0 && first < committed ? tagKind(load(u32, this.tagWord + first)) : KIND_FREE;
    const partial = headKind === KIND_FREE || (headKind === KIND_LARGE_TAIL && load(u32, this.argWord + first) === k);
    for (let p = first; p < first + k && p < committed; p++) {
      if (p < this.firstDataPage || isPageFree(this, p)) continue;
      if (partial && this.namedByLive(p, dead)) continue;
      if (partial) {
        const t = load(u32, this.tagWord + p);
        const ours = tagKind(t) === KIND_LARGE_TAIL && load(u32, this.argWord + p) === (p === first ? k : first);
        if (ours) store(u32, this.tagWord + p, pageTag(KIND_FREE, 0, 0));
      }
      // Order matters: claimed (seen above), then no live claimer names it,
      // then still untagged: a live claimer names its pages from before
      // its claim until after its tags.
      if (this.namedByLive(p, dead) || tagKind(load(u32, this.tagWord + p)) !== KIND_FREE) continue;
      store(u32, this.argWord + p, 0);
      add(u32, this.hdr + HeapHeader.USED_PAGES, -1);
      releaseBits(this, p, 1);
      given++;
    }
    return given;
  }

  /** True when a live slot other than `dead` names page p in its claim record. */
  private namedByLive(p: number, dead: number): boolean {
    const u32 = this.u32;
    for (let s = 0; s < this.maxSlots; s++) {
      if (s === dead) continue;
      const w = this.slotWord + s * SLOT_ROW_WORDS;
      if (load(u32, w + SlotRow.STATE) !== SLOT_ATTACHED) continue;
      const f = load(u32, w + SlotRow.CLAIM_FIRST);
      const n = load(u32, w + SlotRow.CLAIM_K);
      if (n !== 0 && p >= f && p < f + n) return true;
    }
    return false;
  }

  /** Gives pages [first, first + k) back; their tags are cleared first (the head, first, last). */
  givePages(first: number, k: number): void {
    const u32 = this.u32;
    // Named while its tags say FREE and its bits do not yet: a survivor
    // gives back what a death in between leaves (recoverClaim).
    const outer = this.slot >= 0 ? load(u32, this.slotWord + this.slot * SLOT_ROW_WORDS + SlotRow.CLAIM_K) : 0;
    this.nameRun(first, k);
    for (let p = first + k - 1; p >= first; p--) {
      store(u32, this.tagWord + p, pageTag(KIND_FREE, 0, 0));
      store(u32, this.argWord + p, 0);
    }
    add(u32, this.hdr + HeapHeader.USED_PAGES, -k);
    releaseBits(this, first, k);
    if (outer === 0) this.claimDone();
  }

  /**
   * Takes a zeroed, page-aligned control region of at least `bytes` for a
   * shared structure (tag REGION, owner id `owner`, 0 for none). Returns
   * its byte offset, or 0 when the heap is full.
   */
  takeRegion(bytes: number, owner: number): number {
    const k = Math.max(1, Math.ceil(bytes / this.pageSize));
    const first = this.takePages(k);
    if (first === 0) return 0;
    const at = first * this.pageSize;
    this.u8.fill(0, at, at + k * this.pageSize);
    store(this.u32, this.argWord + first, k);
    for (let p = first; p < first + k; p++) store(this.u32, this.tagWord + p, pageTag(KIND_REGION, owner, 0));
    this.claimDone();
    return at;
  }

  /** Gives back a region from takeRegion. */
  giveRegion(at: number): void {
    const first = at / this.pageSize;
    this.givePages(first, load(this.u32, this.argWord + first));
  }

  pageTag(page: number): number {
    return load(this.u32, this.tagWord + page);
  }

  committedPages(): number {
    return load(this.u32, this.hdr + HeapHeader.COMMITTED_PAGES);
  }

  /* -------------------------- allocator table --------------------------- */

  /** Claims an allocator id (CREATING); throws when the table is full. */
  claimAllocatorId(unit: number): number {
    const u32 = this.u32;
    for (let id = 1; id <= this.maxAllocators; id++) {
      const row = this.allocWord + id * ALLOC_ROW_WORDS;
      if (load(u32, row + AllocatorEntry.STATE) !== ALLOC_FREE) continue;
      if (cas(u32, row + AllocatorEntry.STATE, ALLOC_FREE, ALLOC_CREATING) !== ALLOC_FREE) continue;
      store(u32, row + AllocatorEntry.UNIT, unit);
      return id;
    }
    throw new RangeError(`no free allocator id: all ${this.maxAllocators} are in use (maxAllocators)`);
  }

  /** Records that allocator `id` holds the elements of the map at byte `map`. */
  setAllocatorMap(id: number, map: number): void {
    store(this.u32, this.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.MAP, map);
  }

  publishAllocator(id: number, region: number): void {
    const row = this.allocWord + id * ALLOC_ROW_WORDS;
    store(this.u32, row + AllocatorEntry.REGION, region);
    store(this.u32, row + AllocatorEntry.STATE, ALLOC_LIVE);
  }

  /** Marks an allocator destroyed; `reusable` frees the id at once (no pages left tagged with it). */
  retireAllocator(id: number, reusable: boolean): void {
    const row = this.allocWord + id * ALLOC_ROW_WORDS;
    store(this.u32, row + AllocatorEntry.REGION, 0);
    store(this.u32, row + AllocatorEntry.MAP, 0);
    store(this.u32, row + AllocatorEntry.STATE, reusable ? ALLOC_FREE : ALLOC_DESTROYED);
  }

  allocatorRow(id: number): { state: number; region: number; unit: number } {
    const row = this.allocWord + id * ALLOC_ROW_WORDS;
    return { state: load(this.u32, row + AllocatorEntry.STATE), region: load(this.u32, row + AllocatorEntry.REGION), unit: load(this.u32, row + AllocatorEntry.UNIT) };
  }

  /* ----------------------------- allocators ----------------------------- */

  /**
   * Creates an allocator in this heap and attaches it in this agent.
   * Size-bucketed by default; fixed-size with `unitSize`.
   */
  createAllocator(options: AllocatorOptions = {}): Allocator {
    this.checkAttached('createAllocator');
    const id = Allocator.create(this, options);
    return openAllocator(this, id, { nowait: options.nowait === true });
  }

  /** Attaches, in this agent, an allocator created elsewhere (from its handle). */
  attachAllocator(handle: AllocatorHandle, options: AttachOptions = {}): Allocator {
    this.checkAttached('attachAllocator');
    if (handle === null || typeof handle !== 'object' || handle.kind !== 'anyalloc.allocator') {
      throw new TypeError(`attachAllocator needs an allocator handle (allocator.handle), got ${describe(handle)}`);
    }
    checkInt('allocator id', handle.id, 1, this.maxAllocators);
    return openAllocator(this, handle.id, options);
  }

  private checkAttached(op: string): void {
    if (this.slot < 0) throw new RangeError(`${op}: this agent has detached from the heap`);
  }

  /**
   * Checks every invariant of the heap and its live allocators. Call it
   * when no agent is allocating or freeing (between rounds of work; an
   * agent that used freeDeferred is quiet once it returned to its event
   * loop or called collectDeferred()).
   * Returns the list of problems; empty means consistent.
   */
  validate(): string[] {
    this.refresh();
    // This agent is quiet while it validates: its allocators let go of
    // their limbo rings (held between deferred frees, see freeDeferred).
    for (const c of this.clients) c.settle?.();
    const errors = this.validatePages();
    for (const id of this.allocatorIds()) errors.push(...validateAllocator(this, id).map((e) => `allocator ${id}: ${e}`));
    return errors;
  }

  /** validate(), throwing an Error that lists the problems. */
  assertValid(): void {
    const errors = this.validate();
    if (errors.length > 0) throw new Error(`heap is inconsistent:\n  ${errors.slice(0, 20).join('\n  ')}`);
  }

  /* ------------------------------ stats --------------------------------- */

  stats(): HeapStats {
    const u32 = this.u32;
    let attached = 0;
    let reserved = 0;
    for (let s = 0; s < this.maxSlots; s++) {
      const st = load(u32, this.slotWord + s * SLOT_ROW_WORDS + SlotRow.STATE);
      if (st === SLOT_ATTACHED) attached++;
      else if (st === SLOT_RESERVED) reserved++;
    }
    let live = 0;
    for (let id = 1; id <= this.maxAllocators; id++) {
      if (load(u32, this.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE) === ALLOC_LIVE) live++;
    }
    const committedPages = load(u32, this.hdr + HeapHeader.COMMITTED_PAGES);
    // Counted from the tags: the USED_PAGES counter (kept for the peak)
    // can be off by the pages an agent was claiming when it died.
    let usedPages = 0;
    for (let p = this.firstDataPage; p < committedPages; p++) if (tagKind(load(u32, this.tagWord + p)) !== KIND_FREE) usedPages++;
    const peakUsedPages = load(u32, this.hdr + HeapHeader.PEAK_USED_PAGES);
    return {
      pageSize: this.pageSize,
      maxPages: this.maxPages,
      committedPages,
      metaPages: this.firstDataPage,
      usedPages,
      freePages: countFreePages(this),
      peakUsedPages,
      committedBytes: committedPages * this.pageSize,
      usedBytes: usedPages * this.pageSize,
      peakUsedBytes: peakUsedPages * this.pageSize,
      slotsAttached: attached,
      slotsReserved: reserved,
      maxWorkers: this.maxSlots,
      allocatorsLive: live,
      growFailures: load(u32, this.hdr + HeapHeader.GROW_FAILURES),
      slotsReleased: load(u32, this.hdr + HeapHeader.SLOTS_RELEASED),
    };
  }

  /**
   * Checks the page-level invariants (call when no agent is allocating):
   *   committed = meta + free + used,   used = pages tagged non-free,
   *   a page is free in the bitmap exactly when its tag is FREE.
   * Returns the problems found (empty when consistent).
   */
  validatePages(): string[] {
    const errors: string[] = [];
    const committed = this.committedPages();
    let free = 0;
    let tagged = 0;
    for (let p = this.firstDataPage; p < committed; p++) {
      const bit = ((load(this.u32, this.bitmapWord + (p >>> 5)) >>> (p & 31)) & 1) === 1;
      const kind = tagKind(this.pageTag(p));
      if (bit) free++;
      if (kind !== KIND_FREE) tagged++;
      if (bit && kind !== KIND_FREE) errors.push(`page ${p} is in the free bitmap but tagged kind ${kind}`);
      if (!bit && kind === KIND_FREE) errors.push(`page ${p} is neither free nor tagged (lost page)`);
    }
    for (let p = committed; p < this.maxPages; p++) {
      const bit = ((load(this.u32, this.bitmapWord + (p >>> 5)) >>> (p & 31)) & 1) === 1;
      if (bit) errors.push(`uncommitted page ${p} is marked free`);
    }
    if (committed - this.firstDataPage !== free + tagged) {
      errors.push(`committed data pages ${committed - this.firstDataPage} != free ${free} + used ${tagged}`);
    }
    return errors;
  }

  /** Ids of allocators in the given state (ALLOC_LIVE by default). */
  allocatorIds(state: number = ALLOC_LIVE): number[] {
    const ids: number[] = [];
    for (let id = 1; id <= this.maxAllocators; id++) {
      if (load(this.u32, this.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE) === state) ids.push(id);
    }
    return ids;
  }
}

