/**
 * Multi-worker throughput: N worker_threads share one heap; each attaches,
 * warms up, waits at a barrier, then for a fixed time frees the block it
 * allocated 8 steps earlier and allocates a new one of 16..256 bytes
 * (throughput-worker.ts). A window is one such run with fresh workers on
 * fresh shared state; total pairs per second over workers.
 *
 * Every peer at every worker count takes turns in matched windows
 * (matched.ts), so `x 1 worker` (the scaling) and `x private` compare runs
 * a second apart, not the many seconds a suite that ran every 1-worker
 * point first would put between them. Peers: `private` (each worker its
 * own unshared stack: the ideal line), `global-lock`, `sharedmemobjects`,
 * `sharedmemobjects-buffer`, `anyalloc` (and `anyalloc@baseline`).
 * Worker counts above the number of cores oversubscribe the machine.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { startAtBarrier } from './barrier.js';
import { AT_BASELINE, TWIN_COLUMN, matchedJson, matchedRows, matchedTable, runMatched, type Matched, type RefColumn } from './matched.js';
import { BENCH_DIST } from './paths.js';
import { THROUGHPUT_PEERS, loadThroughputPeer } from './peers/index.js';
import { Unavailable } from './peers/types.js';
import { fmtRate } from './stats.js';
import { CTL_GO, CTL_READY, CTL_WORDS, type WorkerInput, type WorkerOutput } from './throughput-worker.js';

export interface ThroughputOptions {
  workers: readonly number[];
  cycles: number;
  durationMs: number;
  baseline?: string;
}

const WARMUP_MS = 100;
const LIVE = 8;
const SEED = 12345;
const WORKER_FILE = join(BENCH_DIST, 'throughput-worker.js');

/** One run: `workers` workers on fresh shared state of `peer`; pairs per second and failed allocations. */
export async function measureThroughput(peerName: string, workers: number, durationMs: number, baseline?: string): Promise<{ opsPerSec: number; fails: number }> {
  const peer = await loadThroughputPeer(peerName, baseline);
  const { data, close } = await peer.setup(workers);
  const ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
  const ws: Worker[] = [];
  try {
    const { results } = await startAtBarrier<WorkerOutput>(WORKER_FILE, ctl, { ready: CTL_READY, go: CTL_GO, timeoutMs: 60_000 }, ws, workers, (index) => {
      const input: WorkerInput = { peer: peerName, data, ctl, index, durationMs, warmupMs: WARMUP_MS, live: LIVE, seed: SEED };
      if (baseline !== undefined) input.baseline = baseline;
      return { workerData: input };
    });
    const outs = await Promise.all(results);
    const bad = outs.find((o) => o.error);
    if (bad) throw new Error(`worker failed: ${bad.error}`);
    return { opsPerSec: outs.reduce((a, o) => a + (o.pairs * 1000) / o.elapsedMs, 0), fails: outs.reduce((a, o) => a + o.fails, 0) };
  } finally {
    await Promise.all(ws.map((w) => w.terminate().catch(() => 0)));
    close();
  }
}

export interface ThroughputResult extends Matched {
  /** Failed allocations per variant over all its windows. */
  fails: Record<string, number>;
  unavailable: Record<string, string>;
}

const nameOf = (peer: string, n: number): string => `${peer} x${n}`;

/** Planned time of the suite (ms), for the progress bar. */
export function throughputMs(o: ThroughputOptions): number {
  const peers = THROUGHPUT_PEERS.length + (o.baseline !== undefined ? 1 : 0);
  return peers * o.workers.length * (o.cycles + 1) * (o.durationMs + WARMUP_MS + 150);
}

export async function throughputSuite(o: ThroughputOptions, done: (ms: number) => void, log: (l: string) => void): Promise<ThroughputResult> {
  const peers = THROUGHPUT_PEERS.map((p) => p.name);
  if (o.baseline !== undefined) peers.push('anyalloc' + AT_BASELINE);
  const unavailable: Record<string, string> = {};
  const fails: Record<string, number> = {};
  const contenders = [];
  for (const peer of peers) {
    try {
      await loadThroughputPeer(peer, o.baseline);
    } catch (e) {
      if (!(e instanceof Unavailable)) throw e;
      unavailable[peer] = e.message;
      log(`  ${peer}: not run (${e.message})`);
      continue;
    }
    for (const n of o.workers) {
      const name = nameOf(peer, n);
      fails[name] = 0;
      contenders.push({
        name,
        window: async () => {
          const r = await measureThroughput(peer, n, o.durationMs, o.baseline);
          fails[name]! += r.fails;
          return r.opsPerSec;
        },
      });
    }
  }
  const perWindow = o.durationMs + WARMUP_MS + 150;
  // One warm-up cycle: the first runs of a process load modules and compile.
  const m = await runMatched(contenders, o.cycles, 1, () => done(perWindow));
  return { ...m, fails, unavailable };
}

function refs(baseline: boolean): RefColumn[] {
  const split = (n: string): [string, string] => {
    const i = n.lastIndexOf(' x');
    return [n.slice(0, i), n.slice(i + 2)];
  };
  return [
    { heading: 'x 1 worker', ref: (n) => (split(n)[1] === '1' ? undefined : nameOf(split(n)[0], 1)) },
    { heading: 'x private', ref: (n) => (split(n)[0] === 'private' ? undefined : nameOf('private', Number(split(n)[1]))) },
    ...(baseline ? [{ heading: TWIN_COLUMN.heading, ref: (n: string) => (n.includes(AT_BASELINE) ? n.replace(AT_BASELINE, '') : undefined) }] : []),
  ];
}

export function throughputJson(r: ThroughputResult, baseline: boolean): unknown {
  return { unavailable: r.unavailable, fails: r.fails, variants: matchedJson(r, refs(baseline)) };
}

export function throughputReport(r: ThroughputResult, baseline: boolean): string {
  const rf = refs(baseline);
  const rows = matchedRows(r, fmtRate, rf).map((row) => [...row, r.fails[String(row[0])] ?? 0]);
  const na = Object.entries(r.unavailable).map(([k, v]) => `${k} (${v})`);
  return matchedTable([], 'pairs/s', rf, rows, ['failed allocs']) + (na.length ? `\n\nNot run: ${na.join('; ')}` : '');
}
