/** Jobs shared by bench/map/run.ts and bench/map/worker.ts. */
import type { MessagePort } from 'node:worker_threads';
import type { HashMapHandle, HeapHandle } from '../../src/index.js';

/** map_perf_test analogue and the three htab-mem scenarios. */
export type Scenario = 'perf' | 'overwrite' | 'batch_add_batch_del' | 'add_del_on_diff_cpu';
export const SCENARIOS: readonly Scenario[] = ['perf', 'overwrite', 'batch_add_batch_del', 'add_del_on_diff_cpu'];
export type Peer = 'anyalloc-prealloc' | 'anyalloc-dynamic' | 'sharedmap' | 'jsmap-postmessage';

/** Keys each worker owns (its slice), and operations per round. */
export const KEYS_PER_WORKER = 1024;
export const OPS_PER_ROUND = 64;

/**
 * control (Int32Array over a SharedArrayBuffer):
 *   [0] workers ready   [1] go   [2] stop   [3 + pair] add/delete turn of a pair
 */
export const C_READY = 0;
export const C_GO = 1;
export const C_STOP = 2;
export const C_PAIRS = 3;

export interface MapBenchJob {
  peer: Peer;
  scenario: Scenario;
  index: number;
  workers: number;
  control: SharedArrayBuffer;
  heap?: HeapHandle;
  map?: HashMapHandle;
  /** sharedmap: the map object as cloned (its buffers are shared). */
  shared?: unknown;
  /** jsmap-postmessage: the port to the server worker. */
  port?: MessagePort;
}

export interface MapBenchResult {
  ops: number;
  failures: number;
}
