/**
 * Registry of benchmark variants. Modules are loaded lazily so a child
 * process only loads the one variant it measures.
 */
import type { PairFactory, PairPeerEntry, ThroughputPeer } from './types.js';

export const PAIR_PEERS: readonly PairPeerEntry[] = [
  {
    name: 'floor',
    note: 'Int32Array free-list stack, pop + push, no Atomics',
    load: async () => (await import('./floor.js')).create,
  },
  {
    name: 'floor-checked',
    note: 'the floor plus the checks every cache hit must make (size, class, owner, double free, watermarks, a counter)',
    load: async () => (await import('./floor-checked.js')).create,
  },
  {
    name: 'floor-atomics',
    note: 'same stack, Atomics.load + compareExchange on the top word',
    load: async () => (await import('./floor-atomics.js')).create,
  },
  {
    name: 'thing-malloc',
    note: '@thi.ng/malloc MemPool, empty pool',
    load: async () => (await import('./thing-malloc.js')).createEmpty,
  },
  {
    name: 'thing-malloc-1000',
    note: '@thi.ng/malloc MemPool, 1000 live blocks, FIFO churn',
    load: async () => (await import('./thing-malloc.js')).createChurn,
  },
  {
    name: 'uint8array',
    note: '`new Uint8Array(size)`, freed by the GC',
    load: async () => (await import('./uint8array.js')).create,
  },
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
  {
    name: 'global-lock',
    note: 'global-lock allocator written for the benchmark',
    load: async () => (await import('./global-lock.js')).create,
  },
  {
    name: 'anyalloc',
    note: 'anyalloc size-bucketed allocator',
    load: async () => (await import('./anyalloc.js')).bucketedFactory(),
  },
  {
    name: 'anyalloc-fixed',
    note: 'anyalloc fixed-size allocator, unitSize = size',
    load: async () => (await import('./anyalloc.js')).fixedFactory(),
  },
  {
    name: 'anyalloc-warm',
    note: 'anyalloc size-bucketed, slow paths run hot first (a start-up fill)',
    load: async () => (await import('./anyalloc.js')).warmFactory(),
  },
  {
    name: 'anyalloc-1000',
    note: 'anyalloc size-bucketed, 1000 live blocks, FIFO churn',
    load: async () => (await import('./anyalloc.js')).churnFactory(),
  },
];

export function findPairPeer(name: string): PairPeerEntry | undefined {
  return PAIR_PEERS.find((p) => p.name === name);
}

export async function loadPairFactory(name: string): Promise<PairFactory> {
  const entry = findPairPeer(name);
  if (!entry) throw new Error(`unknown variant "${name}"; known: ${PAIR_PEERS.map((p) => p.name).join(', ')}`);
  return entry.load();
}

export interface ThroughputEntry {
  readonly name: string;
  load(): Promise<ThroughputPeer>;
}

export const THROUGHPUT_PEERS: readonly ThroughputEntry[] = [
  { name: 'private', load: async () => (await import('./floor.js')).throughputPrivate as ThroughputPeer },
  { name: 'global-lock', load: async () => (await import('./global-lock.js')).throughput as ThroughputPeer },
  { name: 'sharedmemobjects', load: async () => (await import('./sharedmemobjects.js')).throughputHeap as ThroughputPeer },
  {
    name: 'sharedmemobjects-buffer',
    load: async () => (await import('./sharedmemobjects.js')).throughputBuffer as ThroughputPeer,
  },
  { name: 'anyalloc', load: async () => (await import('./anyalloc.js')).throughput as ThroughputPeer },
];

export async function loadThroughputPeer(name: string): Promise<ThroughputPeer> {
  const entry = THROUGHPUT_PEERS.find((p) => p.name === name);
  if (!entry) {
    throw new Error(`unknown throughput peer "${name}"; known: ${THROUGHPUT_PEERS.map((p) => p.name).join(', ')}`);
  }
  return entry.load();
}
