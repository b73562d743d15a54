/**
 * Shapes shared by every benchmark peer.
 *
 * A pair benchmark measures one allocation followed by one free of `size`
 * bytes, repeated `iters` times, on a single thread. The hot loop lives in
 * the peer's `run` so that each peer's loop is compiled for that peer only.
 */

export interface PairVariant {
  /** Variant name as used on the command line and in tables. */
  readonly name: string;
  /** One line describing what is measured. */
  readonly note?: string;
  /** Sets up state for `size` (pools, rings of live blocks). Not timed. */
  prepare(size: number): void;
  /**
   * The timed loop: `iters` alloc+free pairs of `size` bytes. Returns a
   * checksum derived from the results so the loop cannot be removed.
   */
  run(size: number, iters: number): number;
  /** Releases what `prepare` made (optional). */
  dispose?(): void;
}

/** Creates a fresh, independent instance of a variant. */
export type PairFactory = () => PairVariant;

export interface PairPeerEntry {
  readonly name: string;
  readonly note: string;
  /**
   * Loads the peer module and returns its factory. Rejects with an
   * `Unavailable` error when the peer cannot run here (package missing,
   * not built yet). `lib`: the anyalloc entry file to load instead of this
   * build's (anyalloc's variants only).
   */
  load(lib?: string): Promise<PairFactory>;
}

/** Thrown when a peer cannot be loaded; the harness reports and skips it. */
export class Unavailable extends Error {
  override readonly name = 'Unavailable';
}

/**
 * Multi-worker throughput peers. `setup` runs on the main thread once per
 * measurement and returns plain data (structured-clonable, may contain
 * SharedArrayBuffers) that every worker receives; `attach` runs inside a
 * worker and returns the operations its loop calls.
 */
export interface WorkerOps<H> {
  /** Allocates `size` bytes; returns a handle, or null on failure. */
  alloc(size: number): H | null;
  free(handle: H): void;
  detach(): void;
}

export interface ThroughputPeer<D = unknown, H = unknown> {
  readonly name: string;
  readonly note: string;
  /** Main thread: create the shared state for `workers` workers. */
  setup(workers: number): Promise<{ data: D; close(): void }>;
  /** Worker thread: attach to the shared state. */
  attach(data: D, workerIndex: number): Promise<WorkerOps<H>>;
}
