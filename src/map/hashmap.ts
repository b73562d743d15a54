/**
 * HashMap: the BPF hash map, in the shared heap, usable from every agent
 * at once. Layout and ownership rules: ./layout.ts. This class holds the
 * public operations; it extends the layers below it (./state.ts says why
 * layers of one class): the agent's state of the map (./state.ts), entry
 * quotas (./quota.ts), the key in progress (./key.ts), buckets and their
 * locks (./buckets.ts), elements and in-place updates (./element.ts) and
 * per-worker values (./per-worker.ts). The options create checks are in
 * ./options.ts, the flags and statuses in ./status.ts, validate in
 * ./validate.ts.
 *
 * - Readers (lookup, iteration) take no lock: they pin the epoch, walk the
 *   bucket chain and copy the value out. Keys never change while visible.
 *   An update of a present key writes the element's spare value copy and
 *   flips to it (in place, the default), or builds a new element and
 *   swaps it in; delete unlinks. A copy or element that readers may still
 *   use is written or freed only after a grace period (the spare copy's
 *   stamp; Allocator.freeDeferred), so a reader never sees a torn value,
 *   a value of another key, or a reused element.
 * - Inserts, deletes and element replacements take the bucket's lock (a
 *   CAS; a bounded spin, then BUSY); in-place updates take only the
 *   element's (a CAS, never waited for: a writer that finds it taken
 *   replaces the element instead), so writers on different keys write no
 *   bucket: only their elements (two to a cache line at 32 bytes) and,
 *   now and then, the epoch word.
 * - Elements come from a fixed-size allocator: preallocated mode reserves
 *   every element at create (memory constant), dynamic mode takes them on
 *   insert (memory follows the element count). Both reuse freed elements
 *   through the same per-agent caches.
 * - The element count has no hot shared word: each slot counts its own
 *   inserts and deletes, and reserves entries against maxEntries from a
 *   shared counter in batches (the kernel's per-CPU counter).
 *
 * The operations on every call (lookup, update, delete and the methods
 * they call) allocate nothing.
 */
import { load, store } from '../shm/atomic.js';
import { describe, rangeError, typeError } from '../errors.js';
import { checkGenField, checkHandleHeap, checkHandleKeys } from '../heap/handles.js';
import type { HeapCore } from '../heap/core.js';
import { Allocator } from '../alloc/allocator.js';
import { openAllocator } from '../alloc/debug/open.js';
import { MapHeader, MAP_DESTROYED, MAP_HEADER_WORDS, MAP_LIVE, MAP_MAGIC, MAP_SLOT_WORDS, MapSlotRow } from './layout.js';
import { elemMarks, mapGeometry, writeMapHeader, type HashMapOptions } from './options.js';
import { validateMap } from './validate.js';
import { MapBatches } from './batches.js';

export { MapFlag, MapStatus } from './status.js';

/** How long destroy() waits for its elements' grace periods before it leaves them to finish later. */
const DESTROY_WAIT_MS = 50;
export type { HashMapOptions } from './options.js';

/** A structured-cloneable reference to a map, to post to other agents (HashMap.attach takes it). */
export interface HashMapHandle {
  /** Always 'anyalloc.map'. */
  readonly kind: 'anyalloc.map';
  /** Byte offset of the map's table in the heap. */
  readonly region: number;
  /**
   * The map's generation: that of its element allocator, unique in the
   * heap, so a handle of a destroyed map never attaches a map that reuses
   * its memory.
   */
  readonly gen: number;
  /** The heap's identity (heap.id): a handle of another heap is refused. */
  readonly heap: number;
}

const MAP_HANDLE_KEYS = new Set(['kind', 'region', 'gen', 'heap']);

/**
 * The BPF hash map in the shared heap: fixed-size keys and values, lookups
 * that take no lock, updates and deletes from any agent at once. Create it
 * with HashMap.create(heap, options), post `handle` to other agents, and
 * HashMap.attach(heap, handle) there.
 */
export class HashMap extends MapBatches {
  /** Destroyed, with elements still waiting for a grace period (see destroy). */
  private limbo: boolean;

  private constructor(heap: HeapCore, region: number, elems: Allocator) {
    super(heap, region, elems);
    this.limbo = false;
    heap.addClient(this);
  }

  /** Creates a map in the heap and attaches it in this agent. */
  static create(heap: HeapCore, options: HashMapOptions): HashMap {
    const g = mapGeometry(heap, options);
    const elemsId = Allocator.create(heap, { unitSize: g.elemSize, ...elemMarks(g.elemSize), ...(g.limitBytes === undefined ? {} : { limitBytes: g.limitBytes }) });
    const elems = openAllocator(heap, elemsId, {});
    if (g.mode === 'prealloc' && !elems.reserve(g.capacity)) {
      elems.destroy();
      throw rangeError('heap-full', `heap is full: no room to preallocate ${g.capacity} elements of ${elems.unitSize} bytes`);
    }
    const bytes = (MAP_HEADER_WORDS + heap.maxSlots * MAP_SLOT_WORDS + g.buckets) * 4;
    const region = heap.takeRegion(bytes, 0);
    if (region === 0) {
      elems.destroy();
      throw rangeError('heap-full', `heap is full: no room for the map's ${bytes}-byte table`);
    }
    writeMapHeader(heap.u32, region >>> 2, g, elems.id, elems.unitSize);
    heap.setAllocatorMap(elems.id, region);
    return new HashMap(heap, region, elems);
  }

  /** Attaches, in this agent, a map created elsewhere. */
  static attach(heap: HeapCore, handle: HashMapHandle): HashMap {
    const elemsId = HashMap.checkHandle(heap, handle);
    const elems = openAllocator(heap, elemsId, {}, handle.gen);
    return new HashMap(heap, handle.region, elems);
  }

  /**
   * Checks a map handle before anything is written: its fields (TypeError
   * 'bad-handle'), its heap ('foreign-handle'), and a live map at its
   * region in its generation ('stale-handle' for a destroyed map, perhaps
   * with its memory reused; 'bad-handle' for a forged one). Returns the id
   * of the map's element allocator.
   */
  private static checkHandle(heap: HeapCore, handle: HashMapHandle): number {
    const h = handle as { kind?: unknown; region?: unknown; gen?: unknown; heap?: unknown } | null;
    if (h === null || typeof h !== 'object' || h.kind !== 'anyalloc.map') {
      throw typeError('bad-handle', `HashMap.attach needs a map handle (map.handle), got ${describe(handle)}`);
    }
    const what = 'HashMap.attach: bad map handle';
    checkHandleKeys(h, MAP_HANDLE_KEYS, what);
    heap.refresh();
    const region = h.region;
    if (typeof region !== 'number' || !Number.isSafeInteger(region)) throw typeError('bad-handle', `${what}: region must be a safe integer, got ${describe(region)}`);
    const first = heap.firstDataPage * heap.pageSize;
    const last = heap.viewBytes - MAP_HEADER_WORDS * 4;
    if (region < first || region > last || region % 8 !== 0) {
      throw rangeError('bad-handle', `${what}: no live map at byte ${region} (a region is a multiple of 8 in the heap's data pages [${first}, ${last}])`);
    }
    const gen = h.gen;
    const mine = typeof h.heap === 'number' && h.heap === heap.id;
    if (typeof h.heap === 'number' && !mine) checkHandleHeap(heap, h.heap, 'HashMap.attach', `the map at byte ${region}`);
    const W = region >>> 2;
    const issued = mine && typeof gen === 'number' && heap.allocatorGenGone(gen);
    if (load(heap.u32, W + MapHeader.MAGIC) !== MAP_MAGIC || load(heap.u32, W + MapHeader.STATE) !== MAP_LIVE) {
      throw rangeError(issued ? 'stale-handle' : 'bad-handle', `no live map at byte ${region}${issued ? `: stale handle of generation ${gen} (the map was destroyed)` : ''}`);
    }
    checkHandleHeap(heap, h.heap, 'HashMap.attach', `the map at byte ${region}`);
    checkGenField(gen, what);
    const elemsId = load(heap.u32, W + MapHeader.ELEM_ALLOC);
    const live = elemsId >= 1 && elemsId <= heap.maxAllocators && heap.allocatorMap(elemsId) === region;
    if (!live || heap.allocatorGen(elemsId) !== gen) {
      if (heap.allocatorGenGone(gen)) {
        throw rangeError('stale-handle', `HashMap.attach: stale handle: no live map at byte ${region} of generation ${gen}: it was destroyed and its memory holds a newer map`);
      }
      const why = heap.allocatorGenIssued(gen) ? `is not that of the map at byte ${region}` : 'was never handed out in this heap';
      throw rangeError('bad-handle', `${what}: generation ${gen} ${why} (a forged handle)`);
    }
    return elemsId;
  }

  /** A handle to post to another agent (HashMap.attach there). */
  get handle(): HashMapHandle {
    return { kind: 'anyalloc.map', region: this.region, gen: this.elems.generation, heap: this.heap.id };
  }

  /* ------------------------------- totals ------------------------------- */

  /** Elements in the map: the sum of per-slot counts (racy while writers run). */
  count(): number {
    return this.sumSlotRows(MapSlotRow.COUNT);
  }

  /**
   * Heap bytes the map holds: its table plus, in dynamic mode, the element
   * slabs in use; in preallocated mode, every reserved element.
   */
  memoryBytes(): number {
    const table = (MAP_HEADER_WORDS + this.heap.maxSlots * MAP_SLOT_WORDS + (this.mask + 1)) * 4;
    const st = this.elems.stats();
    return table + st.chargedBytes;
  }

  /** Statistics of the element allocator (per worker slot, caches, depot). */
  elementStats(): ReturnType<Allocator['stats']> {
    return this.elems.stats();
  }

  /** This agent's deleted or replaced elements still waiting for a grace period. */
  get deferredPending(): number {
    return this.elems.deferredPending;
  }

  /**
   * Runs the deferred frees of this agent's deleted elements whose grace
   * period has passed (and those departed agents left behind). Returns
   * how many of this agent's still wait.
   */
  collect(): number {
    return this.elems.collectDeferred();
  }

  /* ------------------------------ lifecycle ----------------------------- */

  /** @internal */
  detachFromHeap(): void {
    if (this.limbo) {
      // A destroy still waiting: wait once more, then free what can be.
      const deadline = Date.now() + DESTROY_WAIT_MS;
      while ((this.elems.collectDeferred(true) > 0 || this.elems.retiredObjects() > 0) && Date.now() < deadline);
      this.finishDestroy();
      return;
    }
    this.detach();
  }

  /** Stops using the map in this agent; its unused entry quota goes back. */
  detach(): void {
    if (this.detached) return;
    if (!this.heap.ownsSlot()) {
      // Released behind our back: the slot row is not ours to change.
      this.detached = true;
      this.heap.removeClient(this);
      this.elems.detach();
      return;
    }
    this.returnQuota();
    this.detached = true;
    this.heap.removeClient(this);
    this.elems.detach();
  }

  /**
   * Frees every element and the map itself. Every other agent must have
   * detached (else it throws, code still-attached). Returns how many
   * elements were still in the map.
   *
   * Deleted elements wait for a grace period before they may be freed,
   * and a reader pinned anywhere in the heap (inside another map's read(),
   * say) holds every grace period back. destroy() waits for them up to
   * DESTROY_WAIT_MS; if some still wait, the map is marked destroyed at
   * once (no agent can attach it) and this agent finishes the job later:
   * it retries from a timer, and on heap.detach(), and frees the element
   * allocator and the table as soon as the last grace period has passed.
   * `destroying` is true until then.
   */
  destroy(): number {
    if (this.detached) throw rangeError('detached', 'destroy: this map is detached in this agent');
    // Every agent attached to the map has its element allocator attached,
    // and releaseSlot() of a dead agent detaches that: closing the element
    // allocator refuses while others have it, and any attach from here on
    // (HashMap.attach attaches it too).
    this.elems.close('destroy', 'the map');
    let n: number;
    try {
      n = this.clear();
    } catch (e) {
      // (busy: a bucket lock a dead writer held) The map stays as it was, attachable.
      this.elems.reopen();
      throw e;
    }
    store(this.u32, this.W + MapHeader.STATE, MAP_DESTROYED);
    const q = this.rowWord + MapSlotRow.QUOTA;
    this.i32[q] = 0;
    this.detached = true;
    const deadline = Date.now() + DESTROY_WAIT_MS;
    while (this.elems.collectDeferred(true) > 0 || this.elems.retiredObjects() > 0) {
      if (Date.now() > deadline) {
        this.limbo = true;
        // The heap detaches its clients in order: this map must finish
        // before its allocator lets go of the elements.
        this.heap.removeClient(this.elems);
        this.heap.addClient(this.elems);
        this.scheduleFinish(1);
        return n;
      }
    }
    this.finishDestroy();
    return n;
  }

  /** True while a destroyed map's last elements wait for their grace period (see destroy). */
  get destroying(): boolean {
    return this.limbo;
  }

  /** Frees the element allocator (whatever still waits is reported leaked by it) and the table. */
  private finishDestroy(): void {
    this.limbo = false;
    this.heap.removeClient(this);
    this.elems.destroy();
    this.heap.giveRegion(this.region);
  }

  /** Retries the end of a destroy that had to wait, backing off up to a second between tries. */
  private scheduleFinish(ms: number): void {
    // A scope without timers (an AudioWorklet) finishes at heap.detach().
    const setTimeout = (globalThis as { setTimeout?: (f: () => void, ms: number) => unknown }).setTimeout;
    if (typeof setTimeout !== 'function') return;
    const t = setTimeout(() => {
      if (!this.limbo || this.heap.slot < 0) return;
      if (this.elems.collectDeferred(true) > 0 || this.elems.retiredObjects() > 0) this.scheduleFinish(Math.min(1000, ms * 2));
      else this.finishDestroy();
    }, ms);
    (t as { unref?: () => void }).unref?.();
  }

  /**
   * Checks the map's invariants; the map must be quiet (no writer
   * running). Returns the problems found.
   */
  validate(): string[] {
    return validateMap(this);
  }
}
