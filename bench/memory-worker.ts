/**
 * Workers of the memory suite (memory.ts), one file for its three
 * multi-agent cases, chosen by `kind`:
 * - `free`: attaches to the heap, frees the objects it is given, says so,
 *   and stays attached until told to go (the phase change across agents);
 * - `larson`: holds `live` objects, replaces a random one each step, and
 *   passes a share of the replaced ones to the next worker, which frees them;
 * - `mixed`: 1024 live objects of 4..32768 bytes (inverse-square
 *   distribution), each step frees a random one and allocates a new one, on
 *   the shared heap or on a heap of its own.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ANYALLOC_ENTRY } from './paths.js';

/** The part of anyalloc's public API this suite calls. */
export interface MemAllocator {
  alloc(size: number): number;
  free(ptr: number): void;
  readonly handle: unknown;
  detach(): void;
  stats(): { bytesInUse: number; classes: { unit: number; slabPages: number; objects: number; live: number; liveBytes: number }[] };
}
export interface MemHeap {
  createAllocator(): MemAllocator;
  attachAllocator(handle: unknown): MemAllocator;
  readonly handle: unknown;
  stats(): { usedBytes: number; usedPages: number; committedBytes: number; peakUsedBytes: number };
  readonly pageSize: number;
  detach(): void;
}
export interface MemHeapStatic {
  create(opts: { maxBytes: number; maxWorkers?: number }): MemHeap;
  attach(handle: unknown): MemHeap;
}

export async function loadMemHeap(entry = ANYALLOC_ENTRY): Promise<MemHeapStatic> {
  if (!existsSync(entry)) throw new Error(`${entry} not built (run \`npm run build\`)`);
  return ((await import(pathToFileURL(entry).href)) as { Heap: MemHeapStatic }).Heap;
}

/** A small seeded generator (mulberry32): floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` sizes in [lo, hi] with density proportional to 1 / size^2 (inverse CDF of the continuous law). */
export function inverseSquareSizes(n: number, lo: number, hi: number, rnd: () => number): Uint16Array {
  const out = new Uint16Array(n);
  const a = 1 / lo;
  const span = 1 / lo - 1 / hi;
  for (let i = 0; i < n; i++) out[i] = Math.min(hi, Math.floor(1 / (a - rnd() * span)));
  return out;
}


/** Words of the control array every kind uses. */
export const W_READY = 0;
export const W_GO = 1;
export const W_STOPPED = 2;
export const W_DRAINED = 3;
export const W_RELEASE = 4;
/** Free job: the pointers are in place (ptrs[0..ctl[W_COUNT])), and the worker has freed them. */
export const W_FILLED = 5;
export const W_FREED = 6;
export const W_COUNT = 7;
export const W_WORDS = 8;

export interface FreeJob {
  kind: 'free';
  heap: unknown;
  alloc: unknown;
  ptrs: Int32Array;
  ctl: Int32Array;
}

export interface LarsonJob {
  kind: 'larson';
  heap: unknown;
  alloc: unknown;
  ctl: Int32Array;
  /** rings[i]: objects passed to worker i, [head, tail, (ptr, size) x capacity]. */
  rings: Int32Array[];
  index: number;
  live: number;
  minSize: number;
  maxSize: number;
  /** Share of the replaced objects passed to the next worker instead of freed. */
  passShare: number;
  durationMs: number;
  seed: number;
}

export interface MixedJob {
  kind: 'mixed';
  /** The shared heap's handles, or absent: the worker makes a heap of its own of `privateBytes`. */
  heap?: unknown;
  alloc?: unknown;
  privateBytes: number;
  ctl: Int32Array;
  index: number;
  warmupMs: number;
  durationMs: number;
  seed: number;
}

export type MemoryJob = FreeJob | LarsonJob | MixedJob;

export interface WorkerReport {
  steps: number;
  elapsedMs: number;
  fails: number;
  /** larson: requested bytes of the objects it held when all had stopped (passed ones drained). */
  heldBytes: number;
  /** larson: objects it passed to the next worker. */
  passed: number;
  /** larson: objects it freed itself because the next worker's ring was full. */
  ringFull: number;
  error?: string;
}

const RING_HEAD = 0;
const RING_TAIL = 1;
const RING_DATA = 2;

/** A ring of `capacity` (ptr, size) pairs in shared memory. */
export function newRing(capacity: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer((RING_DATA + 2 * capacity) * 4));
}

function push(r: Int32Array, p: number, size: number): boolean {
  const cap = (r.length - RING_DATA) / 2;
  const tail = Atomics.load(r, RING_TAIL);
  if (tail - Atomics.load(r, RING_HEAD) >= cap) return false;
  const i = RING_DATA + 2 * (tail % cap);
  r[i] = p;
  r[i + 1] = size;
  Atomics.store(r, RING_TAIL, tail + 1);
  return true;
}

function drain(r: Int32Array, a: MemAllocator): void {
  const cap = (r.length - RING_DATA) / 2;
  let head = Atomics.load(r, RING_HEAD);
  const tail = Atomics.load(r, RING_TAIL);
  while (head < tail) {
    a.free(r[RING_DATA + 2 * (head % cap)]!);
    head++;
  }
  Atomics.store(r, RING_HEAD, head);
}

function ready(ctl: Int32Array): void {
  Atomics.add(ctl, W_READY, 1);
  Atomics.notify(ctl, W_READY);
}

function waitFor(ctl: Int32Array, word: number, atLeast: number): void {
  for (let v = Atomics.load(ctl, word); v < atLeast; v = Atomics.load(ctl, word)) Atomics.wait(ctl, word, v, 50);
}

async function attach(heapHandle: unknown, allocHandle: unknown): Promise<{ heap: MemHeap; a: MemAllocator }> {
  const heap = (await loadMemHeap()).attach(heapHandle);
  return { heap, a: heap.attachAllocator(allocHandle) };
}

/** Attaches before the heap fills (as a worker of a running program is), then frees what it is given and stays attached. */
async function freeJob(j: FreeJob): Promise<WorkerReport> {
  const { heap, a } = await attach(j.heap, j.alloc);
  ready(j.ctl);
  waitFor(j.ctl, W_FILLED, 1);
  const n = Atomics.load(j.ctl, W_COUNT);
  for (let i = n - 1; i >= 0; i--) a.free(j.ptrs[i]!);
  Atomics.store(j.ctl, W_FREED, 1);
  Atomics.notify(j.ctl, W_FREED);
  waitFor(j.ctl, W_RELEASE, 1);
  a.detach();
  heap.detach();
  return { steps: n, elapsedMs: 0, fails: 0, heldBytes: 0, passed: 0, ringFull: 0 };
}

async function larsonJob(j: LarsonJob): Promise<WorkerReport> {
  const { heap, a } = await attach(j.heap, j.alloc);
  const n = j.rings.length;
  const inbox = j.rings[j.index]!;
  const outbox = j.rings[(j.index + 1) % n]!;
  const rnd = mulberry32(j.seed + 7919 * j.index);
  const span = j.maxSize - j.minSize + 1;
  const ptrs = new Int32Array(j.live);
  const sizes = new Int32Array(j.live);
  let fails = 0;
  for (let k = 0; k < j.live; k++) {
    const s = j.minSize + Math.floor(rnd() * span);
    const p = a.alloc(s);
    if (p === 0) fails++;
    ptrs[k] = p;
    sizes[k] = p === 0 ? 0 : s;
  }
  ready(j.ctl);
  waitFor(j.ctl, W_GO, 1);
  const t0 = performance.now();
  let steps = 0;
  let passed = 0;
  let ringFull = 0;
  let elapsed = 0;
  for (;;) {
    for (let b = 0; b < 256; b++) {
      const k = Math.floor(rnd() * j.live);
      const old = ptrs[k]!;
      if (old !== 0) {
        if (rnd() < j.passShare && n > 1) {
          if (push(outbox, old, sizes[k]!)) passed++;
          else (a.free(old), ringFull++);
        } else a.free(old);
      }
      const s = j.minSize + Math.floor(rnd() * span);
      const p = a.alloc(s);
      if (p === 0) fails++;
      ptrs[k] = p;
      sizes[k] = p === 0 ? 0 : s;
    }
    steps += 256;
    drain(inbox, a);
    elapsed = performance.now() - t0;
    // The first worker to finish stops all: one passing alone would find the ring full.
    if (elapsed >= j.durationMs || Atomics.load(j.ctl, W_STOPPED) > 0) break;
  }
  // Everyone stops passing, then each frees what it was passed: what is
  // left live is what the workers hold.
  Atomics.add(j.ctl, W_STOPPED, 1);
  Atomics.notify(j.ctl, W_STOPPED);
  waitFor(j.ctl, W_STOPPED, n);
  drain(inbox, a);
  let heldBytes = 0;
  for (let k = 0; k < j.live; k++) heldBytes += sizes[k]!;
  Atomics.add(j.ctl, W_DRAINED, 1);
  Atomics.notify(j.ctl, W_DRAINED);
  waitFor(j.ctl, W_RELEASE, 1);
  for (let k = 0; k < j.live; k++) if (ptrs[k] !== 0) a.free(ptrs[k]!);
  a.detach();
  heap.detach();
  return { steps, elapsedMs: elapsed, fails, heldBytes, passed, ringFull };
}

const LIVE_MIXED = 1024;

function mixedLoop(a: MemAllocator, ptrs: Int32Array, sizes: Uint16Array, rnd: () => number, durationMs: number): { steps: number; fails: number; elapsedMs: number } {
  const t0 = performance.now();
  let steps = 0;
  let fails = 0;
  let i = 0;
  for (;;) {
    for (let b = 0; b < 256; b++, i++) {
      const k = (rnd() * LIVE_MIXED) | 0;
      if (ptrs[k] !== 0) a.free(ptrs[k]!);
      const p = a.alloc(sizes[i & (sizes.length - 1)]!);
      if (p === 0) fails++;
      ptrs[k] = p;
    }
    steps += 256;
    const t = performance.now() - t0;
    if (t >= durationMs) return { steps, fails, elapsedMs: t };
  }
}

async function mixedJob(j: MixedJob): Promise<WorkerReport> {
  let heap: MemHeap;
  let a: MemAllocator;
  if (j.heap !== undefined) ({ heap, a } = await attach(j.heap, j.alloc));
  else {
    heap = (await loadMemHeap()).create({ maxBytes: j.privateBytes });
    a = heap.createAllocator();
  }
  const rnd = mulberry32(j.seed + 7919 * j.index);
  const sizes = inverseSquareSizes(4096, 4, 32768, rnd);
  const ptrs = new Int32Array(LIVE_MIXED);
  for (let k = 0; k < LIVE_MIXED; k++) ptrs[k] = a.alloc(sizes[k]!);
  if (j.warmupMs > 0) mixedLoop(a, ptrs, sizes, rnd, j.warmupMs);
  ready(j.ctl);
  waitFor(j.ctl, W_GO, 1);
  const r = mixedLoop(a, ptrs, sizes, rnd, j.durationMs);
  for (let k = 0; k < LIVE_MIXED; k++) if (ptrs[k] !== 0) a.free(ptrs[k]!);
  a.detach();
  heap.detach();
  return { ...r, heldBytes: 0, passed: 0, ringFull: 0 };
}

const job = workerData as MemoryJob | undefined;
if (parentPort && job) {
  const port = parentPort;
  const run = job.kind === 'free' ? freeJob(job) : job.kind === 'larson' ? larsonJob(job) : mixedJob(job);
  run.then(
    (r) => port.postMessage(r),
    (e: unknown) => {
      ready(job.ctl);
      port.postMessage({ steps: 0, elapsedMs: 0, fails: 0, heldBytes: 0, passed: 0, ringFull: 0, error: String((e as Error)?.stack ?? e) } satisfies WorkerReport);
    },
  );
}
