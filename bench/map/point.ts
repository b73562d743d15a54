/**
 * One point of the map suite, run by bench/map/run.ts in a child process of
 * its own: `node dist/bench/map/point.js <PointSpec JSON>`, printing one
 * JSON line (PointResult).
 *
 * Every peer gets a map (anyalloc's on a heap of their own), the same
 * workers (worker.ts) attach to all of them, and the peers take turns in
 * matched windows (../matched.ts): during a peer's window the workers run
 * their rounds on its map, and its rate counts the rounds finished between
 * the window's start and end (a round is 48 or 64 operations, a few
 * microseconds; the JS Map behind postMessage takes about a millisecond).
 * The catch: the peers share a JIT and caches (several maps' working sets
 * instead of one), so each one's rate may sit a little below its rate
 * alone. At the end of each window the peer's memory is sampled.
 *
 * `{"memory":true}` instead: the memory timeline (measureMemory).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { startAtBarrier } from '../barrier.js';
import { runMatched, twinOf, type Contender } from '../matched.js';
import { isEntry } from '../paths.js';
import { SharedMap } from '../peers/sharedmap-lib.js';
import { loadLib, type Lib } from './ops.js';
import {
  C_GO,
  C_LINE,
  C_PHASE,
  C_READY,
  C_ROUNDS,
  C_STOP,
  C_WORDS,
  HEAP_MAX_WORKERS,
  MAX_ENTRIES,
  MAX_WORKERS,
  opsPerRound,
  type MapJob,
  type MapWorkerResult,
  type MemoryResult,
  type MemorySample,
  type PeerJob,
  type PointResult,
  type PointSpec,
} from './protocol.js';

const newHeap = (lib: Lib): ReturnType<Lib['Heap']['create']> => lib.Heap.create({ maxBytes: 512 << 20, maxWorkers: HEAP_MAX_WORKERS });

interface Setup {
  job: PeerJob;
  mapBytes(): number;
  close(): Promise<void>;
}

async function setup(peer: string, baseline: string | undefined): Promise<Setup> {
  const base = twinOf(peer) ?? peer;
  if (base === 'anyalloc-prealloc' || base === 'anyalloc-dynamic') {
    const lib = await loadLib(base === peer ? undefined : baseline);
    const heap = newHeap(lib);
    const mode = base === 'anyalloc-prealloc' ? 'prealloc' : 'dynamic';
    const map = lib.HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: MAX_ENTRIES, mode });
    const job: PeerJob = { peer, heap: heap.handle, map: map.handle };
    if (base !== peer) job.lib = baseline;
    return {
      job,
      mapBytes: () => map.memoryBytes(),
      async close() {
        map.destroy();
        heap.detach();
      },
    };
  }
  if (peer === 'sharedmap') {
    // Twice as many slots as the most keys a run uses: sharedmap is an open
    // (coalesced) table, so it is sized below full; all of it is allocated
    // up front.
    const m = new SharedMap(2 * MAX_ENTRIES, 16, 16);
    const bytes = (m as unknown as { storage: SharedArrayBuffer }).storage.byteLength;
    return { job: { peer, shared: m }, mapBytes: () => bytes, async close() {} };
  }
  if (peer === 'jsmap-postmessage') return { job: { peer }, mapBytes: () => NaN, async close() {} };
  throw new Error(`unknown map peer ${peer}`);
}

/** The JS Map's server worker, with a port and a reply word for each client. */
async function startServer(workers: number): Promise<{ ports: MessagePort[]; replied: SharedArrayBuffer; close(): Promise<number> }> {
  const server = new Worker(new URL('./server.js', import.meta.url));
  const ports: MessagePort[] = [];
  const serverSide: MessagePort[] = [];
  for (let i = 0; i < workers; i++) {
    const ch = new MessageChannel();
    ports.push(ch.port1);
    serverSide.push(ch.port2);
  }
  const replied = new SharedArrayBuffer(4 * workers);
  const ready = new Promise((resolve, reject) => {
    server.once('message', resolve);
    server.once('error', reject);
  });
  server.postMessage({ ports: serverSide, replied }, serverSide);
  await ready;
  return { ports, replied, close: () => server.terminate() };
}

export async function measurePoint(spec: PointSpec): Promise<PointResult> {
  if (!(spec.workers >= 1 && spec.workers <= MAX_WORKERS)) throw new RangeError(`workers must be 1..${MAX_WORKERS}`);
  if (spec.scenario === 'add_del_on_diff_cpu' && spec.workers % 2 !== 0) throw new RangeError('add_del_on_diff_cpu needs an even worker count');
  if (spec.peers.length < 1 || spec.peers.length > C_LINE) throw new RangeError(`a point needs 1..${C_LINE} peers`);
  const setups: Setup[] = [];
  const workers: Worker[] = [];
  const control = new SharedArrayBuffer(4 * C_WORDS);
  const ctl = new Int32Array(control);
  const server = spec.peers.includes('jsmap-postmessage') ? await startServer(spec.workers) : undefined;
  try {
    for (const peer of spec.peers) setups.push(await setup(peer, spec.baseline));
    const barrier = { ready: C_READY, go: C_GO, timeoutMs: 30_000 };
    const { results, failed } = await startAtBarrier<MapWorkerResult>(new URL('./worker.js', import.meta.url), ctl, barrier, workers, spec.workers, (index) => {
      const job: MapJob = { peers: setups.map((s) => s.job), scenario: spec.scenario, index, control };
      if (server === undefined) return { workerData: job };
      job.port = server.ports[index]!;
      job.replied = server.replied;
      return { workerData: job, transferList: [job.port] };
    });
    const done = (p: number): number => {
      let n = 0;
      for (let i = 0; i < spec.workers; i++) n += Atomics.load(ctl, C_ROUNDS + C_LINE * i + p);
      return n;
    };
    const per = opsPerRound(spec.scenario);
    const peakMapBytes: Record<string, number> = {};
    const contenders: Contender[] = spec.peers.map((name, p) => ({
      name,
      async window() {
        const n0 = done(p);
        Atomics.store(ctl, C_PHASE, p);
        const t0 = performance.now();
        await sleep(spec.windowMs);
        const n1 = done(p);
        const seconds = (performance.now() - t0) / 1000;
        const f = failed();
        if (f) throw f;
        const bytes = setups[p]!.mapBytes();
        if (Number.isFinite(bytes)) peakMapBytes[name] = Math.max(peakMapBytes[name] ?? 0, bytes);
        return ((n1 - n0) * per) / seconds;
      },
    }));
    const m = await runMatched(contenders, spec.cycles, spec.warmupCycles);
    Atomics.store(ctl, C_STOP, 1);
    const outs = await Promise.all(results);
    const bad = outs.find((o) => o.error !== undefined);
    if (bad) throw new Error(`worker failed: ${bad.error}`);
    return { scenario: spec.scenario, workers: spec.workers, ...m, peakMapBytes, failures: outs.reduce((a, o) => a + o.failures, 0) };
  } finally {
    Atomics.store(ctl, C_STOP, 1);
    await Promise.all(workers.map((w) => w.terminate().catch(() => 0)));
    await server?.close();
    // After a failure a worker may not have detached and destroy() would throw: keep the first error.
    for (const s of setups) await s.close().catch(() => undefined);
  }
}

/**
 * Memory over time, one thread, a dynamic and a preallocated map of
 * 65,536 entries (8-byte keys and values), each on a heap of its own:
 * fill to 10%, churn at 10% (delete the oldest key, add a new one) for
 * four times as many operations, grow to 50%, delete every key. Sampled
 * every 512 operations: the heap's committed and used bytes, the map's
 * memoryBytes() (its table and element slabs), and the bytes of the live
 * keys and values.
 */
export async function measureMemory(): Promise<MemoryResult> {
  const lib = await loadLib(undefined);
  const maxEntries = 65536;
  const tenth = Math.ceil(maxEntries / 10);
  const samples: MemorySample[] = [];
  const atTenPercent = {} as MemoryResult['atTenPercent'];
  for (const mode of ['prealloc', 'dynamic'] as const) {
    const heap = newHeap(lib);
    const m = lib.HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries, mode });
    const key = new Uint8Array(8);
    const kw = new Uint32Array(key.buffer);
    const t0 = performance.now();
    let ops = 0;
    let oldest = 0;
    let next = 0;
    const sample = (phase: string): void => {
      const h = heap.stats();
      const live = next - oldest;
      samples.push({ mode, phase, ops, ms: performance.now() - t0, committedBytes: h.committedBytes, usedBytes: h.usedBytes, mapBytes: m.memoryBytes(), liveBytes: live * 16 });
    };
    const step = (phase: string, op: () => void): void => {
      op();
      if (++ops % 512 === 0) sample(phase);
    };
    const add = (): void => {
      kw[0] = next++;
      if (m.update(key, key) !== 0) throw new Error(`memory: update of key ${next - 1} failed`);
    };
    const del = (): void => {
      kw[0] = oldest++;
      if (m.delete(key) !== 0) throw new Error(`memory: delete of key ${oldest - 1} failed`);
    };
    sample('start');
    while (next < tenth) step('fill to 10%', add);
    atTenPercent[mode] = { mapBytes: m.memoryBytes(), usedBytes: heap.stats().usedBytes };
    for (let i = 0; i < 4 * tenth; i++) step('churn at 10%', i % 2 === 0 ? del : add);
    while (next - oldest < maxEntries / 2) step('grow to 50%', add);
    while (oldest < next) step('delete all', del);
    m.collect();
    sample('collected');
    m.destroy();
    heap.detach();
  }
  return { maxEntries, atTenPercent, samples };
}

if (isEntry(import.meta.url)) {
  const arg = process.argv[2];
  if (arg === undefined) throw new Error('usage: point.js <PointSpec JSON> | {"memory":true}');
  const spec = JSON.parse(arg) as PointSpec | { memory: true };
  process.stdout.write(JSON.stringify('memory' in spec ? await measureMemory() : await measurePoint(spec)) + '\n');
}
