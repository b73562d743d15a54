/**
 * The memory suite: how many bytes each allocator takes for what its
 * callers asked for, measured like speed, side by side in one run:
 * anyalloc (size-bucketed), `@thi.ng/malloc` (MemPool, first fit, on an
 * ArrayBuffer of the same maxBytes) and the ideal (the live requested
 * bytes). Byte counts are deterministic for a seed, so one run of each
 * case suffices; the seed is printed.
 *
 * Cases (docs/benchmarks.md, "Memory"):
 * 1. random sizes with churn, uniform in [1, N];
 * 2. phase change: fill with size A until alloc returns 0, free all, fill
 *    with B; the B bytes obtained as a share of a fresh heap's, the frees
 *    made by this agent or by a worker attached to the heap;
 * 3. a Larson-like server: workers replace random objects and pass some to
 *    the next worker, which frees them (anyalloc only: MemPool is one thread);
 * 4. mixed-size throughput (after glibc's bench-malloc-thread), one shared
 *    heap against a heap per worker, in matched windows;
 * and the empty allocator's footprint. The map's memory over time is in the
 * map suite (map/run.ts).
 *
 * anyalloc is loaded at run time from this build's dist/src/index.js.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { MemPool } from '@thi.ng/malloc';
import { startAtBarrier } from './barrier.js';
import { matchedJson, matchedRows, matchedTable, runMatched, type Matched, type RefColumn } from './matched.js';
import { BENCH_DIST } from './paths.js';
import { nativeRandom, nativeReport, type NativeRandomResult } from './native.js';
import { fmtMiB, fmtPct, fmtRate, markdownTable } from './stats.js';
import {
  W_DRAINED,
  W_GO,
  W_READY,
  W_COUNT,
  W_FILLED,
  W_FREED,
  W_RELEASE,
  W_WORDS,
  loadMemHeap,
  mulberry32,
  newRing,
  type LarsonJob,
  type MemHeapStatic,
  type MemoryJob,
  type MixedJob,
  type WorkerReport,
} from './memory-worker.js';

export { inverseSquareSizes, loadMemHeap, mulberry32, type MemAllocator, type MemHeap, type MemHeapStatic } from './memory-worker.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
const SEED = 20261202;

// ---------------------------------------------------------------------------
// Arenas: one allocator on one heap, seen by the single-threaded cases.

export interface Arena {
  readonly name: string;
  alloc(size: number): number;
  free(ptr: number): void;
  /** Bytes the allocator holds for its objects now. */
  used(): number;
  /** Peak of used() so far (exact, or sampled where the allocator keeps none). */
  peakUsed(): number;
  /** Peak of the memory it has touched: committed bytes, or its top address. */
  peakCommitted(): number;
  /** anyalloc: used() less the heap's state map (one byte per 16 of a used page). */
  usedWithoutStates?(): number;
  /**
   * anyalloc: the pages its live objects need at the least in its classes,
   * state map included: each class's live objects packed into the fewest
   * pages (objects per page as its slabs hold them), large runs as they are.
   */
  floor?(): number;
  /** Called every so often by the cases: a chance to sample. */
  sample(): void;
  close(): void;
}

/** anyalloc, bucketed: used = pages in use (heap.stats().usedBytes), exact peaks from the heap. */
export function anyallocArena(Heap: MemHeapStatic, maxBytes: number, name = 'anyalloc'): Arena {
  const heap = Heap.create({ maxBytes });
  const a = heap.createAllocator();
  return {
    name,
    alloc: (n) => a.alloc(n),
    free: (p) => a.free(p),
    used: () => heap.stats().usedBytes,
    peakUsed: () => heap.stats().peakUsedBytes,
    peakCommitted: () => heap.stats().committedBytes,
    usedWithoutStates: () => heap.stats().usedPages * heap.pageSize,
    floor() {
      const st = a.stats();
      let pages = 0;
      let slabLive = 0;
      for (const c of st.classes) {
        slabLive += c.liveBytes;
        if (c.live > 0) pages += Math.ceil((c.live * c.slabPages) / c.objects);
      }
      const large = st.bytesInUse - slabLive;
      return (pages * heap.pageSize + large) * (1 + 1 / 16);
    },
    sample() {},
    close() {
      a.detach();
      heap.detach();
    },
  };
}

/**
 * @thi.ng/malloc MemPool: used = the sizes of its used blocks, headers
 * and padding included; committed = its top address (the end of the
 * highest block ever carved) less where its first block starts. Both from
 * stats(), which walks its lists, so their peaks are sampled (every 1024
 * steps of a case, and at its reads).
 */
export function thingArena(maxBytes: number): Arena {
  const pool = new MemPool({ buf: new ArrayBuffer(maxBytes) });
  const base = pool.stats().top;
  let peakTop = base;
  let peak = 0;
  const sample = (): number => {
    const s = pool.stats();
    peak = Math.max(peak, s.used.size);
    peakTop = Math.max(peakTop, s.top);
    return s.used.size;
  };
  return {
    name: 'thi.ng/malloc',
    alloc: (n) => pool.malloc(n),
    free: (p) => void pool.free(p),
    used: sample,
    peakUsed: () => (sample(), peak),
    peakCommitted: () => (sample(), peakTop - base),
    sample: () => void sample(),
    close() {},
  };
}

// ---------------------------------------------------------------------------
// Case 1: random sizes with churn.

export interface RandomResult {
  allocator: string;
  n: number;
  maxBytes: number;
  /** Live requested bytes at the end of the churn, and their peak until then. */
  liveBytes: number;
  peakLiveBytes: number;
  usedBytes: number;
  peakUsedBytes: number;
  peakCommittedBytes: number;
  /** used / live requested at the end of the churn, and peak used / peak live. */
  usedPerLive: number;
  /** anyalloc: used / live requested without the heap's state map (NaN for the others). */
  usedPerLiveWithoutStates: number;
  /** anyalloc: Arena.floor / live requested (NaN for the others). */
  floorPerLive: number;
  peakUsedPerLive: number;
  /** Allocations that returned 0 before the fill to failure (growth and churn). */
  failures: number;
  /** Live requested bytes when alloc first returned 0, as a share of maxBytes (fill to failure). */
  firstFailureShare: number;
  objects: number;
  steps: number;
}

/**
 * The workload, the same for every allocator (the generator is drawn the
 * same number of times whatever alloc returns): grow (each alloc followed
 * with probability 1/2 by the free of a random live object) until the live
 * requested bytes pass half of maxBytes; churn (an alloc and the free of a
 * random live object per step) for `churnFactor` x the objects live; read
 * the figures; then grow again until alloc first returns 0.
 */
export function randomSizes(arena: Arena, n: number, maxBytes: number, seed: number, churnFactor = 2): RandomResult {
  const rnd = mulberry32(seed);
  const ptrs: number[] = [];
  const sizes: number[] = [];
  let live = 0;
  let peakLive = 0;
  let failures = 0;
  let firstFail = -1;
  let steps = 0;
  const sampleEvery = 1024;
  const freeRandom = (): void => {
    const i = Math.floor(rnd() * ptrs.length);
    if (ptrs.length === 0) return;
    arena.free(ptrs[i]!);
    live -= sizes[i]!;
    ptrs[i] = ptrs[ptrs.length - 1]!;
    sizes[i] = sizes[sizes.length - 1]!;
    ptrs.pop();
    sizes.pop();
  };
  const step = (freeP: number): boolean => {
    const s = 1 + Math.floor(rnd() * n);
    const f = rnd() < freeP;
    const p = arena.alloc(s);
    let ok = true;
    if (p === 0) {
      ok = false;
      if (firstFail < 0) firstFail = live;
    } else {
      ptrs.push(p);
      sizes.push(s);
      live += s;
      if (live > peakLive) peakLive = live;
    }
    if (f) freeRandom();
    if (++steps % sampleEvery === 0) arena.sample();
    return ok;
  };
  const limit = 64 * Math.ceil(maxBytes / ((n + 1) / 2));
  // Growth stops early where allocations keep failing: the figures are read all the same.
  while (live < maxBytes / 2 && steps < limit && failures < 4096) if (!step(0.5)) failures++;
  const churn = churnFactor * Math.max(ptrs.length, 1024);
  for (let i = 0; i < churn; i++) if (!step(1)) failures++;
  arena.sample();
  const used = arena.used();
  const peakUsed = arena.peakUsed();
  const r: RandomResult = {
    allocator: arena.name,
    n,
    maxBytes,
    liveBytes: live,
    peakLiveBytes: peakLive,
    usedBytes: used,
    peakUsedBytes: peakUsed,
    peakCommittedBytes: arena.peakCommitted(),
    usedPerLive: used / live,
    usedPerLiveWithoutStates: arena.usedWithoutStates === undefined ? NaN : arena.usedWithoutStates() / live,
    floorPerLive: arena.floor === undefined ? NaN : arena.floor() / live,
    peakUsedPerLive: peakUsed / peakLive,
    failures,
    firstFailureShare: NaN,
    objects: ptrs.length,
    steps,
  };
  while (firstFail < 0 && steps < 2 * limit) step(0.5);
  r.firstFailureShare = firstFail < 0 ? NaN : firstFail / maxBytes;
  return r;
}

/**
 * The ideal: an allocator that takes exactly the bytes requested, and fails
 * only when they would pass `capacity`. Run through the same workload, its
 * used bytes are the live requested bytes whatever the other allocators'
 * failures did to theirs.
 */
export function idealArena(capacity: number): Arena {
  const live = new Map<number, number>();
  let bytes = 0;
  let peak = 0;
  let next = 8;
  return {
    name: 'ideal',
    alloc(n) {
      if (bytes + n > capacity) return 0;
      const p = next;
      next += 8;
      live.set(p, n);
      bytes += n;
      if (bytes > peak) peak = bytes;
      return p;
    },
    free(p) {
      const n = live.get(p);
      if (n === undefined) throw new Error(`ideal: free of ${p}, not live`);
      live.delete(p);
      bytes -= n;
    },
    used: () => bytes,
    peakUsed: () => peak,
    peakCommitted: () => peak,
    sample() {},
    close() {},
  };
}

/** Heap of the random-sizes case where time allows. */
export const BIG_HEAP = 512 * MiB;

export const RANDOM_NS = [256, 4 * KiB, 16 * KiB, 64 * KiB, MiB];

/** Heap for a bound N: room for about 4096 objects of the largest size, from 4 MiB to 512 MiB (MemPool's free walks its list of used blocks, so its time grows with the objects live). */
export function randomHeapBytes(n: number, quick = false): number {
  const want = 2 ** Math.ceil(Math.log2(n * 2048));
  return Math.min(quick ? 64 * MiB : 512 * MiB, Math.max(4 * MiB, want));
}

// ---------------------------------------------------------------------------
// Case 2: phase change.

export interface PhaseResult {
  allocator: string;
  from: number;
  to: number;
  /** Who freed the A objects: this agent, or a worker attached to the heap (it stays attached while B fills). */
  freedBy: 'same agent' | 'other agent';
  aObjects: number;
  bBytes: number;
  freshBBytes: number;
  share: number;
}

/** Allocates `size` until alloc returns 0; the pointers. */
export function fill(arena: Pick<Arena, 'alloc'>, size: number, cap = 1 << 24): number[] {
  const out: number[] = [];
  for (let p = arena.alloc(size); p !== 0 && out.length < cap; p = arena.alloc(size)) out.push(p);
  return out;
}

export const PHASE_PAIRS: readonly [number, number][] = [
  [16, 4 * KiB],
  [16, 100_000],
  [4 * KiB, 16],
  [100_000, 64],
];

/** Same agent: fill A, free all (newest first), fill B; against B on a fresh arena. */
export function phaseChange(make: () => Arena, from: number, to: number): PhaseResult {
  const fresh = make();
  const freshB = fill(fresh, to).length * to;
  fresh.close();
  const arena = make();
  const a = fill(arena, from);
  for (let i = a.length - 1; i >= 0; i--) arena.free(a[i]!);
  const b = fill(arena, to).length * to;
  const name = arena.name;
  arena.close();
  return { allocator: name, from, to, freedBy: 'same agent', aObjects: a.length, bBytes: b, freshBBytes: freshB, share: b / freshB };
}

async function runWorkers(jobs: MemoryJob[], ctl: Int32Array, whenReady?: () => void | Promise<void>): Promise<WorkerReport[]> {
  const ws: Worker[] = [];
  try {
    const { results } = await startAtBarrier<WorkerReport>(join(BENCH_DIST, 'memory-worker.js'), ctl, { ready: W_READY, go: W_GO, timeoutMs: 60_000 }, ws, jobs.length, (i) => ({ workerData: jobs[i] }));
    await whenReady?.();
    const out = await Promise.all(results);
    const bad = out.find((r) => r.error !== undefined);
    if (bad) throw new Error(`worker failed: ${bad.error}`);
    return out;
  } finally {
    await Promise.all(ws.map((w) => w.terminate().catch(() => 0)));
  }
}

/** Other agent: this thread fills A, a worker attached to the heap frees them all and stays attached, this thread fills B. */
export async function phaseChangeAcross(Heap: MemHeapStatic, maxBytes: number, from: number, to: number): Promise<PhaseResult> {
  const fresh = anyallocArena(Heap, maxBytes);
  const freshB = fill(fresh, to).length * to;
  fresh.close();
  const heap = Heap.create({ maxBytes });
  const a = heap.createAllocator();
  // The worker attaches first, as a worker of a running program is there
  // before the heap fills; it frees the A objects once they are made.
  const shared = new Int32Array(new SharedArrayBuffer(Math.ceil(maxBytes / from) * 4));
  const ctl = new Int32Array(new SharedArrayBuffer(W_WORDS * 4));
  let b = 0;
  let aObjects = 0;
  await runWorkers([{ kind: 'free', heap: heap.handle, alloc: a.handle, ptrs: shared, ctl }], ctl, async () => {
    const ptrs = fill(a, from);
    aObjects = ptrs.length;
    shared.set(ptrs);
    Atomics.store(ctl, W_COUNT, ptrs.length);
    Atomics.store(ctl, W_FILLED, 1);
    Atomics.notify(ctl, W_FILLED);
    while (Atomics.load(ctl, W_FREED) === 0) await new Promise((r) => setTimeout(r, 1));
    b = fill(a, to).length * to;
    Atomics.store(ctl, W_RELEASE, 1);
    Atomics.notify(ctl, W_RELEASE);
  });
  a.detach();
  heap.detach();
  return { allocator: 'anyalloc', from, to, freedBy: 'other agent', aObjects, bBytes: b, freshBBytes: freshB, share: b / freshB };
}

// ---------------------------------------------------------------------------
// Case 3: Larson-like server.

export interface LarsonResult {
  mix: string;
  workers: number;
  liveBytes: number;
  usedBytes: number;
  usedPerLive: number;
  peakUsedBytes: number;
  committedBytes: number;
  opsPerSec: number;
  fails: number;
  /** Steps (a free or pass, and an alloc) over all workers. */
  steps: number;
  /** Objects passed to and freed by another worker, and those freed by their holder because the ring was full. */
  passed: number;
  ringFull: number;
}

export const LARSON_MIXES = [
  { mix: '16..4096 B', minSize: 16, maxSize: 4096 },
  { mix: '16..32768 B', minSize: 16, maxSize: 32 * KiB },
];

export async function larson(Heap: MemHeapStatic, o: { workers: number; minSize: number; maxSize: number; mix: string; live: number; durationMs: number; seed: number }): Promise<LarsonResult> {
  const heap = Heap.create({ maxBytes: 512 * MiB });
  const a = heap.createAllocator();
  const ctl = new Int32Array(new SharedArrayBuffer(W_WORDS * 4));
  const rings = Array.from({ length: o.workers }, () => newRing(4096));
  let snap = { usedBytes: 0, peakUsedBytes: 0, committedBytes: 0 };
  const jobs: LarsonJob[] = Array.from({ length: o.workers }, (_, index) => ({
    kind: 'larson',
    heap: heap.handle,
    alloc: a.handle,
    ctl,
    rings,
    index,
    live: o.live,
    minSize: o.minSize,
    maxSize: o.maxSize,
    passShare: 0.25,
    durationMs: o.durationMs,
    seed: o.seed,
  }));
  const out = await runWorkers(jobs, ctl, async () => {
    while (Atomics.load(ctl, W_DRAINED) < o.workers) await new Promise((r) => setTimeout(r, 5));
    snap = heap.stats();
    Atomics.store(ctl, W_RELEASE, 1);
    Atomics.notify(ctl, W_RELEASE);
  });
  a.detach();
  heap.detach();
  const liveBytes = out.reduce((s, r) => s + r.heldBytes, 0);
  return {
    mix: o.mix,
    workers: o.workers,
    liveBytes,
    usedBytes: snap.usedBytes,
    usedPerLive: snap.usedBytes / liveBytes,
    peakUsedBytes: snap.peakUsedBytes,
    committedBytes: snap.committedBytes,
    opsPerSec: out.reduce((s, r) => s + (r.steps * 1000) / r.elapsedMs, 0),
    fails: out.reduce((s, r) => s + r.fails, 0),
    steps: out.reduce((s, r) => s + r.steps, 0),
    passed: out.reduce((s, r) => s + r.passed, 0),
    ringFull: out.reduce((s, r) => s + r.ringFull, 0),
  };
}

// ---------------------------------------------------------------------------
// Case 4: mixed-size throughput, one shared heap against a heap per worker.

const MIXED_HEAP = 64 * MiB;

/**
 * One window of the mixed-size case: `workers` workers on one heap and
 * allocator (`shared`), on one heap with an allocator each (`shared` and
 * `apart`), or each on a heap of its own. Returns steps per second.
 */
export async function mixedWindow(Heap: MemHeapStatic, workers: number, shared: boolean, durationMs: number, seed: number, apart = false): Promise<number> {
  const heap = shared ? Heap.create({ maxBytes: MIXED_HEAP }) : undefined;
  const a = heap?.createAllocator();
  const others = apart && heap ? Array.from({ length: workers }, () => heap.createAllocator()) : undefined;
  const ctl = new Int32Array(new SharedArrayBuffer(W_WORDS * 4));
  const jobs: MixedJob[] = Array.from({ length: workers }, (_, index) => ({
    kind: 'mixed',
    ...(heap && a ? { heap: heap.handle, alloc: (others ? others[index]! : a).handle } : {}),
    privateBytes: MIXED_HEAP,
    ctl,
    index,
    warmupMs: 100,
    durationMs,
    seed,
  }));
  try {
    const out = await runWorkers(jobs, ctl);
    return out.reduce((s, r) => s + (r.steps * 1000) / r.elapsedMs, 0);
  } finally {
    a?.detach();
    heap?.detach();
  }
}

const MIXED_VARIANTS = [
  { name: 'shared x1', workers: 1, shared: true },
  { name: 'shared x2', workers: 2, shared: true },
  // One heap, an allocator each: what the heap itself costs two workers (state buffer, page heap), without shared slabs.
  { name: 'heap, allocator each x2', workers: 2, shared: true, apart: true },
  { name: 'private x2', workers: 2, shared: false },
];

const MIXED_REFS: RefColumn[] = [{ heading: 'x private', ref: (n) => (n.endsWith('x2') && n !== 'private x2' ? 'private x2' : undefined) }];

export function mixedSuite(Heap: MemHeapStatic, cycles: number, durationMs: number, seed: number, onWindow?: () => void): Promise<Matched> {
  return runMatched(
    MIXED_VARIANTS.map((v) => ({ name: v.name, window: () => mixedWindow(Heap, v.workers, v.shared, durationMs, seed, v.apart === true) })),
    cycles,
    1,
    onWindow,
  );
}

// ---------------------------------------------------------------------------
// The suite.

export interface MemoryOptions {
  quick: boolean;
  seed?: number;
  /** Workers of the Larson case. */
  workers?: number;
  cycles?: number;
}

export interface MemoryResults {
  seed: number;
  empty: { maxBytes: number; usedBytes: number; committedBytes: number };
  random: RandomResult[];
  phase: PhaseResult[];
  phaseHeapBytes: number;
  larson: LarsonResult[];
  mixed: Matched & { durationMs: number };
  /** jemalloc, mimalloc and glibc on the random-sizes cases (native.ts). */
  native: { results: NativeRandomResult[]; skipped: string[] };
}

export function memoryMs(o: MemoryOptions): number {
  const cycles = o.cycles ?? (o.quick ? 2 : 5);
  const dur = o.quick ? 250 : 500;
  return 20_000 + 2 * (o.quick ? 500 : 2000) + 3 * (cycles + 1) * (dur + 300);
}

export async function memorySuite(o: MemoryOptions, done: (ms: number) => void, log: (l: string) => void): Promise<MemoryResults> {
  const Heap = await loadMemHeap();
  const seed = o.seed ?? SEED;
  const emptyHeap = Heap.create({ maxBytes: 512 * MiB });
  const ea = emptyHeap.createAllocator();
  const es = emptyHeap.stats();
  const empty = { maxBytes: 512 * MiB, usedBytes: es.usedBytes, committedBytes: es.committedBytes };
  ea.detach();
  emptyHeap.detach();

  const random: RandomResult[] = [];
  const nativeCases: [number, number][] = [];
  for (const n of RANDOM_NS) {
    const maxBytes = randomHeapBytes(n, o.quick);
    nativeCases.push([n, maxBytes]);
    if (!o.quick && maxBytes < BIG_HEAP) nativeCases.push([n, BIG_HEAP]);
    const runs: [() => Arena, number][] = [
      [() => idealArena(maxBytes), maxBytes],
      [() => anyallocArena(Heap, maxBytes), maxBytes],
      [() => thingArena(maxBytes), maxBytes],
    ];
    // The heap the case is written for, anyalloc alone (MemPool would take minutes there).
    if (!o.quick && maxBytes < BIG_HEAP) runs.push([() => anyallocArena(Heap, BIG_HEAP, `anyalloc (${BIG_HEAP / MiB} MiB heap)`), BIG_HEAP]);
    for (const [make, bytes] of runs) {
      const arena = make();
      const t = Date.now();
      const r = randomSizes(arena, n, bytes, seed);
      arena.close();
      random.push(r);
      log(`  random sizes N=${n} ${r.allocator}: ${Date.now() - t} ms`);
    }
    done(2000);
  }
  const native = nativeRandom(nativeCases, seed);
  for (const line of native.skipped) log(`  native ${line}`);

  const phaseHeapBytes = 32 * MiB;
  const phase: PhaseResult[] = [];
  for (const [from, to] of PHASE_PAIRS) {
    phase.push(phaseChange(() => anyallocArena(Heap, phaseHeapBytes), from, to));
    phase.push(await phaseChangeAcross(Heap, phaseHeapBytes, from, to));
    phase.push(phaseChange(() => thingArena(phaseHeapBytes), from, to));
  }
  done(4000);

  const larsonRuns: LarsonResult[] = [];
  for (const m of LARSON_MIXES) {
    larsonRuns.push(await larson(Heap, { ...m, workers: o.workers ?? 2, live: 1000, durationMs: o.quick ? 500 : 2000, seed }));
    done(o.quick ? 500 : 2000);
  }

  const cycles = o.cycles ?? (o.quick ? 2 : 5);
  const dur = o.quick ? 250 : 500;
  const mixed = await mixedSuite(Heap, cycles, dur, seed, () => done(dur + 300));
  return { seed, empty, random, phase, phaseHeapBytes, larson: larsonRuns, mixed: { ...mixed, durationMs: dur }, native };
}

const ratio2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');

export function memoryReport(r: MemoryResults): string {
  const out: string[] = [];
  out.push(`Seed ${r.seed}. Byte counts are deterministic for a seed: one run each.`);
  out.push(
    `\n### Empty allocator\n\nHeap.create({ maxBytes: ${r.empty.maxBytes / MiB} MiB }) + createAllocator(), one agent attached: heap.stats().usedBytes ${fmtKiB(r.empty.usedBytes)}, committedBytes ${fmtKiB(r.empty.committedBytes)}.`,
  );
  out.push(
    `\n### Random sizes with churn\n\nSizes uniform in [1, N]; grow (each alloc followed with probability 1/2 by the free of a random live object) until the live requested bytes pass half of the heap, churn (alloc + free of a random live object) for 2x the objects live, read; then grow until alloc first returns 0. The heap holds about 4096 objects of size N (4 MiB to 512 MiB): MemPool's free walks its list of used blocks, so its time grows with the objects live; \`anyalloc (512 MiB heap)\` is anyalloc alone on the heap the case is written for. used: anyalloc heap pages in use (heap.stats().usedBytes), thi.ng/malloc its used blocks with headers (stats().used.size, peak sampled every 1024 steps); committed: anyalloc committedBytes, thi.ng/malloc its highest top address; ideal: the live requested bytes. without the state map: anyalloc's used less the heap's state map (a byte per 16 bytes of a page in use), the part native allocators keep elsewhere or in the object. floor: what anyalloc's classes need at the least for the objects live at the read, state map included: each class's live objects packed into the fewest pages, no free object anywhere (no cache, no partly used slab).\n`,
  );
  out.push(
    markdownTable(
      ['N', 'heap', 'allocator', 'objects', 'live requested', 'used', 'used / live', 'without the state map', 'floor / live', 'peak used / peak live', 'peak committed', 'failures', 'first failure at'],
      r.random.map((x) => [
        x.n.toLocaleString('en-US'),
        `${x.maxBytes / MiB} MiB`,
        x.allocator,
        x.objects.toLocaleString('en-US'),
        fmtMiB(x.liveBytes),
        fmtMiB(x.usedBytes),
        ratio2(x.usedPerLive),
        ratio2(x.usedPerLiveWithoutStates),
        ratio2(x.floorPerLive),
        ratio2(x.peakUsedPerLive),
        fmtMiB(x.peakCommittedBytes),
        x.failures,
        Number.isFinite(x.firstFailureShare) ? `${fmtPct(x.firstFailureShare)} of maxBytes` : 'none',
      ]),
      3,
    ),
  );
  out.push(nativeReport(r.native, r.random));
  out.push(
    `\n### Phase change\n\n${r.phaseHeapBytes / MiB} MiB heap: fill with A until alloc returns 0, free all (newest first), fill with B until 0; the bytes of B obtained as a share of what a fresh heap gives. "other agent": a worker attached before the fill freed the A objects and stayed attached while B filled (anyalloc only; MemPool is one thread).\n`,
  );
  out.push(
    markdownTable(
      ['A -> B', 'allocator', 'freed by', 'A objects', 'B obtained', 'fresh heap', 'share'],
      r.phase.map((x) => [`${fmtSize(x.from)} -> ${fmtSize(x.to)}`, x.allocator, x.freedBy, x.aObjects.toLocaleString('en-US'), fmtMiB(x.bBytes), fmtMiB(x.freshBBytes), fmtPct(x.share)]),
      3,
    ),
  );
  out.push(
    `\n### Larson-like server\n\nEach worker holds 1000 objects, replaces a random one each step and passes a quarter of the replaced ones to the next worker, which frees them (its holder frees one itself when the next worker's ring of 4096 is full); one anyalloc heap and allocator. Read when every worker has stopped and freed what it was passed; the peak includes objects in transit between workers.\n`,
  );
  out.push(
    markdownTable(
      ['sizes', 'workers', 'live requested', 'used', 'used / live', 'peak used', 'committed', 'ops/s', 'frees by the next worker', 'failed allocs'],
      r.larson.map((x) => [x.mix, x.workers, fmtMiB(x.liveBytes), fmtMiB(x.usedBytes), ratio2(x.usedPerLive), fmtMiB(x.peakUsedBytes), fmtMiB(x.committedBytes), fmtRate(x.opsPerSec), fmtPct(x.passed / x.steps), x.fails]),
      2,
    ),
  );
  out.push(
    `\n### Mixed sizes, shared vs private heap\n\nSizes 4..32768 B with density 1/size^2, 1024 live objects per worker, each step frees a random live object and allocates a new one; ${r.mixed.durationMs} ms windows, ${r.mixed.values[0]?.length ?? 0} matched cycles. shared: one heap and allocator for all workers; heap, allocator each: one heap, an allocator per worker (no slab shared); private: a heap per worker.\n`,
  );
  out.push(matchedTable([], 'steps/s', MIXED_REFS, matchedRows(r.mixed, fmtRate, MIXED_REFS)));
  out.push('\nThe dynamic map\'s memory over time: the map suite\'s memory table.');
  return out.join('\n');
}

export function memoryJson(r: MemoryResults): unknown {
  const { mixed, ...rest } = r;
  return { ...rest, mixed: { durationMs: mixed.durationMs, variants: matchedJson(mixed, MIXED_REFS) } };
}

function fmtKiB(b: number): string {
  return `${(b / KiB).toLocaleString('en-US')} KiB`;
}

function fmtSize(b: number): string {
  return b % KiB === 0 ? `${b / KiB} KiB` : b >= 10_000 ? `${b / 1000} KB` : `${b} B`;
}
