/**
 * Jobs and results of the hash map's worker tests (map-parallel,
 * map-reuse, map-linearizability, map-grace) and the value encodings the
 * workers and the main thread both check.
 */
import type { HashMapHandle, HeapHandle } from '../../src/index.js';
import type { MapOp } from './lincheck.js';

interface MapJobBase {
  heap: HeapHandle;
  map: HashMapHandle;
  /** The run's seed, for messages. */
  seed: number;
}

/* --------------------------- test_map_parallel ---------------------------- */

export interface ParallelJob extends MapJobBase {
  phase: 'insert' | 'delete';
  /** This worker owns keys k with k % workers === index. */
  index: number;
  workers: number;
  keys: number;
  /** Barrier buffer shared by the workers of the phase. */
  barrier: SharedArrayBuffer;
  /** Read back right after this worker's writes, while the others still write (else after a barrier). */
  readersDuringWrites: boolean;
}

export interface ParallelResult {
  /** insert: NOEXIST inserts that returned OK; delete: deletes that returned OK. */
  done: number;
  /** insert: EXIST updates that returned OK. */
  updated: number;
  /** Unexpected statuses, first few ("insert 17: -7"). */
  bad: string[];
  /** Deferred frees still waiting when the worker detached (drainDeferred gave up): must be 0. */
  undrained: number;
}

/** 8-byte parallel-test value: word 0 the key, word 1 how many times it was written (1 insert, 2 update). */
export const PARALLEL_VALUE_SIZE = 8;

/**
 * Per-worker values under parallel workers (same worker script): each
 * worker increments its own slot of random keys of a perWorker map, `ops`
 * times, starting together on the barrier.
 */
export interface PerWorkerCountJob extends MapJobBase {
  phase: 'count';
  index: number;
  workers: number;
  keys: number;
  ops: number;
  barrier: SharedArrayBuffer;
}

export interface PerWorkerCountResult {
  /** Increments this worker made, per key. */
  counts: number[];
  /** Sums that went down between two reads of this worker, first few. */
  violations: string[];
  /** Deferred frees still waiting when the worker detached (drainDeferred gave up): must be 0. */
  undrained: number;
}

/* ------------------------------- htab_reuse ------------------------------- */

/** Control words of the reuse test (Int32Array over `control`). */
export const REUSE = {
  /** 1 once the writer stops; readers stop when they see it. */
  STOP: 0,
  /** Readers that are ready; the writer starts when all are. */
  READY: 1,
  /** Last generation the writer wrote (for messages). */
  GEN: 2,
  WORDS: 4,
} as const;

export interface ReuseJob extends MapJobBase {
  role: 'writer' | 'reader';
  control: SharedArrayBuffer;
  readers: number;
  /** Writer: how long to run. */
  durationMs: number;
  /** Give up (fail) after this long. */
  deadlineMs: number;
  /** Writer: EXIST updates of each key per round, after the inserts (default 1). */
  rewrites?: number;
}

export interface ReuseWriterResult {
  rounds: number;
  writes: number;
  /** Statuses that were not OK, first few. */
  bad: string[];
  /** Deferred frees still waiting when the worker detached (drainDeferred gave up): must be 0. */
  undrained: number;
  /** The writer's updates of present keys done in place / by a new element (map.updateCounts). */
  inPlace: number;
  replaced: number;
}

export interface ReuseReaderResult {
  lookups: number;
  hits: number;
  /** Iteration walks (getNextKey from null) and keys they returned. */
  walks: number;
  walkedKeys: number;
  /** What a reader must never see, first few. */
  violations: string[];
}

/** The two keys of the reuse test. */
export const REUSE_KEYS = [1, 2] as const;
/**
 * Writes per round with `rewrites` EXIST updates per key: insert both
 * keys (NOEXIST), update both (EXIST) `rewrites` times, alternating; then
 * delete both.
 */
export function reuseWritesPerRound(rewrites: number): number {
  return 2 + 2 * rewrites;
}
/** 64-byte values: a copy torn between two writes shows in some word. */
export const REUSE_VALUE_SIZE = 64;
export const REUSE_KEY_SIZE = 8;

function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 13)) >>> 0;
}

/** Key bytes: word 0 the key number, word 1 a function of it (a torn key shows). */
export function writeReuseKey(dv: DataView, k: number): void {
  dv.setUint32(0, k, true);
  dv.setUint32(4, mix(k, 0x6b6579), true);
}

export function reuseKeyIntact(dv: DataView): boolean {
  return dv.getUint32(4, true) === mix(dv.getUint32(0, true), 0x6b6579);
}

/**
 * Value of key k at generation gen (gen counts every write; round =
 * floor((gen - 1) / writes per round)): word 0 key, word 1 gen,
 * words 2..14 a function of (key, gen, word), word 15 a checksum of all.
 */
export function writeReuseValue(dv: DataView, k: number, gen: number): void {
  dv.setUint32(0, k, true);
  dv.setUint32(4, gen, true);
  let sum = mix(k, gen);
  for (let w = 2; w < 15; w++) {
    const x = mix(gen, k * 16 + w);
    dv.setUint32(4 * w, x, true);
    sum = mix(sum, x);
  }
  dv.setUint32(60, sum, true);
}

/** null when intact, else what is wrong. */
export function reuseValueProblem(dv: DataView): string | null {
  const k = dv.getUint32(0, true);
  const gen = dv.getUint32(4, true);
  let sum = mix(k, gen);
  for (let w = 2; w < 15; w++) {
    const x = dv.getUint32(4 * w, true);
    if (x !== mix(gen, k * 16 + w)) return `word ${w} is not of (key ${k}, gen ${gen}): torn or reused`;
    sum = mix(sum, x);
  }
  if (dv.getUint32(60, true) !== sum) return `checksum of (key ${k}, gen ${gen}) is wrong: torn or reused`;
  return null;
}

export function reuseRound(gen: number, rewrites: number): number {
  return Math.floor((gen - 1) / reuseWritesPerRound(rewrites));
}

/* ---------------------------- linearizability ----------------------------- */

export interface LinJob extends MapJobBase {
  /** This worker's number (0..workers-1). */
  worker: number;
  workers: number;
  /** Histories run back to back; history h uses keys [h * keys, (h + 1) * keys). */
  histories: number;
  opsPerHistory: number;
  keys: number;
  /** LIN_CLOCK_WORDS words: word 0 the logical clock, a Barrier at LIN_BARRIER_WORD. */
  clock: SharedArrayBuffer;
  deadlineMs: number;
}

export interface LinResult {
  /** Per history, this worker's operations in program order. */
  histories: MapOp[][];
  /** Values read that were not well formed (torn), first few. */
  torn: string[];
  /** Deferred frees still waiting when the worker detached (drainDeferred gave up): must be 0. */
  undrained: number;
}

/** The clock buffer: word 0 the clock; a Barrier from this word on (its own cache line). */
export const LIN_BARRIER_WORD = 16;
export const LIN_CLOCK_WORDS = 32;

/** Write ids are unique per (history, worker, operation) and never 0. */
export function linValue(history: number, worker: number, op: number): number {
  return ((history + 1) << 20) | (worker << 12) | (op + 1);
}

/** 16-byte values: [id, key, ~id, mix(id, key)]: a torn copy shows. */
export const LIN_VALUE_SIZE = 16;

export function writeLinValue(dv: DataView, id: number, key: number): void {
  dv.setUint32(0, id, true);
  dv.setUint32(4, key, true);
  dv.setUint32(8, ~id >>> 0, true);
  dv.setUint32(12, mix(id, key), true);
}

export function linValueIntact(dv: DataView, key: number): boolean {
  const id = dv.getUint32(0, true);
  return dv.getUint32(4, true) === key && dv.getUint32(8, true) === (~id >>> 0) && dv.getUint32(12, true) === mix(id, key);
}

/* ------------------------------ grace periods ----------------------------- */

/** Control words of the grace tests. */
export const GRACE = {
  /** The pinned worker: 1 once pinned (and its element read once). */
  PINNED: 0,
  /** Main or the churner: 1 to let the pinned worker unpin and finish. */
  RELEASE: 1,
  /** The pinned worker: value checks that failed while pinned. */
  BAD: 2,
  /** The pinned worker: value checks done while pinned. */
  CHECKS: 3,
  /** The churner: 1 once it has churned while the other was pinned. */
  CHURNED: 4,
  WORDS: 8,
} as const;

export type GraceJob =
  | (MapJobBase & {
      kind: 'churn';
      worker: number;
      ops: number;
      keys: number;
      /** Sample deferredPending every this many operations. */
      sampleEvery: number;
      barrier: SharedArrayBuffer;
      deadlineMs: number;
    })
  | (MapJobBase & {
      /** Pin (map.read), read the value of `key` at its offset, hold it until RELEASE; keep checking it. */
      kind: 'hold';
      control: SharedArrayBuffer;
      key: number;
      /** 'release': unpin when RELEASE is set; 'hang': never unpin (wait to be terminated). */
      until: 'release' | 'hang';
      deadlineMs: number;
    })
  | (MapJobBase & {
      /** Wait until the holder pinned, delete `key`, then churn other keys `ops` times; report what stayed pending. */
      kind: 'churn-while-held';
      control: SharedArrayBuffer;
      key: number;
      ops: number;
      keys: number;
      deadlineMs: number;
    });

export interface ChurnSample {
  op: number;
  pending: number;
  /** map.memoryBytes() (sampled less often: it builds the stats object). */
  memory: number;
}

export interface ChurnResult {
  samples: ChurnSample[];
  /** Deletes that found their key (each retired an element; replaces retired more). */
  deleted: number;
  maxPending: number;
  statuses: Record<string, number>;
  /** Deferred frees still waiting when the worker detached (drainDeferred gave up): must be 0. */
  undrained: number;
}

export interface HoldResult {
  checks: number;
  bad: number;
}

export interface ChurnWhileHeldResult {
  /** Deferred frees pending right after the churn, while the holder was still pinned. */
  pendingWhileHeld: number;
  /** Elements retired while the holder was pinned. */
  retiredWhileHeld: number;
  /** Pending after the holder unpinned and this worker collected. */
  pendingAfter: number;
}

/** Value of the grace tests' held element: every byte a function of the key. */
export function graceByte(key: number, i: number): number {
  return (key * 31 + i * 7 + 1) & 255;
}
