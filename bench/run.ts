/**
 * `npm run bench`: the machine, then the suites (pair, throughput, map, memory),
 * each in matched windows (matched.ts), printed as Markdown tables and
 * written with every number to a JSON file (bench/results/latest.json by
 * default) that `npm run bench:report` turns into charts. The method, the
 * targets and the latest figures: docs/benchmarks.md.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildSharedMemoryObjects } from './build-peers.js';
import { mapJobs, mapJson, mapReport, mapSuite } from './map/run.js';
import { memoryJson, memoryMs, memoryReport, memorySuite } from './memory.js';
import { ALL_SIZES, SPOT_SIZES, baselineRatios, pairJobs, pairJson, pairReport, pairSuite } from './pair.js';
import { RESULTS_DIR, isEntry } from './paths.js';
import { Progress } from './progress.js';
import { throughputJson, throughputMs, throughputReport, throughputSuite } from './throughput.js';

const USAGE = `usage: npm run bench -- [options]
  --quick            3 sizes, fewer cycles, shorter windows (a minute or two)
  --suite NAME       pair, throughput, map or memory (repeat or comma-separate; default: all)
  --sizes 16,256     pair sizes in bytes (default: 11 sizes from 16 to 4096)
  --workers 1,2      worker counts of the throughput and map suites (default 1,2);
                     the memory suite's Larson case runs the largest (at least 2)
  --runs N           measured cycles of every matched set (default: pair 30, throughput 5, map 20, memory 5)
  --seed N           seed of the memory suite's workloads (default 20261202)
  --out FILE         JSON output (default bench/results/latest.json)
  --baseline DIR     another build of this package (DIR/dist/src/index.js): its anyalloc
                     variants run beside this build's, as name@baseline`;

const SUITES = ['pair', 'throughput', 'map', 'memory'] as const;

function list(s: string | undefined, what: string): number[] | undefined {
  if (s === undefined) return undefined;
  const xs = s.split(',').map(Number);
  if (xs.some((x) => !(Number.isInteger(x) && x > 0))) throw new Error(`${what} takes positive whole numbers, comma-separated: ${s}`);
  return xs;
}

export function benchOptions(argv: string[]) {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: 'boolean', default: false },
      suite: { type: 'string', multiple: true },
      sizes: { type: 'string' },
      workers: { type: 'string' },
      runs: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      baseline: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const suites = (v.suite ?? [...SUITES]).flatMap((s) => s.split(','));
  for (const s of suites) if (!(SUITES as readonly string[]).includes(s)) throw new Error(`unknown suite ${s} (${SUITES.join(', ')})`);
  const runs = list(v.runs, '--runs');
  if (runs !== undefined && runs.length !== 1) throw new Error(`--runs takes one number, not ${v.runs}`);
  let baseline: string | undefined;
  if (v.baseline !== undefined) {
    baseline = join(resolve(v.baseline), 'dist', 'src', 'index.js');
    if (!existsSync(baseline)) throw new Error(`--baseline: ${baseline} not found (build that checkout first: npx tsc -p ${v.baseline})`);
  }
  const q = v.quick;
  return {
    help: v.help,
    quick: q,
    suites,
    sizes: list(v.sizes, '--sizes') ?? (q ? SPOT_SIZES : ALL_SIZES),
    workers: list(v.workers, '--workers') ?? [1, 2],
    pairCycles: runs?.[0] ?? (q ? 10 : 30),
    throughputCycles: runs?.[0] ?? (q ? 2 : 5),
    throughputMs: q ? 250 : 500,
    mapCycles: runs?.[0] ?? (q ? 6 : 20),
    memoryCycles: runs?.[0] ?? (q ? 2 : 5),
    mapWindowMs: q ? 60 : 100,
    ...(v.seed !== undefined ? { seed: list(v.seed, '--seed')![0]! } : {}),
    out: resolve(v.out ?? join(RESULTS_DIR, 'latest.json')),
    ...(baseline !== undefined ? { baseline } : {}),
  };
}

function machine() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim().replace(/\s+/g, ' ') ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.platform()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
  };
}

async function main(): Promise<void> {
  const o = benchOptions(process.argv.slice(2));
  if (o.help) return console.log(USAGE);
  const started = Date.now();
  const date = new Date().toISOString();
  const m = machine();
  console.log(`## Machine\n\n${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node} (V8 ${m.v8}); ${date}`);
  if (o.baseline !== undefined) console.log(`Baseline: ${o.baseline}`);
  const has = (s: string): boolean => o.suites.includes(s);
  if (has('pair') || has('throughput')) {
    try {
      buildSharedMemoryObjects();
    } catch (e) {
      console.error(`shared-memory-objects could not be compiled: ${(e as Error).message}`);
    }
  }
  const pairOpts = { sizes: o.sizes, cycles: o.pairCycles, ...(o.baseline !== undefined ? { baseline: o.baseline } : {}) };
  const tpOpts = { workers: o.workers, cycles: o.throughputCycles, durationMs: o.throughputMs, ...(o.baseline !== undefined ? { baseline: o.baseline } : {}) };
  const mapOpts = { workers: o.workers, cycles: o.mapCycles, windowMs: o.mapWindowMs, ...(o.baseline !== undefined ? { baseline: o.baseline } : {}) };
  const memOpts = { quick: o.quick, cycles: o.memoryCycles, workers: Math.max(2, ...o.workers), ...(o.seed !== undefined ? { seed: o.seed } : {}) };
  const planned =
    (has('pair') ? pairJobs(pairOpts).reduce((a, j) => a + j.ms, 0) : 0) +
    (has('throughput') ? throughputMs(tpOpts) : 0) +
    (has('map') ? mapJobs(mapOpts).reduce((a, j) => a + j.ms, 0) + 1000 : 0) +
    (has('memory') ? memoryMs(memOpts) : 0);
  const progress = new Progress(planned);
  const step = (ms: number): void => progress.step(ms);
  const log = (l: string): void => {
    progress.clear();
    console.error(l);
  };
  const print = (s: string): void => {
    progress.clear();
    console.log(s);
  };
  const bl = o.baseline !== undefined;
  const json: Record<string, unknown> = { date, argv: process.argv.slice(2), machine: m, options: o };
  const ratioNote = 'Median and quartiles of the values over cycles; spread = (max - min) / median; a ratio column is the median (quartiles) of the per-cycle ratios of the row to its reference.';

  if (has('pair')) {
    print(`\n## Single-threaded alloc+free pair\n\nns per pair, ${o.pairCycles} cycles of ~40 ms windows, a process per group and size. ${ratioNote}`);
    const points = await pairSuite(pairOpts, step, log);
    print(pairReport(points, bl));
    json['pair'] = pairJson(points, bl);
    if (bl) json['pairBaseline'] = baselineRatios(points);
  }
  if (has('throughput')) {
    print(`\n## Multi-worker throughput\n\nalloc+free pairs per second over all workers, 16..256 B, 8 live blocks per worker, ${o.throughputMs} ms per window, ${o.throughputCycles} cycles. ${ratioNote}\n`);
    const r = await throughputSuite(tpOpts, step, log);
    print(throughputReport(r, bl));
    json['throughput'] = throughputJson(r, bl);
  }
  if (has('map')) {
    print(`\n## Hash map\n\nops/s over all workers, ${o.mapCycles} cycles of ${o.mapWindowMs} ms windows (after 3 of warm-up), a process per point. ${ratioNote}\n`);
    const r = await mapSuite(mapOpts, step, log);
    print(mapReport(r, bl));
    json['map'] = mapJson(r, bl);
  }
  if (has('memory')) {
    print(`\n## Memory\n\nBytes used per byte requested, side by side in one run: anyalloc (bucketed), @thi.ng/malloc (MemPool, first fit, an ArrayBuffer of the same maxBytes) and the ideal (the live requested bytes).`);
    const r = await memorySuite(memOpts, step, log);
    print(memoryReport(r));
    json['memory'] = memoryJson(r);
  }
  json['seconds'] = Math.round((Date.now() - started) / 1000);
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, JSON.stringify(json, null, 1) + '\n');
  print(`\nTotal time: ${json['seconds']} s. Results written to ${relative(process.cwd(), o.out)}`);
}

if (isEntry(import.meta.url)) {
  try {
    await main();
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n\n${USAGE}`);
    process.exitCode = 1;
  }
}
