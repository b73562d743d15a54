/**
 * The heap's core: one shared buffer (a growable SharedArrayBuffer, or the
 * buffer of a shared WebAssembly.Memory) that every attached agent maps
 * with its own fixed-length typed-array views, the table of worker slots,
 * the page heap and the allocator table. The allocators, the maps and the
 * recovery of dead agents build on it; the public Heap (../anyalloc.ts)
 * adds them.
 *
 * - Memory is handed out in pages (pages.ts) and runs of pages (runs.ts);
 *   allocators carve pages into slabs and large runs (../alloc/).
 * - Any agent may grow the buffer. Views are fixed-length (length-tracking
 *   views over a growable buffer are ~30x slower on Node 20) and are renewed
 *   when an agent meets memory beyond them: on refill, on a free of a
 *   pointer past its views, or on an explicit refresh().
 * - Each attached agent owns one row of the slot table. The slot number
 *   picks the agent's caches in every allocator, as the CPU number does in
 *   the kernel.
 *
 * - Object states live in a second shared buffer, the state buffer (one
 *   byte per 16 bytes of the heap's buffer), grown before the buffer.
 *
 * The layout of everything in the buffer is in ../shm/layout.ts.
 */
import {
  HeapHeader,
  ALLOC_CREATING,
  ALLOC_DESTROYED,
  ALLOC_FREE,
  ALLOC_LIVE,
  ALLOC_ROW_WORDS,
  AllocatorEntry,
  HEAP_MAGIC,
  KIND_FREE,
  LAYOUT_VERSION,
  SlotRow,
  SLOT_ATTACHED,
  SLOT_FREE,
  SLOT_RELEASING,
  SLOT_RESERVED,
  SLOT_ROW_WORDS,
  tagKind,
} from '../shm/layout.js';
import { add, cas, load, maxTo, store } from '../shm/atomic.js';
import { checkInt, rangeError, typeError } from '../errors.js';
import { WASM_PAGE, metaLayout, type SharedMemory } from './format.js';
import { checkStates, growStates } from './states.js';
import { heapStats, type HeapStats } from './stats.js';
import { claimDone, giveRegion, giveRun, takeRegion, takeRun } from './runs.js';

/** The buffer grows by at least this much at a time (HeapCore.growTo). */
const GROW_STEP = 1 << 20;

/** A structured-cloneable description of a heap, to post to another agent. */
export interface HeapHandle {
  /** Always 'anyalloc.heap'. */
  readonly kind: 'anyalloc.heap';
  /** The heap's SharedArrayBuffer (absent when it lives in a WebAssembly.Memory). */
  readonly buffer?: SharedArrayBuffer;
  /** The shared WebAssembly.Memory the heap lives in, if any. */
  readonly memory?: SharedMemory;
  /** Byte offset of the heap header. */
  readonly base: number;
  /** The state buffer: one byte per 16 bytes of the heap's buffer (its objects' states). */
  readonly states: SharedArrayBuffer;
  /** A slot reserved for the receiving agent by reserveSlot(), if any. */
  readonly slot?: number;
  /** The reserved slot's generation (with `slot`). */
  readonly gen?: number;
}

/** Something that lives in one agent and must see new views after a grow. */
export interface ViewClient {
  onViews(): void;
  /** Let go of what this agent holds between calls (validate() runs in a quiet heap). */
  settle?(): void;
  /** Give back this agent's cached memory; called by detach(). */
  detachFromHeap(): void;
  /**
   * An allocator's region (word index) while this agent has it attached,
   * else 0: the allocators a shrink of the whole heap may touch, as none
   * of them can be destroyed while this agent is attached.
   */
  attachedRegion?(): number;
}

/** One taken worker slot, as heap.slots() sees it. */
export interface SlotInfo {
  /** The slot number (0..maxWorkers-1). */
  slot: number;
  /** The slot's generation: new each time the slot is taken. */
  gen: number;
  /** 'attached': an agent holds it; 'reserved': reserveSlot() set it aside for an agent not attached yet. */
  state: 'attached' | 'reserved';
  /** True for the slot of the agent asking. */
  self: boolean;
  /** Milliseconds since the slot's agent last beat (attach, heartbeat(), a deferred refill or trim). */
  silentMs: number;
  /** The tag its agent gave Heap.attach({ owner }), 0 for none. */
  owner: number;
}

/**
 * One agent's view of the heap: its typed-array views, its slot, and the
 * operations on the heap's own tables. Allocators and maps hold one (the
 * public Heap is one).
 */
export class HeapCore {
  /** Views over the whole buffer; renewed after a grow (re-read them, do not keep them). */
  u8!: Uint8Array;
  /** The buffer as 32-bit words (index = byte offset / 4). */
  u32!: Uint32Array;
  /** The buffer as signed 32-bit words. */
  i32!: Int32Array;
  /** The buffer as float64 (index = byte offset / 8). */
  f64!: Float64Array;
  /**
   * The heap's state bytes as this agent's view sees them: the state of
   * the object at byte offset p is st[p >> 4] (../shm/layout.ts).
   */
  st!: Uint8Array;
  /** Byte length the current views cover (of the buffer, and of the state buffer x 16). */
  viewBytes = 0;
  /** Lengths of the two buffers when the views were made. */
  private viewLengths = 0;
  private stateLength = 0;
  /** @internal Bumped each time this agent renews its views. */
  viewGeneration = 0;
  /**
   * @internal Read-side sections this agent is in (the maps' pin and
   * unpin): one pin word per slot, so one depth per agent, whatever the
   * map; only the outermost pin and unpin store it.
   */
  pinDepth = 0;

  /** The heap's SharedArrayBuffer, undefined when it lives in a WebAssembly.Memory. */
  readonly sab: SharedArrayBuffer | undefined;
  /** The shared WebAssembly.Memory the heap lives in, if any. */
  readonly memory: SharedMemory | undefined;
  /** The state buffer (see HeapHandle.states). */
  readonly states: SharedArrayBuffer;
  /** Byte offset of the heap's header in the buffer (0, or reserveBytes rounded up). */
  readonly base: number;
  /** @internal */
  readonly hdr: number;
  /** Bytes in a page (pageSize option). */
  readonly pageSize: number;
  /** @internal */
  readonly pageShift: number;
  /** Pages the buffer may grow to. */
  readonly maxPages: number;
  /** Worker slots (maxWorkers option). */
  readonly maxSlots: number;
  /** Allocators the heap may hold at once (maxAllocators option). */
  readonly maxAllocators: number;
  /** @internal */
  readonly firstDataPage: number;
  /** @internal */
  readonly bitmapWord: number;
  /** @internal */
  readonly bitmapWords: number;
  /** @internal */
  readonly slotWord: number;
  /** @internal */
  readonly allocWord: number;
  /** @internal */
  readonly tagWord: number;
  /** @internal */
  readonly argWord: number;
  /**
   * The heap's identity: a random nonzero 32-bit number drawn at create,
   * the same in every agent. Allocator and map handles carry it.
   */
  readonly id: number;
  /** This agent's slot, or -1 after detach. */
  slot: number;
  /** @internal The generation of this agent's slot when it attached. */
  slotGen: number;

  private readonly clients = new Set<ViewClient>();

  protected constructor(sab: SharedArrayBuffer | undefined, memory: SharedMemory | undefined, base: number, states: SharedArrayBuffer) {
    this.sab = sab;
    this.memory = memory;
    this.states = states;
    this.base = base;
    this.hdr = base >>> 2;
    this.renewViews();
    const u32 = this.u32;
    if (u32[this.hdr + HeapHeader.MAGIC] !== HEAP_MAGIC) {
      throw typeError('bad-handle', `no anyalloc heap at byte ${base} of this buffer (bad magic)`);
    }
    if (u32[this.hdr + HeapHeader.VERSION] !== LAYOUT_VERSION) {
      throw typeError('bad-version', `heap layout version ${u32[this.hdr + HeapHeader.VERSION]} is not supported (want ${LAYOUT_VERSION})`);
    }
    this.pageShift = u32[this.hdr + HeapHeader.PAGE_SHIFT]!;
    // A shift, not 2 ** n: V8 keeps the field (and every mask derived from it)
    // a small integer instead of a boxed double.
    this.pageSize = 1 << this.pageShift;
    this.maxPages = u32[this.hdr + HeapHeader.MAX_PAGES]!;
    this.maxSlots = u32[this.hdr + HeapHeader.MAX_SLOTS]!;
    this.maxAllocators = u32[this.hdr + HeapHeader.MAX_ALLOCATORS]!;
    this.firstDataPage = u32[this.hdr + HeapHeader.FIRST_DATA_PAGE]!;
    this.id = u32[this.hdr + HeapHeader.HEAP_ID]!;
    if (u32[this.hdr + HeapHeader.BASE] !== base) {
      throw typeError('bad-handle', `no anyalloc heap at byte ${base} of this buffer (its header says ${u32[this.hdr + HeapHeader.BASE]})`);
    }
    checkStates(states, base, this.maxPages * this.pageSize, load(u32, this.hdr + HeapHeader.COMMITTED_PAGES) * this.pageSize, this.id);
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

  /** A handle to post to another agent; Heap.attach(handle) there takes any free slot. */
  get handle(): HeapHandle {
    return this.sab !== undefined
      ? { kind: 'anyalloc.heap', buffer: this.sab, base: this.base, states: this.states }
      : { kind: 'anyalloc.heap', memory: this.memory!, base: this.base, states: this.states };
  }

  /**
   * Reserves a slot for an agent that is about to start and returns a
   * handle that attaches to exactly that slot. The creator then knows the
   * slot even if the worker dies before it says anything, and can
   * releaseSlot(handle.slot) after its death.
   */
  reserveSlot(): HeapHandle & {
    /** The reserved slot. */
    slot: number;
    /** Its generation: pass it to releaseSlot. */
    gen: number;
  } {
    const { slot, gen } = this.takeFreeSlot(SLOT_RESERVED);
    return { ...this.handle, slot, gen };
  }

  /** @internal Moves a FREE slot to `state` with a fresh generation (published by the final store). */
  private takeFreeSlot(state: number, owner = 0): { slot: number; gen: number } {
    const u32 = this.u32;
    for (let s = 0; s < this.maxSlots; s++) {
      const w = this.slotWord + s * SLOT_ROW_WORDS;
      if (load(u32, w + SlotRow.STATE) !== SLOT_FREE) continue;
      if (cas(u32, w + SlotRow.STATE, SLOT_FREE, SLOT_RELEASING) !== SLOT_FREE) continue;
      const gen = (add(u32, this.hdr + HeapHeader.SLOT_GEN, 1) + 1) >>> 0;
      store(u32, w + SlotRow.GEN, gen);
      store(u32, w + SlotRow.OWNER, owner);
      store(u32, w + SlotRow.BEAT, Date.now() >>> 0);
      this.clearPin(s);
      maxTo(u32, this.hdr + HeapHeader.SLOTS_USED, s + 1);
      store(u32, w + SlotRow.STATE, state);
      return { slot: s, gen };
    }
    throw rangeError('no-slot', `no free worker slot: all ${this.maxSlots} are taken (maxWorkers)`);
  }

  /** @internal */
  protected claimSlot(wanted: number, gen: number, owner = 0): void {
    if (wanted >= 0) {
      checkInt('slot', wanted, 0, this.maxSlots - 1);
      const w = this.slotWord + wanted * SLOT_ROW_WORDS;
      if (load(this.u32, w + SlotRow.GEN) !== gen || cas(this.u32, w + SlotRow.STATE, SLOT_RESERVED, SLOT_ATTACHED) !== SLOT_RESERVED) {
        throw rangeError('stale-handle', `slot ${wanted} is no longer reserved for this handle (released or already attached)`);
      }
      store(this.u32, w + SlotRow.OWNER, owner);
      this.slot = wanted;
      this.slotGen = gen;
      this.heartbeat();
      return;
    }
    const taken = this.takeFreeSlot(SLOT_ATTACHED, owner);
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
        owner: load(this.u32, w + SlotRow.OWNER),
      });
    }
    return out;
  }

  /**
   * @internal
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

  /** @internal State of a slot (SLOT_* from the layout) and its generation. */
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
    this.clearPin(this.slot);
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
    // Read after the buffer's length: the state buffer grows first, so
    // it covers at least the bytes seen above (unless a wasm module grew
    // its memory on its own: pages there are not the heap's until a
    // growTo covers them, and viewBytes stops at what the states cover).
    const stateBytes = this.states.byteLength;
    this.viewBytes = Math.min(bytes, stateBytes * 16);
    // No longer than the word views: a state byte found for a pointer
    // means its words are in view too (free writes them on the fast path).
    this.st = new Uint8Array(this.states, 0, Math.ceil(this.viewBytes / 16));
    this.viewLengths = bytes;
    this.stateLength = stateBytes;
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
    if (len - (len & 7) === this.viewLengths && this.states.byteLength === this.stateLength) return false;
    this.renewViews();
    for (const c of this.clients) c.onViews();
    return true;
  }

  /**
   * Grows the buffer to at least `bytes`, in steps of GROW_STEP where the
   * maximum allows (pages are committed one run at a time, but each growth
   * makes every agent renew its views). False when it is at its maximum.
   */
  growTo(bytes: number): boolean {
    const buf = this.currentBuffer();
    const max = this.maxPages * this.pageSize;
    const step = Math.min(Math.ceil(bytes / GROW_STEP) * GROW_STEP, max);
    // The states of the new bytes first (see the state buffer in ../shm/layout.ts).
    if (!growStates(this.states, bytes, step)) {
      add(this.u32, this.hdr + HeapHeader.GROW_FAILURES, 1);
      return false;
    }
    if (buf.byteLength < bytes) {
      try {
        if (this.sab !== undefined) {
          this.sab.grow(Math.min(Math.max(bytes, step), this.sab.maxByteLength));
        } else {
          const have = this.memory!.buffer.byteLength;
          if (have < bytes) {
            try {
              this.memory!.grow(Math.ceil((Math.max(bytes, step) - have) / WASM_PAGE));
            } catch {
              this.memory!.grow(Math.ceil((bytes - have) / WASM_PAGE));
            }
          }
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

  /** @internal */
  addClient(c: ViewClient): void {
    this.clients.add(c);
  }

  /** @internal The regions (word indexes) of the allocators this agent has attached (ViewClient.attachedRegion). */
  attachedRegions(): number[] {
    const out: number[] = [];
    for (const c of this.clients) {
      const R = c.attachedRegion?.() ?? 0;
      if (R !== 0) out.push(R);
    }
    return out;
  }

  /** @internal */
  removeClient(c: ViewClient): void {
    this.clients.delete(c);
  }

  /** @internal Clears the pin word of a slot (attach, detach, release): it holds no grace period back. */
  clearPin(slot: number): void {
    store(this.u32, this.slotWord + slot * SLOT_ROW_WORDS + SlotRow.PIN, 0);
  }

  /** @internal Lets this agent's clients let go of what they hold between calls (validate() runs in a quiet heap). */
  settleClients(): void {
    for (const c of this.clients) c.settle?.();
  }

  /* --------------------------- page heap -------------------------------- */

  /**
   * @internal Takes a run of k pages for the caller to tag (runs.ts); 0
   * when the heap is full. `low` keeps it below 2 GiB; its first page is a
   * multiple of `align` (a power of two).
   */
  takePages(k: number, low = false, align = 1): number {
    return takeRun(this, k, low, align);
  }

  /** @internal The run from the last takePages is tagged: this agent's claim record is cleared. */
  claimDone(): void {
    claimDone(this);
  }

  /** @internal Word index of this agent's claim record (pages.ts), -1 when detached. */
  get claimWord(): number {
    return this.slot < 0 ? -1 : this.slotWord + this.slot * SLOT_ROW_WORDS + SlotRow.CLAIM_FIRST;
  }

  /** @internal Gives pages [first, first + k) back (runs.ts). */
  givePages(first: number, k: number): void {
    giveRun(this, first, k);
  }

  /** @internal A zeroed control region of at least `bytes` for a shared structure (runs.ts); 0 when the heap is full. */
  takeRegion(bytes: number, owner: number): number {
    return takeRegion(this, bytes, owner);
  }

  /** @internal Gives back a region from takeRegion. */
  giveRegion(at: number): void {
    giveRegion(this, at);
  }


  /** @internal */
  pageTag(page: number): number {
    return load(this.u32, this.tagWord + page);
  }

  /** @internal */
  committedPages(): number {
    return load(this.u32, this.hdr + HeapHeader.COMMITTED_PAGES);
  }

  /* -------------------------- allocator table --------------------------- */

  /**
   * @internal Claims an allocator id (CREATING) with a fresh generation
   * (published with the id's LIVE store); throws when the table is full.
   */
  claimAllocatorId(unit: number): number {
    const u32 = this.u32;
    for (let id = 1; id <= this.maxAllocators; id++) {
      const row = this.allocWord + id * ALLOC_ROW_WORDS;
      if (load(u32, row + AllocatorEntry.STATE) !== ALLOC_FREE) continue;
      if (cas(u32, row + AllocatorEntry.STATE, ALLOC_FREE, ALLOC_CREATING) !== ALLOC_FREE) continue;
      store(u32, row + AllocatorEntry.UNIT, unit);
      // Never 0: a generation of 0 would match a zeroed row.
      let gen = (add(u32, this.hdr + HeapHeader.ALLOC_GEN, 1) + 1) >>> 0;
      if (gen === 0) gen = (add(u32, this.hdr + HeapHeader.ALLOC_GEN, 1) + 1) >>> 0;
      store(u32, row + AllocatorEntry.GEN, gen);
      return id;
    }
    throw rangeError('no-allocator-id', `no free allocator id: all ${this.maxAllocators} are in use (maxAllocators)`);
  }

  /** @internal Records that allocator `id` holds the elements of the map at byte `map`. */
  setAllocatorMap(id: number, map: number): void {
    store(this.u32, this.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.MAP, map);
  }

  /** @internal */
  publishAllocator(id: number, region: number): void {
    const row = this.allocWord + id * ALLOC_ROW_WORDS;
    store(this.u32, row + AllocatorEntry.REGION, region);
    store(this.u32, row + AllocatorEntry.STATE, ALLOC_LIVE);
  }

  /** @internal Marks an allocator destroyed; `reusable` frees the id at once (no pages left tagged with it). */
  retireAllocator(id: number, reusable: boolean): void {
    const row = this.allocWord + id * ALLOC_ROW_WORDS;
    store(this.u32, row + AllocatorEntry.REGION, 0);
    store(this.u32, row + AllocatorEntry.MAP, 0);
    store(this.u32, row + AllocatorEntry.STATE, reusable ? ALLOC_FREE : ALLOC_DESTROYED);
  }

  /** @internal Lets a destroyed allocator's id go to the next create: no page is tagged with it any more. */
  freeAllocatorId(id: number): void {
    store(this.u32, this.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE, ALLOC_FREE);
  }

  /** @internal */
  allocatorRow(id: number): { state: number; region: number; unit: number } {
    const row = this.allocWord + id * ALLOC_ROW_WORDS;
    return { state: load(this.u32, row + AllocatorEntry.STATE), region: load(this.u32, row + AllocatorEntry.REGION), unit: load(this.u32, row + AllocatorEntry.UNIT) };
  }

  /** @internal The generation of allocator id `id` (its latest claim; 0 if never claimed). */
  allocatorGen(id: number): number {
    return load(this.u32, this.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.GEN);
  }

  /** @internal The byte offset of the map whose elements allocator `id` holds (0 for none). */
  allocatorMap(id: number): number {
    return load(this.u32, this.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.MAP);
  }

  /**
   * @internal Whether `gen` is a generation this heap has handed out
   * (1..the ALLOC_GEN counter, 32-bit wrap aside): a handle with such a
   * generation that matches no live allocator names a destroyed one.
   */
  allocatorGenIssued(gen: number): boolean {
    const issued = load(this.u32, this.hdr + HeapHeader.ALLOC_GEN);
    return gen !== 0 && gen <= issued;
  }

  /**
   * @internal Whether a handle's generation names an object that is gone:
   * handed out by this heap, and no live allocator holds it now. (A live
   * one elsewhere means the handle pairs it with the wrong id or region:
   * forged.)
   */
  allocatorGenGone(gen: number): boolean {
    if (!this.allocatorGenIssued(gen)) return false;
    for (let id = 1; id <= this.maxAllocators; id++) {
      const row = this.allocWord + id * ALLOC_ROW_WORDS;
      if (load(this.u32, row + AllocatorEntry.GEN) === gen && load(this.u32, row + AllocatorEntry.STATE) === ALLOC_LIVE) return false;
    }
    return true;
  }

  /* ------------------------------ stats --------------------------------- */

  /** Page and slot counts (see HeapStats). */
  stats(): HeapStats {
    return heapStats(this);
  }


  /**
   * @internal
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

  /** @internal Ids of allocators in the given state (ALLOC_LIVE by default). */
  allocatorIds(state: number = ALLOC_LIVE): number[] {
    const ids: number[] = [];
    for (let id = 1; id <= this.maxAllocators; id++) {
      if (load(this.u32, this.allocWord + id * ALLOC_ROW_WORDS + AllocatorEntry.STATE) === state) ids.push(id);
    }
    return ids;
  }
}
