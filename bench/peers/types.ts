/**
 * Shapes shared by every benchmark peer (their names and notes are in
 * index.ts).
 *
 * A pair variant measures one allocation followed by one free of `size`
 * bytes, repeated `iters` times, on a single thread. The hot loop lives in
 * the peer's `run` so that each peer's loop is compiled for that peer only.
 */
export interface PairVariant {
  /** Sets up state for `size` (pools, rings of live blocks). Not timed. */
  prepare(size: number): void;
  /** The timed loop; returns a checksum of the results so the loop cannot be removed. */
  run(size: number, iters: number): number;
  /** Releases what `prepare` made. */
  dispose?(): void;
}

/** Creates a fresh, independent instance of a variant. */
export type PairFactory = () => PairVariant;

export interface PairPeerEntry {
  readonly name: string;
  readonly note: string;
  /**
   * Loads the peer module and returns its factory; rejects with
   * `Unavailable` when the peer cannot run here (package missing, not
   * built). `lib`: the anyalloc entry file to load instead of this build's
   * (anyalloc's variants only).
   */
  load(lib?: string): Promise<PairFactory>;
}

/** Thrown when a peer cannot be loaded; the harness reports and skips it. */
export class Unavailable extends Error {
  override readonly name = 'Unavailable';
}

/** What a throughput worker's loop calls. */
export interface WorkerOps<H> {
  /** Allocates `size` bytes; returns a handle, or null on failure. */
  alloc(size: number): H | null;
  free(handle: H): void;
  detach(): void;
}

/**
 * A multi-worker throughput peer: `setup` runs on the main thread once per
 * run and returns structured-clonable data (SharedArrayBuffers included)
 * that every worker receives; `attach` runs inside a worker.
 */
export interface ThroughputPeer<D = unknown, H = unknown> {
  setup(workers: number): Promise<{ data: D; close(): void }>;
  attach(data: D, workerIndex: number): Promise<WorkerOps<H>>;
}
