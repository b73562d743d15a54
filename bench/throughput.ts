/**
 * Multi-worker throughput: N worker_threads share one heap and each churns
 * alloc+free pairs (sizes 16..256 bytes, a few blocks kept live) for a fixed
 * time after a common start signal. Reports total pairs per second.
 *
 *   node dist/bench/throughput.js [--peers a,b] [--workers 1,2,4] [--runs 3]
 *                                 [--duration-ms 500] [--warmup-ms 100] [--live 8]
 *
 * Peers: `private` (each worker its own unshared stack: the ideal line),
 * `global-lock`, `sharedmemobjects`, `sharedmemobjects-buffer`, `anyalloc`.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { THROUGHPUT_PEERS, loadThroughputPeer } from './peers/index.js';
import { Unavailable } from './peers/types.js';
import { startAtBarrier } from './barrier.js';
import { BENCH_DIST, isEntry } from './paths.js';
import { cycleRatios, fmtPct, fmtQuartiles, fmtRatio, fmtRate, markdownTable, summarize } from './stats.js';
import { CTL_GO, CTL_READY, CTL_WORDS, type WorkerInput, type WorkerOutput } from './throughput-worker.js';

export interface ThroughputOptions {
  durationMs: number;
  warmupMs: number;
  live: number;
  seed: number;
}

export const DEFAULT_THROUGHPUT: ThroughputOptions = { durationMs: 500, warmupMs: 100, live: 8, seed: 12345 };

export interface ThroughputRun {
  /** Sum over workers of pairs / elapsed seconds. */
  opsPerSec: number;
  perWorker: number[];
  fails: number;
}

const WORKER_FILE = join(BENCH_DIST, 'throughput-worker.js');

/** One measurement: `workers` workers on fresh shared state of `peerName`. */
export async function measureThroughput(peerName: string, workers: number, opts: ThroughputOptions): Promise<ThroughputRun> {
  const peer = await loadThroughputPeer(peerName);
  const { data, close } = await peer.setup(workers);
  const ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
  const ws: Worker[] = [];
  try {
    const { results } = await startAtBarrier<WorkerOutput>(WORKER_FILE, ctl, { ready: CTL_READY, go: CTL_GO, timeoutMs: 60_000 }, ws, workers, (i) => {
      const input: WorkerInput = {
        peer: peerName,
        data,
        ctl,
        index: i,
        durationMs: opts.durationMs,
        warmupMs: opts.warmupMs,
        live: opts.live,
        seed: opts.seed,
      };
      return { workerData: input };
    });
    const outs = await Promise.all(results);
    const errors = outs.filter((o) => o.error);
    if (errors.length) throw new Error(`worker failed: ${errors[0].error}`);
    const perWorker = outs.map((o) => (o.pairs * 1000) / o.elapsedMs);
    return {
      opsPerSec: perWorker.reduce((a, b) => a + b, 0),
      perWorker,
      fails: outs.reduce((a, o) => a + o.fails, 0),
    };
  } finally {
    await Promise.all(ws.map((w) => w.terminate().catch(() => 0)));
    close();
  }
}

export interface ThroughputRow {
  peer: string;
  workers: number;
  runs: number[];
  median: number;
  spread: number;
  fails: number;
  unavailable?: string;
}

export async function throughputSuite(
  peers: readonly string[],
  workerCounts: readonly number[],
  runs: number,
  opts: ThroughputOptions,
  log: (line: string) => void = () => {},
): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  const skip = new Map<string, string>();
  for (const n of workerCounts) {
    for (const peer of peers) {
      const why = skip.get(peer);
      if (why !== undefined) {
        rows.push({ peer, workers: n, runs: [], median: NaN, spread: NaN, fails: 0, unavailable: why });
        continue;
      }
      const xs: number[] = [];
      let fails = 0;
      try {
        for (let r = 0; r < runs; r++) {
          const m = await measureThroughput(peer, n, opts);
          xs.push(m.opsPerSec);
          fails += m.fails;
        }
      } catch (e) {
        if (e instanceof Unavailable) {
          skip.set(peer, e.message);
          log(`  ${peer}: unavailable (${e.message})`);
          rows.push({ peer, workers: n, runs: [], median: NaN, spread: NaN, fails: 0, unavailable: e.message });
          continue;
        }
        throw e;
      }
      const s = summarize(xs);
      log(`  ${peer} x${n}: ${fmtRate(s.median)} (spread ${fmtPct(s.spread)})`);
      rows.push({ peer, workers: n, runs: xs, median: s.median, spread: s.spread, fails });
    }
  }
  return rows;
}

/** Scaling of one peer at one worker count, from back-to-back runs (see scalingMatched). */
export interface ScalingRow {
  peer: string;
  workers: number;
  /** Rates with 1 worker and with `workers`, pair by pair. */
  one: number[];
  many: number[];
  /** Median and quartiles of many[i] / one[i]. */
  median: number;
  q1: number;
  q3: number;
  /** Failed allocations over all the runs. */
  fails: number;
}

/**
 * Scaling from back-to-back runs: `pairs` times, one run with 1 worker and
 * one with `workers`, the order alternating (1 first in pairs 0, 2, ...),
 * and the ratio of each pair. The machine's speed changes every few
 * seconds, so the suite's medians (all 1-worker runs first, the others
 * many seconds later) can land in different states; two runs a second
 * apart mostly share one. `measure` is the run (the tests replace it).
 */
export async function scalingMatched(
  peer: string,
  workers: number,
  pairs: number,
  opts: ThroughputOptions,
  log: (line: string) => void = () => {},
  measure: (peer: string, workers: number, opts: ThroughputOptions) => Promise<ThroughputRun> = measureThroughput,
): Promise<ScalingRow> {
  if (!Number.isInteger(workers) || workers < 2) throw new RangeError(`scaling needs an integer worker count above 1, got ${workers}`);
  if (!Number.isInteger(pairs) || pairs < 1) throw new RangeError(`scaling needs a whole number of pairs, at least 1, got ${pairs}`);
  const one: number[] = [];
  const many: number[] = [];
  let fails = 0;
  for (let i = 0; i < pairs; i++) {
    const order = i % 2 === 0 ? [1, workers] : [workers, 1];
    for (const n of order) {
      const m = await measure(peer, n, opts);
      fails += m.fails;
      (n === 1 ? one : many).push(m.opsPerSec);
    }
  }
  const q = cycleRatios(many, one);
  log(`  ${peer} x${workers} / x1, back to back: ${fmtQuartiles(q)}x of ${pairs}`);
  return { peer, workers, one, many, median: q.median, q1: q.q1, q3: q.q3, fails };
}

export function scalingTable(rows: readonly ScalingRow[]): string {
  return markdownTable(
    ['peer', 'workers', 'x 1 worker (median of pairs, quartiles)', 'pairs', '1 worker (median)', 'n workers (median)', 'failed allocs'],
    rows.map((r) => [r.peer, r.workers, `${fmtQuartiles(r)}x`, r.one.length, fmtRate(summarize(r.one).median), fmtRate(summarize(r.many).median), r.fails]),
    ['l', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}

export function throughputTable(rows: readonly ThroughputRow[]): string {
  const byKey = new Map(rows.map((r) => [`${r.peer}/${r.workers}`, r]));
  const body = rows.map((r) => {
    if (r.unavailable !== undefined) return [r.peer, r.workers, 'n/a', '', '', '', '', ''];
    const priv = byKey.get(`private/${r.workers}`);
    const one = byKey.get(`${r.peer}/1`);
    return [
      r.peer,
      r.workers,
      fmtRate(r.median),
      fmtPct(r.spread),
      fmtRate(r.median / r.workers),
      priv && Number.isFinite(priv.median) ? fmtRatio(r.median / priv.median) : '-',
      one && Number.isFinite(one.median) ? fmtRatio(r.median / one.median) : '-',
      r.fails,
    ];
  });
  return markdownTable(
    ['peer', 'workers', 'pairs/s (median)', 'spread', 'per worker', 'x private', 'x 1 worker', 'failed allocs'],
    body,
  );
}

export function parseList(s: string | undefined): number[] | undefined {
  if (!s) return undefined;
  const xs = s.split(',').map((x) => Number(x.trim()));
  if (xs.some((x) => !(x > 0) || !Number.isInteger(x))) throw new Error(`bad number list: ${s}`);
  return xs;
}

if (isEntry(import.meta.url)) {
  const argv = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const peers = arg('--peers')?.split(',') ?? THROUGHPUT_PEERS.map((p) => p.name);
  const workers = parseList(arg('--workers') ?? process.env['BENCH_WORKERS']) ?? [1, 2];
  const runs = Number(arg('--runs') ?? 3);
  const opts: ThroughputOptions = {
    ...DEFAULT_THROUGHPUT,
    durationMs: Number(arg('--duration-ms') ?? DEFAULT_THROUGHPUT.durationMs),
    warmupMs: Number(arg('--warmup-ms') ?? DEFAULT_THROUGHPUT.warmupMs),
    live: Number(arg('--live') ?? DEFAULT_THROUGHPUT.live),
  };
  if (opts.live <= 0 || (opts.live & (opts.live - 1)) !== 0) throw new Error('--live must be a power of two');
  const rows = await throughputSuite(peers, workers, runs, opts, (l) => console.error(l));
  console.log(throughputTable(rows));
}
