/**
 * The map suite: a map_perf_test analogue and the kernel's three htab-mem
 * scenarios, for anyalloc's preallocated and dynamic maps beside sharedmap
 * and a JS Map served by one worker over postMessage. Every scenario and
 * worker count is a point, measured in a child process of its own
 * (point.ts) in matched windows; then the memory timeline (point.ts
 * measureMemory).
 */
import { runChild } from '../child.js';
import { AT_BASELINE, TWIN_COLUMN, matchedJson, matchedRows, matchedTable, type RefColumn } from '../matched.js';
import { fmtMiB, fmtRate, markdownTable } from '../stats.js';
import { MAP_PEERS, MAX_WORKERS, SCENARIOS, type MemoryResult, type PointResult, type PointSpec } from './protocol.js';

export interface MapOptions {
  workers: readonly number[];
  cycles: number;
  windowMs: number;
  baseline?: string;
}

/** Cycles of matched windows run before the measured ones (JIT and caches settle). */
const WARMUP_CYCLES = 3;

export interface MapResults {
  points: PointResult[];
  memory?: MemoryResult;
}

export function mapJobs(o: MapOptions): { spec: PointSpec; ms: number }[] {
  const peers: string[] = [...MAP_PEERS];
  if (o.baseline !== undefined) peers.push('anyalloc-prealloc' + AT_BASELINE, 'anyalloc-dynamic' + AT_BASELINE);
  const jobs: { spec: PointSpec; ms: number }[] = [];
  for (const scenario of SCENARIOS) {
    for (const workers of o.workers) {
      if (workers > MAX_WORKERS || (scenario === 'add_del_on_diff_cpu' && workers % 2 !== 0)) continue;
      const spec: PointSpec = { scenario, workers, peers, cycles: o.cycles, warmupCycles: WARMUP_CYCLES, windowMs: o.windowMs };
      if (o.baseline !== undefined) spec.baseline = o.baseline;
      jobs.push({ spec, ms: 500 + peers.length * o.windowMs * (o.cycles + WARMUP_CYCLES) });
    }
  }
  return jobs;
}

export async function mapSuite(o: MapOptions, done: (ms: number) => void, log: (l: string) => void): Promise<MapResults> {
  const points: PointResult[] = [];
  for (const { spec, ms } of mapJobs(o)) {
    try {
      points.push(await runChild<PointResult>('map/point.js', spec));
    } catch (e) {
      log(`  ${spec.scenario} x${spec.workers}: ${(e as Error).message}`);
      points.push({ scenario: spec.scenario, workers: spec.workers, names: [], values: [], peakMapBytes: {}, failures: 0, error: (e as Error).message });
    }
    done(ms);
  }
  const res: MapResults = { points };
  try {
    res.memory = await runChild<MemoryResult>('map/point.js', { memory: true });
  } catch (e) {
    log(`  memory timeline: ${(e as Error).message}`);
  }
  done(1000);
  return res;
}

function refs(baseline: boolean): RefColumn[] {
  return [
    { heading: 'x prealloc', ref: (n) => (n === 'anyalloc-prealloc' ? undefined : 'anyalloc-prealloc') },
    { heading: 'x sharedmap', ref: (n) => (n === 'sharedmap' ? undefined : 'sharedmap') },
    ...(baseline ? [TWIN_COLUMN] : []),
  ];
}

export function mapJson(r: MapResults, baseline: boolean): unknown {
  return {
    points: r.points.map((p) => ({ scenario: p.scenario, workers: p.workers, failures: p.failures, error: p.error, peakMapBytes: p.peakMapBytes, peers: matchedJson(p, refs(baseline)) })),
    memory: r.memory,
  };
}

export function mapReport(r: MapResults, baseline: boolean): string {
  const rf = refs(baseline);
  const rows = r.points.flatMap((p) =>
    p.error !== undefined
      ? [[p.scenario, p.workers, `failed: ${p.error}`]]
      : matchedRows(p, fmtRate, rf, [p.scenario, p.workers]).map((row) => [...row, fmtMiB(p.peakMapBytes[String(row[2])] ?? NaN), p.failures]),
  );
  const out = [matchedTable(['scenario', 'workers'], 'ops/s', rf, rows, ['peak map memory', 'failed ops (point)'])];
  const m = r.memory;
  if (m !== undefined) {
    const { prealloc, dynamic } = m.atTenPercent;
    const peak = (mode: string, k: 'committedBytes' | 'usedBytes' | 'mapBytes'): number => Math.max(...m.samples.filter((s) => s.mode === mode).map((s) => s[k]));
    out.push(
      `\nMemory, one thread, maps of ${m.maxEntries.toLocaleString('en-US')} entries (fill to 10%, churn, grow to 50%, delete all):\n`,
      markdownTable(
        ['mode', 'map at 10%', 'heap used at 10%', 'peak map', 'peak heap used', 'peak heap committed'],
        (['prealloc', 'dynamic'] as const).map((mode) => [mode, fmtMiB(m.atTenPercent[mode].mapBytes), fmtMiB(m.atTenPercent[mode].usedBytes), fmtMiB(peak(mode, 'mapBytes')), fmtMiB(peak(mode, 'usedBytes')), fmtMiB(peak(mode, 'committedBytes'))]),
      ),
      `\nDynamic map at 10% / preallocated: ${((dynamic.mapBytes / prealloc.mapBytes) * 100).toFixed(1)}%.`,
    );
  }
  return out.join('\n');
}
