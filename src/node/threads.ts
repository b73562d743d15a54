/**
 * Releasing the slots of pool threads without the pool's help.
 *
 * A worker pool (piscina, tinypool, your own) starts and terminates
 * threads on its own schedule; a thread that attached the heap when it
 * loaded never detaches, since terminate() runs no code in it. Two halves
 * fix that without touching the pool:
 *
 * - releaseExitedWorkers(heap), in the thread that creates the pool,
 *   listens to Node's process 'worker' event (emitted in a thread for every
 *   Worker that thread creates) and, on each such Worker's 'exit', releases
 *   the slot that thread held.
 * - attachInWorker(handle), in the pool's threads, attaches and records
 *   which slot and generation this thread took, under its threadId, in a
 *   small shared table that travels in the handle.
 *
 * The thread table: a SharedArrayBuffer of 8-word rows (Int32Array).
 *
 *   +-------+--------+--------+------+-----+-------+
 *   | state | thread | parent | slot | gen | (3)   |
 *   +-------+--------+--------+------+-----+-------+
 *
 * state: FREE -> BUSY (cas by the attaching thread) -> PENDING (store,
 *   after thread and parent) -> HELD (store, after slot and gen). Only the
 *   row's own thread moves it while the thread lives; once the thread has
 *   exited, the watcher that saw the exit moves it HELD/PENDING -> BUSY
 *   (cas) -> FREE. A thread frees its own rows of slots it no longer holds
 *   (it detached) when it attaches again.
 * thread: the attaching thread's threadId (unique in the process, never
 *   reused).
 * parent: the threadId of the thread that created it, as far as anyalloc
 *   knows (-1 unknown): when a thread exits, Node stops and joins its own
 *   workers first, so the watcher of that exit releases the rows of its
 *   descendants too; their own watcher died with it.
 * slot, gen: the slot this thread took and that slot's generation; the
 *   release passes both, so a slot the thread detached, or that another
 *   agent has taken since, is left alone.
 *
 * A thread terminated between the slot claim inside Heap.attach and the
 * store that records it (a few instructions) leaves a PENDING row; its
 * slot is found by the owner word the thread gave Heap.attach (its thread
 * id + 1, published with the slot) and released like the others. A
 * PENDING row with no such slot (it died before taking one) is counted as
 * `unrecorded`.
 */
import { Worker, getEnvironmentData, isMainThread, setEnvironmentData, threadId } from 'node:worker_threads';
import { Heap, type HeapHandle } from '../index.js';
import { rangeError, typeError } from '../errors.js';

/** A heap handle that also carries the thread table: what pool threads pass to attachInWorker. */
export type ThreadsHandle = HeapHandle & {
  /** The shared table where each thread records the slot it took. */
  readonly threads: SharedArrayBuffer;
};

/** One thread's exit, as releaseExitedWorkers reports it. */
export interface ThreadExit {
  /** The exited thread's threadId. */
  threadId: number;
  /** The slot it had recorded. */
  slot: number;
  /** That slot's generation. */
  gen: number;
  /** True when the slot had to be released; false when the thread had detached (or the slot was taken again). */
  released: boolean;
}

/** Options of releaseExitedWorkers. */
export interface ReleaseExitedOptions {
  /** Hears about every recorded slot of every exited thread. */
  onExit?: (exit: ThreadExit) => void;
}

/** Counts kept by a watcher. */
export interface ThreadWatchStats {
  /** Workers this thread created since the watch began. */
  workersSeen: number;
  /** Slots released after their thread exited without detaching. */
  released: number;
  /** Exited threads' slots that were already detached (or taken again): nothing to do. */
  clean: number;
  /** Threads that exited inside attachInWorker, between the slot claim and its record: their slot stays taken. */
  unrecorded: number;
}

/** What releaseExitedWorkers returns. */
export interface ThreadWatch {
  /** The handle to give the pool's threads (workerData): attachInWorker(handle) there. Heap.attach accepts it too. */
  readonly handle: ThreadsHandle;
  /** The counts so far. */
  stats(): ThreadWatchStats;
  /** Stops watching: workers created from now on are not watched, exits not yet seen release nothing. */
  stop(): void;
}

/** Options of attachInWorker. */
export interface AttachInWorkerOptions {
  /**
   * How long to wait, in milliseconds, for a free slot when all are taken
   * (default 5000). A pool may start a thread before a terminated one's
   * 'exit' has released its slot; the wait rides that out.
   */
  waitMs?: number;
}

const ROW_WORDS = 8;
const R_STATE = 0;
const R_THREAD = 1;
const R_PARENT = 2;
const R_SLOT = 3;
const R_GEN = 4;
const FREE = 0;
const BUSY = 1;
const PENDING = 2;
const HELD = 3;

/** @internal The thread table's row layout (above), for tests that stage a thread dying mid-attach. */
export const THREAD_ROW = { WORDS: ROW_WORDS, STATE: R_STATE, THREAD: R_THREAD, FREE, PENDING } as const;

/** Environment data key: the threadId of the nearest thread that watches its workers (inherited by new workers). */
const PARENT_KEY = 'anyalloc.node.watcherThread';

/** The thread table of each heap this thread knows (made by the watcher, or received in a handle). */
const tables = new WeakMap<Heap, Int32Array>();
/** This thread's watcher of each heap. */
const watches = new WeakMap<Heap, ThreadWatch>();

function newTable(heap: Heap): Int32Array {
  // Recorded rows are at most one per slot; rows of threads still
  // attaching, or that detached and live on, take the rest.
  const rows = Math.max(64, heap.maxSlots * 4);
  return new Int32Array(new SharedArrayBuffer(rows * ROW_WORDS * 4));
}

/**
 * Watches, from this thread, every Worker this thread creates from now on,
 * and once one has exited releases the slot it had attached with
 * attachInWorker (and those of the workers it had started itself). Call it
 * before creating the pool, and give the pool's threads `.handle`.
 * Calling it again for the same heap returns the same watch.
 */
export function releaseExitedWorkers(heap: Heap, options: ReleaseExitedOptions = {}): ThreadWatch {
  const existing = watches.get(heap);
  if (existing !== undefined) return existing;
  let table = tables.get(heap);
  if (table === undefined) {
    table = newTable(heap);
    tables.set(heap, table);
  }
  const t = table;
  const counts: ThreadWatchStats = { workersSeen: 0, released: 0, clean: 0, unrecorded: 0 };
  let stopped = false;

  const onExit = (exited: number): void => {
    if (stopped || !heap.attached) return;
    const gone = descendants(t, exited);
    for (let r = 0; r < t.length; r += ROW_WORDS) {
      if (!gone.has(Atomics.load(t, r + R_THREAD))) continue;
      const st = Atomics.load(t, r + R_STATE);
      if (st !== HELD && st !== PENDING) continue;
      if (Atomics.compareExchange(t, r + R_STATE, st, BUSY) !== st) continue;
      if (st === PENDING) {
        // It died between taking its slot and recording it: the slot row
        // names it (the owner it gave Heap.attach), published with the slot.
        const tid = Atomics.load(t, r + R_THREAD);
        const found = heap.slots().find((s) => s.owner === tid + 1 && s.state === 'attached' && !s.self);
        if (found === undefined) {
          counts.unrecorded++;
        } else {
          const released = heap.releaseSlot(found.slot, found.gen);
          if (released) counts.released++;
          else counts.clean++;
          options.onExit?.({ threadId: tid, slot: found.slot, gen: found.gen, released });
        }
      } else {
        const slot = Atomics.load(t, r + R_SLOT);
        const gen = Atomics.load(t, r + R_GEN) >>> 0;
        // Never our own slot: if the thread's slot came to us, it had detached.
        const released = slot !== heap.slot && heap.releaseSlot(slot, gen);
        if (released) counts.released++;
        else counts.clean++;
        options.onExit?.({ threadId: Atomics.load(t, r + R_THREAD), slot, gen, released });
      }
      Atomics.store(t, r + R_STATE, FREE);
    }
  };

  const onWorker = (w: Worker): void => {
    if (stopped) return;
    counts.workersSeen++;
    // threadId reads -1 once the worker has exited: keep it now.
    const id = w.threadId;
    w.once('exit', () => onExit(id));
  };
  process.on('worker', onWorker);
  // Workers created from here on inherit this: they record us as their parent.
  setEnvironmentData(PARENT_KEY, threadId);

  const watch: ThreadWatch = {
    handle: { ...heap.handle, threads: t.buffer as SharedArrayBuffer },
    stats: () => ({ ...counts }),
    stop: () => {
      if (stopped) return;
      stopped = true;
      process.off('worker', onWorker);
      watches.delete(heap);
    },
  };
  watches.set(heap, watch);
  return watch;
}

/** `root` and every thread recorded as created, directly or not, by it. */
function descendants(t: Int32Array, root: number): Set<number> {
  const gone = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (let r = 0; r < t.length; r += ROW_WORDS) {
      const st = Atomics.load(t, r + R_STATE);
      if (st !== HELD && st !== PENDING) continue;
      const id = Atomics.load(t, r + R_THREAD);
      if (!gone.has(id) && gone.has(Atomics.load(t, r + R_PARENT))) {
        gone.add(id);
        grew = true;
      }
    }
  }
  return gone;
}

/**
 * Attaches this worker thread to the heap of `handle` (from
 * releaseExitedWorkers(heap).handle) and records its slot under this
 * thread's threadId, so that the watcher releases the slot once this thread
 * has exited, however it ends. Waits up to `waitMs` for a free slot. This
 * thread's own workers are watched from here on (the same as calling
 * releaseExitedWorkers on the returned heap), so nested pools work too.
 * A handle with a reserved slot (heap.reserveSlot(), startWorker) is only
 * attached: its starter watches it.
 */
export function attachInWorker(handle: ThreadsHandle | HeapHandle, options: AttachInWorkerOptions = {}): Heap {
  const waitMs = options.waitMs ?? 5000;
  if (!Number.isFinite(waitMs) || waitMs < 0) throw rangeError('out-of-range', `waitMs must be a number >= 0, got ${String(waitMs)}`);
  if (handle !== null && typeof handle === 'object' && handle.slot !== undefined) return Heap.attach(handle);
  const buffer = handle !== null && typeof handle === 'object' ? (handle as Partial<ThreadsHandle>).threads : undefined;
  if (!(buffer instanceof SharedArrayBuffer)) {
    throw typeError('bad-handle', 'attachInWorker needs the handle of releaseExitedWorkers(heap) (it carries the thread table); got a handle without one');
  }
  if (isMainThread) throw rangeError('unsupported', 'attachInWorker is for worker threads; the main thread uses Heap.attach');
  const t = new Int32Array(buffer);
  const row = claimRow(t);
  let heap: Heap;
  try {
    heap = attachWaiting(handle, waitMs);
  } catch (e) {
    Atomics.store(t, row + R_STATE, FREE);
    throw e;
  }
  Atomics.store(t, row + R_SLOT, heap.slot);
  Atomics.store(t, row + R_GEN, heap.slotGen | 0);
  Atomics.store(t, row + R_STATE, HELD);
  forgetDetached(t, row, heap);
  tables.set(heap, t);
  releaseExitedWorkers(heap);
  return heap;
}

/** Takes a free row and publishes this thread's id and parent in it (PENDING). */
function claimRow(t: Int32Array): number {
  const inherited = getEnvironmentData(PARENT_KEY);
  const parent = typeof inherited === 'number' ? inherited : -1;
  for (let r = 0; r < t.length; r += ROW_WORDS) {
    if (Atomics.load(t, r + R_STATE) !== FREE) continue;
    if (Atomics.compareExchange(t, r + R_STATE, FREE, BUSY) !== FREE) continue;
    Atomics.store(t, r + R_THREAD, threadId);
    Atomics.store(t, r + R_PARENT, parent);
    Atomics.store(t, r + R_STATE, PENDING);
    return r;
  }
  throw rangeError('no-slot', `attachInWorker: the thread table is full (${t.length / ROW_WORDS} rows)`);
}

/** Frees this thread's other rows whose slot it no longer holds (it detached from them). */
function forgetDetached(t: Int32Array, mine: number, heap: Heap): void {
  let held: Set<string> | undefined;
  for (let r = 0; r < t.length; r += ROW_WORDS) {
    if (r === mine || Atomics.load(t, r + R_THREAD) !== threadId || Atomics.load(t, r + R_STATE) !== HELD) continue;
    held ??= new Set(heap.slots().filter((s) => s.state === 'attached').map((s) => `${s.slot}:${s.gen}`));
    if (held.has(`${Atomics.load(t, r + R_SLOT)}:${Atomics.load(t, r + R_GEN) >>> 0}`)) continue;
    Atomics.compareExchange(t, r + R_STATE, HELD, FREE);
  }
}

/** Heap.attach, retrying while every slot is taken (a terminated thread's release may be on its way). */
function attachWaiting(handle: HeapHandle, waitMs: number): Heap {
  const deadline = Date.now() + waitMs;
  let pause = 1;
  let sleeper: Int32Array | undefined;
  for (;;) {
    try {
      return Heap.attach(handle, { owner: threadId + 1 });
    } catch (e) {
      if (!(e instanceof RangeError) || !e.message.startsWith('no free worker slot') || Date.now() >= deadline) throw e;
    }
    sleeper ??= new Int32Array(new SharedArrayBuffer(4));
    Atomics.wait(sleeper, 0, 0, Math.min(pause, Math.max(1, deadline - Date.now())));
    pause = Math.min(pause * 2, 16);
  }
}
