/**
 * Per-worker objects (the kernel's per-CPU mode of bpf_mem_alloc,
 * `bpf_mem_alloc_init(ma, size, true)`): every object holds one copy of
 * `size` bytes per worker slot, allocated and freed as one. Each agent
 * writes its own copy with plain stores, nobody else writes it, and a
 * reader sums (or reads) every slot's copy.
 *
 * Layout of one object: maxWorkers copies, `stride` bytes apart, in slot
 * order. The object is one unit of a fixed-size Allocator whose unit is
 * stride x maxWorkers:
 *
 *    p                p+stride          p+2*stride             p+(n-1)*stride
 *    | slot 0's copy  | slot 1's copy   | slot 2's copy  | ... | slot n-1's |
 *    |<- size ->|pad  |<- size ->|pad   |                      |            |
 *
 * The stride is `size` rounded up to 64 bytes (a cache line) by default,
 * and every object starts on a 64-byte boundary (a slab starts on a page
 * and the unit is a multiple of 64), so no two slots' copies share a cache
 * line: agents incrementing
 * their own copies at the same time do not take the line from each other
 * (false sharing). `packed: true` rounds to 16 instead: 4x less memory for
 * small values, for objects written rarely or by one agent at a time.
 */
import { describe, rangeError as codedRange, typeError as codedType } from '../errors.js';
import type { HeapCore } from '../heap/core.js';
import type { Allocator } from './allocator.js';
import type { AllocatorHandle, AllocatorOptions, AttachOptions, LeakReport } from './types.js';
import { maxUnitSize } from './sizeclass.js';

/** Bytes between two slots' copies by default: one cache line on the CPUs JavaScript runs on. */
const CACHE_LINE = 64;
/** Bytes between two slots' copies with `packed: true`: the allocator's alignment. */
const PACKED = 16;

/**
 * What PerWorkerAllocator needs of a heap: its views and slot, and the
 * creation and attachment of allocators. A Heap is one.
 */
export type PerWorkerHeap = HeapCore & {
  /** Heap.createAllocator. */
  createAllocator(options?: AllocatorOptions): Allocator;
  /** Heap.attachAllocator. */
  attachAllocator(handle: AllocatorHandle, options?: AttachOptions): Allocator;
};

/** Options of PerWorkerAllocator.create. */
export interface PerWorkerAllocatorOptions {
  /**
   * Bytes of each slot's copy, 1 or more. The object holds maxWorkers
   * copies, each rounded up to the stride, and must fit a fixed-size unit
   * (1048576 bytes: the largest slab), so size <= 16384 with 64 workers
   * and cache-line strides.
   */
  size: number;
  /**
   * Copies 16 bytes apart (size rounded up to 16) instead of a cache line
   * (64). Less memory, but neighbouring slots' copies share cache lines,
   * so agents writing their copies at once slow each other. Default false.
   */
  packed?: boolean;
  /** The wrapped allocator's limitBytes (see AllocatorOptions). */
  limitBytes?: number;
  /** The wrapped allocator's lowWatermark. */
  lowWatermark?: number;
  /** The wrapped allocator's highWatermark. */
  highWatermark?: number;
  /** The wrapped allocator's batch. */
  batch?: number;
  /** The wrapped allocator's prefill. */
  prefill?: number;
  /** For the creating agent: see AttachOptions.nowait. */
  nowait?: boolean;
}

/** A structured-cloneable reference to a per-worker allocator, to post to other agents (PerWorkerAllocator.attach takes it). */
export interface PerWorkerAllocatorHandle {
  /** Always 'anyalloc.per-worker-allocator'. */
  readonly kind: 'anyalloc.per-worker-allocator';
  /** The wrapped fixed-size allocator. */
  readonly allocator: AllocatorHandle;
  /** Bytes of each copy, as created. */
  readonly size: number;
  /** Bytes between two slots' copies. */
  readonly stride: number;
}

/** A bad argument's TypeError, with the library's code for it (docs/errors.md). */
function typeError(message: string): TypeError {
  return codedType('bad-argument', message);
}

/** An argument outside its range: a RangeError with the library's code for it. */
function rangeError(message: string): RangeError {
  return codedRange('out-of-range', message);
}

/** Checks that `v` is a safe integer within [min, max] (TypeError / RangeError with a code); returns it. */
function intArg(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw typeError(`${name} must be a safe integer, got ${describe(v)}`);
  if (v < min || v > max) throw rangeError(`${name} must be in [${min}, ${max}], got ${v}`);
  return v;
}

/**
 * An allocator of per-worker objects: each object holds one copy per
 * worker slot (maxWorkers copies), allocated, zeroed and freed as one.
 * `copyOf(p, slot)` is slot's copy, `mine(p)` this agent's: byte offsets
 * into the heap's buffer, read and written through heap.u8/u32/f64.
 *
 *   const counters = PerWorkerAllocator.create(heap, { size: 8 });
 *   const p = counters.alloc();                  // every copy zeroed
 *   heap.u32[counters.mine(p) >>> 2]++;          // in any agent, plain writes
 *   counters.sumU32(p);                          // every slot's copy, summed
 *
 * Each agent writes only its own copy, so no Atomics are needed to count.
 * A reader that sums while agents write sees each copy as of some moment
 * (as a kernel per-CPU counter is read); once the writers have handed over
 * (postMessage, a worker's exit, an Atomics store the reader loads) the sum
 * is exact.
 */
export class PerWorkerAllocator {
  /** The wrapped fixed-size allocator (its stats(), reserve(), collectDeferred()); alloc through this class, which zeroes. */
  readonly allocator: Allocator;
  /** The heap the objects live in. */
  readonly heap: PerWorkerHeap;
  /** Bytes of each slot's copy, as created. */
  readonly size: number;
  /** Bytes between two slots' copies: size rounded up to 64 (16 when packed). */
  readonly stride: number;
  /** Bytes of one object: stride x heap.maxSlots. */
  readonly objectBytes: number;
  /** Worker slots, so copies per object (heap.maxSlots). */
  readonly slots: number;

  private constructor(heap: PerWorkerHeap, allocator: Allocator, size: number, stride: number) {
    this.heap = heap;
    this.allocator = allocator;
    this.size = size;
    this.stride = stride;
    this.slots = heap.maxSlots;
    this.objectBytes = stride * heap.maxSlots;
  }

  /**
   * Creates a per-worker allocator in `heap` (a fixed-size allocator of
   * stride x maxWorkers bytes) and attaches it in this agent. Throws a
   * RangeError when one object would not fit a fixed-size unit.
   */
  static create(heap: PerWorkerHeap, options: PerWorkerAllocatorOptions): PerWorkerAllocator {
    if (options === null || typeof options !== 'object') {
      throw typeError(`PerWorkerAllocator.create needs options with a size, got ${describe(options)}`);
    }
    const packed = options.packed ?? false;
    if (typeof packed !== 'boolean') throw typeError(`packed must be a boolean, got ${describe(packed)}`);
    const maxUnit = maxUnitSize(heap.pageSize);
    const size = intArg('size', options.size, 1, maxUnit);
    const align = packed ? PACKED : CACHE_LINE;
    const stride = Math.ceil(size / align) * align;
    if (stride * heap.maxSlots > maxUnit) {
      throw rangeError(
        `size ${size} needs ${stride} x ${heap.maxSlots} worker slots = ${stride * heap.maxSlots} bytes per object; ` +
          `a fixed-size unit is at most ${maxUnit} (the largest slab): use a smaller size, ` +
          `fewer maxWorkers${!packed && Math.ceil(size / PACKED) * PACKED * heap.maxSlots <= maxUnit ? ', or packed: true' : ''}`,
      );
    }
    // Only the options that keep objects plain and aligned (no debug headers).
    const { limitBytes, lowWatermark, highWatermark, batch, prefill, nowait } = options;
    const allocator = heap.createAllocator({ limitBytes, lowWatermark, highWatermark, batch, prefill, nowait, unitSize: stride * heap.maxSlots });
    return new PerWorkerAllocator(heap, allocator, size, stride);
  }

  /** Attaches, in this agent, a per-worker allocator created elsewhere (from its handle). */
  static attach(heap: PerWorkerHeap, handle: PerWorkerAllocatorHandle, options: AttachOptions = {}): PerWorkerAllocator {
    if (handle === null || typeof handle !== 'object' || handle.kind !== 'anyalloc.per-worker-allocator') {
      throw typeError(`PerWorkerAllocator.attach needs a per-worker allocator handle (.handle), got ${describe(handle)}`);
    }
    const stride = intArg('handle.stride', handle.stride, PACKED, maxUnitSize(heap.pageSize));
    const size = intArg('handle.size', handle.size, 1, stride);
    const allocator = heap.attachAllocator(handle.allocator, options);
    if (!allocator.fixed || allocator.unitFor(1) !== stride * heap.maxSlots) {
      allocator.detach();
      throw rangeError(
        `PerWorkerAllocator.attach: allocator ${handle.allocator.id} has units of ${allocator.unitFor(1)} bytes, ` +
          `not stride x maxWorkers = ${stride * heap.maxSlots}: the handle belongs to another heap or allocator`,
      );
    }
    return new PerWorkerAllocator(heap, allocator, size, stride);
  }

  /** A handle to post to other agents (PerWorkerAllocator.attach(heap, handle) there). */
  get handle(): PerWorkerAllocatorHandle {
    return { kind: 'anyalloc.per-worker-allocator', allocator: this.allocator.handle, size: this.size, stride: this.stride };
  }

  /**
   * Allocates an object and zeroes every slot's copy (as the kernel's
   * per-CPU values start zeroed). Returns its byte offset (64-byte aligned,
   * 16 when packed), or 0 when no memory is available (the allocator's
   * limit, a full heap, or an empty cache with nowait). O(1) plus the
   * zeroing of objectBytes; no JS allocation.
   */
  alloc(): number {
    const p = this.allocator.alloc();
    if (p === 0) return 0;
    const heap = this.heap;
    const end = p + this.objectBytes;
    if (end > heap.viewBytes) heap.refresh();
    heap.u8.fill(0, p, end);
    return p;
  }

  /**
   * Byte offset of worker slot `slot`'s copy of object p: p + slot x stride.
   * The slot must be in [0, maxWorkers); p must be a non-zero 16-byte
   * aligned offset (whether it is a live object of this allocator is
   * checked by free, not here). O(1).
   */
  copyOf(p: number, slot: number): number {
    if ((p >>> 0) !== p || p === 0 || (p & 15) !== 0 || (slot >>> 0) !== slot || slot >= this.slots) this.badCopy('copyOf', p, slot);
    return p + slot * this.stride;
  }

  /** Byte offset of this agent's copy of object p (its copy for heap.slot). O(1). */
  mine(p: number): number {
    const slot = this.heap.slot;
    if ((p >>> 0) !== p || p === 0 || (p & 15) !== 0 || slot < 0) this.badCopy('mine', p, slot);
    return p + slot * this.stride;
  }

  private badCopy(op: string, p: unknown, slot: unknown): never {
    if (op === 'mine' && (slot as number) < 0) throw rangeError(`mine: this agent has detached from the heap (it has no worker slot)`);
    if (typeof p !== 'number' || !Number.isInteger(p)) throw typeError(`${op}: p must be an integer byte offset, got ${describe(p)}`);
    if (p <= 0 || p > 0xffffffff || (p & 15) !== 0) throw rangeError(`${op}(${p}): p must be a non-zero, 16-byte aligned object offset (from alloc)`);
    intArg('slot', slot, 0, this.slots - 1);
    throw rangeError(`${op}(${describe(p)}, ${describe(slot)}): bad arguments`);
  }

  /**
   * Frees object p, every copy at once, from any agent. free(0) does
   * nothing. Bad pointers and double frees throw the allocator's RangeError
   * and change nothing.
   */
  free(p: number): void {
    this.allocator.free(p);
  }

  /**
   * Frees object p after a grace period (Allocator.freeDeferred): for
   * objects that readers in other agents may still be summing.
   */
  freeDeferred(p: number): void {
    this.allocator.freeDeferred(p);
  }

  /**
   * The sum over every slot's copy of the little-endian uint32 at byte
   * `offset` of the copy (a multiple of 4, offset + 4 <= size). Plain
   * reads: each word is read whole. O(maxWorkers), no JS allocation.
   */
  sumU32(p: number, offset = 0): number {
    const at = this.sumStart('sumU32', p, offset, 4);
    const u32 = this.heap.u32;
    const step = this.stride >>> 2;
    let total = 0;
    for (let s = 0, w = at >>> 2; s < this.slots; s++, w += step) total += u32[w]!;
    return total;
  }

  /**
   * The sum over every slot's copy of the float64 at byte `offset` of the
   * copy (a multiple of 8, offset + 8 <= size). Plain reads: the language
   * does not promise that a float64 another agent is writing at that moment
   * is read whole; sum once the writers have handed over for an exact sum.
   */
  sumF64(p: number, offset = 0): number {
    const at = this.sumStart('sumF64', p, offset, 8);
    const f64 = this.heap.f64;
    const step = this.stride >>> 3;
    let total = 0;
    for (let s = 0, w = at >>> 3; s < this.slots; s++, w += step) total += f64[w]!;
    return total;
  }

  /** Checks a sum's arguments and the views; returns the byte offset of slot 0's value. */
  private sumStart(op: string, p: number, offset: number, width: number): number {
    if ((p >>> 0) !== p || p === 0 || (p & 15) !== 0) this.badCopy(op, p, 0);
    if ((offset >>> 0) !== offset || offset % width !== 0 || offset + width > this.size) {
      intArg('offset', offset, 0, this.size - width);
      throw rangeError(`${op}: offset must be a multiple of ${width}, got ${offset}`);
    }
    if (p + this.objectBytes > this.heap.viewBytes) this.heap.refresh();
    return p + offset;
  }

  /** Gives this agent's cached objects back to the shared pool and stops its use here (Allocator.detach). */
  detach(): void {
    this.allocator.detach();
  }

  /**
   * Destroys the allocator once every other agent has detached
   * (Allocator.destroy): returns the report of objects still allocated.
   */
  destroy(): LeakReport {
    return this.allocator.destroy();
  }
}
