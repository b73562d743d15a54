/**
 * What bench/map/run.ts (the suite), bench/map/point.ts (one point, in a
 * child process) and bench/map/worker.ts (one client worker) share.
 */
import type { MessagePort } from 'node:worker_threads';
import type { HashMapHandle, HeapHandle } from '../../src/index.js';
import type { Matched } from '../matched.js';

/**
 * `perf`: the map_perf_test analogue (update, lookup, delete of one key,
 * key after key); the other three are the kernel's htab-mem scenarios.
 */
export type Scenario = 'perf' | 'overwrite' | 'batch_add_batch_del' | 'add_del_on_diff_cpu';
export const SCENARIOS: readonly Scenario[] = ['perf', 'overwrite', 'batch_add_batch_del', 'add_del_on_diff_cpu'];

/** The peers; with --baseline also `anyalloc-prealloc@baseline` and `anyalloc-dynamic@baseline`. */
export const MAP_PEERS = ['anyalloc-prealloc', 'anyalloc-dynamic', 'sharedmap', 'jsmap-postmessage'] as const;

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
/**
 * add_del_on_diff_cpu: rounds an adder may run ahead of its deleter, the
 * most its slice holds (KEYS_PER_WORKER / OPS_PER_ROUND / 2). With 1
 * (strict turns) the handover is measured more than the map: runs of one
 * peer ranged from 0.1M to 6M ops/s on 2 cores.
 */
export const PAIR_WINDOW = 8;

/** Map operations one worker does per round of a scenario. */
export function opsPerRound(s: Scenario): number {
  return s === 'perf' ? 3 * PERF_KEYS_PER_ROUND : OPS_PER_ROUND;
}

/**
 * Control words (Int32Array over a SharedArrayBuffer). Each worker's round
 * counters have a 64-byte line of their own (one word per peer) so that
 * publishing them costs no false sharing with the words every worker reads.
 */
export const C_READY = 0;
export const C_GO = 1;
export const C_STOP = 2;
/** Index of the peer being measured now (workers read it before every round). */
export const C_PHASE = 3;
/**
 * add_del_on_diff_cpu, pair p: rounds completed by the adder (word
 * C_PAIR + 32 * p), then the peer of each round in flight (the next
 * PAIR_WINDOW words: the adder picks, the deleter follows), and rounds
 * completed by the deleter (the line after).
 */
export const C_PAIR = 16;
export const C_PAIR_ADDED = 0;
export const C_PAIR_ROUND_PEER = 1;
export const C_PAIR_DELETED = 16;
/** Rounds completed by worker i on peer p: word C_ROUNDS + C_LINE * i + p. */
export const C_ROUNDS = C_PAIR + 32 * (MAX_WORKERS / 2);
export const C_LINE = 16;
export const C_WORDS = C_ROUNDS + C_LINE * MAX_WORKERS;

/** Requests to the JS Map server (server.ts): [op, key, value]. */
export const OP_SET = 0;
export const OP_GET = 1;
export const OP_DELETE = 2;
export const OP_ADD = 3;

/** What a worker needs of one peer. */
export interface PeerJob {
  peer: string;
  /** anyalloc: the build's entry file (undefined: this build), heap and map. */
  lib?: string;
  heap?: HeapHandle;
  map?: HashMapHandle;
  /** sharedmap: the map object as structured-cloned (its buffers are shared). */
  shared?: unknown;
}

export interface MapJob {
  peers: PeerJob[];
  scenario: Scenario;
  index: number;
  control: SharedArrayBuffer;
  /** jsmap-postmessage: this client's port to the server, and the words the server raises after each reply. */
  port?: MessagePort;
  replied?: SharedArrayBuffer;
}

export interface MapWorkerResult {
  /** Operations that did not do what the scenario expects (a lookup missing its key, ...). */
  failures: number;
  error?: string;
}

/** One point: a scenario at a worker count, its peers taking turns. */
export interface PointSpec {
  scenario: Scenario;
  workers: number;
  peers: string[];
  cycles: number;
  warmupCycles: number;
  windowMs: number;
  /** Entry file of the baseline build, for the `@baseline` peers. */
  baseline?: string;
}

/** values: ops/s of each peer in each measured cycle. */
export interface PointResult extends Matched {
  scenario: Scenario;
  workers: number;
  /** Largest map.memoryBytes() seen at the end of a peer's windows (anyalloc peers; sharedmap: its buffer). */
  peakMapBytes: Record<string, number>;
  failures: number;
  error?: string;
}

/** One sample of the memory timeline (point.ts measureMemory). */
export interface MemorySample {
  mode: 'prealloc' | 'dynamic';
  phase: string;
  /** Map operations done so far, and milliseconds since the mode's start. */
  ops: number;
  ms: number;
  committedBytes: number;
  usedBytes: number;
  mapBytes: number;
  /** Keys and values of the live entries: what the program asked to keep. */
  liveBytes: number;
}

export interface MemoryResult {
  maxEntries: number;
  /** map.memoryBytes() and heap pages in use with 10% of maxEntries filled. */
  atTenPercent: Record<'prealloc' | 'dynamic', { mapBytes: number; usedBytes: number }>;
  samples: MemorySample[];
}
