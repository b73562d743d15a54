/**
 * One measurement of the map benchmark, run by bench/map/run.ts in a child
 * process of its own (so no peer shares a process, a JIT or a garbage
 * collector with another):
 *
 *   node dist/bench/map/point.js '{"peer":"anyalloc-dynamic","scenario":"overwrite","workers":2,
 *                                  "warmupMs":150,"durationMs":600,"keys":"bytes","pairWindow":8}'
 *   node dist/bench/map/point.js fill
 *
 * It creates the peer's map, starts the client workers (bench/map/worker.ts),
 * raises `go` once all are ready, lets them warm up, then reads their round
 * counters at the start and the end of the measured window while it samples
 * the map's memory every 10 ms. Prints one JSON line (PointResult).
 *
 * `fill`: memory of a dynamic map holding 10% of maxEntries against the
 * preallocated map (FillResult).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { HashMap, Heap } from '../../src/index.js';
import { startAtBarrier, type BarrierWords } from '../barrier.js';
import { isEntry } from '../paths.js';
import { SharedMap } from '../peers/sharedmap-lib.js';
import {
  C_GO,
  C_LINE,
  C_READY,
  C_ROUNDS,
  C_STOP,
  C_WORDS,
  HEAP_MAX_WORKERS,
  MAX_ENTRIES,
  MAX_PAIR_WINDOW,
  MAX_WORKERS,
  opsPerRound,
  type FillResult,
  type MapBenchJob,
  type MapBenchResult,
  type PointResult,
  type PointSpec,
} from './protocol.js';

const SAMPLE_MS = 10;
const START_TIMEOUT_MS = 30_000;

function newHeap(): Heap {
  return Heap.create({ maxBytes: 512 << 20, maxWorkers: HEAP_MAX_WORKERS });
}

/** The peer's shared state, what each worker gets, and how to read its memory. */
export interface Setup {
  job: Partial<MapBenchJob>;
  ports?: MessagePort[];
  mapBytes(): number;
  heapUsedBytes(): number;
  close(): Promise<void>;
}

export async function setup(spec: Pick<PointSpec, 'peer' | 'workers'>): Promise<Setup> {
  switch (spec.peer) {
    case 'anyalloc-prealloc':
    case 'anyalloc-dynamic': {
      const heap = newHeap();
      const mode = spec.peer === 'anyalloc-prealloc' ? 'prealloc' : 'dynamic';
      const map = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: MAX_ENTRIES, mode });
      return {
        job: { heap: heap.handle, map: map.handle },
        mapBytes: () => map.memoryBytes(),
        heapUsedBytes: () => heap.stats().usedBytes,
        async close() {
          map.destroy();
          heap.detach();
        },
      };
    }
    case 'sharedmap': {
      // Twice as many slots as the most keys a run uses: sharedmap is an
      // open (coalesced) table, so it is sized below full; all of it is
      // allocated up front.
      const m = new SharedMap(2 * MAX_ENTRIES, 16, 16);
      const bytes = (m as unknown as { storage: SharedArrayBuffer }).storage.byteLength;
      return { job: { shared: m }, mapBytes: () => bytes, heapUsedBytes: () => NaN, async close() {} };
    }
    case 'jsmap-postmessage': {
      const server = new Worker(new URL('./server.js', import.meta.url));
      const clients: MessagePort[] = [];
      const serverSide: MessagePort[] = [];
      for (let i = 0; i < spec.workers; i++) {
        const ch = new MessageChannel();
        clients.push(ch.port1);
        serverSide.push(ch.port2);
      }
      const ready = new Promise<void>((resolve, reject) => {
        server.once('message', () => resolve());
        server.once('error', reject);
      });
      server.postMessage(serverSide, serverSide);
      await ready;
      return {
        job: {},
        ports: clients,
        mapBytes: () => NaN,
        heapUsedBytes: () => NaN,
        async close() {
          await server.terminate();
        },
      };
    }
  }
}

/** Where the map benchmark's workers meet before they start (../barrier.ts). */
export const MAP_BARRIER: BarrierWords = { ready: C_READY, go: C_GO, timeoutMs: START_TIMEOUT_MS };

export async function measurePoint(spec: PointSpec): Promise<PointResult> {
  if (!(spec.workers >= 1 && spec.workers <= MAX_WORKERS)) throw new RangeError(`workers must be 1..${MAX_WORKERS}`);
  if (spec.scenario === 'add_del_on_diff_cpu' && spec.workers % 2 !== 0) throw new RangeError('add_del_on_diff_cpu needs an even worker count');
  if (!(Number.isInteger(spec.pairWindow) && spec.pairWindow >= 1 && spec.pairWindow <= MAX_PAIR_WINDOW)) {
    throw new RangeError(`pairWindow must be 1..${MAX_PAIR_WINDOW}`);
  }
  const s = await setup(spec);
  const control = new SharedArrayBuffer(4 * C_WORDS);
  const ctl = new Int32Array(control);
  const workers: Worker[] = [];
  let measured = false;
  try {
    const { results } = await startAtBarrier<MapBenchResult>(new URL('./worker.js', import.meta.url), ctl, MAP_BARRIER, workers, spec.workers, (index) => {
      const job: MapBenchJob = {
        ...s.job,
        peer: spec.peer,
        scenario: spec.scenario,
        index,
        workers: spec.workers,
        keys: spec.keys,
        pairWindow: spec.pairWindow,
        control,
      };
      const port = s.ports?.[index];
      if (port !== undefined) job.port = port;
      return { workerData: job, transferList: port ? [port] : [] };
    });
    await sleep(spec.warmupMs);

    const rounds = (): number[] => Array.from({ length: spec.workers }, (_, i) => Atomics.load(ctl, C_ROUNDS + C_LINE * i));
    const r0 = rounds();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const mapBytes: number[] = [];
    const heapUsedBytes: number[] = [];
    while (performance.now() - t0 < spec.durationMs) {
      await sleep(SAMPLE_MS);
      mapBytes.push(s.mapBytes());
      heapUsedBytes.push(s.heapUsedBytes());
    }
    const r1 = rounds();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(c0);
    Atomics.store(ctl, C_STOP, 1);
    const outs = await Promise.all(results);
    const bad = outs.find((o) => o.error !== undefined);
    if (bad) throw new Error(`worker failed: ${bad.error}`);
    measured = true;
    const per = opsPerRound(spec.scenario);
    const perWorker = r0.map((a, i) => ((r1[i]! - a) * per) / seconds);
    return {
      ...spec,
      opsPerSec: perWorker.reduce((a, b) => a + b, 0),
      perWorker,
      mapBytes: mapBytes.filter(Number.isFinite),
      heapUsedBytes: heapUsedBytes.filter(Number.isFinite),
      cpuPerWorker: (cpu.user + cpu.system) / 1e6 / seconds / spec.workers,
      failures: outs.reduce((a, o) => a + o.failures, 0),
    };
  } finally {
    Atomics.store(ctl, C_STOP, 1);
    await Promise.all(workers.map((w) => w.terminate().catch(() => 0)));
    // After a failure, a worker may not have detached and destroy() would
    // throw: keep the first error, not that one.
    await s.close().catch((e: unknown) => {
      if (measured) throw e;
    });
  }
}

/**
 * A dynamic map and a preallocated one of 65,536 entries (8-byte keys and
 * values), each filled to 10% from this thread, each on a heap of its own:
 * the bytes each map holds, and the heap pages in use.
 */
export function measureFill(): FillResult {
  const maxEntries = 65536;
  const filled = Math.ceil(maxEntries / 10);
  const one = (mode: 'prealloc' | 'dynamic'): { mapBytes: number; heapUsedBytes: number } => {
    const heap = newHeap();
    const before = heap.stats().usedBytes;
    const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries, mode });
    const key = new Uint8Array(8);
    const kw = new Uint32Array(key.buffer);
    for (let i = 0; i < filled; i++) {
      kw[0] = i;
      if (m.update(key, key) !== 0) throw new Error(`fill: update ${i} failed`);
    }
    const r = { mapBytes: m.memoryBytes(), heapUsedBytes: heap.stats().usedBytes - before };
    m.destroy();
    heap.detach();
    return r;
  };
  return { maxEntries, filled, prealloc: one('prealloc'), dynamic: one('dynamic') };
}

if (isEntry(import.meta.url)) {
  const arg = process.argv[2];
  if (arg === undefined) throw new Error('usage: point.js <PointSpec JSON> | fill');
  const out = arg === 'fill' ? measureFill() : await measurePoint(JSON.parse(arg) as PointSpec);
  process.stdout.write(JSON.stringify(out) + '\n');
}
