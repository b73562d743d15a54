/**
 * What bench/map/interleave.ts and bench/map/interleave-worker.ts share
 * beyond ./protocol.ts: the matched-windows measurement.
 */
import type { HashMapHandle, HeapHandle } from '../../src/index.js';
import { MAX_PAIR_WINDOW, type KeyApi, type Peer, type Scenario } from './protocol.js';

/** Control word: index of the peer the parent measures now (workers read it before every round). */
export const I_PHASE = 3;
/**
 * add_del_on_diff_cpu: the peer of round r of pair p, at word
 * C_PAIR + 32 * p + I_ROUND_PEER + r % I_ROUND_PEERS (in the adder's line,
 * after its counter). A pair has at most MAX_PAIR_WINDOW rounds in flight.
 */
export const I_ROUND_PEER = 1;
export const I_ROUND_PEERS = MAX_PAIR_WINDOW;

/** The peers that live in shared memory and can take turns in the same workers. */
export type InProcessPeer = Exclude<Peer, 'jsmap-postmessage'>;

export interface InterleaveSpec {
  scenario: Scenario;
  workers: number;
  peers: InProcessPeer[];
  /** Cycles: each gives every peer one window, in alternating order. */
  cycles: number;
  windowMs: number;
  /** Cycles run before the measured ones (JIT and caches settle). */
  warmupCycles: number;
  keys: KeyApi;
  pairWindow: number;
}

export interface InterleaveResult extends InterleaveSpec {
  /** ops/s of each peer in each measured cycle: rates[peer][cycle]. */
  rates: number[][];
  failures: number;
}

export interface InterleaveJob {
  peers: InProcessPeer[];
  setups: { heap?: HeapHandle; map?: HashMapHandle; shared?: unknown }[];
  scenario: Scenario;
  index: number;
  keys: KeyApi;
  pairWindow: number;
  control: SharedArrayBuffer;
}
