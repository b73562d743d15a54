/**
 * What bench/map/run.ts (the suite), bench/map/point.ts (one measurement,
 * in a child process) and bench/map/worker.ts (one client worker) share.
 */
import type { MessagePort } from 'node:worker_threads';
import type { HashMapHandle, HeapHandle } from '../../src/index.js';

/**
 * `perf`: the map_perf_test analogue (update, lookup, delete of one key,
 * key after key); the other three are the kernel's htab-mem scenarios.
 */
export type Scenario = 'perf' | 'overwrite' | 'batch_add_batch_del' | 'add_del_on_diff_cpu';
export const SCENARIOS: readonly Scenario[] = ['perf', 'overwrite', 'batch_add_batch_del', 'add_del_on_diff_cpu'];

export type Peer = 'anyalloc-prealloc' | 'anyalloc-dynamic' | 'sharedmap' | 'jsmap-postmessage';
export const PEERS: readonly Peer[] = ['anyalloc-prealloc', 'anyalloc-dynamic', 'sharedmap', 'jsmap-postmessage'];

export const PEER_NOTES: Record<Peer, string> = {
  'anyalloc-prealloc': "anyalloc `HashMap`, `mode: 'prealloc'`: every element reserved at create",
  'anyalloc-dynamic': "anyalloc `HashMap`, `mode: 'dynamic'`: elements taken from the allocator on insert, freed after a grace period",
  sharedmap:
    '`sharedmap` 1.2 (npm): fixed-size coalesced hash map of strings in a SharedArrayBuffer with line locks; ' +
    'keys `"k<n>"`, values numbers (it stores them as strings); delete takes its exclusive map lock',
  'jsmap-postmessage':
    'a JS `Map` owned by one extra worker (the server); clients send each operation as a postMessage ' +
    'and wait for the reply: one round trip per operation, nothing batched or pipelined',
};

/** How the anyalloc peers pass keys: `Uint8Array` keys (update/lookup/delete) or the number-key calls. */
export type KeyApi = 'bytes' | 'number';

/** Keys each worker owns (its slice). */
export const KEYS_PER_WORKER = 1024;
/** htab-mem: map operations per round per worker. */
export const OPS_PER_ROUND = 64;
/** map_perf_test analogue: keys per round (update + lookup + delete each). */
export const PERF_KEYS_PER_ROUND = 16;
export const MAX_WORKERS = 16;
/** maxEntries of the anyalloc maps: room for every worker's slice at 16 workers. */
export const MAX_ENTRIES = MAX_WORKERS * KEYS_PER_WORKER;
/** Worker slots of the anyalloc heap (workers plus the main thread, with room to spare). */
export const HEAP_MAX_WORKERS = 20;

/** Most rounds of keys a pair can have in flight: its slice holds KEYS_PER_WORKER / OPS_PER_ROUND. */
export const MAX_PAIR_WINDOW = KEYS_PER_WORKER / OPS_PER_ROUND / 2;

/** Map operations one worker does per round of a scenario. */
export function opsPerRound(s: Scenario): number {
  return s === 'perf' ? 3 * PERF_KEYS_PER_ROUND : OPS_PER_ROUND;
}

/**
 * Control words (Int32Array over a SharedArrayBuffer). Each worker's round
 * counter has a 64-byte line of its own so that publishing it costs no
 * false sharing with the words every worker reads.
 */
export const C_READY = 0;
export const C_GO = 1;
export const C_STOP = 2;
/**
 * add_del_on_diff_cpu: rounds completed by the adder of pair p (word
 * C_PAIR + 32 * p) and by its deleter (the line after it).
 */
export const C_PAIR = 16;
export const C_PAIR_ADDED = 0;
export const C_PAIR_DELETED = 16;
/** Rounds completed by worker i, word C_ROUNDS + 16 * i. */
export const C_ROUNDS = C_PAIR + 32 * (MAX_WORKERS / 2);
export const C_LINE = 16;
export const C_WORDS = C_ROUNDS + C_LINE * MAX_WORKERS;

export interface MapBenchJob {
  peer: Peer;
  scenario: Scenario;
  index: number;
  workers: number;
  keys: KeyApi;
  /** add_del_on_diff_cpu: how many rounds the adder may be ahead of the deleter (1: strict turns). */
  pairWindow: number;
  control: SharedArrayBuffer;
  heap?: HeapHandle;
  map?: HashMapHandle;
  /** sharedmap: the map object as structured-cloned (its buffers are shared). */
  shared?: unknown;
  /** jsmap-postmessage: this client's port to the server worker. */
  port?: MessagePort;
}

export interface MapBenchResult {
  rounds: number;
  /** Operations that did not do what the scenario expects (a lookup missing its key, ...). */
  failures: number;
  error?: string;
}

/** What one child process (bench/map/point.ts) measures. */
export interface PointSpec {
  peer: Peer;
  scenario: Scenario;
  workers: number;
  warmupMs: number;
  durationMs: number;
  keys: KeyApi;
  pairWindow: number;
}

export interface PointResult extends PointSpec {
  opsPerSec: number;
  perWorker: number[];
  /** Memory samples taken every ~10 ms while measuring (bytes). */
  mapBytes: number[];
  heapUsedBytes: number[];
  /** Process CPU time / (wall time x workers) over the measured window. */
  cpuPerWorker: number;
  failures: number;
}

export interface FillResult {
  maxEntries: number;
  filled: number;
  prealloc: { mapBytes: number; heapUsedBytes: number };
  dynamic: { mapBytes: number; heapUsedBytes: number };
}
