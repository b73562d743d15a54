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
import { cas, load, store } from '../shm/atomic.js';
import { describe, rangeError, typeError } from '../errors.js';
import { checkGenField, checkHandleHeap, checkHandleKeys } from '../heap/handles.js';
import type { HeapCore } from '../heap/core.js';
import { Allocator } from '../alloc/allocator.js';
import { openAllocator } from '../alloc/debug/open.js';
import {
  E_NEXT,
  E_VER,
  MapHeader,
  MAP_DESTROYED,
  MAP_HEADER_WORDS,
  MAP_LIVE,
  MAP_MAGIC,
  MAP_SLOT_WORDS,
  MapSlotRow,
  OP_DELETE,
  OP_INSERT,
  OP_REPLACE,
  V_LOCK,
} from './layout.js';
import { MapFlag, MapStatus } from './status.js';
import { ELEM_MARKS, mapGeometry, writeMapHeader, type HashMapOptions } from './options.js';
import { UPDATE_REPLACE } from './element.js';
import { LOCKED } from './buckets.js';
import { MapPerWorker, midWrite } from './per-worker.js';
import { validateMap } from './validate.js';

export { MapFlag, MapStatus } from './status.js';

/** How long destroy() waits for its elements' grace periods before it leaves them to finish later. */
const DESTROY_WAIT_MS = 50;
/** How long lookupAndDelete and lookupAndDeleteBatch wait for an element's value lock (held by an in-place writer). */
const VALUE_LOCK_SPIN_MS = 20;
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
export class HashMap extends MapPerWorker {
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
    const elemsId = Allocator.create(heap, { unitSize: g.elemSize, ...ELEM_MARKS, ...(g.limitBytes === undefined ? {} : { limitBytes: g.limitBytes }) });
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
    const elems = openAllocator(heap, elemsId, {});
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

  /* -------------------------------- reads ------------------------------- */

  /**
   * Copies the value of `key` into `out` (per-worker maps: this agent's
   * slot). Returns false when the key is absent. Lock-free; never sees a
   * torn value. No JS allocation.
   */
  lookup(key: Uint8Array, out: Uint8Array): boolean {
    this.takeKey(key, 'lookup');
    this.checkValue(out, 'lookup', 'out');
    return this.lookupTaken(out);
  }

  /** lookup() with a number key (keySize >= 4: the number little-endian, zero-extended). */
  lookupNumber(key: number, out: Uint8Array): boolean {
    this.takeNumber(key, 'lookupNumber');
    this.checkValue(out, 'lookupNumber', 'out');
    return this.lookupTaken(out);
  }

  private lookupTaken(out: Uint8Array): boolean {
    const h = this.hashKey();
    this.pin();
    const e = this.find(h & this.mask);
    let torn = false;
    if (e !== 0) {
      if (this.perWorker) torn = !this.readSlot(e, this.heap.slot, out);
      else this.copyOut(this.valueAt(e), out);
    }
    // Unpinned before any throw: a pin left behind would hold every grace
    // period in the heap back.
    this.unpin();
    if (torn) throw midWrite(this.heap.slot);
    return e !== 0;
  }

  /** True when `key` is in the map. */
  has(key: Uint8Array): boolean {
    return this.locate(key, 'has') !== 0;
  }

  /** The element of `key` (0 if absent), found in a read-side section of its own. */
  private locate(key: Uint8Array, op: string): number {
    this.takeKey(key, op);
    const h = this.hashKey();
    this.pin();
    const e = this.find(h & this.mask);
    this.unpin();
    return e;
  }

  /**
   * Byte offset of the value of `key` in the heap (per-worker: this
   * agent's slot value), 0 when absent: for in-place Atomics updates such
   * as counters. The offset stays valid until the key is deleted or its
   * value replaced by update(); an agent that may race with those should
   * do its in-place work inside read().
   */
  lookupOffset(key: Uint8Array): number {
    this.takeKey(key, 'lookupOffset');
    const h = this.hashKey();
    this.pin();
    const e = this.find(h & this.mask);
    const at = e === 0 ? 0 : this.perWorker ? e + this.valueOff + this.stride * this.heap.slot + 8 : this.valueAt(e);
    this.unpin();
    return at;
  }

  /** Runs fn inside a read-side section: offsets from lookupOffset stay valid until it returns. */
  read<T>(fn: () => T): T {
    if (this.detached) throw rangeError('detached', 'read: this map is detached in this agent');
    this.pin();
    try {
      return fn();
    } finally {
      this.unpin();
    }
  }

  /* ------------------------------- writes ------------------------------- */

  /**
   * Sets the value of `key` (per-worker maps: this agent's slot). flag:
   * MapFlag.ANY, NOEXIST (EXISTS if present) or EXIST (NOT_FOUND if
   * absent). Returns MapStatus.OK or a negative MapStatus.
   */
  update(key: Uint8Array, value: Uint8Array, flag: number = MapFlag.ANY): number {
    this.takeKey(key, 'update');
    return this.updateTaken(value, flag, 'update');
  }

  /** update() with a number key (keySize >= 4: the number little-endian, zero-extended). */
  updateNumber(key: number, value: Uint8Array, flag: number = MapFlag.ANY): number {
    this.takeNumber(key, 'updateNumber');
    return this.updateTaken(value, flag, 'updateNumber');
  }

  private updateTaken(value: Uint8Array, flag: number, op: string): number {
    this.checkValue(value, op);
    if (flag !== 0 && flag !== 1 && flag !== 2) throw (Number.isInteger(flag) ? rangeError : typeError)('bad-argument', `${op} flag must be MapFlag.ANY (0), NOEXIST (1) or EXIST (2), got ${describe(flag)}`);
    const b = this.hashKey() & this.mask;
    if (this.perWorker && flag !== MapFlag.NOEXIST) {
      // In place in our own slot: no lock, no new element; pinned, since
      // the element may be deleted and retired meanwhile.
      this.pin();
      const e = this.find(b);
      if (e !== 0) this.writeSlot(e, value);
      this.unpin();
      if (e !== 0) return MapStatus.OK;
      if (flag === MapFlag.EXIST) return MapStatus.NOT_FOUND;
    } else if (this.copies === 2 && (flag === MapFlag.EXIST || (flag === MapFlag.ANY && this.anyHits >= 2))) {
      const st = this.updateInPlace(b, value, flag);
      if (st !== UPDATE_REPLACE) return st;
    }
    // Writers need no pin: under the bucket lock every element of the
    // chain is live (retired ones are unlinked first), so the epoch is
    // never held back by a writer waiting for a lock (unless it writes
    // inside read(): its own pin then also holds back what newElement
    // may wait for).
    return this.updateLocked(b, value, flag);
  }

  /**
   * This agent's updates of present keys in an in-place map, since it
   * attached: done in place, and done by replacing the element (its spare
   * copy was locked by another writer or could still have readers, or the
   * update went to the bucket lock first because this agent's recent ANY
   * updates were inserts). Both 0 in other maps.
   */
  get updateCounts(): {
    /** Updates of a present key written in place (the element's spare value copy). */
    inPlace: number;
    /** Updates that built a new element and swapped it in. */
    replaced: number;
  } {
    return { inPlace: this.inPlaceCount, replaced: this.replacedCount };
  }

  private updateLocked(b: number, value: Uint8Array, flag: number): number {
    // Build the new element before taking the lock: the lock is held only
    // for the search and the pointer swap.
    let fresh = this.newElement(value);
    const i32 = this.i32;
    const row = this.rowWord;
    if (fresh !== 0) {
      // The write-ahead record (layout.ts): OP goes last.
      i32[row + MapSlotRow.OP_BUCKET] = b + 1;
      i32[row + MapSlotRow.OP_ELEM] = fresh;
      i32[row + MapSlotRow.OP_OLD] = 0;
      i32[row + MapSlotRow.OP_COUNT] = i32[row + MapSlotRow.COUNT]!;
      i32[row + MapSlotRow.OP_QUOTA] = i32[row + MapSlotRow.QUOTA]!;
      i32[row + MapSlotRow.OP] = OP_INSERT;
    }
    let head = this.lock(b);
    if (head < 0) {
      i32[row + MapSlotRow.OP] = 0;
      if (fresh !== 0) this.elems.free(fresh);
      return MapStatus.BUSY;
    }
    const e = this.findLocked(head);
    const pred = this.pred;
    if (flag === MapFlag.ANY) this.anyHits = e !== 0 ? Math.min(3, this.anyHits + 1) : Math.max(0, this.anyHits - 1);
    let status: number = MapStatus.OK;
    if (e !== 0 && flag === MapFlag.NOEXIST) status = MapStatus.EXISTS;
    else if (e === 0 && flag === MapFlag.EXIST) status = MapStatus.NOT_FOUND;
    else if (e !== 0 && this.perWorker) {
      this.writeSlot(e, value); // raced with an insert of the same key
    } else if (fresh === 0) {
      status = MapStatus.NO_MEMORY;
    } else if (e === 0 && !this.takeEntry()) {
      status = MapStatus.FULL;
    } else {
      // fresh.next is published by the atomic store that links fresh.
      if (e !== 0) {
        // Replace: readers see the old element or the new one, never a mix.
        if (this.copies === 2) this.replacedCount++;
        i32[row + MapSlotRow.OP_OLD] = e;
        i32[row + MapSlotRow.OP] = OP_REPLACE;
        this.u32[(fresh >>> 2) + E_NEXT] = this.u32[(e >>> 2) + E_NEXT]!;
        if (pred === 0) head = fresh;
        else store(this.u32, (pred >>> 2) + E_NEXT, fresh);
      } else {
        this.u32[(fresh >>> 2) + E_NEXT] = head;
        head = fresh;
        this.i32[this.rowWord + MapSlotRow.COUNT]!++;
      }
      fresh = 0;
    }
    this.unlock(b, head);
    // Done: the record goes before any free, so that a survivor never acts
    // on an element that may have been reused.
    i32[row + MapSlotRow.OP] = 0;
    if (fresh !== 0) this.elems.free(fresh);
    if (status === MapStatus.OK && e !== 0 && !this.perWorker) this.elems.freeDeferred(e);
    return status;
  }

  /**
   * Per-worker maps: sets every slot's value of `key` at once (the
   * kernel's update of a per-CPU map from user space): `values` holds
   * maxWorkers x valueSize bytes, slot order. flag as update(). The key's
   * element is replaced by a new one, so readers see all old values or
   * all new ones; a slot's own in-place update that races with it lands
   * in the old element and is lost, as it would be overwritten anyway.
   */
  updateAll(key: Uint8Array, values: Uint8Array, flag: number = MapFlag.ANY): number {
    this.takeKey(key, 'updateAll');
    if (!this.perWorker) throw typeError('wrong-mode', 'updateAll needs a per-worker map');
    const slots = this.heap.maxSlots;
    if (!(values instanceof Uint8Array) || values.length < slots * this.valueSize) {
      throw typeError('bad-argument', `updateAll: values must hold maxWorkers x valueSize = ${slots * this.valueSize} bytes, got ${values instanceof Uint8Array ? `${values.length} bytes` : describe(values)}`);
    }
    if (flag !== 0 && flag !== 1 && flag !== 2) throw rangeError('bad-argument', `updateAll flag must be MapFlag.ANY (0), NOEXIST (1) or EXIST (2), got ${describe(flag)}`);
    const b = this.hashKey() & this.mask;
    let fresh = this.newElement(values);
    const i32 = this.i32;
    const row = this.rowWord;
    if (fresh !== 0) {
      // Unpublished yet: plain stores (the linking store publishes them).
      const u8 = this.u8;
      for (let s = 0; s < slots; s++) {
        const dst = fresh + this.valueOff + this.stride * s + 8;
        const src = s * this.valueSize;
        for (let i = 0; i < this.valueSize; i++) u8[dst + i] = values[src + i]!;
      }
      i32[row + MapSlotRow.OP_BUCKET] = b + 1;
      i32[row + MapSlotRow.OP_ELEM] = fresh;
      i32[row + MapSlotRow.OP_OLD] = 0;
      i32[row + MapSlotRow.OP_COUNT] = i32[row + MapSlotRow.COUNT]!;
      i32[row + MapSlotRow.OP_QUOTA] = i32[row + MapSlotRow.QUOTA]!;
      i32[row + MapSlotRow.OP] = OP_INSERT;
    }
    let head = this.lock(b);
    if (head < 0) {
      i32[row + MapSlotRow.OP] = 0;
      if (fresh !== 0) this.elems.free(fresh);
      return MapStatus.BUSY;
    }
    const e = this.findLocked(head);
    const pred = this.pred;
    let status: number = MapStatus.OK;
    if (e !== 0 && flag === MapFlag.NOEXIST) status = MapStatus.EXISTS;
    else if (e === 0 && flag === MapFlag.EXIST) status = MapStatus.NOT_FOUND;
    else if (fresh === 0) status = MapStatus.NO_MEMORY;
    else if (e === 0 && !this.takeEntry()) status = MapStatus.FULL;
    else {
      if (e !== 0) {
        i32[row + MapSlotRow.OP_OLD] = e;
        i32[row + MapSlotRow.OP] = OP_REPLACE;
        this.u32[(fresh >>> 2) + E_NEXT] = this.u32[(e >>> 2) + E_NEXT]!;
        if (pred === 0) head = fresh;
        else store(this.u32, (pred >>> 2) + E_NEXT, fresh);
      } else {
        this.u32[(fresh >>> 2) + E_NEXT] = head;
        head = fresh;
        i32[row + MapSlotRow.COUNT]!++;
      }
      fresh = 0;
    }
    this.unlock(b, head);
    i32[row + MapSlotRow.OP] = 0;
    if (fresh !== 0) this.elems.free(fresh);
    if (status === MapStatus.OK && e !== 0) this.elems.freeDeferred(e);
    return status;
  }

  /** Deletes `key`. Returns MapStatus.OK, NOT_FOUND or BUSY. */
  delete(key: Uint8Array): number {
    this.takeKey(key, 'delete');
    return this.deleteTaken();
  }

  /** delete() with a number key (keySize >= 4). */
  deleteNumber(key: number): number {
    this.takeNumber(key, 'deleteNumber');
    return this.deleteTaken();
  }

  private deleteTaken(): number {
    const h = this.hashKey();
    const b = h & this.mask;
    let head = this.lock(b);
    if (head < 0) return MapStatus.BUSY;
    const e = this.findLocked(head);
    const pred = this.pred;
    const i32 = this.i32;
    const row = this.rowWord;
    if (e !== 0) {
      i32[row + MapSlotRow.OP_BUCKET] = b + 1;
      i32[row + MapSlotRow.OP_ELEM] = e;
      i32[row + MapSlotRow.OP_COUNT] = i32[row + MapSlotRow.COUNT]!;
      i32[row + MapSlotRow.OP_QUOTA] = i32[row + MapSlotRow.QUOTA]!;
      i32[row + MapSlotRow.OP] = OP_DELETE;
      const next = this.u32[(e >>> 2) + E_NEXT]!;
      if (pred === 0) head = next;
      else store(this.u32, (pred >>> 2) + E_NEXT, next);
      i32[row + MapSlotRow.COUNT]!--;
      // Under the lock: a slot changes its QUOTA only there (./quota.ts).
      this.giveEntry();
    }
    this.unlock(b, head);
    if (e === 0) return MapStatus.NOT_FOUND;
    i32[row + MapSlotRow.OP] = 0;
    this.elems.freeDeferred(e);
    return MapStatus.OK;
  }

  /** Deletes every element. Returns how many were deleted. */
  clear(): number {
    if (this.detached) throw rangeError('detached', 'clear: this map is detached in this agent');
    let n = 0;
    for (let b = 0; b <= this.mask; b++) {
      if (load(this.u32, this.bucketWord + b) === 0) continue;
      let e = this.lock(b);
      if (e < 0) throw rangeError('busy', `clear: bucket ${b} stays locked: a writer stalled or died`);
      // Emptied at once (readers see an empty bucket); the lock is kept
      // while the entries go back: a slot changes its QUOTA only under a
      // bucket lock (./quota.ts).
      store(this.u32, this.bucketWord + b, LOCKED);
      while (e !== 0) {
        this.reach(e);
        const next = load(this.u32, (e >>> 2) + E_NEXT);
        this.i32[this.rowWord + MapSlotRow.COUNT]!--;
        this.giveEntry();
        this.elems.freeDeferred(e);
        n++;
        e = next;
      }
      this.unlock(b, 0);
    }
    return n;
  }

  /* ------------------------------ iteration ----------------------------- */

  /**
   * The kernel's get_next_key: writes into `out` the key after `key` in
   * iteration order (the first key when `key` is null or absent). Returns
   * false at the end. Keys inserted or deleted meanwhile may or may not be
   * seen; each key present throughout is seen exactly once.
   */
  getNextKey(key: Uint8Array | null, out: Uint8Array): boolean {
    if (!(out instanceof Uint8Array) || out.length < this.keySize) throw typeError('bad-argument', `getNextKey: out must hold keySize ${this.keySize} bytes`);
    if (this.detached) throw rangeError('detached', 'getNextKey: this map is detached in this agent');
    let b = 0;
    this.pin();
    try {
      if (key !== null) {
        this.takeKey(key, 'getNextKey');
        const h = this.hashKey();
        b = h & this.mask;
        const e = this.find(b);
        if (e !== 0) {
          const next = load(this.u32, (e >>> 2) + E_NEXT);
          if (next !== 0) return this.copyKey(next, out);
          b++;
        } else {
          b = 0;
        }
      }
      for (; b <= this.mask; b++) {
        const e = this.bucketHead(b);
        if (e !== 0) return this.copyKey(e, out);
      }
      return false;
    } finally {
      this.unpin();
    }
  }

  /** Iterates over the keys (each a new Uint8Array: allocates). */
  *keys(): IterableIterator<Uint8Array> {
    let prev: Uint8Array | null = null;
    for (;;) {
      const k = new Uint8Array(this.keySize);
      if (!this.getNextKey(prev, k)) return;
      yield k;
      prev = k;
    }
  }

  /** Iterates over [key, value] pairs (allocates; pairs whose key vanished meanwhile are skipped). */
  *entries(): IterableIterator<[Uint8Array, Uint8Array]> {
    for (const k of this.keys()) {
      const v = new Uint8Array(this.valueSize);
      if (this.lookup(k, v)) yield [k, v];
    }
  }

  /* ------------------------------- batches ------------------------------ */

  /**
   * The kernel's lookup_batch: copies whole buckets, from bucket
   * `io[0]` on, into `keys` (keySize bytes each) and `values` (valueSize
   * each; per-worker maps: maxWorkers x valueSize each, slot order), at
   * most `max` elements (default: as many as both buffers hold). A bucket
   * is never split: each is copied under its lock, as one snapshot.
   * Writes the elements copied to io[1] and the next bucket to io[0] (so
   * the same `io` continues the walk; start with io[0] = 0). Returns OK
   * when more may follow, NOT_FOUND when the walk has reached the end
   * (io[1] may still be > 0), NO_SPACE when the first bucket does not fit
   * (io[1] = 0; retry with larger buffers) and BUSY when a bucket lock
   * stays taken; room for no element at all: OK, nothing copied, as the
   * kernel's count of 0. Allocates nothing. Semantics: docs/map.md.
   */
  lookupBatch(io: Uint32Array, keys: Uint8Array, values: Uint8Array, max?: number): number {
    return this.walkBatch(io, keys, values, max, false, 'lookupBatch');
  }

  /**
   * The kernel's lookup_and_delete_batch: lookupBatch, deleting each
   * bucket's elements as it copies them (same io words and statuses).
   */
  lookupAndDeleteBatch(io: Uint32Array, keys: Uint8Array, values: Uint8Array, max?: number): number {
    return this.walkBatch(io, keys, values, max, true, 'lookupAndDeleteBatch');
  }

  /** Bytes of one element's value in batch buffers and lookupAndDelete (per-worker: every slot's). */
  private get batchValueBytes(): number {
    return this.perWorker ? this.valueSize * this.heap.maxSlots : this.valueSize;
  }

  private walkBatch(io: Uint32Array, keys: Uint8Array, values: Uint8Array, max: number | undefined, del: boolean, op: string): number {
    if (!(io instanceof Uint32Array) || io.length < 2) throw typeError('bad-argument', `${op}: io must be a Uint32Array of 2 words (cursor, count), got ${describe(io)}`);
    if (!(keys instanceof Uint8Array)) throw typeError('bad-argument', `${op}: keys must be a Uint8Array, got ${describe(keys)}`);
    if (!(values instanceof Uint8Array)) throw typeError('bad-argument', `${op}: values must be a Uint8Array, got ${describe(values)}`);
    if (this.detached) throw rangeError('detached', `${op}: this map is detached in this agent`);
    const vb = this.batchValueBytes;
    let cap = Math.min(Math.floor(keys.length / this.keySize), Math.floor(values.length / vb));
    if (max !== undefined) {
      if (!Number.isInteger(max) || max < 0) throw rangeError('bad-argument', `${op}: max must be a non-negative integer, got ${describe(max)}`);
      cap = Math.min(cap, max);
    }
    if (cap === 0) {
      io[1] = 0;
      return MapStatus.OK;
    }
    let b = io[0]!;
    const nb = this.mask + 1;
    let n = 0;
    let status: number = MapStatus.NOT_FOUND;
    this.pin();
    try {
      for (; b < nb; b++) {
        if (this.bucketHead(b) === 0) continue;
        let head = this.lock(b);
        if (head < 0) {
          status = MapStatus.BUSY;
          break;
        }
        let size = 0;
        for (let e = head; e !== 0; e = this.u32[(e >>> 2) + E_NEXT]!) {
          this.reach(e);
          size++;
        }
        if (size > cap - n) {
          this.unlock(b, head);
          status = n === 0 ? MapStatus.NO_SPACE : MapStatus.OK;
          break;
        }
        let torn = -1;
        for (let e = head; e !== 0; e = this.u32[(e >>> 2) + E_NEXT]!) {
          this.reach(e);
          const kb = e + this.keyOff;
          for (let i = 0, o = n * this.keySize; i < this.keySize; i++) keys[o + i] = this.u8[kb + i]!;
          if (del && this.copies === 2) this.lockValue(e);
          if (this.perWorker) {
            for (let s = 0; s < this.heap.maxSlots && torn < 0; s++) if (!this.readSlot(e, s, values, n * vb + s * this.valueSize)) torn = s;
          } else {
            this.copyOutAt(this.valueAt(e), values, n * vb);
          }
          n++;
        }
        if (torn >= 0) {
          this.unlock(b, head);
          throw midWrite(torn);
        }
        if (del) head = this.deleteChain(b, head);
        this.unlock(b, head);
      }
    } finally {
      this.unpin();
    }
    io[0] = b;
    io[1] = n;
    return status;
  }

  /**
   * Deletes every element of locked bucket b's chain (from head), each
   * logged as an OP_DELETE for a survivor, and retires them. Returns the
   * new head (0).
   */
  private deleteChain(b: number, head: number): number {
    const i32 = this.i32;
    const row = this.rowWord;
    let e = head;
    while (e !== 0) {
      this.reach(e);
      const next = this.u32[(e >>> 2) + E_NEXT]!;
      i32[row + MapSlotRow.OP_BUCKET] = b + 1;
      i32[row + MapSlotRow.OP_ELEM] = e;
      i32[row + MapSlotRow.OP_COUNT] = i32[row + MapSlotRow.COUNT]!;
      i32[row + MapSlotRow.OP_QUOTA] = i32[row + MapSlotRow.QUOTA]!;
      i32[row + MapSlotRow.OP] = OP_DELETE;
      // Unlinked from the head: the bucket word is stored at unlock, but
      // a survivor walks the chain from the word, so store it now.
      store(this.u32, this.bucketWord + b, (next | 1) >>> 0);
      i32[row + MapSlotRow.COUNT]!--;
      this.giveEntry();
      i32[row + MapSlotRow.OP] = 0;
      this.elems.freeDeferred(e);
      e = next;
    }
    return 0;
  }

  /**
   * Takes element e's value LOCK (in-place maps) for good, before it is
   * unlinked: an in-place update that found e then replaces it instead,
   * under the bucket lock, after the delete, so no update is lost between
   * the copy of the value and the unlink. (A new life of the element
   * writes a fresh version word.)
   */
  private lockValue(e: number): void {
    const vw = (e >>> 2) + E_VER;
    let deadline = 0;
    for (let i = 1; ; i++) {
      const v = this.u32[vw]!;
      // A holder is a writer copying a value in: moments. One that holds
      // it longer stalled or died (a dead one never flips): go on without.
      if ((v & V_LOCK) === 0 && cas(this.u32, vw, v, (v | V_LOCK) >>> 0) === v) return;
      if ((i & 1023) === 0) {
        const now = Date.now();
        if (deadline === 0) deadline = now + VALUE_LOCK_SPIN_MS;
        else if (now > deadline) return;
      }
    }
  }

  /** copyOut into out at byte offset `at`. */
  private copyOutAt(src: number, out: Uint8Array, at: number): void {
    const u8 = this.u8;
    for (let i = 0; i < this.valueSize; i++) out[at + i] = u8[src + i]!;
  }

  /**
   * The kernel's lookup_and_delete_elem: copies the value of `key` into
   * `out` (per-worker maps: every slot's, maxWorkers x valueSize bytes)
   * and deletes the key, as one step. Returns OK, NOT_FOUND or BUSY.
   */
  lookupAndDelete(key: Uint8Array, out: Uint8Array): number {
    this.takeKey(key, 'lookupAndDelete');
    const vb = this.batchValueBytes;
    if (!(out instanceof Uint8Array) || out.length < vb) {
      throw typeError('bad-argument', `lookupAndDelete: out must be a Uint8Array of at least ${vb} bytes${this.perWorker ? ' (maxWorkers x valueSize)' : ''}, got ${out instanceof Uint8Array ? `${out.length} bytes` : describe(out)}`);
    }
    const b = this.hashKey() & this.mask;
    this.pin();
    let head = this.lock(b);
    if (head < 0) {
      this.unpin();
      return MapStatus.BUSY;
    }
    const e = this.findLocked(head);
    const pred = this.pred;
    let torn = -1;
    if (e !== 0) {
      if (this.perWorker) {
        for (let s = 0; s < this.heap.maxSlots && torn < 0; s++) if (!this.readSlot(e, s, out, s * this.valueSize)) torn = s;
      } else {
        if (this.copies === 2) this.lockValue(e);
        this.copyOutAt(this.valueAt(e), out, 0);
      }
    }
    if (e === 0 || torn >= 0) {
      this.unlock(b, head);
      this.unpin();
      if (torn >= 0) throw midWrite(torn);
      return MapStatus.NOT_FOUND;
    }
    const i32 = this.i32;
    const row = this.rowWord;
    i32[row + MapSlotRow.OP_BUCKET] = b + 1;
    i32[row + MapSlotRow.OP_ELEM] = e;
    i32[row + MapSlotRow.OP_COUNT] = i32[row + MapSlotRow.COUNT]!;
    i32[row + MapSlotRow.OP_QUOTA] = i32[row + MapSlotRow.QUOTA]!;
    i32[row + MapSlotRow.OP] = OP_DELETE;
    const next = this.u32[(e >>> 2) + E_NEXT]!;
    if (pred === 0) head = next;
    else store(this.u32, (pred >>> 2) + E_NEXT, next);
    i32[row + MapSlotRow.COUNT]!--;
    this.giveEntry();
    this.unlock(b, head);
    this.unpin();
    i32[row + MapSlotRow.OP] = 0;
    this.elems.freeDeferred(e);
    return MapStatus.OK;
  }

  /**
   * Looks up each of n = keys.length / keySize keys on its own (not a
   * kernel batch: see lookupBatch for the walk): values go to values[i *
   * valueSize], found[i] = 1 or 0 when given. Returns how many were found.
   */
  lookupEach(keys: Uint8Array, values: Uint8Array, found?: Uint8Array): number {
    const n = this.batchCount(keys, values, 'lookupEach');
    const k = new Uint8Array(this.keySize);
    const v = new Uint8Array(this.valueSize);
    let hits = 0;
    for (let i = 0; i < n; i++) {
      k.set(keys.subarray(i * this.keySize, (i + 1) * this.keySize));
      const ok = this.lookup(k, v);
      if (ok) {
        values.set(v, i * this.valueSize);
        hits++;
      }
      if (found !== undefined) found[i] = ok ? 1 : 0;
    }
    return hits;
  }

  /**
   * The kernel's update_batch: updates n = keys.length / keySize keys in
   * order and stops at the first failure. Writes the pairs written to
   * io[1] when `io` is given. Returns OK, or the status of the first
   * failure (key number io[1]).
   */
  updateBatch(keys: Uint8Array, values: Uint8Array, flag: number = MapFlag.ANY, io?: Uint32Array): number {
    const n = this.batchCount(keys, values, 'updateBatch');
    this.checkIo(io, 'updateBatch');
    const k = new Uint8Array(this.keySize);
    const v = new Uint8Array(this.valueSize);
    let i = 0;
    let st: number = MapStatus.OK;
    for (; i < n; i++) {
      k.set(keys.subarray(i * this.keySize, (i + 1) * this.keySize));
      v.set(values.subarray(i * this.valueSize, (i + 1) * this.valueSize));
      st = this.update(k, v, flag);
      if (st !== MapStatus.OK) break;
    }
    if (io !== undefined) io[1] = i;
    return st;
  }

  /**
   * The kernel's delete_batch: deletes n = keys.length / keySize keys in
   * order and stops at the first failure: an absent key stops it with
   * NOT_FOUND. Writes the keys deleted to io[1] when `io` is given.
   * Returns OK, or the status of the first failure (key number io[1]).
   */
  deleteBatch(keys: Uint8Array, io?: Uint32Array): number {
    if (!(keys instanceof Uint8Array) || keys.length % this.keySize !== 0) {
      throw typeError('bad-argument', `deleteBatch: keys must be a Uint8Array of a multiple of keySize ${this.keySize} bytes`);
    }
    this.checkIo(io, 'deleteBatch');
    const k = new Uint8Array(this.keySize);
    const n = keys.length / this.keySize;
    let i = 0;
    let st: number = MapStatus.OK;
    for (; i < n; i++) {
      k.set(keys.subarray(i * this.keySize, (i + 1) * this.keySize));
      st = this.delete(k);
      if (st !== MapStatus.OK) break;
    }
    if (io !== undefined) io[1] = i;
    return st;
  }

  private checkIo(io: Uint32Array | undefined, op: string): void {
    if (io !== undefined && (!(io instanceof Uint32Array) || io.length < 2)) throw typeError('bad-argument', `${op}: io must be a Uint32Array of 2 words (cursor, count), got ${describe(io)}`);
  }

  private batchCount(keys: Uint8Array, values: Uint8Array, op: string): number {
    if (!(keys instanceof Uint8Array) || keys.length % this.keySize !== 0) {
      throw typeError('bad-argument', `${op}: keys must be a Uint8Array of a multiple of keySize ${this.keySize} bytes`);
    }
    const n = keys.length / this.keySize;
    if (!(values instanceof Uint8Array) || values.length < n * this.valueSize) {
      throw typeError('bad-argument', `${op}: values must hold ${n} x valueSize ${this.valueSize} bytes`);
    }
    return n;
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
    // and releaseSlot() of a dead agent detaches that: count those.
    const others = this.elems.attachedAgents - 1;
    if (others > 0) throw rangeError('still-attached', `destroy: the map is still attached in ${others} other agent(s)`);
    const n = this.clear();
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
