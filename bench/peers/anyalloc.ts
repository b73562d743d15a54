/**
 * anyalloc itself, loaded at run time from a build's public entry: this
 * build's dist/src/index.js, or with --baseline DIR the `@baseline`
 * variants' DIR/dist/src/index.js. Loading at run time lets an older build
 * stand beside this one, and the harness run while the core is mid-change;
 * the interfaces below are the part of the API the benchmark calls
 * (anyalloc-api-check.ts keeps them in line with the real one).
 *
 * Variants: `anyalloc` (size-bucketed, `a.alloc(size)` / `a.free(ptr)`),
 * `anyalloc-fixed` (`unitSize = size`), `anyalloc-warm` (after a start-up
 * fill), `anyalloc-1000` (1000 live blocks, FIFO churn). Each variant's
 * loop is a function literal of its own, even where two are alike: the
 * variants would share its feedback otherwise. Throughput: one heap and one
 * size-bucketed allocator that every worker attaches to.
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ANYALLOC_ENTRY } from '../paths.js';
import { type PairFactory, type PairVariant, type ThroughputPeer, Unavailable } from './types.js';

export interface AnyAllocator {
  alloc(size?: number): number;
  free(ptr: number): void;
  readonly handle: unknown;
  detach?(): void;
}
export interface AnyHeap {
  createAllocator(opts?: { unitSize?: number; prefill?: number }): AnyAllocator;
  attachAllocator(handle: unknown): AnyAllocator;
  readonly handle: unknown;
  detach?(): void;
  destroy?(): void;
}
export interface AnyHeapStatic {
  create(opts: { maxBytes: number }): AnyHeap;
  attach(handle: unknown): AnyHeap;
}

const MAX_BYTES = 256 << 20;
/** Objects each cache holds before the measured loop starts (the pair and fixed variants). */
const PREFILL = 4;
const LIVE = 1000;

/** Heap of the build whose entry is `entry` (default: this build's dist/src/index.js). */
export async function loadHeap(entry = ANYALLOC_ENTRY): Promise<AnyHeapStatic> {
  if (!existsSync(entry)) throw new Unavailable(`${entry} not built (run \`npm run build\`)`);
  const H = ((await import(pathToFileURL(entry).href)) as { Heap?: Partial<AnyHeapStatic> }).Heap;
  if (typeof H?.create !== 'function' || typeof H.attach !== 'function') throw new Unavailable(`${entry} does not export Heap.create / Heap.attach`);
  return H as AnyHeapStatic;
}

const release = (heap: AnyHeap | undefined): void => void (heap?.destroy ? heap.destroy() : heap?.detach?.());

/**
 * A variant on a fresh heap per prepare(): `setup` makes its allocator (and
 * fills it, for some); `loop` returns the variant's own loop, a new closure
 * per instance, reading the allocator from `s`.
 */
async function variant(entry: string | undefined, setup: (heap: AnyHeap, size: number) => AnyAllocator, loop: (s: { a: AnyAllocator }) => PairVariant['run']): Promise<PairFactory> {
  const Heap = await loadHeap(entry);
  return (): PairVariant => {
    let heap: AnyHeap | undefined;
    const s = {} as { a: AnyAllocator };
    return {
      prepare(size) {
        release(heap);
        heap = Heap.create({ maxBytes: MAX_BYTES });
        s.a = setup(heap, size);
      },
      run: loop(s),
      dispose() {
        release(heap);
        heap = undefined;
      },
    };
  };
}

export const bucketedFactory = (entry?: string): Promise<PairFactory> =>
  variant(
    entry,
    // Prefill asked for: every class's cache holds objects before the first
    // alloc, so the loop measures cache hits from its first call. Without
    // it the first alloc of a class refills through the slow path and V8
    // compiles alloc with that path in it (`anyalloc-warm` measures that).
    (heap) => heap.createAllocator({ prefill: PREFILL }),
    entry === undefined
      ? (s) => (size, iters) => {
          const al = s.a;
          let acc = 0;
          for (let i = 0; i < iters; i++) {
            const p = al.alloc(size);
            if (p === 0) throw new Error('anyalloc alloc failed');
            acc = (acc + p) | 0;
            al.free(p);
          }
          return acc;
        }
      : // The same loop again for the baseline build: one literal per build, or
        // the two builds' allocators share its feedback (both polymorphic).
        (s) => (size, iters) => {
          const al = s.a;
          let acc = 0;
          for (let i = 0; i < iters; i++) {
            const p = al.alloc(size);
            if (p === 0) throw new Error('anyalloc alloc failed');
            acc = (acc + p) | 0;
            al.free(p);
          }
          return acc;
        },
  );

export const fixedFactory = (entry?: string): Promise<PairFactory> =>
  variant(
    entry,
    (heap, size) => heap.createAllocator({ unitSize: size, prefill: PREFILL }),
    entry === undefined
      ? (s) => (_size, iters) => {
          const al = s.a;
          let acc = 0;
          for (let i = 0; i < iters; i++) {
            const p = al.alloc();
            if (p === 0) throw new Error('anyalloc fixed alloc failed');
            acc = (acc + p) | 0;
            al.free(p);
          }
          return acc;
        }
      : // The same loop again for the baseline build: one literal per build, or
        // the two builds' allocators share its feedback (both polymorphic).
        (s) => (_size, iters) => {
          const al = s.a;
          let acc = 0;
          for (let i = 0; i < iters; i++) {
            const p = al.alloc();
            if (p === 0) throw new Error('anyalloc fixed alloc failed');
            acc = (acc + p) | 0;
            al.free(p);
          }
          return acc;
        },
  );

/**
 * The plain pair on an allocator whose slow paths have run hot first, as a
 * program's start-up does: 4000 objects of every class allocated (each
 * cache empties and refills a batch at a time) and freed (the caches
 * trim), large runs in between. V8 then compiles alloc and free with those
 * paths in their feedback.
 */
export const warmFactory = (entry?: string): Promise<PairFactory> =>
  variant(
    entry,
    (heap) => {
      const a = heap.createAllocator();
      const held: number[] = [];
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 1000; i++) {
          const p = a.alloc(16 + ((i * 37) % 4080));
          if (p === 0) throw new Error('anyalloc alloc failed while warming');
          held.push(p);
          if (i % 100 === 0) a.free(a.alloc(70_000));
        }
        while (held.length > 0) a.free(held.pop()!);
      }
      return a;
    },
    entry === undefined
      ? (s) => (size, iters) => {
          const al = s.a;
          let acc = 0;
          for (let i = 0; i < iters; i++) {
            const p = al.alloc(size);
            if (p === 0) throw new Error('anyalloc alloc failed');
            acc = (acc + p) | 0;
            al.free(p);
          }
          return acc;
        }
      : // The same loop again for the baseline build: one literal per build, or
        // the two builds' allocators share its feedback (both polymorphic).
        (s) => (size, iters) => {
          const al = s.a;
          let acc = 0;
          for (let i = 0; i < iters; i++) {
            const p = al.alloc(size);
            if (p === 0) throw new Error('anyalloc alloc failed');
            acc = (acc + p) | 0;
            al.free(p);
          }
          return acc;
        },
  );

/** 1000 live blocks in a ring; each step frees the oldest and allocates a new one (the counterpart of thing-malloc-1000). */
export function churnFactory(entry?: string): Promise<PairFactory> {
  const ring = new Float64Array(LIVE);
  let head = 0;
  return variant(
    entry,
    (heap, size) => {
      const a = heap.createAllocator();
      for (let i = 0; i < LIVE; i++) if ((ring[i] = a.alloc(size)) === 0) throw new Error('anyalloc alloc failed while filling');
      head = 0;
      return a;
    },
    entry === undefined
      ? (s) => (size, iters) => {
          const al = s.a;
          let k = head;
          let acc = 0;
          for (let i = 0; i < iters; i++) {
            al.free(ring[k]!);
            const p = al.alloc(size);
            if (p === 0) throw new Error('anyalloc alloc failed');
            ring[k] = p;
            acc = (acc + p) | 0;
            k = k + 1 === LIVE ? 0 : k + 1;
          }
          head = k;
          return acc;
        }
      : // The same loop again for the baseline build: one literal per build, or
        // the two builds' allocators share its feedback (both polymorphic).
        (s) => (size, iters) => {
          const al = s.a;
          let k = head;
          let acc = 0;
          for (let i = 0; i < iters; i++) {
            al.free(ring[k]!);
            const p = al.alloc(size);
            if (p === 0) throw new Error('anyalloc alloc failed');
            ring[k] = p;
            acc = (acc + p) | 0;
            k = k + 1 === LIVE ? 0 : k + 1;
          }
          head = k;
          return acc;
        },
  );
}

export const throughput = (entry?: string): ThroughputPeer<{ heap: unknown; alloc: unknown }, number> => ({
  async setup() {
    const heap = (await loadHeap(entry)).create({ maxBytes: MAX_BYTES });
    // Prefill asked for, as the pair's: every worker's caches start filled.
    return { data: { heap: heap.handle, alloc: heap.createAllocator({ prefill: PREFILL }).handle }, close: () => release(heap) };
  },
  async attach(data) {
    const h = (await loadHeap(entry)).attach(data.heap);
    const wa = h.attachAllocator(data.alloc);
    return {
      alloc: (size) => wa.alloc(size) || null,
      free: (p) => wa.free(p),
      detach() {
        wa.detach?.();
        h.detach?.();
      },
    };
  },
});
