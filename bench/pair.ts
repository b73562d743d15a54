/**
 * Child-process entry for one single-threaded alloc+free pair measurement:
 *
 *   node dist/bench/pair.js <variant> <size> <iters|auto> <runs> [--target-ms N] [--warmup-ms N]
 *
 * Prints one JSON object on stdout: ns per pair for each run, plus a
 * summary. With `auto`, the iteration count is chosen after warm-up so one
 * run takes about --target-ms (default 150).
 *
 * Each variant runs in a process of its own: V8 compiles a function that has
 * only ever had one closure specialised to that closure, which flatters
 * whatever is measured first. For the same reason two instances are created
 * here and the first is exercised and dropped before measuring the second.
 */
import { performance } from 'node:perf_hooks';
import { loadPairFactory } from './peers/index.js';
import { Unavailable } from './peers/types.js';
import { summarize } from './stats.js';
import { isEntry } from './paths.js';

export interface PairResult {
  variant: string;
  size: number;
  iters: number;
  /** ns per alloc+free pair, one entry per run. */
  runs: number[];
  median: number;
  min: number;
  max: number;
  spread: number;
  note?: string;
  warmupMs: number;
  checksum: number;
}

export interface PairUnavailable {
  variant: string;
  size: number;
  unavailable: string;
}

interface Options {
  targetMs: number;
  warmupMs: number;
}

function parseArgs(argv: string[]): { variant: string; size: number; iters: number | 'auto'; runs: number; opts: Options } {
  const pos: string[] = [];
  const opts: Options = { targetMs: 150, warmupMs: 100 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--target-ms') opts.targetMs = Number(argv[++i]);
    else if (a === '--warmup-ms') opts.warmupMs = Number(argv[++i]);
    else pos.push(a);
  }
  const [variant, sizeS, itersS = 'auto', runsS = '5'] = pos;
  if (!variant || !sizeS) {
    throw new Error('usage: pair.js <variant> <size> <iters|auto> <runs> [--target-ms N] [--warmup-ms N]');
  }
  const size = Number(sizeS);
  const iters = itersS === 'auto' ? 'auto' : Number(itersS);
  const runs = Number(runsS);
  if (!(size > 0) || (iters !== 'auto' && !(iters > 0)) || !(runs > 0)) throw new Error('size, iters and runs must be positive');
  return { variant, size, iters, runs, opts };
}

const gc = (globalThis as { gc?: () => void }).gc;

export async function measurePair(
  variant: string,
  size: number,
  iters: number | 'auto',
  runs: number,
  opts: Options,
): Promise<PairResult> {
  const factory = await loadPairFactory(variant);

  // Two closures of every function literal before anything gets hot.
  const extra = factory();
  const v = factory();
  extra.prepare(size);
  let checksum = extra.run(size, 256);
  extra.dispose?.();

  v.prepare(size);
  // Warm up and calibrate: grow the batch until one batch takes >= 20 ms,
  // keep going until the warm-up time is spent.
  const warmStart = performance.now();
  let n = 64;
  let nsPerOp = 0;
  for (;;) {
    const t0 = performance.now();
    checksum ^= v.run(size, n);
    const dt = performance.now() - t0;
    nsPerOp = (dt * 1e6) / n;
    if (dt >= 20 && performance.now() - warmStart >= opts.warmupMs) break;
    if (dt < 20) n *= 2;
  }
  const warmupMs = performance.now() - warmStart;
  const count = iters === 'auto' ? Math.max(1, Math.round((opts.targetMs * 1e6) / nsPerOp)) : iters;

  const out: number[] = [];
  for (let r = 0; r < runs; r++) {
    gc?.();
    const t0 = process.hrtime.bigint();
    checksum ^= v.run(size, count);
    const t1 = process.hrtime.bigint();
    out.push(Number(t1 - t0) / count);
  }
  v.dispose?.();
  const s = summarize(out);
  return {
    variant,
    size,
    iters: count,
    runs: out,
    median: s.median,
    min: s.min,
    max: s.max,
    spread: s.spread,
    note: v.note,
    warmupMs: Math.round(warmupMs),
    checksum,
  };
}

if (isEntry(import.meta.url)) {
  const { variant, size, iters, runs, opts } = parseArgs(process.argv.slice(2));
  try {
    const r = await measurePair(variant, size, iters, runs, opts);
    process.stdout.write(JSON.stringify(r) + '\n');
  } catch (e) {
    if (e instanceof Unavailable) {
      const u: PairUnavailable = { variant, size, unavailable: e.message };
      process.stdout.write(JSON.stringify(u) + '\n');
    } else {
      throw e;
    }
  }
}
