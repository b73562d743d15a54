/**
 * The soak's periodic checks besides kill chaos: misuse cases the
 * allocators must refuse without harm, and a linearizability batch on a
 * map of its own in the soak's heap.
 */
import { HashMap, type Allocator, type Heap } from '../../src/index.js';
import { checkMapHistory } from '../util/lincheck.js';
import { LIN_CLOCK_WORDS, LIN_VALUE_SIZE, type LinJob, type LinResult } from '../util/map-jobs.js';
import { runWorkerGroup } from '../util/workers.js';
import { liveElementsOf } from '../util/chaos.js';

/** What one misuse case did: its name and, when the allocator did not refuse it as it must, why. */
export interface MisuseOutcome {
  name: string;
  problem: string | null;
}

function expectRangeError(name: string, fn: () => void, message: RegExp): MisuseOutcome {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof RangeError)) return { name, problem: `threw ${String(err)}, not a RangeError` };
    if (!message.test(err.message)) return { name, problem: `RangeError "${err.message}" does not say ${message}` };
    return { name, problem: null };
  }
  return { name, problem: 'did not throw' };
}

/**
 * Misuse cases, tried by the main thread while the workers hold still (so
 * the caller's heap.validate() afterwards is meaningful). Each must throw a
 * RangeError and change nothing; the blocks they allocate are freed again.
 * `round` picks which cases run (they rotate).
 */
export function tryMisuse(heap: Heap, bucketed: Allocator, fixed: Allocator, round: number): MisuseOutcome[] {
  const out: MisuseOutcome[] = [];
  const size = 16 + ((round * 97) % 4000);
  // Double free of a slab object.
  const a = bucketed.alloc(size);
  bucketed.free(a);
  out.push(expectRangeError(`double free of a ${size}-byte block`, () => bucketed.free(a), /double free/));
  // A pointer inside an object, never returned by alloc.
  const b = bucketed.alloc(100);
  out.push(expectRangeError('free of a pointer inside an object (never allocated)', () => bucketed.free(b + 16), /not the start of an object/));
  // Another allocator's object.
  out.push(expectRangeError("free of another allocator's object", () => fixed.free(b), /wrong allocator/));
  bucketed.free(b);
  // Fixed-size double free.
  const f = fixed.alloc();
  fixed.free(f);
  out.push(expectRangeError('fixed-size double free', () => fixed.free(f), /double free/));
  // Large run: double free, and a pointer inside it.
  if (round % 2 === 0) {
    const l = bucketed.alloc(100_000);
    out.push(expectRangeError('free of a pointer inside a large run', () => bucketed.free(l + heap.pageSize), /not the start of an object/));
    bucketed.free(l);
    out.push(expectRangeError('double free of a large run', () => bucketed.free(l), /double free|not allocated/));
  }
  // Past the committed pages (never allocated), when the heap has room to grow.
  const past = (heap.committedPages() + 1) * heap.pageSize;
  if (past < heap.maxPages * heap.pageSize) {
    out.push(expectRangeError('free of a pointer beyond the committed pages', () => bucketed.free(past), /outside the heap/));
  }
  out.push(expectRangeError('free of a pointer outside the heap', () => bucketed.free(heap.maxPages * heap.pageSize + 64), /outside the heap/));
  return out;
}

export interface LinOutcome {
  histories: number;
  operations: number;
  /** Operations that overlapped another worker's. */
  overlapping: number;
  problems: string[];
}

/**
 * Three map-lin workers (the linearizability test's) run `histories`
 * histories on a fresh map in `heap`; the checker must accept every one,
 * no value may be torn, and the map must give every element back.
 */
export async function linBatch(heap: Heap, mode: 'dynamic' | 'prealloc', seed: number, histories: number, timeoutMs: number): Promise<LinOutcome> {
  const workers = 3;
  const keys = 8;
  const ops = 100;
  const map = HashMap.create(heap, { keySize: 8, valueSize: LIN_VALUE_SIZE, mode, maxEntries: 64, seed });
  const clock = new SharedArrayBuffer(LIN_CLOCK_WORDS * 4);
  const script = new URL('../concurrent/workers/map-lin-worker.js', import.meta.url);
  const specs = Array.from({ length: workers }, (_, worker) => ({
    script,
    name: `lin worker ${worker}`,
    data: { heap: heap.handle, map: map.handle, seed, worker, workers, histories, opsPerHistory: ops, keys, clock, deadlineMs: timeoutMs } satisfies LinJob,
  }));
  const outcome: LinOutcome = { histories: 0, operations: 0, overlapping: 0, problems: [] };
  const group = await runWorkerGroup<LinResult>(specs, { timeoutMs: timeoutMs + 5_000 });
  if (group.failures.length > 0) {
    outcome.problems.push(...group.failures);
    // A failed lin worker may still hold its slot; the map stays (its elements are few).
    return outcome;
  }
  const results = group.results as LinResult[];
  for (const [w, r] of results.entries()) {
    if (r.torn.length > 0) outcome.problems.push(`lin worker ${w} read torn values: ${r.torn.join('; ')}`);
    if (r.undrained !== 0) outcome.problems.push(`lin worker ${w} left ${r.undrained} deferred frees`);
  }
  for (let h = 0; h < histories; h++) {
    const history = results.flatMap((r) => r.histories[h]!);
    const verdict = checkMapHistory(history);
    for (const v of verdict.violations) outcome.problems.push(`${mode} map, history ${h} not linearizable: ${v.report.split('\n')[0]}`);
    for (const o of history) {
      outcome.operations++;
      if (history.some((p) => p.worker !== o.worker && p.call < o.ret && o.call < p.ret)) outcome.overlapping++;
    }
    outcome.histories++;
  }
  map.collect();
  const problems = map.validate();
  if (problems.length > 0) outcome.problems.push(`lin map validate(): ${problems.slice(0, 4).join('; ')}`);
  if (map.count() !== 0) outcome.problems.push(`lin map holds ${map.count()} keys after the cleanup`);
  const live = liveElementsOf(map);
  if (live !== 0) outcome.problems.push(`lin map: ${live} elements not given back`);
  map.destroy();
  return outcome;
}
