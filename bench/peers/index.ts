/**
 * Registry of benchmark variants. Modules are loaded lazily so a process
 * only loads the variants it measures. A name with the suffix `@baseline`
 * (anyalloc's variants only) loads the same variant from the build given
 * with --baseline.
 */
import { twinOf } from '../matched.js';
import type { PairFactory, PairPeerEntry, ThroughputPeer } from './types.js';

export const PAIR_PEERS: readonly PairPeerEntry[] = [
  { name: 'floor', note: 'Int32Array free-list stack, pop + push, no Atomics', load: async () => (await import('./floor.js')).create },
  {
    name: 'floor-checked',
    note: 'the floor plus the checks every cache hit must make (size, class, owner, double free, watermarks, a counter)',
    load: async () => (await import('./floor-checked.js')).create,
  },
  { name: 'floor-atomics', note: 'same stack, Atomics.load + compareExchange on the top word', load: async () => (await import('./floor-atomics.js')).create },
  { name: 'thing-malloc', note: '@thi.ng/malloc MemPool, empty pool', load: async () => (await import('./thing-malloc.js')).createEmpty },
  { name: 'thing-malloc-1000', note: '@thi.ng/malloc MemPool, 1000 live blocks, FIFO churn', load: async () => (await import('./thing-malloc.js')).createChurn },
  { name: 'uint8array', note: '`new Uint8Array(size)`, freed by the GC', load: async () => (await import('./uint8array.js')).create },
  {
    name: 'sharedmemobjects',
    note: 'shared-memory-objects MemoryHeap.allocUI32 + free (public API)',
    load: async () => (await import('./sharedmemobjects.js')).heapFactory(),
  },
  {
    name: 'sharedmemobjects-buffer',
    note: 'shared-memory-objects MemoryBuffer.malloc + free (locked pool)',
    load: async () => (await import('./sharedmemobjects.js')).bufferFactory(),
  },
  {
    name: 'sharedmemobjects-1000',
    note: 'shared-memory-objects MemoryHeap, 1000 live blocks, FIFO churn',
    load: async () => (await import('./sharedmemobjects.js')).churnFactory(),
  },
  { name: 'global-lock', note: 'global-lock allocator written for the benchmark', load: async () => (await import('./global-lock.js')).create },
  { name: 'anyalloc', note: 'anyalloc size-bucketed allocator', load: async (lib) => (await import('./anyalloc.js')).bucketedFactory(lib) },
  { name: 'anyalloc-fixed', note: 'anyalloc fixed-size allocator, unitSize = size', load: async (lib) => (await import('./anyalloc.js')).fixedFactory(lib) },
  {
    name: 'anyalloc-warm',
    note: 'anyalloc size-bucketed, slow paths run hot first (a start-up fill)',
    load: async (lib) => (await import('./anyalloc.js')).warmFactory(lib),
  },
  {
    name: 'anyalloc-1000',
    note: 'anyalloc size-bucketed, 1000 live blocks, FIFO churn',
    load: async (lib) => (await import('./anyalloc.js')).churnFactory(lib),
  },
];

/** The build entry a variant loads: the baseline's for `x@baseline` (which only anyalloc's variants have). */
function entryOf(name: string, baseline: string | undefined): { base: string; lib?: string } {
  const twin = twinOf(name);
  if (twin === undefined) return { base: name };
  if (!twin.startsWith('anyalloc')) throw new Error(`only anyalloc's variants have a baseline, not ${twin}`);
  if (baseline === undefined) throw new Error(`${name} needs a baseline build (--baseline DIR)`);
  return { base: twin, lib: baseline };
}

/** `baseline`: the entry file (DIR/dist/src/index.js) the `@baseline` variants load. */
export async function loadPairFactory(name: string, baseline?: string): Promise<PairFactory> {
  const { base, lib } = entryOf(name, baseline);
  const entry = PAIR_PEERS.find((p) => p.name === base);
  if (!entry) throw new Error(`unknown variant "${name}"; known: ${PAIR_PEERS.map((p) => p.name).join(', ')}`);
  return entry.load(lib);
}

export const THROUGHPUT_PEERS: readonly { name: string; load(lib?: string): Promise<ThroughputPeer> }[] = [
  { name: 'private', load: async () => (await import('./floor.js')).throughputPrivate as ThroughputPeer },
  { name: 'global-lock', load: async () => (await import('./global-lock.js')).throughput as ThroughputPeer },
  { name: 'sharedmemobjects', load: async () => (await import('./sharedmemobjects.js')).throughputHeap as ThroughputPeer },
  { name: 'sharedmemobjects-buffer', load: async () => (await import('./sharedmemobjects.js')).throughputBuffer as ThroughputPeer },
  { name: 'anyalloc', load: async (lib) => (await import('./anyalloc.js')).throughput(lib) as ThroughputPeer },
];

export async function loadThroughputPeer(name: string, baseline?: string): Promise<ThroughputPeer> {
  const { base, lib } = entryOf(name, baseline);
  const entry = THROUGHPUT_PEERS.find((p) => p.name === base);
  if (!entry) throw new Error(`unknown throughput peer "${name}"; known: ${THROUGHPUT_PEERS.map((p) => p.name).join(', ')}`);
  return entry.load(lib);
}
