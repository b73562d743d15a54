/**
 * Debug mode of the allocator (`heap.createAllocator({ debug: true })`).
 *
 * The flag lives in the allocator's shared region (A.FLAGS, AF_DEBUG), so
 * every agent that creates or attaches such an allocator gets a
 * DebugAllocator (openAllocator below). It wraps the release allocator: it
 * overrides the public methods and calls `super.*` for the real work, so
 * the release fast paths stay as they are. What it adds, after hardened
 * allocators such as hardened_malloc and the kernel's slab debugging:
 *
 * - a 16-byte header before every object of a size-bucketed allocator
 *   (requested size, a state word, a check word) and an 8-byte canary just
 *   past the requested size: overflows are reported at free;
 * - poisoning: a freed object is filled with 0x6b (the kernel's
 *   POISON_FREE) and marked; the poison is checked when the object leaves
 *   the quarantine and again when it is handed out again: a write after
 *   free is reported;
 * - a quarantine: the last 64 objects (and at most 4 MiB) an agent freed
 *   stay allocated, poisoned, before they really go back to the cache;
 * - every pointer check of release mode, with the same messages, plus the
 *   double free of an object sitting in some agent's quarantine;
 * - a stale-agent check: an allocator whose heap slot was released
 *   (heap.releaseSlot) or reused throws instead of using that slot's caches;
 * - validate(): heap.validate() plus the canary of every live object and
 *   the poison of every freed one (quarantined or really free).
 *
 * An object of a size-bucketed debug allocator (`size` bytes asked for;
 * the release allocator hands out a unit of at least size + 24 bytes):
 *
 *   base (from the release allocator)       p = base + 16 (what alloc returns)
 *   |                                       |
 *   v                                       v
 *   +--------+--------+--------+--------+---------------------+--------+--------+
 *   | w0     | w1     | w2     | w3     | size bytes of user  | canary | slack  |
 *   | size   | LIVE^  | check  | slot   | data                | 8 B    |        |
 *   |        | base   |        |        |                     |        |        |
 *   +--------+--------+--------+--------+---------------------+--------+--------+
 *   '------ header, 16 bytes ----------'                      base + unit  -----'
 *
 * The same object once freed (quarantined, then really free):
 *
 *   +--------+--------+--------+--------+-------------------------------+--------+
 *   | w0 gen | QUAR^  | check  | slot   | 0x6b 0x6b 0x6b ... (poison)   | marker |
 *   |        | base   |        |        |                               | 8 B    |
 *   +--------+--------+--------+--------+-------------------------------+--------+
 *   '- the release allocator's free-list  '- checked when the object      '- FREED^base,
 *      links once really freed (words      leaves the quarantine and       FREED2^unit
 *      0..3): the user pointer never       when it is handed out again
 *      reaches them
 *
 * - w1, the state word, is LIVE, QUAR (in an agent's quarantine; w0 and w3
 *   are that agent's slot generation and slot) or DEFR (freeDeferred,
 *   waiting for a grace period), xor the base address, so a state word
 *   copied from elsewhere does not match. w2 is a check word over w0, w3
 *   and the base address (checkWord below). w3 is the slot of the agent
 *   that allocated (LIVE) or quarantined (QUAR) the object.
 * - The canary is 8 bytes derived from the base address and the size.
 * - The marker in the last 8 bytes of the unit says "poisoned by a debug
 *   free". Those bytes are never user data (the unit holds size + 24), so
 *   a fresh object (never freed, no marker) is told from a freed one, and
 *   only a freed object's poison is checked on reuse. destroy() wipes the
 *   markers of the slabs it gives back, so a page that later comes back
 *   to another debug allocator carries none.
 * - Large objects (size + 24 > 4096 bytes: page runs) have the same header
 *   and canary and are poisoned and quarantined too; their poison is
 *   checked when they leave the quarantine (their pages then go back to
 *   the page heap, where anyone may reuse them, so not at reuse).
 *
 * Fixed-size allocators (`unitSize`) keep their unit: the user may write
 * all unitSize bytes, so there is no header and no canary, and alloc()
 * returns the unit itself. A freed unit gets the same QUAR words 0..3,
 * poison and marker (units of 16 bytes: the QUAR words only), so double
 * free of a quarantined unit and writes after free are found; overflows
 * are not. Once a unit has really been freed its first 16 bytes hold the
 * release allocator's links, which a write after free can break; alloc
 * checks the link of the object it is about to hand out and reports a
 * broken one instead of following it.
 *
 * API on top of Allocator's: validate() / assertValid(), quarantined and
 * quarantinedBytes, flushQuarantine(), reclaimOrphans(), stats().quarantine,
 * and the per-agent bounds quarantineObjects (64) and quarantineBytes
 * (4 MiB), which may be set at any time (0 objects: poison, check, free).
 *
 * Errors. Wrong input keeps the release classes and messages: TypeError
 * for a pointer or size that is not an integer; every other misuse is an
 * AllocatorMisuseError, a RangeError with a `code` and the `pointer` it is
 * about (the pointer the user holds: p, not base; NaN when none). Messages
 * read `op(pointer (0xhex)): what`, or `op: write after free detected in
 * object pointer (0xhex) ...`, and contain the exact texts of MISUSE:
 *
 *   code               MISUSE key        text in the message
 *   -----------------  ----------------  ----------------------------------------------
 *   double-free        doubleFree        "double free"
 *   unaligned          unalignedFree     "invalid unaligned free"
 *   not-allocated      notObjectStart    "not the start of an object"
 *   not-allocated      notAllocated      "not allocated"
 *   wrong-allocator    wrongAllocator    "wrong allocator"
 *   out-of-range       outsideHeap       "outside the heap"
 *   write-after-free   writeAfterFree    "write after free detected"
 *   canary             canary            "canary corrupted"
 *   stale              stale             "stale handle"
 *   detached           detached          "is detached in this agent"
 *   bad-size           badSize           "alloc size must be"
 *   large-deferred     largeDeferred     "large allocations cannot be freed deferred"
 *   (TypeError)        notInteger        "pointer must be an integer byte offset"
 *   (TypeError)        badSize           "alloc size must be a positive safe integer"
 *
 * What a throwing call leaves behind:
 * - A misuse about the pointer passed in (double free, bad pointer,
 *   canary corrupted, stale, ...) changes nothing: the object stays as it
 *   was (a live object with a broken canary stays live, the caller still
 *   holds it; restoring the canary makes it freeable).
 * - "write after free detected" is about another object, found where it
 *   was checked: leaving the quarantine during free() (that free did
 *   happen), or about to be handed out by alloc() (alloc returns nothing;
 *   the object is poisoned again and given back to the allocator). Found
 *   while the grace period of deferred frees ended in a microtask, it is
 *   thrown by this agent's next call. Found while detach() or destroy()
 *   releases the quarantine, it is thrown once they are done (destroy's
 *   leak report rides on the error as `leakReport`); heap.detach() throws
 *   it from a microtask so that the agent's other allocators detach too.
 * In every case the heap stays consistent: heap.validate() passes and no
 * object is lost or handed out twice. The one exception is a write into
 * the free-list link of a really freed fixed-size unit (or a wild write
 * into the header of a free object): the release allocator's list is
 * already broken when alloc finds it; alloc reports it ("write after free
 * detected ... the free-list link") without following it, and
 * heap.validate() lists the damage.
 *
 * Limits: the quarantine is per agent, in JS memory; the objects in the
 * quarantine of an agent that dies stay allocated until a survivor calls
 * reclaimOrphans() (or destroy() does). The checks read shared memory
 * plainly: like the release checks, a double free is caught when the two
 * frees are ordered. validate() and reclaimOrphans() want a quiet heap.
 */
import { Allocator } from './allocator.js';
import { validateHeap } from './validate.js';
import type { AllocatorStats, AttachOptions, LeakReport } from './types.js';
import { AllocatorMisuseError, MISUSE, type MisuseCode } from './misuse.js';
import type { HeapCore } from '../heap/core.js';
import {
  AllocatorHeader,
  AF_DEBUG,
  ALLOC_WORDS,
  ClassRow,
  CLASS_MASK,
  CLASS_WORDS,
  KIND_LARGE,
  KIND_LARGE_TAIL,
  KIND_SLAB,
  SlotRow,
  SLOT_ATTACHED,
  SLOT_ROW_WORDS,
  ST_ALLOCATED,
  ST_FREE,
  ST_NONE,
  ST_RETIRED,
  pageTag,
  tagAllocator,
  tagClass,
  tagKind,
} from '../shm/layout.js';
import { describe, hex } from '../errors.js';
import { cacheRowAt, slotFlagWord } from './region.js';
import { CLASS_BY_GRANULE, MAX_SMALL } from './sizeclass.js';

/** Header bytes before a bucketed debug object. */
export const DEBUG_HEADER = 16;
/** Canary bytes after it. */
export const DEBUG_CANARY = 8;
/** Bytes a bucketed debug allocation adds to the requested size. */
export const DEBUG_OVERHEAD = DEBUG_HEADER + DEBUG_CANARY;
/** The byte freed objects are filled with (the kernel's POISON_FREE). */
export const POISON_BYTE = 0x6b;

const HEAD = DEBUG_HEADER;
const OVERHEAD = DEBUG_OVERHEAD;
/** Eight poison bytes read as a float64 (a plain number, neither NaN nor zero). */
const POISON64 = new Float64Array(new Uint32Array([0x6b6b6b6b, 0x6b6b6b6b]).buffer)[0]!;
// State words (xor the base address), and the keys of the check word and the marker.
const LIVE = 0x4556494c; // "LIVE"
const QUAR = 0x52415551; // "QUAR"
const DEFR = 0x52464544; // "DEFR"
const KEY = 0x5a17e5c3;
const FREED_A = 0x44454546; // "FEED"
const FREED_B = 0x1dead0ff;
const MARKER = 8;
/** quarantineFault: the header changed, and its check word cannot say where. */
const HEADER_FAULT = -2;
const DEFAULT_QUARANTINE_OBJECTS = 64;
const DEFAULT_QUARANTINE_BYTES = 4 << 20;

/** Header word w2: checks w0 and w3 (and ties them to the address). */
function checkWord(w0: number, w3: number, base: number): number {
  return (w0 ^ base ^ KEY ^ Math.imul(w3 + 1, 0x9e3779b1)) >>> 0;
}

function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d);
  x = Math.imul(x ^ (x >>> 12), 0x297a2d39);
  return (x ^ (x >>> 15)) >>> 0;
}
function canaryWord(base: number, size: number, i: number): number {
  return mix((base ^ Math.imul(size + i, 0x9e3779b1) ^ 0x63616e61) >>> 0);
}

/**
 * An allocator in debug mode. Same API as Allocator; every agent that
 * attaches an allocator created with `debug: true` gets one. In
 * size-bucketed mode alloc(size) returns a pointer 16 bytes into a unit of
 * at least size + 24 bytes; usableSize() reports the size asked for.
 */
export class DebugAllocator extends Allocator {
  /** Quarantine bound in objects, per agent (0: poison, check and free at once). */
  quarantineObjects = DEFAULT_QUARANTINE_OBJECTS;
  /** Quarantine bound in bytes of units, per agent. */
  quarantineBytes = DEFAULT_QUARANTINE_BYTES;

  private readonly dR: number;
  private readonly mySlot: number;
  private readonly myGen: number;
  private readonly flagWord: number;
  private readonly dShift: number;
  private readonly dMask: number;
  private readonly dMap: number;
  private readonly slabTag: number;
  private readonly largeTag: number;
  private readonly maxSize: number;
  private readonly unitOf: Uint32Array;
  private readonly perSlabOf: Uint32Array;
  private readonly rowOf: Uint32Array;
  private readonly fixedMode: boolean;
  /** Inside a call into the release allocator: its calls back into alloc/free pass through. */
  private through = false;
  /** Inside collectDeferred: free() receives objects whose grace period ended. */
  private collecting = false;
  /** detach/destroy: objects freed now skip the quarantine. */
  private noQuarantine = false;
  private gone = false;
  private stale = false;
  private pendingError: Error | null = null;
  // The quarantine: a ring of (base, unit), oldest first.
  private qBase = new Uint32Array(DEFAULT_QUARANTINE_OBJECTS);
  private qUnit = new Float64Array(DEFAULT_QUARANTINE_OBJECTS);
  private qHead = 0;
  private qCount = 0;
  private qBytes = 0;

  /** @internal use Heap.createAllocator / Heap.attachAllocator. */
  constructor(heap: HeapCore, id: number, options: AttachOptions) {
    super(heap, id, options);
    this.retireThroughFree = true;
    const u32 = heap.u32;
    const R = heap.allocatorRow(id).region >>> 2;
    this.dR = R;
    this.mySlot = heap.slot;
    this.myGen = heap.slotGen;
    this.flagWord = R + slotFlagWord(this.classes) + heap.slot;
    this.dShift = heap.pageShift;
    this.dMask = heap.pageSize - 1;
    this.dMap = heap.pageSize >>> 4;
    this.slabTag = pageTag(KIND_SLAB, id, 0);
    this.largeTag = pageTag(KIND_LARGE, id, 0);
    this.maxSize = (heap.maxPages - heap.firstDataPage) * heap.pageSize - OVERHEAD;
    this.fixedMode = this.unitSize !== 0;
    this.unitOf = new Uint32Array(this.classes);
    this.perSlabOf = new Uint32Array(this.classes);
    this.rowOf = new Uint32Array(this.classes);
    for (let c = 0; c < this.classes; c++) {
      this.unitOf[c] = u32[R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.UNIT]!;
      this.perSlabOf[c] = u32[R + ALLOC_WORDS + c * CLASS_WORDS + ClassRow.PER_SLAB]!;
      this.rowOf[c] = cacheRowAt(R, this.classes, heap.maxSlots, heap.slot, c);
    }
  }

  /* ------------------------------ alloc ------------------------------ */

  override alloc(size?: number): number {
    if (this.through) return super.alloc(size);
    this.enter('alloc');
    let c: number;
    let ask: number | undefined;
    if (!this.fixedMode) {
      if (typeof size !== 'number' || !Number.isSafeInteger(size)) {
        throw new TypeError(`alloc size must be a positive safe integer, got ${describe(size)}`);
      }
      if (size < 1 || size > this.maxSize) {
        throw new AllocatorMisuseError(`alloc size must be in [1, ${this.maxSize}] (debug mode), got ${size}`, 'bad-size', NaN);
      }
      ask = size + OVERHEAD;
      c = ask <= MAX_SMALL ? CLASS_BY_GRANULE[(ask - 1) >>> 4]! : -1;
    } else {
      if (size !== undefined) {
        if (typeof size !== 'number' || !Number.isSafeInteger(size)) {
          throw new TypeError(`alloc size must be a positive safe integer, got ${describe(size)}`);
        }
        if (size < 1 || size > this.unitSize) {
          throw new AllocatorMisuseError(
            `alloc size must be in [1, ${this.unitSize}] for this fixed-size allocator, got ${size}`,
            'bad-size',
            NaN,
          );
        }
      }
      c = 0;
    }
    if (c >= 0) this.checkCacheHead(c);
    const base = this.rawAlloc(ask);
    if (base === 0) return 0;
    const heap = this.heap;
    const u32 = heap.u32;
    const w = base >>> 2;
    const unit = c >= 0 ? this.unitOf[c]! : this.largeUnit(base);
    if (c >= 0 && unit >= 2 * HEAD && this.hasMarker(base, unit)) {
      const bad = this.poisonFault(base, unit);
      if (bad >= 0) {
        const err = this.wafError('alloc', base, unit, bad, 'found as it was about to be handed out again');
        this.poison(base, unit);
        this.rawFree(base);
        throw err;
      }
    }
    if (this.fixedMode) {
      // Remove what marks a freed unit: the state word and the marker.
      u32[w + 1] = 0;
      if (unit >= 2 * HEAD) u32[(base + unit - MARKER) >>> 2] = 0;
      return base;
    }
    const sz = size as number;
    u32[w] = sz;
    u32[w + 1] = (LIVE ^ base) >>> 0;
    u32[w + 2] = checkWord(sz, heap.slot, base);
    u32[w + 3] = heap.slot;
    u32[(base + unit - MARKER) >>> 2] = 0;
    u32[((base + unit - MARKER) >>> 2) + 1] = 0;
    this.writeCanary(base, sz);
    return base + HEAD;
  }

  /* ------------------------------ free ------------------------------- */

  override free(p: number): void {
    if (this.collecting) return this.freeCollected(p);
    if (this.through) return super.free(p);
    if (p === 0) return;
    this.enter('free');
    const base = this.checkLive('free', p);
    const unit = this.unitAt(base);
    if (!this.fixedMode) this.checkCanary('free', p, base);
    this.quarantine(base, unit);
    const err = this.evict(this.quarantineObjects, this.quarantineBytes);
    if (err !== null) throw err;
  }

  override freeDeferred(p: number): void {
    if (this.through) return super.freeDeferred(p);
    if (p === 0) return;
    this.enter('freeDeferred');
    const base = this.checkLive('freeDeferred', p);
    const heap = this.heap;
    if (tagKind(heap.u32[heap.tagWord + (base >>> this.dShift)]!) === KIND_LARGE) {
      throw this.misuse('freeDeferred', p, `${MISUSE.largeDeferred}; free them directly`, 'large-deferred');
    }
    if (!this.fixedMode) {
      this.checkCanary('freeDeferred', p, base);
      heap.u32[(base >>> 2) + 1] = (DEFR ^ base) >>> 0;
    }
    try {
      this.rawFreeDeferred(base);
    } catch (e) {
      if (!this.fixedMode) this.heap.u32[(base >>> 2) + 1] = (LIVE ^ base) >>> 0;
      throw e;
    }
  }

  override collectDeferred(everyAgent = false): number {
    if (this.gone || this.stale) return 0;
    if (!this.current()) {
      // Called from a microtask of an agent whose slot was released: do nothing.
      this.stale = true;
      return 0;
    }
    const was = this.collecting;
    this.collecting = true;
    try {
      return super.collectDeferred(everyAgent);
    } finally {
      this.collecting = was;
    }
  }

  /**
   * The requested size of a live object (bucketed mode), or unitSize
   * (fixed mode). Throws for anything but a live object of this allocator.
   */
  override usableSize(p: number): number {
    this.enter('usableSize');
    const base = this.checkLive('usableSize', p);
    return this.fixedMode ? this.unitSize : this.heap.u32[base >>> 2]!;
  }

  /** The release unit an allocation of `size` bytes takes (size + 24 in bucketed mode; 0 for a page run). */
  override unitFor(size: number): number {
    if (this.fixedMode) return super.unitFor(size);
    super.unitFor(size);
    return size + OVERHEAD <= MAX_SMALL ? super.unitFor(size + OVERHEAD) : 0;
  }

  /* --------------------------- quarantine ---------------------------- */

  /** Objects in this agent's quarantine. */
  get quarantined(): number {
    return this.qCount;
  }

  /** Bytes (whole units) in this agent's quarantine. */
  get quarantinedBytes(): number {
    return this.qBytes;
  }

  /**
   * Really frees every object of this agent's quarantine, checking each
   * one's poison. Throws the first write after free found, after all are freed.
   */
  flushQuarantine(): void {
    this.enter('flushQuarantine');
    const err = this.evict(0, 0);
    if (err !== null) throw err;
  }

  /**
   * Frees the objects left in the quarantine of agents that are gone (a
   * slot released with heap.releaseSlot, or since taken by another agent):
   * their poison is checked first. Returns how many were freed. Call it
   * when no agent is allocating or freeing, like validate(). Throws the
   * first write after free found, after all are freed.
   */
  reclaimOrphans(): number {
    this.enter('reclaimOrphans');
    const { freed, error } = this.sweepOrphans(false);
    if (error !== null) throw error;
    return freed;
  }

  /* ---------------------------- lifecycle ---------------------------- */

  /**
   * Releases this agent's quarantine (really frees it), then detaches.
   * A write after free found meanwhile is thrown once detached. An
   * allocator whose slot was released throws the stale error and touches
   * nothing.
   */
  override detach(): void {
    if (this.gone) return;
    if (this.stale || !this.current()) {
      // Released behind our back: let go, as release mode does, without
      // touching a slot that is not ours (the quarantine stays for
      // reclaimOrphans()).
      this.stale = true;
      const t = this.through;
      this.through = true;
      try {
        super.detach();
      } finally {
        this.through = t;
      }
      return;
    }
    for (let i = 0; i < 64 && this.collectDeferred() > 0; i++);
    this.noQuarantine = true;
    const err = this.evict(0, 0);
    const t = this.through;
    this.through = true;
    try {
      super.detach();
    } finally {
      this.through = t;
    }
    this.gone = true;
    if (err !== null) throw err;
  }

  /** @internal heap.detach(): a write after free found here is thrown from a microtask, after the heap detached. */
  override detachFromHeap(): void {
    try {
      this.detach();
    } catch (e) {
      if (!(e instanceof AllocatorMisuseError) || e.code !== 'write-after-free') throw e;
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  /**
   * Finishes every deferred free, releases the quarantine of this agent
   * and those left by agents that are gone, wipes the free markers, then
   * destroys the allocator (see Allocator.destroy). A write after free
   * found meanwhile is thrown once destroyed, with the leak report on it.
   */
  override destroy(): LeakReport {
    this.enter('destroy');
    if (this.attachedAgents > 1) return this.rawDestroy(); // throws: others still attached
    for (let i = 0; i < 100_000 && (this.collectDeferred(true), this.retiredObjects() > 0); i++);
    this.noQuarantine = true;
    let err = this.evict(0, 0);
    const swept = this.sweepOrphans(true);
    err ??= swept.error;
    this.wipeMarkers();
    let report: LeakReport;
    try {
      report = this.rawDestroy();
    } catch (e) {
      this.noQuarantine = false;
      throw e;
    }
    this.gone = true;
    if (err !== null) {
      err.leakReport = report;
      throw err;
    }
    return report;
  }

  /** Release stats plus this agent's quarantine (quarantined objects count as live there). */
  override stats(): AllocatorStats & { quarantine: { objects: number; bytes: number } } {
    return { ...super.stats(), quarantine: { objects: this.qCount, bytes: this.qBytes } };
  }

  /* ----------------------------- validate ---------------------------- */

  /**
   * heap.validate(), then every object of this allocator: the header and
   * canary of each live one, the poison of each quarantined one (in any
   * agent's quarantine) and of each really free one that was poisoned, and
   * this agent's quarantine list. Returns the problems (empty: all good).
   * Call it when no agent is allocating or freeing.
   */
  validate(): string[] {
    const heap = this.heap;
    const errors = validateHeap(heap);
    if (this.gone || heap.allocatorRow(this.id).region >>> 2 !== this.dR) return errors;
    const u8 = heap.u8;
    const u32 = heap.u32;
    const committed = heap.committedPages();
    const say = (e: AllocatorMisuseError): void => {
      errors.push(`allocator ${this.id}: ${e.message}`);
    };
    // This agent's quarantine: checked in full (other agents' quarantined
    // objects are recognised in the scan below by their QUAR header).
    const mine = new Set<number>();
    for (let i = 0; i < this.qCount; i++) {
      const j = (this.qHead + i) & (this.qBase.length - 1);
      const base = this.qBase[j]!;
      mine.add(base);
      if (this.stateOf(base) !== ST_ALLOCATED && tagKind(u32[heap.tagWord + (base >>> this.dShift)]!) !== KIND_LARGE) {
        errors.push(`allocator ${this.id}: object ${this.userPointer(base)} is in this agent's quarantine but not allocated`);
        continue;
      }
      const bad = this.quarantineFault(base, this.qUnit[j]!);
      if (bad !== -1) say(this.wafError('validate', base, this.qUnit[j]!, bad, "found in this agent's quarantine"));
    }
    for (let pg = heap.firstDataPage; pg < committed; pg++) {
      const tag = u32[heap.tagWord + pg]!;
      if (tagAllocator(tag) !== this.id) continue;
      const kind = tagKind(tag);
      if (kind === KIND_LARGE) {
        const base = pg * heap.pageSize;
        if (mine.has(base)) continue;
        const e = this.objectProblem(base, this.largeUnit(base), ST_ALLOCATED);
        if (e !== null) say(e);
      } else if (kind === KIND_SLAB) {
        const c = tagClass(tag);
        const unit = this.unitOf[c]!;
        const start = pg * heap.pageSize;
        for (let i = 0; i < this.perSlabOf[c]!; i++) {
          const base = start + this.dMap + i * unit;
          if (mine.has(base)) continue;
          const e = this.objectProblem(base, unit, u8[start + ((this.dMap + i * unit) >>> 4)]!);
          if (e !== null) say(e);
        }
      }
    }
    if (this.pendingError !== null) errors.push(`allocator ${this.id}: not yet reported: ${this.pendingError.message}`);
    return errors;
  }

  /** validate(), throwing an Error that lists the problems. */
  assertValid(): void {
    const errors = this.validate();
    if (errors.length > 0) throw new Error(`heap is inconsistent:\n  ${errors.slice(0, 20).join('\n  ')}`);
  }

  /* ----------------------------- internals ---------------------------- */

  // Calls into the release allocator. Its own calls back into alloc/free
  // (a retry after refreshing views, an empty cache refilled) pass straight
  // through; objects whose grace period ends meanwhile go to freeCollected.
  private rawAlloc(size: number | undefined): number {
    const t = this.through;
    const c = this.collecting;
    this.through = true;
    this.collecting = false;
    try {
      return super.alloc(size);
    } finally {
      this.through = t;
      this.collecting = c;
    }
  }

  private rawFree(base: number): void {
    const t = this.through;
    const c = this.collecting;
    this.through = true;
    this.collecting = false;
    try {
      super.free(base);
    } finally {
      this.through = t;
      this.collecting = c;
    }
  }

  private rawFreeDeferred(base: number): void {
    const t = this.through;
    this.through = true;
    try {
      super.freeDeferred(base);
    } finally {
      this.through = t;
    }
  }

  private rawDestroy(): LeakReport {
    const t = this.through;
    this.through = true;
    try {
      return super.destroy();
    } finally {
      this.through = t;
    }
  }

  /** This agent still owns the slot it attached in, and the allocator is attached there. */
  private current(): boolean {
    const heap = this.heap;
    const u32 = heap.u32;
    const w = heap.slotWord + this.mySlot * SLOT_ROW_WORDS;
    return (
      heap.slot === this.mySlot &&
      u32[w + SlotRow.STATE] === SLOT_ATTACHED &&
      u32[w + SlotRow.GEN] === this.myGen &&
      u32[this.flagWord] === 1
    );
  }

  /** Checks at the start of every public operation. */
  private enter(op: string): void {
    if (this.pendingError !== null) {
      const e = this.pendingError;
      this.pendingError = null;
      throw e;
    }
    if (this.gone) {
      throw new AllocatorMisuseError(`${op}: allocator ${this.id} ${MISUSE.detached}`, 'detached', NaN);
    }
    if (this.stale || !this.current()) {
      this.stale = true;
      throw this.slotGoneError(op);
    }
  }

  private slotGoneError(op: string): AllocatorMisuseError {
    return new AllocatorMisuseError(
      `${op}: ${MISUSE.stale}: this agent's worker slot ${this.mySlot} (generation ${this.myGen}) was released ` +
        `(releaseSlot) or taken by another agent since; nothing was changed`,
      'stale',
      NaN,
    );
  }

  private misuse(op: string, p: number, why: string, code: MisuseCode): AllocatorMisuseError {
    const shown = Number.isSafeInteger(p) && p >= 0 ? `${p} (${hex(p)})` : describe(p);
    return new AllocatorMisuseError(`${op}(${shown}): ${why}`, code, p);
  }

  private userPointer(base: number): number {
    return this.fixedMode ? base : base + HEAD;
  }

  private stateOf(base: number): number {
    const off = base & this.dMask;
    return this.heap.u8[base - off + (off >>> 4)]!;
  }

  private largeUnit(base: number): number {
    const heap = this.heap;
    return heap.u32[heap.argWord + (base >>> this.dShift)]! * heap.pageSize;
  }

  /** Unit of a live object at base (slab class unit, or the whole page run). */
  private unitAt(base: number): number {
    const heap = this.heap;
    const tag = heap.u32[heap.tagWord + (base >>> this.dShift)]!;
    return tagKind(tag) === KIND_SLAB ? this.unitOf[tagClass(tag)]! : this.largeUnit(base);
  }

  /**
   * Returns the base of the live object the user pointer p designates, or
   * throws the misuse it is. Changes nothing.
   */
  private checkLive(op: string, p: unknown): number {
    const heap = this.heap;
    if (typeof p === 'number' && p >>> 0 === p && (p & 15) === 0 && p !== 0 && p < heap.viewBytes) {
      const u32 = heap.u32;
      const tag = u32[heap.tagWord + (p >>> this.dShift)]!;
      const off = p & this.dMask;
      if (((tag & ~CLASS_MASK) >>> 0) === this.slabTag) {
        if (this.fixedMode) {
          if (off >= this.dMap && heap.u8[p - off + (off >>> 4)] === ST_ALLOCATED && !this.isQuarantinedHead(p)) return p;
        } else if (off >= this.dMap + HEAD) {
          const base = p - HEAD;
          const bo = off - HEAD;
          if (heap.u8[base - bo + (bo >>> 4)] === ST_ALLOCATED && this.isLiveHead(base)) return base;
        }
      } else if (tag === this.largeTag && off === HEAD && this.isLiveHead(p - HEAD)) {
        return p - HEAD;
      }
    }
    return this.diagnose(op, p);
  }

  private isLiveHead(base: number): boolean {
    const u32 = this.heap.u32;
    const w = base >>> 2;
    return u32[w + 1] === (LIVE ^ base) >>> 0 && u32[w + 2] === checkWord(u32[w]!, u32[w + 3]!, base);
  }

  private isQuarantinedHead(base: number): boolean {
    const u32 = this.heap.u32;
    const w = base >>> 2;
    return u32[w + 1] === (QUAR ^ base) >>> 0 && u32[w + 2] === checkWord(u32[w]!, u32[w + 3]!, base);
  }

  /** The slow half of checkLive: says exactly what is wrong with p (or returns the base after all). */
  private diagnose(op: string, p: unknown): number {
    if (typeof p !== 'number' || !Number.isInteger(p)) {
      throw new TypeError(`${op}(${describe(p)}): ${MISUSE.notInteger}`);
    }
    const heap = this.heap;
    if (p < 0 || p >= heap.maxPages * heap.pageSize) throw this.misuse(op, p, MISUSE.outsideHeap, 'out-of-range');
    if (p >= heap.viewBytes) {
      heap.refresh();
      if (p >= heap.viewBytes) {
        throw this.misuse(op, p, `${MISUSE.outsideHeap} (beyond its committed pages)`, 'out-of-range');
      }
      return this.checkLive(op, p);
    }
    if (p === 0) throw this.misuse(op, p, `${MISUSE.notAllocated}: the null pointer`, 'not-allocated');
    const tag = heap.u32[heap.tagWord + (p >>> this.dShift)]!;
    const kind = tagKind(tag);
    const owner = tagAllocator(tag);
    const freeing = op === 'free' || op === 'freeDeferred';
    if ((kind === KIND_SLAB || kind === KIND_LARGE || kind === KIND_LARGE_TAIL) && owner !== this.id) {
      throw this.misuse(op, p, `${MISUSE.wrongAllocator}: the object belongs to allocator ${owner}, not ${this.id}`, 'wrong-allocator');
    }
    const inLarge = `${MISUSE.notObjectStart} (inside a large allocation)`;
    if (kind === KIND_SLAB || kind === KIND_LARGE) {
      if ((p & 15) !== 0) {
        throw this.misuse(op, p, `${freeing ? MISUSE.unalignedFree : 'invalid unaligned pointer'}: objects are 16-byte aligned`, 'unaligned');
      }
      const off = p & this.dMask;
      const head = this.fixedMode ? 0 : HEAD;
      if (kind === KIND_LARGE && off !== head) throw this.misuse(op, p, inLarge, 'not-allocated');
      if (kind === KIND_SLAB && off < this.dMap + head) throw this.misuse(op, p, MISUSE.notObjectStart, 'not-allocated');
      const base = p - head;
      const st = kind === KIND_LARGE ? ST_ALLOCATED : this.stateOf(base);
      const gone = (why: string): AllocatorMisuseError =>
        freeing
          ? this.misuse(op, p, `${MISUSE.doubleFree}${why}`, 'double-free')
          : this.misuse(op, p, `${MISUSE.notAllocated}: the object was freed${why}`, 'not-allocated');
      if (st === ST_FREE) throw gone('');
      if (st === ST_RETIRED) throw gone(': already freed with freeDeferred, waiting for a grace period');
      if (st === ST_NONE) throw this.misuse(op, p, MISUSE.notObjectStart, 'not-allocated');
      const u32 = heap.u32;
      const w = base >>> 2;
      if (this.isQuarantinedHead(base)) throw gone(` (the object is in the quarantine of agent slot ${u32[w + 3]})`);
      if (this.fixedMode || this.isLiveHead(base)) return base;
      if (u32[w + 1] === (DEFR ^ base) >>> 0) throw gone(': already freed with freeDeferred, waiting for a grace period');
      throw this.misuse(
        op,
        p,
        `${MISUSE.canary}: the 16-byte header before the object was overwritten (an underflow, or an overflow of the object before it)`,
        'canary',
      );
    }
    if (kind === KIND_LARGE_TAIL) throw this.misuse(op, p, inLarge, 'not-allocated');
    throw this.misuse(op, p, `${MISUSE.notAllocated}: the page holds no objects (never allocated, or freed twice)`, 'not-allocated');
  }

  private writeCanary(base: number, size: number): void {
    const u8 = this.heap.u8;
    const at = base + HEAD + size;
    const k0 = canaryWord(base, size, 0);
    const k1 = canaryWord(base, size, 1);
    for (let j = 0; j < 4; j++) {
      u8[at + j] = (k0 >>> (8 * j)) & 255;
      u8[at + 4 + j] = (k1 >>> (8 * j)) & 255;
    }
  }

  /** Index (0..7) of the first canary byte that changed, or -1. */
  private canaryFault(base: number, size: number): number {
    const u8 = this.heap.u8;
    const at = base + HEAD + size;
    const k0 = canaryWord(base, size, 0);
    const k1 = canaryWord(base, size, 1);
    for (let j = 0; j < 4; j++) {
      if (u8[at + j] !== ((k0 >>> (8 * j)) & 255)) return j;
      if (u8[at + 4 + j] !== ((k1 >>> (8 * j)) & 255)) return 4 + j;
    }
    return -1;
  }

  private checkCanary(op: string, p: number, base: number): void {
    const size = this.heap.u32[base >>> 2]!;
    const j = this.canaryFault(base, size);
    if (j >= 0) {
      throw this.misuse(
        op,
        p,
        `${MISUSE.canary}: byte ${size + j} (${j} past the end of the ${size}-byte object) was overwritten: a buffer overflow`,
        'canary',
      );
    }
  }

  /** Poisons a unit and writes its marker (no header). */
  private poison(base: number, unit: number): void {
    if (unit < 2 * HEAD) return;
    const heap = this.heap;
    // Whole 8-byte words: base is 16-aligned and units are multiples of 16.
    // A loop beats the fill builtin's call overhead for small units.
    const f64 = heap.f64;
    const end = (base + unit - MARKER) >>> 3;
    if (unit <= 1024) for (let w = (base + HEAD) >>> 3; w < end; w++) f64[w] = POISON64;
    else f64.fill(POISON64, (base + HEAD) >>> 3, end);
    const m = (base + unit - MARKER) >>> 2;
    heap.u32[m] = (FREED_A ^ base) >>> 0;
    heap.u32[m + 1] = (FREED_B ^ unit) >>> 0;
  }

  private hasMarker(base: number, unit: number): boolean {
    const u32 = this.heap.u32;
    const m = (base + unit - MARKER) >>> 2;
    return u32[m] === (FREED_A ^ base) >>> 0 && u32[m + 1] === (FREED_B ^ unit) >>> 0;
  }

  /** Offset from base of the first poisoned byte that changed, or -1. */
  private poisonFault(base: number, unit: number): number {
    if (unit < 2 * HEAD) return -1;
    const heap = this.heap;
    const f64 = heap.f64;
    const end = (base + unit - MARKER) >>> 3;
    // The poison is no NaN and no zero: === on the 8-byte words compares bits.
    for (let w = (base + HEAD) >>> 3; w < end; w++) {
      if (f64[w] !== POISON64) {
        for (let b = w * 8; ; b++) if (heap.u8[b] !== POISON_BYTE) return b - base;
      }
    }
    return -1;
  }

  /**
   * A quarantined object: its QUAR header, poison and marker. -1 when
   * intact, else the offset from base of a changed byte, or HEADER_FAULT.
   */
  private quarantineFault(base: number, unit: number): number {
    if (!this.isQuarantinedHead(base)) {
      const u8 = this.heap.u8;
      const want = (QUAR ^ base) >>> 0;
      for (let j = 0; j < 4; j++) if (u8[base + 4 + j] !== ((want >>> (8 * j)) & 255)) return 4 + j;
      return HEADER_FAULT; // w0, w2 or w3: the check word does not say which
    }
    const bad = this.poisonFault(base, unit);
    if (bad >= 0) return bad;
    if (unit >= 2 * HEAD && !this.hasMarker(base, unit)) return unit - MARKER;
    return -1;
  }

  private wafError(op: string, base: number, unit: number, offset: number, when: string): AllocatorMisuseError {
    const p = this.userPointer(base);
    const rel = base + offset - p;
    const where =
      offset === HEADER_FAULT
        ? `the header of the freed object (the 16 bytes at ${base}) was overwritten`
        : `${rel < 0 ? `byte ${-rel} before the start` : `byte ${rel}`} of the freed object was overwritten ` +
          `(now ${hex(this.heap.u8[base + offset]!)}; freed memory holds ${hex(POISON_BYTE)} and a header)`;
    return new AllocatorMisuseError(
      `${op}: ${MISUSE.writeAfterFree} in object ${p} (${hex(p)}, a ${unit}-byte unit): ${where}, ${when}`,
      'write-after-free',
      p,
    );
  }

  /** Marks a live object quarantined, poisons it and appends it to this agent's quarantine. */
  private quarantine(base: number, unit: number): void {
    const heap = this.heap;
    const u32 = heap.u32;
    const w = base >>> 2;
    u32[w] = heap.slotGen;
    u32[w + 2] = checkWord(heap.slotGen, heap.slot, base);
    u32[w + 3] = heap.slot;
    u32[w + 1] = (QUAR ^ base) >>> 0;
    this.poison(base, unit);
    if (this.qCount === this.qBase.length) this.growQuarantine();
    const i = (this.qHead + this.qCount) & (this.qBase.length - 1);
    this.qBase[i] = base;
    this.qUnit[i] = unit;
    this.qCount++;
    this.qBytes += unit;
  }

  private growQuarantine(): void {
    const n = this.qBase.length;
    const b = new Uint32Array(n * 2);
    const u = new Float64Array(n * 2);
    for (let i = 0; i < this.qCount; i++) {
      b[i] = this.qBase[(this.qHead + i) & (n - 1)]!;
      u[i] = this.qUnit[(this.qHead + i) & (n - 1)]!;
    }
    this.qBase = b;
    this.qUnit = u;
    this.qHead = 0;
  }

  /**
   * Really frees the oldest quarantined objects until at most `objects`
   * and `bytes` remain, checking each one's poison first. A damaged one is
   * reported (the first is returned) and freed all the same, poisoned again.
   */
  private evict(objects: number, bytes: number): AllocatorMisuseError | null {
    let first: AllocatorMisuseError | null = null;
    while (this.qCount > 0 && (this.qCount > objects || this.qBytes > bytes)) {
      const base = this.qBase[this.qHead]!;
      const unit = this.qUnit[this.qHead]!;
      this.qHead = (this.qHead + 1) & (this.qBase.length - 1);
      this.qCount--;
      this.qBytes -= unit;
      const e = this.release(base, unit, 'found as it left the quarantine');
      first ??= e;
    }
    return first;
  }

  /** Checks a quarantined object and really frees it; returns the misuse found, if any. */
  private release(base: number, unit: number, when: string): AllocatorMisuseError | null {
    let err: AllocatorMisuseError | null = null;
    const bad = this.quarantineFault(base, unit);
    if (bad !== -1) {
      err = this.wafError('free', base, unit, bad, when);
      this.poison(base, unit);
    }
    try {
      this.rawFree(base);
    } catch (e) {
      err ??= e instanceof AllocatorMisuseError ? e : new AllocatorMisuseError(String(e), 'double-free', base);
    }
    return err;
  }

  /**
   * free() called back by the release allocator from collectDeferred: the
   * grace period of a deferred free ended (base is a raw object start,
   * ALLOCATED again). Never throws: what it finds is thrown by the next call.
   */
  private freeCollected(base: number): void {
    try {
      const unit = this.unitAt(base);
      if (!this.fixedMode) {
        const u32 = this.heap.u32;
        const size = u32[base >>> 2]!;
        const p = base + HEAD;
        if (u32[(base >>> 2) + 1] !== (DEFR ^ base) >>> 0 || u32[(base >>> 2) + 2] !== checkWord(size, u32[(base >>> 2) + 3]!, base)) {
          this.pendingError ??= this.misuse(
            'collectDeferred',
            p,
            `${MISUSE.canary}: the header was overwritten while the object waited for its grace period`,
            'canary',
          );
        } else if (this.canaryFault(base, size) >= 0) {
          this.pendingError ??= this.misuse(
            'collectDeferred',
            p,
            `${MISUSE.canary}: the canary after the ${size}-byte object was overwritten while it waited for its grace period`,
            'canary',
          );
        }
      }
      if (this.noQuarantine) this.rawFree(base);
      else this.quarantine(base, unit);
    } catch (e) {
      this.pendingError ??= e instanceof Error ? e : new Error(String(e));
    }
  }

  /**
   * Frees the quarantined objects of agents that are gone (all of them
   * but this agent's own with `all`), checking them first.
   */
  private sweepOrphans(all: boolean): { freed: number; error: AllocatorMisuseError | null } {
    const heap = this.heap;
    heap.refresh();
    const mine = new Set<number>();
    for (let i = 0; i < this.qCount; i++) mine.add(this.qBase[(this.qHead + i) & (this.qBase.length - 1)]!);
    const orphans: { base: number; unit: number }[] = [];
    const committed = heap.committedPages();
    for (let pg = heap.firstDataPage; pg < committed; pg++) {
      const u32 = heap.u32;
      const tag = u32[heap.tagWord + pg]!;
      if (tagAllocator(tag) !== this.id) continue;
      const kind = tagKind(tag);
      const look = (base: number, unit: number): void => {
        if (mine.has(base) || !this.isQuarantinedHead(base)) return;
        const w = base >>> 2;
        const slot = u32[w + 3]!;
        const gen = u32[w]!;
        if (!all && slot < heap.maxSlots) {
          const sw = heap.slotWord + slot * SLOT_ROW_WORDS;
          if (u32[sw + SlotRow.STATE] === SLOT_ATTACHED && u32[sw + SlotRow.GEN] === gen) return;
        }
        orphans.push({ base, unit });
      };
      if (kind === KIND_LARGE) {
        look(pg * heap.pageSize, this.largeUnit(pg * heap.pageSize));
      } else if (kind === KIND_SLAB) {
        const c = tagClass(tag);
        const unit = this.unitOf[c]!;
        const start = pg * heap.pageSize;
        for (let i = 0; i < this.perSlabOf[c]!; i++) {
          if (heap.u8[start + ((this.dMap + i * unit) >>> 4)] === ST_ALLOCATED) look(start + this.dMap + i * unit, unit);
        }
      }
    }
    let error: AllocatorMisuseError | null = null;
    for (const { base, unit } of orphans) error ??= this.release(base, unit, 'found as a gone agent\'s quarantine was released');
    return { freed: orphans.length, error };
  }

  /** destroy(): removes the free markers from this allocator's slabs before their pages go back. */
  private wipeMarkers(): void {
    const heap = this.heap;
    heap.refresh();
    const u32 = heap.u32;
    const u8 = heap.u8;
    const committed = heap.committedPages();
    for (let pg = heap.firstDataPage; pg < committed; pg++) {
      const tag = u32[heap.tagWord + pg]!;
      if (tagAllocator(tag) !== this.id || tagKind(tag) !== KIND_SLAB) continue;
      const c = tagClass(tag);
      const unit = this.unitOf[c]!;
      if (unit < 2 * HEAD) continue;
      const start = pg * heap.pageSize;
      for (let i = 0; i < this.perSlabOf[c]!; i++) {
        if (u8[start + ((this.dMap + i * unit) >>> 4)] !== ST_FREE) continue;
        const m = (start + this.dMap + (i + 1) * unit - MARKER) >>> 2;
        u32[m] = 0;
        u32[m + 1] = 0;
      }
    }
  }

  /**
   * Before alloc pops from the cache of class c: the object at the head
   * and the link to the next must be free objects of this class. A broken
   * link (a write after free into a really freed unit's first bytes) is
   * reported instead of followed.
   */
  private checkCacheHead(c: number): void {
    const heap = this.heap;
    const u32 = heap.u32;
    const h = u32[this.rowOf[c]!]!;
    if (h === 0) return;
    const next = u32[h >>> 2]!;
    if (next === 0 || this.isFreeObject(next, c)) return;
    throw new AllocatorMisuseError(
      `alloc: ${MISUSE.writeAfterFree} in object ${this.userPointer(h)} (${hex(this.userPointer(h))}): the free-list link ` +
        `in its first bytes was overwritten (it reads ${next}); the allocator's free list is broken`,
      'write-after-free',
      this.userPointer(h),
    );
  }

  private isFreeObject(p: number, c: number): boolean {
    const heap = this.heap;
    if (p >= heap.viewBytes) heap.refresh();
    if ((p & 15) !== 0 || p >= heap.viewBytes) return false;
    if (heap.u32[heap.tagWord + (p >>> this.dShift)] !== (this.slabTag | (c << 4)) >>> 0) return false;
    const off = p & this.dMask;
    if (off < this.dMap || (off - this.dMap) % this.unitOf[c]! !== 0) return false;
    return heap.u8[p - off + (off >>> 4)] === ST_FREE;
  }

  /** validate(): what is wrong with the object at base (state byte st), or null. */
  private objectProblem(base: number, unit: number, st: number): AllocatorMisuseError | null {
    const u32 = this.heap.u32;
    const w = base >>> 2;
    const p = this.userPointer(base);
    if (st === ST_FREE) {
      if (unit < 2 * HEAD || !this.hasMarker(base, unit)) return null;
      const bad = this.poisonFault(base, unit);
      return bad < 0 ? null : this.wafError('validate', base, unit, bad, 'found in a free object');
    }
    if (st !== ST_ALLOCATED && st !== ST_RETIRED) return null;
    if (this.isQuarantinedHead(base)) {
      const bad = this.quarantineFault(base, unit);
      return bad === -1 ? null : this.wafError('validate', base, unit, bad, `found in the quarantine of agent slot ${u32[w + 3]}`);
    }
    if (this.fixedMode) return null;
    const state = st === ST_RETIRED ? DEFR : LIVE;
    if (u32[w + 1] !== (state ^ base) >>> 0 || u32[w + 2] !== checkWord(u32[w]!, u32[w + 3]!, base) || u32[w]! + OVERHEAD > unit) {
      return this.misuse('validate', p, `${MISUSE.canary}: the 16-byte header before the object was overwritten`, 'canary');
    }
    const size = u32[w]!;
    const j = this.canaryFault(base, size);
    if (j < 0) return null;
    return this.misuse('validate', p, `${MISUSE.canary}: byte ${size + j} (${j} past the end of the ${size}-byte object) was overwritten`, 'canary');
  }
}

/** @internal Attaches allocator `id` in this agent, in debug mode when it was created so. */
export function openAllocator(heap: HeapCore, id: number, options: AttachOptions): Allocator {
  heap.refresh();
  const region = heap.allocatorRow(id).region >>> 2;
  const debug = region !== 0 && (heap.u32[region + AllocatorHeader.FLAGS]! & AF_DEBUG) !== 0;
  return debug ? new DebugAllocator(heap, id, options) : new Allocator(heap, id, options);
}
export { AllocatorMisuseError, MISUSE, type MisuseCode } from './misuse.js';
