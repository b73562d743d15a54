/**
 * Single-threaded alloc+free pairs: one allocation of `size` bytes and its
 * free, in a loop, for each variant of a group, in matched windows of
 * ~40 ms (matched.ts). Each group and size runs in a fresh process
 * (`node dist/bench/pair.js <PairSpec JSON>`, printing one JSON line):
 *
 * - Variants of one allocator share V8's feedback for its methods within
 *   a process: a FIFO churn or a start-up fill beside the plain pair makes
 *   the pair's loop compile with the slow paths in it (measured: 8.3 ns
 *   alone, 13.2 ns beside the churn variant). So the pair, the churn and
 *   the warmed pair each get processes of their own, with the floor and
 *   the peers they are compared with.
 * - Each variant's loop is its own function literal (its peer module's
 *   run), so no two variants share a loop's feedback.
 * - V8 specialises optimised code to a function's only closure, which
 *   flatters whatever is measured first: a first instance of every variant
 *   is exercised and dropped before the measured one is made.
 */
import { performance } from 'node:perf_hooks';
import { runChild } from './child.js';
import { AT_BASELINE, TWIN_COLUMN, matchedJson, matchedRows, matchedTable, runMatched, type Contender, type Matched, type RefColumn } from './matched.js';
import { isEntry } from './paths.js';
import { loadPairFactory } from './peers/index.js';
import { Unavailable } from './peers/types.js';
import { fmtNs, markdownTable } from './stats.js';

export interface PairGroup {
  name: string;
  variants: readonly string[];
  /** The variants the others are divided by, a ratio column each. */
  refs: readonly string[];
  /** Every size of the run (false: only those of SPOT_SIZES among them). */
  allSizes: boolean;
}

/**
 * The groups. `pair`, `churn` and `warm` hold the targets' variants; `shared`
 * sets anyalloc beside the other shared-memory allocators, for context (its
 * two shared-memory-objects variants share that package's malloc, so their
 * figures may be a little off each other's alone).
 */
export const PAIR_GROUPS: readonly PairGroup[] = [
  { name: 'pair', variants: ['floor', 'floor-checked', 'thing-malloc', 'anyalloc', 'anyalloc-fixed', 'uint8array'], refs: ['floor', 'floor-checked', 'anyalloc', 'anyalloc-fixed'], allSizes: true },
  { name: 'churn', variants: ['floor', 'thing-malloc-1000', 'sharedmemobjects-1000', 'anyalloc-1000'], refs: ['floor', 'anyalloc-1000'], allSizes: false },
  { name: 'warm', variants: ['floor', 'thing-malloc', 'anyalloc-warm'], refs: ['floor', 'anyalloc-warm'], allSizes: false },
  {
    name: 'shared',
    variants: ['floor', 'floor-atomics', 'global-lock', 'sharedmemobjects', 'sharedmemobjects-buffer', 'anyalloc'],
    refs: ['floor', 'anyalloc'],
    allSizes: false,
  },
];
export const ALL_SIZES = [16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096];
export const SPOT_SIZES = [16, 256, 4096];
const WINDOW_MS = 40;

export interface PairSpec {
  group: string;
  size: number;
  names: string[];
  cycles: number;
  windowMs: number;
  /** Entry file of the baseline build, for the `@baseline` variants. */
  baseline?: string;
  /** With a baseline: whose variants are made (and so loaded and warmed) first. */
  order?: 'this-first' | 'baseline-first';
}

export interface PairPoint extends Matched {
  group: string;
  size: number;
  order?: 'this-first' | 'baseline-first';
  /** ns per pair: values[variant][cycle]. Variant -> why it could not run. */
  unavailable: Record<string, string>;
  checksum: number;
  error?: string;
}

/** Measures one group at one size in this process. */
export async function measurePair(spec: PairSpec): Promise<PairPoint> {
  const { size, windowMs } = spec;
  const unavailable: Record<string, string> = {};
  let checksum = 0;
  const contenders: Contender[] = [];
  for (const name of spec.names) {
    let factory;
    try {
      factory = await loadPairFactory(name, spec.baseline);
    } catch (e) {
      if (!(e instanceof Unavailable)) throw e;
      unavailable[name] = e.message;
      continue;
    }
    const extra = factory();
    extra.prepare(size);
    checksum ^= extra.run(size, 256);
    extra.dispose?.();
    const v = factory();
    v.prepare(size);
    // Warm up and size the window: iterations for about windowMs.
    let iters = 256;
    for (;;) {
      const t0 = performance.now();
      checksum ^= v.run(size, iters);
      const dt = performance.now() - t0;
      if (dt >= windowMs / 2) {
        iters = Math.max(1, Math.round((iters * windowMs) / dt));
        break;
      }
      iters *= 2;
    }
    contenders.push({
      name,
      window() {
        const t0 = performance.now();
        checksum ^= v.run(size, iters);
        return ((performance.now() - t0) * 1e6) / iters;
      },
    });
  }
  const m = await runMatched(contenders, spec.cycles);
  return { group: spec.group, size, ...(spec.order ? { order: spec.order } : {}), ...m, unavailable, checksum };
}

export interface PairOptions {
  sizes: readonly number[];
  cycles: number;
  baseline?: string;
}

/** Every group at its sizes (a process each), with the time each is planned to take. */
export function pairJobs(o: PairOptions): { spec: PairSpec; ms: number }[] {
  const jobs: { spec: PairSpec; ms: number }[] = [];
  for (const g of PAIR_GROUPS) {
    const names = [...g.variants];
    const twins = o.baseline === undefined ? [] : g.variants.filter((v) => v.startsWith('anyalloc')).map((v) => v + AT_BASELINE);
    const spot = o.sizes.filter((s) => SPOT_SIZES.includes(s));
    for (const size of g.allSizes ? o.sizes : spot.length ? spot : o.sizes.slice(0, 1)) {
      if (o.baseline === undefined) {
        jobs.push({ spec: { group: g.name, size, names, cycles: o.cycles, windowMs: WINDOW_MS }, ms: 400 + names.length * WINDOW_MS * (o.cycles + 2) });
        continue;
      }
      // The build whose variants are made first measures slower in the
      // process (about 10% here, whichever build it is: an identical copy
      // as baseline shows it too), so every point runs in both orders, and
      // the comparison with the baseline is the geometric mean of the two.
      for (const order of ['this-first', 'baseline-first'] as const) {
        const all = order === 'this-first' ? [...names, ...twins] : [...twins, ...names];
        const spec: PairSpec = { group: g.name, size, names: all, cycles: o.cycles, windowMs: WINDOW_MS, baseline: o.baseline, order };
        jobs.push({ spec, ms: 400 + all.length * WINDOW_MS * (o.cycles + 2) });
      }
    }
  }
  return jobs;
}

export async function pairSuite(o: PairOptions, done: (ms: number) => void, log: (l: string) => void): Promise<PairPoint[]> {
  const out: PairPoint[] = [];
  for (const { spec, ms } of pairJobs(o)) {
    try {
      out.push(await runChild<PairPoint>('pair.js', spec));
    } catch (e) {
      log(`  ${spec.group} @ ${spec.size} B: ${(e as Error).message}`);
      out.push({ group: spec.group, size: spec.size, names: [], values: [], unavailable: {}, checksum: 0, error: (e as Error).message });
    }
    done(ms);
  }
  return out;
}

function refs(g: PairGroup, baseline: boolean): RefColumn[] {
  return [...g.refs.map((r) => ({ heading: `x ${r}`, ref: (n: string) => (n === r ? undefined : r) })), ...(baseline ? [TWIN_COLUMN] : [])];
}

/** JSON of the suite: every point with each variant's summary and ratios. */
export function pairJson(points: readonly PairPoint[], baseline: boolean): unknown[] {
  return points.map((p) => {
    const g = PAIR_GROUPS.find((x) => x.name === p.group)!;
    return { group: p.group, size: p.size, order: p.order, unavailable: p.unavailable, error: p.error, variants: matchedJson(p, refs(g, baseline)) };
  });
}

/** One table per group: sizes down, each variant's ns per pair and its ratios (its ns over the reference's). */
export function pairReport(points: readonly PairPoint[], baseline: boolean): string {
  const out: string[] = [];
  for (const g of PAIR_GROUPS) {
    const mine = points.filter((p) => p.group === g.name && p.order !== 'baseline-first');
    if (mine.length === 0) continue;
    const r = refs(g, baseline);
    const rows = mine.flatMap((p) => (p.error !== undefined ? [[`${p.size} B`, `failed: ${p.error}`]] : matchedRows(p, fmtNs, r, [`${p.size} B`])));
    out.push(`\n### ${g.name}: ${g.variants.join(', ')}\n`, matchedTable(['size'], 'ns/pair', r, rows));
    const na = [...new Set(mine.flatMap((p) => Object.entries(p.unavailable).map(([k, v]) => `${k} (${v})`)))];
    if (na.length) out.push(`\nNot run: ${na.join('; ')}`);
  }
  if (baseline) out.push(baselineReport(points));
  return out.join('\n');
}

/**
 * This build against the baseline, each variant at each size: the median
 * per-cycle ratio baseline / this build with this build's variants made
 * first, with the baseline's made first, and the geometric mean of the two
 * (above 1: this build is faster).
 */
export function baselineRatios(points: readonly PairPoint[]): { group: string; size: number; variant: string; thisFirst: number; baselineFirst: number; mean: number }[] {
  const out = [];
  for (const p of points) {
    if (p.order !== 'this-first' || p.error !== undefined) continue;
    const q = points.find((x) => x.order === 'baseline-first' && x.group === p.group && x.size === p.size && x.error === undefined);
    if (q === undefined) continue;
    for (const name of p.names) {
      if (name.endsWith(AT_BASELINE)) continue;
      const twin = name + AT_BASELINE;
      const a = medianRatio(p, twin, name);
      const b = medianRatio(q, twin, name);
      if (a === undefined || b === undefined) continue;
      out.push({ group: p.group, size: p.size, variant: name, thisFirst: a, baselineFirst: b, mean: Math.sqrt(a * b) });
    }
  }
  return out;
}

function medianRatio(m: Matched, num: string, den: string): number | undefined {
  const i = m.names.indexOf(num);
  const j = m.names.indexOf(den);
  if (i < 0 || j < 0) return undefined;
  const r = m.values[i]!.map((v, k) => v / m.values[j]![k]!).sort((x, y) => x - y);
  return r.length === 0 ? undefined : r[r.length >> 1];
}

function baselineReport(points: readonly PairPoint[]): string {
  const rows = baselineRatios(points).map((r) => [r.group, `${r.size} B`, r.variant, r.thisFirst.toFixed(3), r.baselineFirst.toFixed(3), r.mean.toFixed(3)]);
  return [
    '\n### This build against the baseline\n',
    'Median per-cycle ratio (baseline ns / this build ns) with either build made first in the process, and their geometric mean: above 1, this build is faster.\n',
    markdownTable(['group', 'size', 'variant', 'this build first', 'baseline first', 'geometric mean'], rows, 3),
  ].join('\n');
}

if (isEntry(import.meta.url)) {
  const arg = process.argv[2];
  if (arg === undefined) throw new Error('usage: pair.js <PairSpec JSON>');
  process.stdout.write(JSON.stringify(await measurePair(JSON.parse(arg) as PairSpec)) + '\n');
}
