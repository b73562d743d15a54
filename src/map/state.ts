/**
 * What an agent holds of one attached map: the geometry read from the map
 * header, word indexes of the map's parts, views of the heap, the scratch
 * words of the key in progress and this agent's counters; and the
 * read-side section every lock-free walk runs in.
 *
 * The map's parts are layers of one class, each in its file and each
 * extending the one below: MapState, MapQuota (./quota.ts), MapKeys
 * (./key.ts), MapBuckets (./buckets.ts), MapElements (./element.ts),
 * MapPerWorker (./per-worker.ts), and on top HashMap (./hashmap.ts). So
 * the helpers of the hot paths stay methods: V8 inlines a method after
 * one check of the receiver's map (the method is a constant while the
 * prototypes stay unchanged), while a function imported from another
 * module costs a load of its module binding and a check of the target at
 * every call (as imported functions, the same helpers made single-agent
 * lookups, updates and insert+delete pairs about 4% slower, median of
 * five A/B runs).
 *
 * Fields are assigned in the constructors (tsconfig: useDefineForClassFields
 * false, so the initializers below are assignments there too, not
 * definitions as undefined first): V8 then keeps a number field a small
 * integer and a typed-array field's map, and every HashMap gets its fields
 * in one order, one hidden class, so its call sites stay monomorphic.
 */
import { HeapHeader } from '../shm/layout.js';
import type { HeapCore } from '../heap/core.js';
import type { Allocator } from '../alloc/allocator.js';
import { MapHeader, MAP_HEADER_WORDS, MAP_SLOT_WORDS } from './layout.js';
import { enterRead, leaveRead, pinWordOf } from '../reclaim/epoch.js';

/** @internal An agent that updates in place tries to advance the epoch every this many updates (see updateInPlace). */
export const ADVANCE_EVERY = 32;

/** @hidden The bottom layer of HashMap: an agent's state of one map. */
export class MapState {
  /** The heap the map lives in (this agent's view of it). */
  readonly heap: HeapCore;
  /** Bytes in a key. */
  readonly keySize: number;
  /** Bytes in a value (per worker slot, with perWorker). */
  readonly valueSize: number;
  /** Entries the map holds at most. */
  readonly maxEntries: number;
  /** Whether each key holds one value per worker slot. */
  readonly perWorker: boolean;
  /** 'prealloc': every element reserved at create; 'dynamic': elements taken on insert. */
  readonly mode: 'prealloc' | 'dynamic';
  /** Byte offset of the map region. */
  readonly region: number;
  /** @internal The element allocator. */
  readonly elems: Allocator;
  /** @internal Word index of the map region. */
  readonly W: number;
  /** @internal Word index of bucket 0. */
  readonly bucketWord: number;
  /** @internal Buckets - 1 (a power of two less one). */
  readonly mask: number;
  /** @internal */
  readonly seed: number;
  /** @internal Byte offsets of the key and the value within an element. */
  readonly keyOff: number;
  /** @internal */
  readonly valueOff: number;
  /** @internal Per-worker: bytes per slot record; in-place maps: bytes per value copy. */
  readonly stride: number;
  /** @internal 2: values updated in place (two copies, see ./layout.ts); 1 else. */
  readonly copies: number;
  /** @internal Word index of this agent's slot row. */
  readonly rowWord: number;
  /** @internal Word index of this agent's pin word. */
  readonly pinWord: number;
  /** @internal Word index of the heap's epoch. */
  readonly epochWord: number;
  /** @internal Views of the heap (renewed by onViews when it grows). */
  u8: Uint8Array;
  /** @internal */
  u32: Uint32Array;
  /** @internal */
  i32: Int32Array;
  /** @internal */
  detached = false;
  /** @internal Out-value of findLocked (kept in a field: no allocation). */
  pred = 0;
  /** @internal The key of the operation in progress, zero-padded to whole words. */
  readonly kw: Uint32Array;
  /** @internal The same key as bytes. */
  readonly kb: Uint8Array;
  /** @internal This agent's updates of existing keys done in place / by a new element (in-place maps). */
  inPlaceCount = 0;
  /** @internal */
  replacedCount = 0;
  /** @internal In-place updates until this agent next tries to advance the epoch. */
  advanceIn = ADVANCE_EVERY;
  /**
   * @internal
   * Whether this agent's recent update(ANY) calls found their key (a
   * saturating counter, 0..3; >= 2: they did): an ANY update looks for its
   * key lock-free, to update it in place, only while they did, so that
   * inserts do not search twice.
   */
  anyHits = 2;

  protected constructor(heap: HeapCore, region: number, elems: Allocator) {
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
    this.kw = new Uint32Array(Math.ceil(this.keySize / 4));
    this.kb = new Uint8Array(this.kw.buffer);
    this.bucketWord = W + MAP_HEADER_WORDS + heap.maxSlots * MAP_SLOT_WORDS;
    this.rowWord = W + MAP_HEADER_WORDS + heap.slot * MAP_SLOT_WORDS;
    this.pinWord = pinWordOf(heap);
    this.epochWord = heap.hdr + HeapHeader.EPOCH;
  }

  /** @internal */
  onViews(): void {
    this.u8 = this.heap.u8;
    this.u32 = this.heap.u32;
    this.i32 = this.heap.i32;
  }

  /**
   * @internal
   * Read-side section (enterRead in ../reclaim/epoch.ts). Nests: only the
   * outer pin/unpin touch shared memory, so read() around a loop of
   * lookups pins once.
   */
  pin(): void {
    enterRead(this.heap, this.u32, this.pinWord);
  }

  /** @internal */
  unpin(): void {
    leaveRead(this.heap, this.u32, this.pinWord);
  }

  /** @internal Makes sure the views cover element e (allocated maybe by another agent after our last grow). */
  reach(e: number): void {
    if (e + 64 > this.heap.viewBytes) this.heap.refresh();
  }
}
