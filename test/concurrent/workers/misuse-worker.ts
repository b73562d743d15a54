/**
 * Worker of the misuse tests (see ../misuse.test.ts). Three roles:
 *
 * - freer: frees the object the main thread handed it (the first free of
 *   a cross-worker double free), says so through ctl[FREED], and stays
 *   attached (the object sits in its cache, or its quarantine in debug
 *   mode) until the main thread, having tried the second free, sets
 *   ctl[GO]. Then it detaches.
 * - misuser: commits a list of misuses against its own objects and the
 *   main thread's, records what each threw, sets ctl[MISUSED] and detaches.
 * - bystander: allocates, stamps, checks and frees objects without pause
 *   while the misuse happens in another agent; counts the pairs it made
 *   after ctl[MISUSED] was set (published in ctl[AFTER]) and stops at
 *   ctl[STOP]. Every object's cookie is checked before its free, so an
 *   object handed out twice or scribbled on by the misuse shows up.
 *
 * Each worker posts one MisuseResult and exits. The test imports CTL and
 * the types from here; the body runs only in a worker.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Heap, type AllocatorHandle, type HeapHandle } from '../../../src/index.js';
import { AllocatorMisuseError, DebugAllocator } from '../../../src/alloc/debug.js';
import { checkCookie, fillCookie } from '../../util/cookie.js';
import { Prng } from '../../util/prng.js';

/** Words of the control array (an Int32Array over `ctl`). */
export const CTL = { FREED: 0, GO: 1, MISUSED: 2, STOP: 3, AFTER: 4, WORDS: 8 } as const;

export interface MisuseJob {
  role: 'freer' | 'misuser' | 'bystander';
  heap: HeapHandle;
  alloc: AllocatorHandle;
  /** An allocator of the other mode, for the wrong-allocator misuse. */
  otherAlloc?: AllocatorHandle;
  ctl: SharedArrayBuffer;
  /** freer: the object to free; misuser: a live object of the main thread. */
  p: number;
  /** Size for alloc (undefined: a fixed-size allocator). */
  size?: number;
  seed: number;
  deadlineMs: number;
}

export interface CaughtError {
  what: string;
  name: string;
  code?: string;
  message: string;
}

export interface MisuseResult {
  role: MisuseJob['role'];
  debug: boolean;
  /** Alloc+free pairs made (bystander). */
  pairs: number;
  /** Pairs made after the misuse was announced (bystander). */
  pairsAfter: number;
  /** Errors the misuses threw (misuser), in order; misuses that did not throw appear with name 'none'. */
  caught: CaughtError[];
  /** Problems found by the worker's own checks (empty when all went well). */
  problems: string[];
  /** Objects in the worker's quarantine before it detached (debug mode). */
  quarantined: number;
}

function run(job: MisuseJob): MisuseResult {
  const ctl = new Int32Array(job.ctl);
  const deadline = performance.now() + job.deadlineMs;
  const heap = Heap.attach(job.heap);
  const a = heap.attachAllocator(job.alloc);
  heap.refresh();
  const result: MisuseResult = {
    role: job.role,
    debug: a instanceof DebugAllocator,
    pairs: 0,
    pairsAfter: 0,
    caught: [],
    problems: [],
    quarantined: 0,
  };

  function waitFor(index: number): void {
    while (Atomics.load(ctl, index) === 0) {
      if (performance.now() > deadline) throw new Error(`${job.role}: timed out waiting for ctl[${index}]`);
      Atomics.wait(ctl, index, 0, 20);
    }
  }

  function attempt(what: string, f: () => unknown): void {
    try {
      f();
      result.caught.push({ what, name: 'none', message: '' });
    } catch (e) {
      const err = e as Error;
      result.caught.push({
        what,
        name: err.name,
        ...(err instanceof AllocatorMisuseError ? { code: err.code } : {}),
        message: err.message,
      });
    }
  }

  function quarantined(): number {
    return a instanceof DebugAllocator ? a.quarantined : 0;
  }

  if (job.role === 'freer') {
    a.free(job.p);
    Atomics.store(ctl, CTL.FREED, 1);
    Atomics.notify(ctl, CTL.FREED);
    waitFor(CTL.GO);
    result.quarantined = quarantined();
  } else if (job.role === 'misuser') {
    const x = a.alloc(job.size);
    if (x === 0) throw new Error('misuser: alloc returned 0');
    a.free(x);
    attempt('double free of its own object', () => a.free(x));
    attempt('unaligned free of a live object of the main thread', () => a.free(job.p + 8));
    attempt('interior pointer of a live object of the main thread', () => a.free(job.p + 16));
    attempt('negative pointer', () => a.free(-16));
    attempt('NaN pointer', () => a.free(NaN));
    attempt('NaN size', () => a.alloc(NaN));
    if (job.otherAlloc !== undefined) {
      const b = heap.attachAllocator(job.otherAlloc);
      const y = b.alloc(64);
      attempt('object of another allocator', () => a.free(y));
      b.free(y);
      b.detach();
    }
    result.quarantined = quarantined();
    Atomics.store(ctl, CTL.MISUSED, 1);
  } else {
    const rng = new Prng(job.seed);
    const live: { p: number; size: number; stamp: number }[] = [];
    let stamp = 0;
    const release = (k: number): void => {
      const [o] = live.splice(k, 1);
      heap.refresh();
      const bad = checkCookie(heap.i32, heap.u8, o!.p, o!.size, o!.stamp);
      if (bad !== null) result.problems.push(`cookie broken before free: ${bad}`);
      a.free(o!.p);
    };
    while (Atomics.load(ctl, CTL.STOP) === 0) {
      if (performance.now() > deadline) {
        result.problems.push('bystander: deadline passed before STOP');
        break;
      }
      const ask = job.size === undefined ? undefined : rng.between(1, 300);
      const p = a.alloc(ask);
      if (p === 0) {
        result.problems.push('bystander: alloc returned 0');
        break;
      }
      const bytes = ask ?? a.unitSize;
      heap.refresh();
      fillCookie(heap.i32, heap.u8, p, bytes, ++stamp);
      live.push({ p, size: bytes, stamp });
      if (live.length > 8) release(rng.below(live.length));
      result.pairs++;
      if (Atomics.load(ctl, CTL.MISUSED) !== 0) {
        result.pairsAfter++;
        if ((result.pairsAfter & 63) === 0) Atomics.store(ctl, CTL.AFTER, result.pairsAfter);
      }
    }
    Atomics.store(ctl, CTL.AFTER, result.pairsAfter);
    while (live.length > 0) release(live.length - 1);
    result.quarantined = quarantined();
  }

  try {
    a.detach();
  } catch (e) {
    result.problems.push(`detach threw: ${(e as Error).message}`);
  }
  heap.detach();
  return result;
}

// The test imports CTL and the types from this module; only a worker runs it.
if (!isMainThread) parentPort!.postMessage(run(workerData as MisuseJob));
