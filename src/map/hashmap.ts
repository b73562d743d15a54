/**
 * HashMap: the BPF hash map, in the shared heap, usable from every agent
 * at once. Layout and ownership rules: ./layout.ts.
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
 */
import { HeapHeader, SlotRow, SLOT_ROW_WORDS } from '../shm/layout.js';
import { add, cas, load, store } from '../shm/atomic.js';
import { checkInt, describe } from '../errors.js';
import type { HeapCore, ViewClient } from '../heap/core.js';
import { Allocator } from '../alloc/allocator.js';
import { openAllocator } from '../alloc/debug/open.js';
import {
  E_KEY_OFF,
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
  OP_SLOT_WRITE,
  V_COPY_SHIFT,
  V_GRACE,
  V_LOCK,
  V_STAMP_AHEAD,
  V_STAMP_MASK,
  V_STAMP_SHIFT,
} from './layout.js';
import { enterRead, leaveRead, pinWordOf, tryAdvance } from '../reclaim/epoch.js';
import { objectsPerSlab } from '../alloc/sizeclass.js';

/** update() flags, as the kernel's BPF_ANY / BPF_NOEXIST / BPF_EXIST. */
export const MapFlag = {
  /** Create the key or replace its value. */
  ANY: 0,
  /** Create only: MapStatus.EXISTS if the key is there. */
  NOEXIST: 1,
  /** Replace only: MapStatus.NOT_FOUND if the key is absent. */
  EXIST: 2,
} as const;

/** Results of update/delete: 0 on success, else a negative status (the kernel's errno values). */
export const MapStatus = {
  OK: 0,
  /** The key is absent (ENOENT). */
  NOT_FOUND: -2,
  /** No memory for a new element: the heap is full (ENOMEM). */
  NO_MEMORY: -12,
  /** A bucket lock stayed taken past the spin limit (EBUSY): a writer stalled or died. */
  BUSY: -16,
  /** The key exists and NOEXIST was given (EEXIST). */
  EXISTS: -17,
  /** maxEntries elements exist already (E2BIG). */
  FULL: -7,
} as const;

export interface HashMapOptions {
  /** Key size in bytes, 1..512. */
  keySize: number;
  /** Value size in bytes, 1..65536 (per slot for per-worker maps). */
  valueSize: number;
  /** Most elements the map holds. */
  maxEntries: number;
  /** 'prealloc' (every element reserved at create) or 'dynamic' (default). */
  mode?: 'prealloc' | 'dynamic';
  /** One value per worker slot for each key (the kernel's per-CPU hash). */
  perWorker?: boolean;
  /** Hash seed; random by default (against hash flooding). */
  seed?: number;
  /** Buckets (rounded up to a power of two). Default: maxEntries / 4 rounded up. */
  buckets?: number;
  /**
   * Update existing keys in place (default true; not for per-worker maps,
   * which always write their own slot in place). Each element then holds
   * two copies of the value and a version word: an update writes the copy
   * no reader uses and flips, without the bucket lock or a new element,
   * so writers on different keys share no cache line they write. false:
   * every update builds a new element and frees the old one after a grace
   * period (elements smaller by valueSize padded to 8). By default, a
   * value too big for two copies in one heap page gets one copy, as with
   * false; true then throws instead.
   */
  inPlace?: boolean;
}

export interface HashMapHandle {
  readonly kind: 'anyalloc.map';
  readonly region: number;
}

/** An agent that updates in place tries to advance the epoch every this many updates (see updateInPlace). */
const ADVANCE_EVERY = 32;

/** How long a writer spins on a bucket lock before it reports BUSY. */
const LOCK_SPIN_MS = 500;
/** How long a writer keeps reclaiming when no element is free (grace periods pending). */
const RECLAIM_WAIT_MS = 500;
/** Largest entry quota a slot takes at once from the shared counter. */
const QUOTA_BATCH_MAX = 32;
/** Bit 0 of a bucket word: its lock (elements are 16-byte aligned). */
const LOCKED = 1;
/** updateInPlace: the element must be replaced (not a MapStatus). */
const UPDATE_REPLACE = 1;
/**
 * Watermarks of the element allocator. The high mark sits above the 64
 * elements a deferred-free collection returns at once, so an overwrite
 * loop (one element in, one retired, per update) stays in its cache
 * instead of trimming and refilling through the depot.
 */
const ELEM_MARKS = { lowWatermark: 16, highWatermark: 128, batch: 32, prefill: 16 };
/** How long a reader retries a per-worker value whose writer is mid-write. */
const SEQ_WAIT_MS = 500;

function midWrite(slot: number): RangeError {
  return new RangeError(`per-worker value of slot ${slot} stays mid-write: its writer stalled or died (release its slot)`);
}

function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

export class HashMap implements ViewClient {
  readonly heap: HeapCore;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perWorker: boolean;
  readonly mode: 'prealloc' | 'dynamic';
  /** Byte offset of the map region. */
  readonly region: number;
  private readonly elems: Allocator;
  private readonly W: number;
  private readonly bucketWord: number;
  private readonly mask: number;
  private readonly seed: number;
  private readonly keyOff: number;
  private readonly valueOff: number;
  private readonly stride: number;
  /** 2: values updated in place (two copies, see ./layout.ts); 1 else. */
  private readonly copies: number;
  private readonly rowWord: number;
  private readonly pinWord: number;
  private readonly epochWord: number;
  private u8: Uint8Array;
  private u32: Uint32Array;
  private i32: Int32Array;
  private detached = false;
  /** Entries a slot reserves at once (see takeEntry). */
  private readonly quotaBatch: number;
  /** Out-value of findLocked (kept in a field: no allocation). */
  private pred = 0;
  /** The key of the operation in progress, zero-padded to whole words. */
  private readonly kw: Uint32Array;
  private readonly kb: Uint8Array;
  /** This agent's updates of existing keys done in place / by a new element (in-place maps). */
  private inPlaceCount = 0;
  private replacedCount = 0;
  /** In-place updates until this agent next tries to advance the epoch. */
  private advanceIn = ADVANCE_EVERY;
  /**
   * Whether this agent's recent update(ANY) calls found their key (a
   * saturating counter, 0..3; >= 2: they did): an ANY update looks for its
   * key lock-free, to update it in place, only while they did, so that
   * inserts do not search twice.
   */
  private anyHits = 2;

  private constructor(heap: HeapCore, region: number, elems: Allocator) {
    this.heap = heap;
    this.region = region;
    this.elems = elems;
    this.u8 = heap.u8;
    this.u32 = heap.u32;
    this.i32 = heap.i32;
    const W = (this.W = region >>> 2);
    const u32 = this.u32;
    this.keySize = u32[W + MapHeader.KEY_SIZE]!;
    this.valueSize = u32[W + MapHeader.VALUE_SIZE]!;
    this.maxEntries = u32[W + MapHeader.MAX_ENTRIES]!;
    this.perWorker = u32[W + MapHeader.PER_WORKER] === 1;
    this.mode = u32[W + MapHeader.MODE] === 0 ? 'prealloc' : 'dynamic';
    this.mask = u32[W + MapHeader.BUCKETS]! - 1;
    // As int32: a uint32 above 2^31 would make the field a boxed double.
    this.seed = u32[W + MapHeader.SEED]! | 0;
    this.keyOff = u32[W + MapHeader.KEY_OFF]!;
    this.valueOff = u32[W + MapHeader.VALUE_OFF]!;
    this.stride = u32[W + MapHeader.VALUE_STRIDE]!;
    this.copies = u32[W + MapHeader.VALUE_COPIES] === 2 ? 2 : 1;
    this.quotaBatch = Math.min(QUOTA_BATCH_MAX, Math.floor(this.maxEntries / (4 * heap.maxSlots)));
    this.kw = new Uint32Array(Math.ceil(this.keySize / 4));
    this.kb = new Uint8Array(this.kw.buffer);
    this.bucketWord = W + MAP_HEADER_WORDS + heap.maxSlots * MAP_SLOT_WORDS;
    this.rowWord = W + MAP_HEADER_WORDS + heap.slot * MAP_SLOT_WORDS;
    this.pinWord = pinWordOf(heap);
    this.epochWord = heap.hdr + HeapHeader.EPOCH;
    heap.addClient(this);
  }

  /** Creates a map in the heap and attaches it in this agent. */
  static create(heap: HeapCore, options: HashMapOptions): HashMap {
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${describe(options)}`);
    const keySize = checkInt('keySize', options.keySize, 1, 512);
    const valueSize = checkInt('valueSize', options.valueSize, 1, 65536);
    const maxEntries = checkInt('maxEntries', options.maxEntries, 1, 1 << 26);
    const mode = options.mode ?? 'dynamic';
    if (mode !== 'prealloc' && mode !== 'dynamic') throw new TypeError(`mode must be 'prealloc' or 'dynamic', got ${describe(mode)}`);
    const perWorker = options.perWorker === true;
    if (options.inPlace !== undefined && typeof options.inPlace !== 'boolean') throw new TypeError(`inPlace must be a boolean, got ${describe(options.inPlace)}`);
    const seed = options.seed === undefined ? (Math.random() * 2 ** 32) >>> 0 : checkInt('seed', options.seed, 0, 0xffffffff);
    // Default: a quarter as many buckets as entries (chains of ~4 when
    // full), so the table costs ~1 byte per entry and a dynamic map's
    // memory follows its element count.
    const buckets = pow2AtLeast(options.buckets === undefined ? Math.ceil(maxEntries / 4) : checkInt('buckets', options.buckets, 1, 1 << 26));
    const keyOff = E_KEY_OFF;
    const valueOff = keyOff + Math.ceil(keySize / 8) * 8;
    const padded = Math.ceil(valueSize / 8) * 8;
    // In place by default; with values too big for two copies in a page,
    // one copy (updates replace the element) unless inPlace: true asks.
    let copies = !perWorker && options.inPlace !== false ? 2 : 1;
    if (copies === 2 && options.inPlace === undefined && objectsPerSlab(heap.pageSize, valueOff + 2 * padded) < 1) copies = 1;
    // Per-worker: bytes per slot record; in place: bytes per copy.
    const stride = perWorker ? 8 + padded : copies === 2 ? padded : valueSize;
    const elemSize = valueOff + (perWorker ? stride * heap.maxSlots : copies === 2 ? 2 * padded : valueSize);
    // Preallocated maps keep slack for what agents' caches and limbo lists
    // hold at any moment, so maxEntries live elements always fit.
    const slack = heap.maxSlots * (ELEM_MARKS.highWatermark + ELEM_MARKS.batch + 64);
    const capacity = maxEntries + slack;
    const perSlab = objectsPerSlab(heap.pageSize, elemSize);
    const limitBytes = mode === 'prealloc' ? Math.ceil(capacity / perSlab) * heap.pageSize : undefined;
    if (perSlab < 1) {
      const hint = copies === 2 ? ' (in place: two copies of the value; inPlace: false keeps one)' : '';
      throw new RangeError(`elements of ${elemSize} bytes do not fit a ${heap.pageSize}-byte page${hint}`);
    }
    const elemsId = Allocator.create(heap, { unitSize: elemSize, ...ELEM_MARKS, ...(limitBytes === undefined ? {} : { limitBytes }) });
    const elems = openAllocator(heap, elemsId, {});
    if (mode === 'prealloc' && !elems.reserve(capacity)) {
      elems.destroy();
      throw new RangeError(`heap is full: no room to preallocate ${capacity} elements of ${elems.unitSize} bytes`);
    }
    const bytes = (MAP_HEADER_WORDS + heap.maxSlots * MAP_SLOT_WORDS + buckets) * 4;
    const region = heap.takeRegion(bytes, 0);
    if (region === 0) {
      elems.destroy();
      throw new RangeError(`heap is full: no room for the map's ${bytes}-byte table`);
    }
    const u32 = heap.u32;
    const W = region >>> 2;
    u32[W + MapHeader.KEY_SIZE] = keySize;
    u32[W + MapHeader.VALUE_SIZE] = valueSize;
    u32[W + MapHeader.MAX_ENTRIES] = maxEntries;
    u32[W + MapHeader.BUCKETS] = buckets;
    u32[W + MapHeader.SEED] = seed;
    u32[W + MapHeader.MODE] = mode === 'prealloc' ? 0 : 1;
    u32[W + MapHeader.PER_WORKER] = perWorker ? 1 : 0;
    u32[W + MapHeader.ELEM_ALLOC] = elems.id;
    u32[W + MapHeader.KEY_OFF] = keyOff;
    u32[W + MapHeader.VALUE_OFF] = valueOff;
    u32[W + MapHeader.VALUE_STRIDE] = stride;
    u32[W + MapHeader.VALUE_COPIES] = copies;
    u32[W + MapHeader.ELEM_SIZE] = elems.unitSize;
    u32[W + MapHeader.CAPACITY] = mode === 'prealloc' ? capacity : 0;
    store(u32, W + MapHeader.STATE, MAP_LIVE);
    store(u32, W + MapHeader.MAGIC, MAP_MAGIC);
    heap.setAllocatorMap(elems.id, region);
    return new HashMap(heap, region, elems);
  }

  /** Attaches, in this agent, a map created elsewhere. */
  static attach(heap: HeapCore, handle: HashMapHandle): HashMap {
    if (handle === null || typeof handle !== 'object' || handle.kind !== 'anyalloc.map') {
      throw new TypeError(`HashMap.attach needs a map handle (map.handle), got ${describe(handle)}`);
    }
    heap.refresh();
    const W = handle.region >>> 2;
    if (load(heap.u32, W + MapHeader.MAGIC) !== MAP_MAGIC || load(heap.u32, W + MapHeader.STATE) !== MAP_LIVE) {
      throw new RangeError(`no live map at byte ${handle.region}`);
    }
    const elems = openAllocator(heap, heap.u32[W + MapHeader.ELEM_ALLOC]!, {});
    return new HashMap(heap, handle.region, elems);
  }

  get handle(): HashMapHandle {
    return { kind: 'anyalloc.map', region: this.region };
  }

  /* ------------------------------ helpers ------------------------------- */

  /**
   * Hash of the key in the scratch words (a murmur3-style mix over 32-bit
   * words; the key is zero-padded to whole words, so byte keys and number
   * keys of the same bytes hash alike).
   */
  private hashKey(): number {
    const kw = this.kw;
    let h = this.seed ^ this.keySize;
    for (let i = 0; i < kw.length; i++) {
      const k = Math.imul(rotl(Math.imul(kw[i]!, 0xcc9e2d51), 15), 0x1b873593);
      h = (Math.imul(rotl(h ^ k, 13), 5) + 0xe6546b64) | 0;
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  }

  /** Checks a key and copies it into the scratch words. */
  private takeKey(key: Uint8Array, op: string): void {
    this.checkKey(key, op);
    // Whole words built in registers: byte stores read back as words
    // would stall store-to-load forwarding in hashKey.
    const kw = this.kw;
    const n = this.keySize;
    let i = 0;
    let w = 0;
    for (; i + 4 <= n; i += 4) kw[w++] = key[i]! | (key[i + 1]! << 8) | (key[i + 2]! << 16) | (key[i + 3]! << 24);
    if (i < n) {
      let x = 0;
      for (let sh = 0; i < n; i++, sh += 8) x |= key[i]! << sh;
      kw[w] = x;
    }
  }

  /** Checks a number key (keySize >= 4) and puts it, little-endian and zero-extended, in the scratch words. */
  private takeNumber(k: number, op: string): void {
    if ((k >>> 0) !== k) throw new TypeError(`${op}: a number key must be an integer in [0, 2^32), got ${describe(k)}`);
    if (this.keySize < 4) throw new RangeError(`${op}: number keys need keySize >= 4, the map has ${this.keySize}`);
    if (this.detached) throw new RangeError(`${op}: this map is detached in this agent`);
    const kw = this.kw;
    kw[0] = k;
    for (let i = 1; i < kw.length; i++) kw[i] = 0;
  }

  private checkKey(key: Uint8Array, op: string): void {
    if (!(key instanceof Uint8Array) || key.length < this.keySize) {
      throw new TypeError(`${op}: key must be a Uint8Array of at least keySize ${this.keySize} bytes, got ${key instanceof Uint8Array ? `${key.length} bytes` : describe(key)}`);
    }
    if (this.detached) throw new RangeError(`${op}: this map is detached in this agent`);
  }

  private checkValue(v: Uint8Array, op: string, name = 'value'): void {
    if (!(v instanceof Uint8Array) || v.length < this.valueSize) {
      throw new TypeError(`${op}: ${name} must be a Uint8Array of at least valueSize ${this.valueSize} bytes, got ${v instanceof Uint8Array ? `${v.length} bytes` : describe(v)}`);
    }
  }

  /**
   * Read-side section (enterRead in ../reclaim/epoch.ts). Nests: only the
   * outer pin/unpin touch shared memory, so read() around a loop of
   * lookups pins once.
   */
  private pin(): void {
    enterRead(this.heap, this.u32, this.pinWord);
  }

  private unpin(): void {
    leaveRead(this.heap, this.u32, this.pinWord);
  }

  /** Makes sure the views cover element e (allocated maybe by another agent after our last grow). */
  private reach(e: number): void {
    if (e + 64 > this.heap.viewBytes) this.heap.refresh();
  }

  /**
   * Byte offset of e's value now (not per-worker maps): in-place maps,
   * the copy its version word names (a plain load: the copy's address
   * depends on it, see ./layout.ts).
   */
  private valueAt(e: number): number {
    if (this.copies === 1) return e + this.valueOff;
    const v = this.u32[(e >>> 2) + E_VER]!;
    return e + this.valueOff + ((v >>> V_COPY_SHIFT) & 1) * this.stride;
  }

  private keyEquals(e: number): boolean {
    const u32 = this.u32;
    const kw = this.kw;
    const base = (e + this.keyOff) >>> 2;
    for (let i = 0; i < kw.length; i++) if (u32[base + i] !== kw[i]) return false;
    return true;
  }

  /**
   * Finds the element of `key` in bucket b (pinned, or holding the lock).
   * The head is read with an atomic load, which orders it after the
   * writer's publishing store. The rest of the walk uses plain loads, as
   * the kernel's rcu_dereference does: every later load takes its address
   * from the previous one, and an element is fully written before the
   * atomic store that links it (Atomics.load costs ~8 ns in V8 here; a
   * plain load ~1.5 ns).
   */
  private find(b: number): number {
    let e = (load(this.u32, this.bucketWord + b) & ~LOCKED) >>> 0;
    while (e !== 0) {
      if (e + 64 > this.heap.viewBytes) this.reach(e);
      const u32 = this.u32;
      if (this.keyEquals(e)) return e;
      e = u32[(e >>> 2) + E_NEXT]!;
    }
    return 0;
  }

  /**
   * Takes bucket b's lock, spinning. A holder can be descheduled by the OS
   * for a whole time slice, so the bound is in time: after LOCK_SPIN_MS
   * the lock is taken to be held by a stalled or dead writer (BUSY).
   */
  /**
   * Finds `key` in a locked bucket's chain starting at head; the element
   * before it (0 if it is first) is left in this.pred.
   */
  private findLocked(head: number): number {
    let pred = 0;
    let e = head;
    while (e !== 0) {
      if (e + 64 > this.heap.viewBytes) this.reach(e);
      if (this.keyEquals(e)) break;
      pred = e;
      e = this.u32[(e >>> 2) + E_NEXT]!;
    }
    this.pred = pred;
    return e;
  }

  private lock(b: number): number {
    const w = this.bucketWord + b;
    const u32 = this.u32;
    let deadline = 0;
    for (let i = 0; ; i++) {
      const v = u32[w]!;
      if ((v & LOCKED) === 0) {
        // Named before the cas and until after the unlock: a survivor that
        // finds the bucket locked and named by no live slot knows the dead
        // one held it (release.ts).
        this.i32[this.rowWord + MapSlotRow.INTENT] = b + 1;
        if (cas(u32, w, v, v | LOCKED) === v) return v;
        this.i32[this.rowWord + MapSlotRow.INTENT] = 0;
      }
      if ((i & 1023) === 1023) {
        const now = Date.now();
        if (deadline === 0) deadline = now + LOCK_SPIN_MS;
        else if (now > deadline) return -1;
      }
    }
  }

  /** Releases bucket b's lock, publishing `head` as its first element in the same store. */
  private unlock(b: number, head: number): void {
    store(this.u32, this.bucketWord + b, head);
    this.i32[this.rowWord + MapSlotRow.INTENT] = 0;
  }

  /**
   * Reserves one entry against maxEntries: from this slot's quota, else a
   * batch of quotaBatch from RESERVED, else exactly one. Every change of
   * RESERVED is a CAS that keeps it <= maxEntries, so no transient
   * overshoot makes another agent see a full map. Quotas held by other
   * slots (at most maxWorkers x (2 x quotaBatch - 1), which quotaBatch
   * keeps under maxEntries / 2) can make FULL come early; small maps get
   * quotaBatch 0 and count exactly.
   */
  private takeEntry(): boolean {
    const i32 = this.i32;
    const row = this.rowWord;
    if (i32[row + MapSlotRow.QUOTA]! === 0) {
      const u32 = this.u32;
      const r = this.W + MapHeader.RESERVED;
      const B = this.quotaBatch;
      for (;;) {
        const n = load(u32, r);
        const take = B > 0 && n + B <= this.maxEntries ? B : 1;
        if (n + take > this.maxEntries) return false;
        // MOVING brackets the atomic step, for a survivor (layout.ts).
        i32[row + MapSlotRow.MOVING] = take;
        if (cas(u32, r, n, n + take) === n) {
          i32[row + MapSlotRow.QUOTA] = take;
          i32[row + MapSlotRow.MOVING] = 0;
          break;
        }
        i32[row + MapSlotRow.MOVING] = 0;
      }
    }
    // Taken iff QUOTA = OP_QUOTA - 1 (release.ts).
    i32[row + MapSlotRow.OP_QUOTA] = i32[row + MapSlotRow.QUOTA]!;
    i32[row + MapSlotRow.QUOTA]!--;
    return true;
  }

  /** Gives one entry back: to this slot's quota, returning a batch to RESERVED when it holds two. */
  private giveEntry(): void {
    const i32 = this.i32;
    const row = this.rowWord;
    const B = this.quotaBatch;
    // Given back iff QUOTA = OP_QUOTA + 1, or MOVING is set (release.ts).
    const n = i32[row + MapSlotRow.QUOTA]! + 1;
    i32[row + MapSlotRow.OP_QUOTA] = n - 1;
    i32[row + MapSlotRow.QUOTA] = n;
    if (n >= 2 * B) {
      const back = B > 0 ? B : 1;
      // Out of QUOTA before RESERVED: a death in between overcounts
      // RESERVED (FULL a little early), never undercounts it.
      i32[row + MapSlotRow.MOVING] = back;
      i32[row + MapSlotRow.QUOTA] = n - back;
      i32[row + MapSlotRow.OP_QUOTA] = n - back - 1;
      add(this.u32, this.W + MapHeader.RESERVED, -back);
      i32[row + MapSlotRow.MOVING] = 0;
    }
  }

  private writeKey(e: number): void {
    const u32 = this.u32;
    const kw = this.kw;
    const base = (e + this.keyOff) >>> 2;
    for (let i = 0; i < kw.length; i++) u32[base + i] = kw[i]!;
  }

  /** Copies valueSize bytes of v to dst (4-byte aligned: value offsets are multiples of 8), a word at a time. */
  private copyIn(dst: number, v: Uint8Array): void {
    const n = this.valueSize;
    const u32 = this.u32;
    let i = 0;
    for (let w = dst >>> 2; i + 4 <= n; i += 4, w++) u32[w] = v[i]! | (v[i + 1]! << 8) | (v[i + 2]! << 16) | (v[i + 3]! << 24);
    const u8 = this.u8;
    for (; i < n; i++) u8[dst + i] = v[i]!;
  }

  private copyOut(src: number, out: Uint8Array): void {
    const u8 = this.u8;
    for (let i = 0; i < this.valueSize; i++) out[i] = u8[src + i]!;
  }

  /**
   * A new element for `key`, value from v (per-worker: this slot's value,
   * others zero). 0 if none. When the allocator has nothing (preallocated
   * pool or heap used up), elements retired by any agent may only be
   * waiting for readers to leave their sections: a writer may wait for
   * that, collecting from every agent's limbo ring (an agent that went
   * idle after deleting leaves its ring to the others), within
   * RECLAIM_WAIT_MS (readers never wait). A preallocated map waits even
   * when no ring holds anything: its pool has room for maxEntries plus
   * what caches and limbo lists hold, so an empty pool means elements in
   * transit (in another agent's private spill list until its ring is
   * free, or in a batch between a cache and the depot), not a full map.
   */
  private newElement(v: Uint8Array): number {
    let e = this.elems.alloc();
    const prealloc = this.mode === 'prealloc';
    if (e === 0 && (prealloc || this.elems.retiredObjects() > 0)) {
      const deadline = Date.now() + RECLAIM_WAIT_MS;
      do {
        this.elems.collectDeferred(true);
        e = this.elems.alloc();
      } while (e === 0 && (prealloc || this.elems.retiredObjects() > 0) && Date.now() < deadline);
    }
    if (e === 0) return 0;
    this.reach(e);
    this.writeKey(e);
    if (this.perWorker) {
      const end = e + this.valueOff + this.stride * this.heap.maxSlots;
      this.u8.fill(0, e + this.valueOff, end);
      this.copyIn(e + this.valueOff + this.stride * this.heap.slot + 8, v);
    } else {
      // In-place maps: copy 0 current, and a stamp already V_GRACE old,
      // since copy 1 was never current in this element's life (readers of
      // its previous life left before it was freed), so the first in-place
      // update may write it at once.
      if (this.copies === 2) this.u32[(e >>> 2) + E_VER] = (((this.u32[this.epochWord]! - V_GRACE) & V_STAMP_MASK) << V_STAMP_SHIFT) >>> 0;
      this.copyIn(e + this.valueOff, v);
    }
    return e;
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
    if (this.detached) throw new RangeError('read: this map is detached in this agent');
    this.pin();
    try {
      return fn();
    } finally {
      this.unpin();
    }
  }

  /**
   * Per-worker maps: copies slot `slot`'s value of e into out (seqlock
   * read). false: the slot stayed mid-write for SEQ_WAIT_MS (its writer
   * stalled, or died and was not released); the caller throws once it has
   * unpinned.
   */
  private readSlot(e: number, slot: number, out: Uint8Array, outOff = 0): boolean {
    const rec = e + this.valueOff + this.stride * slot;
    const n = this.valueSize;
    let deadline = 0;
    for (let tries = 1; ; tries++) {
      if ((tries & 1023) === 0) {
        const now = Date.now();
        if (deadline === 0) deadline = now + SEQ_WAIT_MS;
        else if (now > deadline) return false;
      }
      const u32 = this.u32;
      const s1 = load(u32, rec >>> 2);
      if ((s1 & 1) !== 0) continue;
      // Atomic loads: JS has no read fence, and plain loads could be
      // performed after the second load of seq on a weakly ordered CPU.
      for (let i = 0, w = (rec + 8) >>> 2; i < n; i += 4, w++) {
        const x = load(u32, w);
        out[outOff + i] = x & 255;
        if (i + 1 < n) out[outOff + i + 1] = (x >>> 8) & 255;
        if (i + 2 < n) out[outOff + i + 2] = (x >>> 16) & 255;
        if (i + 3 < n) out[outOff + i + 3] = x >>> 24;
      }
      if (load(u32, rec >>> 2) === s1) return true;
    }
  }

  /**
   * Per-worker maps: copies every slot's value of `key` into `out`
   * (maxWorkers x valueSize bytes, slot order). False when absent.
   */
  lookupAll(key: Uint8Array, out: Uint8Array): boolean {
    this.takeKey(key, 'lookupAll');
    if (!this.perWorker) throw new TypeError('lookupAll needs a per-worker map');
    const slots = this.heap.maxSlots;
    if (!(out instanceof Uint8Array) || out.length < slots * this.valueSize) {
      throw new TypeError(`lookupAll: out must hold maxWorkers x valueSize = ${slots * this.valueSize} bytes`);
    }
    const h = this.hashKey();
    this.pin();
    const e = this.find(h & this.mask);
    let torn = -1;
    if (e !== 0) {
      for (let s = 0; s < slots; s++) {
        if (!this.readSlot(e, s, out, s * this.valueSize)) {
          torn = s;
          break;
        }
      }
    }
    this.unpin();
    if (torn >= 0) throw midWrite(torn);
    return e !== 0;
  }

  /**
   * Per-worker maps whose values are little-endian numbers: the sum over
   * all slots of the value read as `type`. undefined when absent.
   */
  sum(key: Uint8Array, type: 'u32' | 'i32' | 'f64' = 'f64'): number | undefined {
    if (!this.perWorker) throw new TypeError('sum needs a per-worker map');
    const size = type === 'f64' ? 8 : 4;
    if (this.valueSize < size) throw new RangeError(`sum as ${type} needs valueSize >= ${size}, map has ${this.valueSize}`);
    const slots = this.heap.maxSlots;
    const buf = new Uint8Array(slots * this.valueSize);
    if (!this.lookupAll(key, buf)) return undefined;
    const dv = new DataView(buf.buffer);
    let total = 0;
    for (let s = 0; s < slots; s++) {
      const o = s * this.valueSize;
      total += type === 'f64' ? dv.getFloat64(o, true) : type === 'u32' ? dv.getUint32(o, true) : dv.getInt32(o, true);
    }
    return total;
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
    if (flag !== 0 && flag !== 1 && flag !== 2) throw new RangeError(`${op} flag must be MapFlag.ANY (0), NOEXIST (1) or EXIST (2), got ${describe(flag)}`);
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
   * An update of an existing key in an in-place map (./layout.ts, ver and
   * copies): no bucket lock, no new element. Returns OK, NOT_FOUND (EXIST
   * and no key), or UPDATE_REPLACE when the element must be replaced
   * instead: the key is absent (ANY inserts), another writer holds the
   * element's LOCK, or the spare copy may still have readers.
   *
   * Linearizable: a writer that finds the element and flips it after a
   * concurrent replace or delete unlinked it takes effect just before
   * that replace or delete (it found the element linked, so it began
   * before), and no later reader sees its value. Pinned, so the element
   * is not reused meanwhile.
   */
  private updateInPlace(b: number, value: Uint8Array, flag: number): number {
    this.pin();
    // The epoch now, read after the pin is visible: until the unpin the
    // epoch stays at most one past it (a pin, whatever value it holds,
    // is at most this epoch, and an advance needs every pin equal to the
    // epoch it leaves). Not the pin word's value: a pin stored after a
    // stall may be far behind the epoch.
    const now = load(this.u32, this.epochWord);
    const e = this.find(b);
    let status: number = UPDATE_REPLACE;
    if (e !== 0) {
      const u32 = this.u32; // after find, which may have renewed the views
      const vw = (e >>> 2) + E_VER;
      const v = u32[vw]!;
      // Epochs since the stamp, mod 2^30; a stamp ahead of `now` (by a
      // writer that read the epoch later) wraps to a huge count, so
      // counts of 2^29 or more are read as not passed.
      const since = (now - (v >>> V_STAMP_SHIFT)) & V_STAMP_MASK;
      if ((v & V_LOCK) === 0 && since >= V_GRACE && since < V_STAMP_AHEAD && cas(u32, vw, v, v | V_LOCK) === v) {
        const spare = ((v >>> V_COPY_SHIFT) & 1) ^ 1;
        this.copyIn(e + this.valueOff + spare * this.stride, value);
        store(u32, vw, (((now & V_STAMP_MASK) << V_STAMP_SHIFT) | (spare << V_COPY_SHIFT)) >>> 0);
        status = MapStatus.OK;
      }
    } else if (flag === MapFlag.EXIST) {
      status = MapStatus.NOT_FOUND;
    }
    this.unpin();
    // A miss goes on to updateLocked, which counts it.
    if (flag === MapFlag.ANY && e !== 0) this.anyHits = 3;
    if (status === MapStatus.OK) {
      this.inPlaceCount++;
      // Grace periods advance, and limbo rings are collected, with
      // deferred frees; an agent that mostly updates in place frees little,
      // so now and then it collects its ring (which advances the epoch as
      // far as its entries need) or moves the epoch on, or every key would
      // wait for the others' frees and replaced elements for its next ones.
      if (--this.advanceIn === 0) {
        this.advanceIn = ADVANCE_EVERY;
        if (this.elems.deferredPending > 0) this.elems.collectDeferred();
        else tryAdvance(this.heap);
      }
    }
    return status;
  }

  /**
   * This agent's updates of present keys in an in-place map, since it
   * attached: done in place, and done by replacing the element (its spare
   * copy was locked by another writer or could still have readers, or the
   * update went to the bucket lock first because this agent's recent ANY
   * updates were inserts). Both 0 in other maps.
   */
  get updateCounts(): { inPlace: number; replaced: number } {
    return { inPlace: this.inPlaceCount, replaced: this.replacedCount };
  }

  private writeSlot(e: number, v: Uint8Array): void {
    const rec = e + this.valueOff + this.stride * this.heap.slot;
    const u32 = this.u32;
    const i32 = this.i32;
    const row = this.rowWord;
    const op = i32[row + MapSlotRow.OP]!;
    if (op === 0) {
      i32[row + MapSlotRow.OP_ELEM] = e;
      i32[row + MapSlotRow.OP] = OP_SLOT_WRITE;
    }
    const s = u32[rec >>> 2]!;
    store(u32, rec >>> 2, (s + 1) >>> 0);
    // Atomic stores, so that on a weakly ordered CPU no value word becomes
    // visible before the odd seq or after the even one (readSlot).
    const n = this.valueSize;
    for (let i = 0, w = (rec + 8) >>> 2; i < n; i += 4, w++) {
      const x = v[i]! | (i + 1 < n ? v[i + 1]! << 8 : 0) | (i + 2 < n ? v[i + 2]! << 16 : 0) | (i + 3 < n ? v[i + 3]! << 24 : 0);
      store(u32, w, x >>> 0);
    }
    store(u32, rec >>> 2, (s + 2) >>> 0);
    if (op === 0) i32[row + MapSlotRow.OP] = 0;
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
    }
    this.unlock(b, head);
    if (e === 0) return MapStatus.NOT_FOUND;
    this.giveEntry();
    i32[row + MapSlotRow.OP] = 0;
    this.elems.freeDeferred(e);
    return MapStatus.OK;
  }

  /** Deletes every element. Returns how many were deleted. */
  clear(): number {
    if (this.detached) throw new RangeError('clear: this map is detached in this agent');
    let n = 0;
    for (let b = 0; b <= this.mask; b++) {
      if (load(this.u32, this.bucketWord + b) === 0) continue;
      let e = this.lock(b);
      if (e < 0) throw new RangeError(`clear: bucket ${b} stays locked: a writer stalled or died`);
      this.unlock(b, 0);
      while (e !== 0) {
        this.reach(e);
        const next = load(this.u32, (e >>> 2) + E_NEXT);
        this.i32[this.rowWord + MapSlotRow.COUNT]!--;
        this.giveEntry();
        this.elems.freeDeferred(e);
        n++;
        e = next;
      }
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
    if (!(out instanceof Uint8Array) || out.length < this.keySize) throw new TypeError(`getNextKey: out must hold keySize ${this.keySize} bytes`);
    if (this.detached) throw new RangeError('getNextKey: this map is detached in this agent');
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
        const e = (load(this.u32, this.bucketWord + b) & ~LOCKED) >>> 0;
        if (e !== 0) return this.copyKey(e, out);
      }
      return false;
    } finally {
      this.unpin();
    }
  }

  private copyKey(e: number, out: Uint8Array): boolean {
    this.reach(e);
    const base = e + this.keyOff;
    for (let i = 0; i < this.keySize; i++) out[i] = this.u8[base + i]!;
    return true;
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
   * Looks up n = keys.length / keySize keys; values go to values[i *
   * valueSize], found[i] = 1 or 0 when given. Returns how many were found.
   */
  lookupBatch(keys: Uint8Array, values: Uint8Array, found?: Uint8Array): number {
    const n = this.batchCount(keys, values, 'lookupBatch');
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
   * Updates n keys in order and stops at the first failure (as the
   * kernel's batch ops). Returns { done, status }: done keys succeeded,
   * status is OK or the failure of key number `done`.
   */
  updateBatch(keys: Uint8Array, values: Uint8Array, flag: number = MapFlag.ANY): { done: number; status: number } {
    const n = this.batchCount(keys, values, 'updateBatch');
    const k = new Uint8Array(this.keySize);
    const v = new Uint8Array(this.valueSize);
    for (let i = 0; i < n; i++) {
      k.set(keys.subarray(i * this.keySize, (i + 1) * this.keySize));
      v.set(values.subarray(i * this.valueSize, (i + 1) * this.valueSize));
      const st = this.update(k, v, flag);
      if (st !== MapStatus.OK) return { done: i, status: st };
    }
    return { done: n, status: MapStatus.OK };
  }

  /** Deletes n keys; returns how many were present. */
  deleteBatch(keys: Uint8Array): number {
    if (!(keys instanceof Uint8Array) || keys.length % this.keySize !== 0) {
      throw new TypeError(`deleteBatch: keys must be a Uint8Array of a multiple of keySize ${this.keySize} bytes`);
    }
    const k = new Uint8Array(this.keySize);
    let deleted = 0;
    for (let i = 0; i < keys.length / this.keySize; i++) {
      k.set(keys.subarray(i * this.keySize, (i + 1) * this.keySize));
      if (this.delete(k) === MapStatus.OK) deleted++;
    }
    return deleted;
  }

  private batchCount(keys: Uint8Array, values: Uint8Array, op: string): number {
    if (!(keys instanceof Uint8Array) || keys.length % this.keySize !== 0) {
      throw new TypeError(`${op}: keys must be a Uint8Array of a multiple of keySize ${this.keySize} bytes`);
    }
    const n = keys.length / this.keySize;
    if (!(values instanceof Uint8Array) || values.length < n * this.valueSize) {
      throw new TypeError(`${op}: values must hold ${n} x valueSize ${this.valueSize} bytes`);
    }
    return n;
  }

  /* ------------------------------- totals ------------------------------- */

  /** Elements in the map: the sum of per-slot counts (racy while writers run). */
  count(): number {
    let n = 0;
    const base = this.W + MAP_HEADER_WORDS;
    for (let s = 0; s < this.heap.maxSlots; s++) n += this.i32[base + s * MAP_SLOT_WORDS + MapSlotRow.COUNT]!;
    return n;
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
  onViews(): void {
    this.u8 = this.heap.u8;
    this.u32 = this.heap.u32;
    this.i32 = this.heap.i32;
  }

  /** @internal */
  detachFromHeap(): void {
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
    const q = this.rowWord + MapSlotRow.QUOTA;
    const quota = this.i32[q]!;
    if (quota !== 0) add(this.u32, this.W + MapHeader.RESERVED, -quota);
    this.i32[q] = 0;
    this.detached = true;
    this.heap.removeClient(this);
    this.elems.detach();
  }

  /**
   * Frees every element and the map itself. Every other agent must have
   * detached. Returns how many elements were still in the map.
   */
  destroy(): number {
    if (this.detached) throw new RangeError('destroy: this map is detached in this agent');
    // Every agent attached to the map has its element allocator attached,
    // and releaseSlot() of a dead agent detaches that: count those.
    const others = this.elems.attachedAgents - 1;
    if (others > 0) throw new RangeError(`destroy: the map is still attached in ${others} other agent(s)`);
    const n = this.clear();
    store(this.u32, this.W + MapHeader.STATE, MAP_DESTROYED);
    const q = this.rowWord + MapSlotRow.QUOTA;
    this.i32[q] = 0;
    this.detached = true;
    this.heap.removeClient(this);
    this.elems.destroy();
    this.heap.giveRegion(this.region);
    return n;
  }

  /**
   * Checks the map's invariants; the map must be quiet (no writer
   * running). Returns the problems found.
   */
  validate(): string[] {
    const errors: string[] = [];
    this.heap.refresh();
    const u32 = this.u32;
    let reachable = 0;
    const seen = new Set<string>();
    for (let b = 0; b <= this.mask; b++) {
      if ((load(u32, this.bucketWord + b) & LOCKED) !== 0) errors.push(`bucket ${b} is locked`);
      let guard = 0;
      for (let e = (load(u32, this.bucketWord + b) & ~LOCKED) >>> 0; e !== 0; e = load(u32, (e >>> 2) + E_NEXT)) {
        if (++guard > this.maxEntries + 1) {
          errors.push(`bucket ${b}: chain loops`);
          break;
        }
        reachable++;
        const k = this.u8.slice(e + this.keyOff, e + this.keyOff + this.keySize);
        this.kw.fill(0);
        this.kb.set(k);
        const h = this.hashKey();
        if ((h & this.mask) !== b) errors.push(`element ${e}: in bucket ${b}, hashes to ${h & this.mask}`);
        const id = k.join(',');
        if (seen.has(id)) errors.push(`key ${id} appears twice`);
        seen.add(id);
      }
    }
    const counted = this.count();
    if (counted !== reachable) errors.push(`per-slot counts sum to ${counted}, ${reachable} elements reachable`);
    let quota = 0;
    for (let s = 0; s < this.heap.maxSlots; s++) quota += this.i32[this.W + MAP_HEADER_WORDS + s * MAP_SLOT_WORDS + MapSlotRow.QUOTA]!;
    const reserved = load(u32, this.W + MapHeader.RESERVED);
    const slack = load(u32, this.W + MapHeader.RESERVED_SLACK);
    if (reserved < counted + quota || reserved > counted + quota + slack) {
      errors.push(`reserved ${reserved} is not count ${counted} + quota ${quota} (+ up to ${slack} from writers that died mid-reservation)`);
    }
    for (let s = 0; s < this.heap.maxSlots; s++) {
      const row = this.W + MAP_HEADER_WORDS + s * MAP_SLOT_WORDS;
      if (this.i32[row + MapSlotRow.OP] !== 0) errors.push(`slot ${s}: a write is in flight in a quiet map (op ${this.i32[row + MapSlotRow.OP]})`);
      if (this.i32[row + MapSlotRow.INTENT] !== 0) errors.push(`slot ${s}: names bucket ${this.i32[row + MapSlotRow.INTENT]! - 1} as locked in a quiet map`);
    }
    if (reserved > this.maxEntries) errors.push(`reserved ${reserved} > maxEntries ${this.maxEntries}`);
    return errors;
  }
}
