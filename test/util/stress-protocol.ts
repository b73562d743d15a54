/**
 * What the stress test's main thread and its workers share: the job a
 * worker gets, the result it posts, and the encoding of the shared slot
 * array through which blocks change hands.
 *
 * Slots: a BigInt64Array in its own SharedArrayBuffer (not in the heap, so
 * the slots never move and need no allocator). A slot is 0 (empty) or one
 * block, packed so a single Atomics.exchange hands over everything needed
 * to check and free it:
 *
 *    63          49 48          32 31                          0
 *   +--------------+--------------+-----------------------------+
 *   | stamp (15 b) | size (17 b)  | pointer (byte offset)       |
 *   +--------------+--------------+-----------------------------+
 *
 * stamp = origin | (serial << ORIGIN_BITS): origin = round * workers +
 * worker says who allocated the block and in which round; serial is the
 * allocating worker's allocation count, mod 2^(15 - ORIGIN_BITS). The
 * stamp is mixed into the block's cookie.
 */
import type { AllocatorHandle, HeapHandle } from '../../src/index.js';

export const ORIGIN_BITS = 6;
/** Most origins (round * workers + worker) the stamp can tell apart. */
export const MAX_ORIGINS = 1 << ORIGIN_BITS;
export const MAX_BLOCK_SIZE = (1 << 17) - 1;

export interface StressJob {
  heap: HeapHandle;
  alloc: AllocatorHandle;
  /** BigInt64Array slots, see above. */
  slots: SharedArrayBuffer;
  /** The run's seed (for messages); the worker's own stream is deriveSeed(seed, round, worker). */
  seed: number;
  round: number;
  worker: number;
  workers: number;
  iterations: number;
  /** Blocks a worker holds privately at once. */
  localBlocks: number;
  /** 0: bucketed allocator; else the fixed allocator's unit size. */
  fixedUnit: number;
  /** Chance that an allocation in bucketed mode is large (5000..70000 bytes). */
  largeChance: number;
  /** Attach with { nowait: true }: alloc may return 0 until a microtask refills. */
  nowait: boolean;
}

export interface StressResult {
  worker: number;
  allocs: number;
  largeAllocs: number;
  frees: number;
  /** Frees of blocks another worker allocated (this round or an earlier one). */
  remoteFrees: number;
  /** Frees of blocks allocated in an earlier round (by workers long gone). */
  earlierRoundFrees: number;
  /** Blocks received from the shared slots. */
  received: number;
  /** Microtask yields (deferred refill/trim ran). */
  yields: number;
  /** Detach/re-attach cycles of the allocator inside the run. */
  reattaches: number;
  /** nowait allocations that returned 0 (each then retried after a microtask). */
  nowaitZeros: number;
  /** Allocations per bucket (index 11: large) or [fixed]. */
  perClass: number[];
}

export function packBlock(p: number, size: number, stamp: number): bigint {
  return (BigInt(((stamp << 17) | size) >>> 0) << 32n) | BigInt(p >>> 0);
}

export function blockPointer(v: bigint): number {
  return Number(v & 0xffff_ffffn);
}

export function blockSize(v: bigint): number {
  return Number((v >> 32n) & 0x1_ffffn);
}

export function blockStamp(v: bigint): number {
  return Number((v >> 49n) & 0x7fffn);
}

export function stampOrigin(stamp: number): number {
  return stamp & (MAX_ORIGINS - 1);
}

export function makeStamp(origin: number, serial: number): number {
  return (origin | ((serial << ORIGIN_BITS) & 0x7fff)) & 0x7fff;
}
