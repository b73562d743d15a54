/**
 * @daneren2005/shared-memory-objects: a fork of @thi.ng/malloc's MemPool
 * with one lock per buffer (Atomics.compareExchange; waits with Atomics.wait
 * inside workers, spins elsewhere) and Atomics on its state words, plus a
 * `MemoryHeap` that chains buffers of up to 1 MiB.
 *
 * The package is published as TypeScript sources for a bundler; the harness
 * compiles it into bench/.peers-build/ first (see ../build-peers.ts).
 *
 * Node has no `self`, which its lock reads when it is contended. A browser
 * defines `self` everywhere and `WorkerGlobalScope` inside workers; the
 * harness defines the same before loading the package, so the lock behaves
 * as in a browser: it sleeps in workers and spins on the main thread.
 *
 * Variants:
 * - `sharedmemobjects`: the package's public API, `heap.allocUI32(n)` then
 *   `memory.free()` (it wraps each block in an object and a Uint32Array and
 *   zero-fills it);
 * - `sharedmemobjects-buffer`: the allocator underneath, `MemoryBuffer`
 *   `malloc(bytes)` / `free(ptr)` on one buffer, configured as the heap
 *   configures its buffers (no splitting, no compaction);
 * - `sharedmemobjects-1000`: public API with 1000 live blocks, FIFO churn
 *   (free() searches the list of used blocks: O(live blocks)).
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { SMO_ENTRY, buildSharedMemoryObjects } from '../build-peers.js';
import { type PairFactory, type PairVariant, type ThroughputPeer, type WorkerOps, Unavailable } from './types.js';

// The parts of the package's API the benchmark uses.
export interface SmoAllocatedMemory {
  data: Uint32Array;
  free(): void;
}
export interface SmoMemoryHeap {
  allocUI32(count: number): SmoAllocatedMemory;
  getSharedMemory(): { buffers: SharedArrayBuffer[] };
}
export interface SmoMemoryBuffer {
  malloc(bytes: number): number;
  free(ptr: number): boolean;
}
interface SmoModule {
  MemoryHeap: new (config?: { bufferSize?: number; initialBuffers?: number } | { buffers: SharedArrayBuffer[] }) => SmoMemoryHeap;
  MemoryBuffer: new (opts: {
    buf: ArrayBufferLike;
    compact?: boolean;
    split?: boolean;
    skipInitialization?: boolean;
  }) => SmoMemoryBuffer;
}

let loaded: SmoModule | undefined;

/** Loads the compiled package, compiling it first when needed. */
export async function loadSmo(): Promise<SmoModule> {
  if (loaded) return loaded;
  if (!existsSync(SMO_ENTRY)) {
    try {
      buildSharedMemoryObjects();
    } catch (e) {
      throw new Unavailable(`cannot compile @daneren2005/shared-memory-objects: ${(e as Error).message}`);
    }
  }
  const g = globalThis as Record<string, unknown>;
  if (g['self'] === undefined) g['self'] = globalThis;
  if (!isMainThread && !('WorkerGlobalScope' in g)) {
    g['WorkerGlobalScope'] = function WorkerGlobalScope() {};
  }
  const mod = (await import(pathToFileURL(SMO_ENTRY).href)) as Partial<SmoModule>;
  if (typeof mod.MemoryHeap !== 'function' || typeof mod.MemoryBuffer !== 'function') {
    throw new Unavailable('compiled shared-memory-objects lacks MemoryHeap / MemoryBuffer');
  }
  loaded = mod as SmoModule;
  return loaded;
}

/** Largest buffer the package's pointers can address. */
const HEAP_BUFFER_BYTES = 1 << 20;
const RAW_BUFFER_BYTES = 32 << 20;
export const LIVE = 1000;

const words = (size: number): number => (size + 3) >> 2;

export async function heapFactory(): Promise<PairFactory> {
  const { MemoryHeap } = await loadSmo();
  return (): PairVariant => {
    let heap = new MemoryHeap({ bufferSize: HEAP_BUFFER_BYTES });
    return {
      prepare(): void {
        heap = new MemoryHeap({ bufferSize: HEAP_BUFFER_BYTES });
      },
      run(size: number, iters: number): number {
        const h = heap;
        const n = words(size);
        let acc = 0;
        for (let i = 0; i < iters; i++) {
          const m = h.allocUI32(n);
          acc = (acc + m.data.byteOffset) | 0;
          m.free();
        }
        return acc;
      },
    };
  };
}

export async function bufferFactory(): Promise<PairFactory> {
  const { MemoryBuffer } = await loadSmo();
  const make = (): SmoMemoryBuffer =>
    new MemoryBuffer({ buf: new SharedArrayBuffer(RAW_BUFFER_BYTES), compact: false, split: false });
  return (): PairVariant => {
    let mb = make();
    return {
      prepare(): void {
        mb = make();
      },
      run(size: number, iters: number): number {
        const b = mb;
        let acc = 0;
        for (let i = 0; i < iters; i++) {
          const p = b.malloc(size);
          if (p === 0) throw new Error('MemoryBuffer.malloc failed');
          acc = (acc + p) | 0;
          b.free(p);
        }
        return acc;
      },
    };
  };
}

export async function churnFactory(): Promise<PairFactory> {
  const { MemoryHeap } = await loadSmo();
  return (): PairVariant => {
    let heap = new MemoryHeap({ bufferSize: HEAP_BUFFER_BYTES });
    let ring: SmoAllocatedMemory[] = [];
    let head = 0;
    return {
      prepare(size: number): void {
        heap = new MemoryHeap({ bufferSize: HEAP_BUFFER_BYTES });
        ring = [];
        for (let i = 0; i < LIVE; i++) ring.push(heap.allocUI32(words(size)));
        head = 0;
      },
      run(size: number, iters: number): number {
        const h = heap;
        const r = ring;
        const n = words(size);
        let k = head;
        let acc = 0;
        for (let i = 0; i < iters; i++) {
          r[k].free();
          const m = h.allocUI32(n);
          r[k] = m;
          acc = (acc + m.data.byteOffset) | 0;
          k = k + 1 === LIVE ? 0 : k + 1;
        }
        head = k;
        return acc;
      },
    };
  };
}

interface HeapData {
  shared: { buffers: SharedArrayBuffer[] };
}

export const throughputHeap: ThroughputPeer<HeapData, SmoAllocatedMemory> = {
  async setup() {
    const { MemoryHeap } = await loadSmo();
    // Several buffers up front: a worker that had to add one would not tell
    // the others (that needs the package's grow callbacks).
    const heap = new MemoryHeap({ bufferSize: HEAP_BUFFER_BYTES, initialBuffers: 4 });
    return { data: { shared: heap.getSharedMemory() }, close() {} };
  },
  async attach(data): Promise<WorkerOps<SmoAllocatedMemory>> {
    const { MemoryHeap } = await loadSmo();
    const heap = new MemoryHeap(data.shared);
    return {
      alloc: (size) => heap.allocUI32(words(size)),
      free: (m) => m.free(),
      detach() {},
    };
  },
};

interface BufferData {
  buf: SharedArrayBuffer;
}

export const throughputBuffer: ThroughputPeer<BufferData, number> = {
  async setup() {
    const { MemoryBuffer } = await loadSmo();
    const buf = new SharedArrayBuffer(RAW_BUFFER_BYTES);
    new MemoryBuffer({ buf, compact: false, split: false });
    return { data: { buf }, close() {} };
  },
  async attach(data): Promise<WorkerOps<number>> {
    const { MemoryBuffer } = await loadSmo();
    const mb = new MemoryBuffer({ buf: data.buf, skipInitialization: true });
    return {
      alloc: (size) => {
        const p = mb.malloc(size);
        return p === 0 ? null : p;
      },
      free: (p) => {
        mb.free(p);
      },
      detach() {},
    };
  },
};
