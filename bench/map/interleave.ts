/**
 * Matched windows: every in-process peer (anyalloc's two map modes,
 * sharedmap) in the same workers of one process, taking turns in short
 * windows, so that a ratio between two peers compares windows a few
 * hundred milliseconds apart, in the same machine state, with the same
 * threads and the same process. Separate processes per peer (point.ts)
 * keep each peer's JIT and heap to itself, but on a machine whose speed
 * drifts (a shared VM), their ratios scatter by +-20%; these do not.
 *
 *   node dist/bench/map/interleave.js '{"scenario":"overwrite","workers":2,
 *     "peers":["anyalloc-prealloc","anyalloc-dynamic","sharedmap"],"cycles":24,
 *     "windowMs":100,"warmupCycles":3,"keys":"bytes","pairWindow":8}'
 *
 * A cycle gives each peer one window; the order alternates (A B C, then
 * C B A) so that a drift within a cycle favours nobody. A peer's rate in a
 * window counts the rounds the workers finished on it between the window's
 * start and end (a round is 64 operations, a few microseconds). Prints one
 * JSON line (InterleaveResult).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { isEntry } from '../paths.js';
import { startAtBarrier } from '../barrier.js';
import { MAP_BARRIER, setup, type Setup } from './point.js';
import { C_LINE, C_ROUNDS, C_STOP, C_WORDS, MAX_PAIR_WINDOW, MAX_WORKERS, opsPerRound, type MapBenchResult } from './protocol.js';
import { I_PHASE, type InterleaveJob, type InterleaveResult, type InterleaveSpec } from './interleave-protocol.js';

export async function measureInterleaved(spec: InterleaveSpec): Promise<InterleaveResult> {
  if (!(spec.workers >= 1 && spec.workers <= MAX_WORKERS)) throw new RangeError(`workers must be 1..${MAX_WORKERS}`);
  if (spec.scenario === 'add_del_on_diff_cpu' && spec.workers % 2 !== 0) throw new RangeError('add_del_on_diff_cpu needs an even worker count');
  if (!(Number.isInteger(spec.pairWindow) && spec.pairWindow >= 1 && spec.pairWindow <= MAX_PAIR_WINDOW)) throw new RangeError(`pairWindow must be 1..${MAX_PAIR_WINDOW}`);
  if (spec.peers.length < 2 || spec.peers.length > C_LINE) throw new RangeError(`matched windows need 2..${C_LINE} peers`);
  if (!(Number.isInteger(spec.cycles) && spec.cycles >= 1)) throw new RangeError('cycles must be a positive integer');
  const setups: Setup[] = [];
  const workers: Worker[] = [];
  const control = new SharedArrayBuffer(4 * C_WORDS);
  const ctl = new Int32Array(control);
  try {
    for (const peer of spec.peers) setups.push(await setup({ peer, workers: spec.workers }));
    const { results, failed } = await startAtBarrier<MapBenchResult>(new URL('./interleave-worker.js', import.meta.url), ctl, MAP_BARRIER, workers, spec.workers, (index) => {
      const job: InterleaveJob = {
        peers: spec.peers,
        setups: setups.map((s) => ({ heap: s.job.heap, map: s.job.map, shared: s.job.shared })),
        scenario: spec.scenario,
        index,
        keys: spec.keys,
        pairWindow: spec.pairWindow,
        control,
      };
      return { workerData: job };
    });
    const done = (p: number): number => {
      let n = 0;
      for (let i = 0; i < spec.workers; i++) n += Atomics.load(ctl, C_ROUNDS + C_LINE * i + p);
      return n;
    };
    const per = opsPerRound(spec.scenario);
    const rates: number[][] = spec.peers.map(() => []);
    for (let c = 0; c < spec.warmupCycles + spec.cycles; c++) {
      const order = spec.peers.map((_, i) => (c % 2 === 0 ? i : spec.peers.length - 1 - i));
      for (const p of order) {
        const n0 = done(p);
        Atomics.store(ctl, I_PHASE, p);
        const t0 = performance.now();
        await sleep(spec.windowMs);
        const n1 = done(p);
        const seconds = (performance.now() - t0) / 1000;
        const f = failed();
        if (f) throw f;
        if (c >= spec.warmupCycles) rates[p]!.push(((n1 - n0) * per) / seconds);
      }
    }
    Atomics.store(ctl, C_STOP, 1);
    const outs = await Promise.all(results);
    const bad = outs.find((o) => o.error !== undefined);
    if (bad) throw new Error(`worker failed: ${bad.error}`);
    return { ...spec, rates, failures: outs.reduce((a, o) => a + o.failures, 0) };
  } finally {
    Atomics.store(ctl, C_STOP, 1);
    await Promise.all(workers.map((w) => w.terminate().catch(() => 0)));
    for (const s of setups) await s.close().catch(() => undefined);
  }
}

if (isEntry(import.meta.url)) {
  const arg = process.argv[2];
  if (arg === undefined) throw new Error('usage: interleave.js <InterleaveSpec JSON>');
  process.stdout.write(JSON.stringify(await measureInterleaved(JSON.parse(arg) as InterleaveSpec)) + '\n');
}
