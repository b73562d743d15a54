/**
 * anyalloc itself, loaded from the compiled package's public entry
 * (dist/src/index.js), or from another build's (--baseline DIR loads
 * DIR/dist/src/index.js for the `@baseline` variants).
 *
 * It is imported at run time rather than statically so the harness builds
 * and runs its peers even when the core is absent or mid-change, and so
 * that an older build can stand beside this one; the interfaces below are
 * the part of the API the benchmark calls.
 *
 * Variants:
 * - `anyalloc`: size-bucketed allocator, `a.alloc(size)` / `a.free(ptr)`;
 * - `anyalloc-fixed`: fixed-size allocator with `unitSize = size`;
 * - `anyalloc-warm`: `anyalloc` after a start-up fill ran the slow paths;
 * - `anyalloc-1000`: size-bucketed, 1000 live blocks, FIFO churn (the
 *   counterpart of `thing-malloc-1000`).
 * Throughput: one heap and one size-bucketed allocator; every worker
 * attaches to both.
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ANYALLOC_ENTRY } from '../paths.js';
import { type PairFactory, type PairVariant, type ThroughputPeer, type WorkerOps, Unavailable } from './types.js';

export interface AnyAllocator {
  alloc(size?: number): number;
  free(ptr: number): void;
  readonly handle: unknown;
  detach?(): void;
}
export interface AnyHeap {
  createAllocator(opts?: { unitSize?: number }): AnyAllocator;
  attachAllocator(handle: unknown): AnyAllocator;
  readonly handle: unknown;
  detach?(): void;
  destroy?(): void;
}
export interface AnyHeapStatic {
  create(opts: { maxBytes: number }): AnyHeap;
  attach(handle: unknown): AnyHeap;
}

export const MAX_BYTES = 256 << 20;
export const LIVE = 1000;

/** Heap of the build whose entry is `entry` (default: this build's dist/src/index.js). */
export async function loadHeap(entry = ANYALLOC_ENTRY): Promise<AnyHeapStatic> {
  if (!existsSync(entry)) throw new Unavailable(`${entry} not built (run \`npm run build\`)`);
  let mod: { Heap?: Partial<AnyHeapStatic> };
  try {
    mod = (await import(pathToFileURL(entry).href)) as { Heap?: Partial<AnyHeapStatic> };
  } catch (e) {
    throw new Unavailable(`cannot load ${entry}: ${(e as Error).message}`);
  }
  const H = mod.Heap;
  if (!H || typeof H.create !== 'function' || typeof H.attach !== 'function') {
    throw new Unavailable(`${entry} does not export Heap.create / Heap.attach`);
  }
  return H as AnyHeapStatic;
}

function release(heap: AnyHeap | undefined): void {
  if (!heap) return;
  if (typeof heap.destroy === 'function') heap.destroy();
  else if (typeof heap.detach === 'function') heap.detach();
}

export async function bucketedFactory(entry?: string): Promise<PairFactory> {
  const Heap = await loadHeap(entry);
  return (): PairVariant => {
    let heap: AnyHeap | undefined;
    let a: AnyAllocator | undefined;
    return {
      name: 'anyalloc',
      note: 'anyalloc size-bucketed allocator (per-worker cache)',
      prepare(): void {
        release(heap);
        heap = Heap.create({ maxBytes: MAX_BYTES });
        a = heap.createAllocator();
      },
      run(size: number, iters: number): number {
        const al = a!;
        let acc = 0;
        for (let i = 0; i < iters; i++) {
          const p = al.alloc(size);
          if (p === 0) throw new Error('anyalloc alloc failed');
          acc = (acc + p) | 0;
          al.free(p);
        }
        return acc;
      },
      dispose(): void {
        release(heap);
        heap = undefined;
      },
    };
  };
}

/**
 * The same pair as `anyalloc`, on an allocator whose slow paths have run
 * hot first, as a program's start-up does: prepare() allocates 4000
 * objects of every class (each cache empties and refills a batch at a
 * time), frees them (the caches trim), and large runs in between. V8 then
 * compiles alloc and free with those paths in their feedback; the pair
 * loop is the same as `anyalloc`'s, written again on purpose: each
 * variant's loop is a function literal of its own, or the variants would
 * share the loop's feedback too.
 */
export async function warmFactory(entry?: string): Promise<PairFactory> {
  const Heap = await loadHeap(entry);
  return (): PairVariant => {
    let heap: AnyHeap | undefined;
    let a: AnyAllocator | undefined;
    return {
      name: 'anyalloc-warm',
      note: 'anyalloc size-bucketed, slow paths run hot before (start-up fill)',
      prepare(): void {
        release(heap);
        heap = Heap.create({ maxBytes: MAX_BYTES });
        a = heap.createAllocator();
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
      },
      run(size: number, iters: number): number {
        const al = a!;
        let acc = 0;
        for (let i = 0; i < iters; i++) {
          const p = al.alloc(size);
          if (p === 0) throw new Error('anyalloc alloc failed');
          acc = (acc + p) | 0;
          al.free(p);
        }
        return acc;
      },
      dispose(): void {
        release(heap);
        heap = undefined;
      },
    };
  };
}

export async function fixedFactory(entry?: string): Promise<PairFactory> {
  const Heap = await loadHeap(entry);
  return (): PairVariant => {
    let heap: AnyHeap | undefined;
    let f: AnyAllocator | undefined;
    return {
      name: 'anyalloc-fixed',
      note: 'anyalloc fixed-size allocator, unitSize = size',
      prepare(size: number): void {
        release(heap);
        heap = Heap.create({ maxBytes: MAX_BYTES });
        f = heap.createAllocator({ unitSize: size });
      },
      run(_size: number, iters: number): number {
        const al = f!;
        let acc = 0;
        for (let i = 0; i < iters; i++) {
          const p = al.alloc();
          if (p === 0) throw new Error('anyalloc fixed alloc failed');
          acc = (acc + p) | 0;
          al.free(p);
        }
        return acc;
      },
      dispose(): void {
        release(heap);
        heap = undefined;
      },
    };
  };
}

export async function churnFactory(entry?: string): Promise<PairFactory> {
  const Heap = await loadHeap(entry);
  return (): PairVariant => {
    let heap: AnyHeap | undefined;
    let a: AnyAllocator | undefined;
    const ring = new Float64Array(LIVE);
    let head = 0;
    return {
      name: 'anyalloc-1000',
      note: `anyalloc size-bucketed, ${LIVE} live blocks, FIFO churn`,
      prepare(size: number): void {
        release(heap);
        heap = Heap.create({ maxBytes: MAX_BYTES });
        a = heap.createAllocator();
        for (let i = 0; i < LIVE; i++) {
          const p = a.alloc(size);
          if (p === 0) throw new Error('anyalloc alloc failed while filling');
          ring[i] = p;
        }
        head = 0;
      },
      run(size: number, iters: number): number {
        const al = a!;
        const r = ring;
        let k = head;
        let acc = 0;
        for (let i = 0; i < iters; i++) {
          al.free(r[k]);
          const p = al.alloc(size);
          if (p === 0) throw new Error('anyalloc alloc failed');
          r[k] = p;
          acc = (acc + p) | 0;
          k = k + 1 === LIVE ? 0 : k + 1;
        }
        head = k;
        return acc;
      },
      dispose(): void {
        release(heap);
        heap = undefined;
      },
    };
  };
}

interface AnyData {
  heap: unknown;
  alloc: unknown;
}

// ---------------------------------------------------------------------------
// anyalloc throughput hook: the main thread creates the heap and one
// size-bucketed allocator; each worker attaches to both and detaches at the
// end.
// ---------------------------------------------------------------------------
export const throughput = (entry?: string): ThroughputPeer<AnyData, number> => ({
  name: 'anyalloc',
  note: 'anyalloc: one heap, one size-bucketed allocator, every worker attached',
  async setup() {
    const Heap = await loadHeap(entry);
    const heap = Heap.create({ maxBytes: MAX_BYTES });
    const a = heap.createAllocator();
    return { data: { heap: heap.handle, alloc: a.handle }, close: () => release(heap) };
  },
  async attach(data): Promise<WorkerOps<number>> {
    const Heap = await loadHeap(entry);
    const h = Heap.attach(data.heap);
    const wa = h.attachAllocator(data.alloc);
    return {
      alloc: (size) => {
        const p = wa.alloc(size);
        return p === 0 ? null : p;
      },
      free: (p) => wa.free(p),
      detach() {
        wa.detach?.();
        h.detach?.();
      },
    };
  },
});
