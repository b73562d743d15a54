/**
 * What the remote-free test's main thread and its two workers share: the
 * jobs and the results. The producer allocates and pushes (pointer, size)
 * through an SpscRing; the consumer checks and frees. Block number k (in
 * push order) carries the cookie of (pointer, size, stamp k), so the
 * consumer also checks that blocks arrive in order and were not handed
 * out twice while still in flight.
 */
import type { AllocatorHandle, HeapHandle } from '../../src/index.js';

export interface RemoteJob {
  heap: HeapHandle;
  alloc: AllocatorHandle;
  /** SpscRing buffer. */
  ring: SharedArrayBuffer;
  /** The run's seed (for messages); each worker derives its own stream. */
  seed: number;
  /** Give up (fail) when the run takes longer than this. */
  deadlineMs: number;
}

export interface ProducerJob extends RemoteJob {
  /** Keep allocating until both counts are reached. */
  minAllocs: number;
  minBytes: number;
  /** 0: bucketed sizes (all eleven buckets, some large); else the fixed unit. */
  fixedUnit: number;
  /** Bucketed mode: chance that a block is large (MAX_SMALL + 1 .. MAX_SMALL + pageSize bytes). */
  largeChance: number;
  pageSize: number;
}

export interface ProducerResult {
  allocs: number;
  /** Usable bytes allocated (units, or whole pages for large blocks). */
  bytes: number;
  largeAllocs: number;
  /** Times the ring was full when a block was ready. */
  ringFull: number;
  /** Most blocks in flight (pushed, not yet popped) seen after a push. */
  maxInFlight: number;
}

export interface ConsumerResult {
  frees: number;
  bytes: number;
  /** Times the consumer found the ring empty and slept. */
  naps: number;
}
