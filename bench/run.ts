/**
 * `npm run bench`: the whole benchmark.
 *
 * 1. the machine;
 * 2. single-threaded alloc+free pairs: every variant at every size, each in
 *    a child process of its own (bench/pair.ts), reported as median ns per
 *    pair, spread, and the ratio to the floor measured in the same run;
 *    then the main ratios again from matched windows (bench/pair-matched.ts);
 * 3. multi-worker throughput (bench/throughput.ts) for 1 and 2 workers, or
 *    the counts given with --workers / BENCH_WORKERS;
 * 4. the hash map (bench/map/run.ts): a map_perf_test analogue and the
 *    kernel's htab-mem scenarios, anyalloc's preallocated and dynamic maps
 *    against sharedmap and a JS Map behind postMessage, each run in its own
 *    process, with the issue's targets marked PASS or FAIL.
 * Results also go to bench/results/latest.json.
 *
 * Options (after `npm run bench --`):
 *   --quick                 3 sizes, 3 runs, shorter runs and throughput
 *   --sizes 16,256          sizes in bytes
 *   --variants a,b          pair variants (default: all)
 *   --runs N                runs per pair variant (default 5)
 *   --procs N               processes per pair variant, runs pooled (default 1)
 *   --target-ms N           time per pair run (default 150)
 *   --workers 1,2,4         worker counts for throughput (env BENCH_WORKERS)
 *   --peers a,b             throughput peers (default: all)
 *   --tp-runs N             runs per throughput point (default 3)
 *   --duration-ms N         throughput measuring time per run (default 500)
 *   --scaling-pairs N       back-to-back 1-worker / n-worker run pairs per worker count
 *                           above 1, for anyalloc and the private lists (default 7, --quick 3;
 *                           0: none; only when --workers includes 1); the scaling targets
 *                           read these
 *   --map                   the hash map section only (same as --no-pair --no-throughput)
 *   --map-workers 1,2,4     worker counts for the map section, 1..16 (default: --workers)
 *   --map-runs N            runs per map point (default 5, --quick 1)
 *   --map-duration-ms N     measured time per map run (default 400, --quick 300)
 *   --map-scenarios a,b     perf, overwrite, batch_add_batch_del, add_del_on_diff_cpu
 *   --map-peers a,b         anyalloc-prealloc, anyalloc-dynamic, sharedmap, jsmap-postmessage
 *   --number-keys           anyalloc maps through the number-key calls (default: Uint8Array keys)
 *   --pair-window N         add_del_on_diff_cpu: rounds an adder may run ahead of its deleter,
 *                           1..8 (default 8; 1: strict turns)
 *   --map-matched-cycles N  matched windows per map point (default 20, --quick 6; 0: none)
 *   --pair-matched-cycles N matched pair windows per size (default 30, --quick 10; 0: none):
 *                           the groups of bench/pair-targets.ts (the pair; the churn; the pair
 *                           after a start-up fill) take turns in one process per group and size
 *                           (bench/pair-matched.ts); ratios of the same cycles, and the targets
 *   --no-pair / --no-throughput / --no-map
 *   --out FILE              JSON output (default bench/results/latest.json)
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { BENCH_DIST, RESULTS_DIR } from './paths.js';
import { formatMachine, machineInfo } from './machine.js';
import { PAIR_PEERS, THROUGHPUT_PEERS } from './peers/index.js';
import { buildSharedMemoryObjects } from './build-peers.js';
import { mapIntro, mapOptions, mapReport, runMapBench, type MapOptions, type MapResults } from './map/run.js';
import type { PairResult, PairUnavailable } from './pair.js';
import type { MatchedPairs } from './pair-matched.js';
import { MATCHED_GROUPS, SPOT_SIZES, groupSizes, matchedGroupTable, pairTargets, type MatchedRow } from './pair-targets.js';
import { fmtNs, fmtPct, fmtRatio, markdownTable, summarize } from './stats.js';
import {
  DEFAULT_THROUGHPUT,
  parseList,
  scalingMatched,
  scalingTable,
  throughputSuite,
  throughputTable,
  type ScalingRow,
  type ThroughputRow,
} from './throughput.js';

const ALL_SIZES = [16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096];
const QUICK_SIZES = [16, 256, 4096];
const PAIR_TIMEOUT_MS = 120_000;
const MATCHED_PAIR_WINDOW_MS = 40;

interface Args {
  quick: boolean;
  sizes: number[];
  variants: string[];
  runs: number;
  procs: number;
  targetMs: number;
  workers: number[];
  peers: string[];
  tpRuns: number;
  durationMs: number;
  scalingPairs: number;
  pair: boolean;
  pairMatchedCycles: number;
  throughput: boolean;
  out: string;
  map: boolean;
  mapOptions: MapOptions;
}

function parseArgs(argv: string[]): Args {
  const has = (f: string): boolean => argv.includes(f);
  const val = (f: string): string | undefined => {
    const i = argv.indexOf(f);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${f} needs a value`);
    return v;
  };
  const known = new Set([
    '--quick', '--sizes', '--variants', '--runs', '--procs', '--target-ms', '--workers', '--peers',
    '--tp-runs', '--duration-ms', '--scaling-pairs', '--no-pair', '--no-throughput', '--no-map', '--out',
    '--map', '--map-workers', '--map-runs', '--map-duration-ms', '--map-scenarios', '--map-peers', '--number-keys',
    '--pair-window', '--map-matched-cycles', '--pair-matched-cycles',
  ]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    if (!known.has(a)) throw new Error(`unknown option ${a}`);
  }
  const quick = has('--quick');
  const variants = val('--variants')?.split(',') ?? PAIR_PEERS.map((p) => p.name);
  for (const v of variants) {
    if (!PAIR_PEERS.some((p) => p.name === v)) throw new Error(`unknown variant ${v}`);
  }
  const peers = val('--peers')?.split(',') ?? THROUGHPUT_PEERS.map((p) => p.name);
  for (const p of peers) {
    if (!THROUGHPUT_PEERS.some((q) => q.name === p)) throw new Error(`unknown throughput peer ${p}`);
  }
  const mapOnly = has('--map');
  if (mapOnly && has('--no-map')) throw new Error('--map and --no-map exclude each other');
  const workers = parseList(val('--workers') ?? process.env['BENCH_WORKERS']) ?? [1, 2];
  const num = (f: string): number | undefined => (val(f) === undefined ? undefined : Number(val(f)));
  const args: Args = {
    quick,
    sizes: parseList(val('--sizes')) ?? (quick ? QUICK_SIZES : ALL_SIZES),
    variants,
    runs: Number(val('--runs') ?? (quick ? 3 : 5)),
    procs: Number(val('--procs') ?? 1),
    targetMs: Number(val('--target-ms') ?? (quick ? 50 : 150)),
    workers,
    peers,
    tpRuns: Number(val('--tp-runs') ?? (quick ? 2 : 3)),
    durationMs: Number(val('--duration-ms') ?? (quick ? 250 : DEFAULT_THROUGHPUT.durationMs)),
    scalingPairs: Number(val('--scaling-pairs') ?? (quick ? 3 : 7)),
    pair: !has('--no-pair') && !mapOnly,
    pairMatchedCycles: Number(val('--pair-matched-cycles') ?? (quick ? 10 : 30)),
    throughput: !has('--no-throughput') && !mapOnly,
    map: !has('--no-map'),
    out: val('--out') ?? join(RESULTS_DIR, 'latest.json'),
    mapOptions: mapOptions({
      quick,
      workers: parseList(val('--map-workers')) ?? workers.filter((w) => w <= 16),
      runs: num('--map-runs'),
      durationMs: num('--map-duration-ms'),
      scenarios: val('--map-scenarios')?.split(','),
      peers: val('--map-peers')?.split(','),
      numberKeys: has('--number-keys'),
      pairWindow: num('--pair-window'),
      matchedCycles: num('--map-matched-cycles'),
    }),
  };
  const flag = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;
  for (const k of ['pairMatchedCycles', 'scalingPairs'] as const) {
    if (!Number.isInteger(args[k]) || args[k] < 0) throw new Error(`${flag(k)} must be an integer >= 0`);
  }
  for (const k of ['runs', 'procs', 'targetMs', 'tpRuns', 'durationMs'] as const) {
    if (!(args[k] > 0)) throw new Error(`${flag(k)} must be a positive number`);
  }
  return args;
}

/** Runs one JSON-printing bench script in a fresh Node process; resolves with its last stdout line, parsed. */
function runJsonChild<T>(script: string, args: readonly string[], what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', join(BENCH_DIST, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), PAIR_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line) as T);
      else reject(new Error(`${what} failed (${signal ?? `exit ${code}`}):\n${err.trim() || out.trim()}`));
    });
  });
}

/** Runs one variant at one size in a fresh Node process. */
function runPairChild(variant: string, size: number, runs: number, targetMs: number): Promise<PairResult | PairUnavailable> {
  const args = [variant, String(size), 'auto', String(runs), '--target-ms', String(targetMs)];
  return runJsonChild<PairResult | PairUnavailable>('pair.js', args, `${variant} @ ${size} B`);
}

/** Matched pair windows at every size, each size in a fresh process. */
/** Each matched group (bench/pair-targets.ts) at its sizes, in a process per group and size. */
async function matchedPairSuite(a: Args): Promise<MatchedRow[]> {
  const out: MatchedRow[] = [];
  for (const g of MATCHED_GROUPS) {
    const names = g.variants.filter((v) => a.variants.includes(v));
    if (names.length < 2) continue;
    for (const size of groupSizes(g, a.sizes)) {
      try {
        const m = await runJsonChild<MatchedPairs>(
          'pair-matched.js',
          [String(size), String(a.pairMatchedCycles), String(MATCHED_PAIR_WINDOW_MS), names.join(',')],
          `matched pairs (${g.name}) @ ${size} B`,
        );
        out.push({ group: g.name, ...m, size });
      } catch (e) {
        out.push({ group: g.name, size, error: (e as Error).message.split('\n')[0]! });
      }
    }
  }
  return out;
}

interface PairRow extends Partial<PairResult> {
  variant: string;
  size: number;
  unavailable?: string;
  error?: string;
  ratioToFloor?: number;
}

/** Pools the runs of several processes measuring the same variant and size. */
function mergeRuns(a: PairResult, b: PairResult): PairResult {
  const runs = [...a.runs, ...b.runs];
  const s = summarize(runs);
  return { ...a, runs, median: s.median, min: s.min, max: s.max, spread: s.spread, checksum: a.checksum ^ b.checksum };
}

async function pairSuite(a: Args): Promise<PairRow[]> {
  const rows: PairRow[] = [];
  const skip = new Map<string, string>();
  // The floor first at each size: every ratio uses the floor of its own size.
  const order = a.variants.includes('floor') ? ['floor', ...a.variants.filter((v) => v !== 'floor')] : a.variants;
  for (const size of a.sizes) {
    // Process p of every variant before process p + 1 of any: this machine's
    // speed drifts over seconds, and interleaving spreads the drift over
    // all variants instead of handing it to whichever ran then.
    const merged = new Map<string, PairResult>();
    const failed = new Map<string, PairRow>();
    for (let p = 0; p < a.procs; p++) {
      for (const variant of order) {
        if (skip.has(variant) || failed.has(variant)) continue;
        try {
          const r = await runPairChild(variant, size, a.runs, a.targetMs);
          if ('unavailable' in r) {
            skip.set(variant, r.unavailable);
            console.error(`  ${variant}: unavailable (${r.unavailable})`);
            continue;
          }
          const m = merged.get(variant);
          merged.set(variant, m ? mergeRuns(m, r) : r);
        } catch (e) {
          console.error(`  ${(e as Error).message}`);
          failed.set(variant, { variant, size, error: (e as Error).message.split('\n')[0] });
        }
      }
    }
    const sizeRows: PairRow[] = order.map((variant) => {
      const why = skip.get(variant);
      if (why !== undefined) return { variant, size, unavailable: why };
      return failed.get(variant) ?? merged.get(variant)!;
    });
    const floor = sizeRows.find((r) => r.variant === 'floor' && r.median !== undefined);
    for (const r of sizeRows) {
      if (floor?.median && r.median !== undefined) r.ratioToFloor = r.median / floor.median;
    }
    console.log(`\n### ${size} bytes\n`);
    console.log(pairTable(sizeRows));
    rows.push(...sizeRows);
  }
  return rows;
}

function pairTable(rows: readonly PairRow[]): string {
  return markdownTable(
    ['variant', 'ns/pair (median)', 'min', 'max', 'spread', 'x floor'],
    rows.map((r) =>
      r.median === undefined
        ? [r.variant, r.unavailable !== undefined ? 'n/a' : 'error', '', '', '', '']
        : [r.variant, fmtNs(r.median), fmtNs(r.min ?? NaN), fmtNs(r.max ?? NaN), fmtPct(r.spread ?? NaN), fmtRatio(r.ratioToFloor ?? NaN)],
    ),
  );
}

/** Variants down, sizes across: median ns per pair. */
function pairMatrix(rows: readonly PairRow[], sizes: readonly number[], variants: readonly string[]): string {
  const cell = (v: string, s: number): string => {
    const r = rows.find((x) => x.variant === v && x.size === s);
    if (!r) return '';
    if (r.median === undefined) return r.unavailable !== undefined ? 'n/a' : 'err';
    return fmtNs(r.median);
  };
  const present = variants.filter((v) => rows.some((r) => r.variant === v && r.median !== undefined));
  return markdownTable(
    ['ns/pair', ...sizes.map((s) => `${s} B`)],
    present.map((v) => [v, ...sizes.map((s) => cell(v, s))]),
  );
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const machine = machineInfo();
  console.log('## Machine\n');
  console.log(formatMachine(machine));

  if ((a.pair && a.variants.some((v) => v.startsWith('sharedmemobjects'))) || (a.throughput && a.peers.some((p) => p.startsWith('sharedmemobjects')))) {
    try {
      buildSharedMemoryObjects();
    } catch (e) {
      console.error(`shared-memory-objects could not be compiled: ${(e as Error).message}`);
    }
  }

  let pair: PairRow[] = [];
  let pairMatched: MatchedRow[] = [];
  if (a.pair) {
    console.log(
      `\n## Single-threaded alloc+free pair\n\n` +
        `Median of ${a.runs * a.procs} runs of ~${a.targetMs} ms, each variant in its own process` +
        (a.procs > 1 ? ` (${a.procs} processes of ${a.runs} runs, taking turns with the other variants); ` : '; ') +
        `spread = (max - min) / median; x floor = median / floor median at the same size.`,
    );
    pair = await pairSuite(a);
    console.log('\n### Summary (median ns per alloc+free pair)\n');
    console.log(pairMatrix(pair, a.sizes, a.variants));
    const notes = PAIR_PEERS.filter((p) => a.variants.includes(p.name)).map((p) => `- \`${p.name}\`: ${p.note}`);
    console.log('\n' + notes.join('\n'));
    if (a.pairMatchedCycles > 0) {
      console.log(
        `\n### Matched windows\n\n` +
          `The variants of a group in one process per size, taking turns in ~${MATCHED_PAIR_WINDOW_MS} ms windows, ` +
          `${a.pairMatchedCycles} cycles (order reversing each cycle). ns: medians; ratios: median of the per-cycle ` +
          `ratios (quartiles). Both sides of a ratio ran within milliseconds of each other, so the machine's speed ` +
          `changes cancel out of it. Groups: the pair at every size; the 1000-live-block churn and the pair after a ` +
          `start-up fill (\`anyalloc-warm\`) at ${SPOT_SIZES.join(', ')} B, each in processes of their own (variants ` +
          `of one allocator share V8's feedback within a process).\n`,
      );
      pairMatched = await matchedPairSuite(a);
      for (const g of MATCHED_GROUPS) {
        if (!pairMatched.some((r) => r.group === g.name)) continue;
        console.log(`\n#### ${g.name}\n`);
        console.log(matchedGroupTable(pairMatched, g));
      }
    }
  }

  let throughput: ThroughputRow[] = [];
  const scaling: ScalingRow[] = [];
  if (a.throughput) {
    const opts = { ...DEFAULT_THROUGHPUT, durationMs: a.durationMs };
    console.log(
      `\n## Multi-worker throughput\n\n` +
        `Each worker churns alloc+free pairs of 16..256 bytes holding ${opts.live} live blocks, ` +
        `${opts.durationMs} ms after a common start; median of ${a.tpRuns} runs.\n`,
    );
    throughput = await throughputSuite(a.peers, a.workers, a.tpRuns, opts, (l) => console.error(l));
    console.log(throughputTable(throughput));
    const counts = a.workers.includes(1) ? a.workers.filter((n) => n > 1) : [];
    // Peers the suite could not load are left out (their rows say why).
    const peers = ['private', 'anyalloc'].filter((p) => a.peers.includes(p) && !throughput.some((r) => r.peer === p && r.unavailable !== undefined));
    if (a.scalingPairs > 0 && counts.length > 0 && peers.length > 0) {
      console.log(
        `\n### Scaling, back-to-back runs\n\n` +
          `${a.scalingPairs} pairs of runs per point, one with 1 worker and one with n, the order alternating; ` +
          `the ratio of each pair, median and quartiles. The suite above measures all 1-worker runs first and the ` +
          `others many seconds later, across the machine's speed changes; the two runs of a pair are a second apart.\n`,
      );
      for (const n of counts) {
        for (const p of peers) scaling.push(await scalingMatched(p, n, a.scalingPairs, opts, (l) => console.error(l)));
      }
      console.log(scalingTable(scaling));
    }
  }
  if (pairMatched.length > 0 || throughput.length > 0) {
    console.log('\n### Allocator targets\n');
    console.log(pairTargets(pairMatched, throughput, scaling, machine.availableParallelism));
  }

  let map: MapResults | undefined;
  if (a.map) {
    console.log('\n## Hash map: map_perf_test and htab-mem analogues\n');
    console.log(mapIntro(a.mapOptions));
    map = await runMapBench(a.mapOptions, (l) => console.error(l));
    console.log(mapReport(map));
  }

  const seconds = Math.round((Date.now() - started) / 100) / 10;
  console.log(`\nTotal time: ${seconds} s`);
  mkdirSync(dirname(a.out), { recursive: true });
  writeFileSync(
    a.out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        options: a,
        pair,
        pairMatched,
        throughput,
        scaling,
        map,
        seconds,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`Results written to ${relative(process.cwd(), a.out)}`);
}

try {
  await main();
} catch (e) {
  console.error(`bench: ${(e as Error).message}`);
  process.exitCode = 1;
}
