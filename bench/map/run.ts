/**
 * Map benchmarks: a map_perf_test analogue and the kernel's three htab-mem
 * scenarios, for anyalloc's preallocated and dynamic maps beside sharedmap
 * and a JS Map served by one worker over postMessage, all in the same run.
 *
 * Every measurement runs in a child process of its own (bench/map/point.ts).
 * Runs are interleaved: run 1 of every peer, then run 2 of every peer, ...
 * (starting with a different peer each time), so slow drifts of the machine
 * hit every peer alike and a run of one peer can be paired with the
 * neighbouring run of another.
 *
 *   node dist/bench/map/run.js [--quick] [--workers 1,2] [--runs 5] [--duration-ms 400]
 *     [--warmup-ms 150] [--scenarios perf,overwrite,...] [--peers anyalloc-prealloc,...]
 *     [--number-keys] [--pair-window 8] [--matched-cycles 20] [--matched-window-ms 100] [--out FILE]
 *
 * Then every point once more with the in-process peers taking turns in the
 * same workers (matched windows, bench/map/interleave.ts; --matched-cycles 0
 * skips it).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { formatMachine, machineInfo } from '../machine.js';
import { BENCH_DIST, RESULTS_DIR, isEntry } from '../paths.js';
import { fmtPct, fmtQuartiles, fmtRate, fmtRatio, markdownTable, namedCycleRatios, summarize } from '../stats.js';
import {
  KEYS_PER_WORKER,
  MAX_ENTRIES,
  MAX_PAIR_WINDOW,
  MAX_WORKERS,
  OPS_PER_ROUND,
  PEERS,
  PEER_NOTES,
  PERF_KEYS_PER_ROUND,
  SCENARIOS,
  type FillResult,
  type KeyApi,
  type Peer,
  type PointResult,
  type PointSpec,
  type Scenario,
} from './protocol.js';
import type { InProcessPeer, InterleaveResult, InterleaveSpec } from './interleave-protocol.js';

export interface MapOptions {
  workers: number[];
  runs: number;
  durationMs: number;
  warmupMs: number;
  scenarios: readonly Scenario[];
  peers: readonly Peer[];
  keys: KeyApi;
  /** add_del_on_diff_cpu: rounds the adder may run ahead of the deleter (1: strict turns). */
  pairWindow: number;
  /** Matched windows (interleave.ts): cycles per point (0: none), and each window's length. */
  matchedCycles: number;
  matchedWindowMs: number;
}

export const DEFAULT_MAP: MapOptions = {
  workers: [1, 2],
  runs: 5,
  durationMs: 400,
  warmupMs: 150,
  scenarios: SCENARIOS,
  peers: PEERS,
  keys: 'bytes',
  pairWindow: MAX_PAIR_WINDOW,
  matchedCycles: 20,
  matchedWindowMs: 100,
};

export const QUICK_MAP: Partial<MapOptions> = { runs: 1, durationMs: 300, warmupMs: 100, matchedCycles: 6 };

/** Cycles of matched windows run before the measured ones. */
const MATCHED_WARMUP_CYCLES = 3;

export interface MapRow {
  peer: Peer;
  scenario: Scenario;
  workers: number;
  /** ops/s of each run, in run order. */
  runs: number[];
  opsPerSec: number;
  min: number;
  max: number;
  spread: number;
  /** Memory over every sample of every run (bytes; NaN where the peer has no figure). */
  memMeanBytes: number;
  memPeakBytes: number;
  heapPeakBytes: number;
  /** Median over runs of process CPU time / (wall time x workers) while measuring. */
  cpuPerWorker: number;
  failures: number;
  error?: string;
}

/** One point of the matched windows: every in-process peer's rate in each cycle. */
export interface MatchedRow {
  scenario: Scenario;
  workers: number;
  peers: InProcessPeer[];
  /** ops/s: rates[peer][cycle]. */
  rates: number[][];
  failures: number;
  error?: string;
}

export interface MapResults {
  options: MapOptions;
  rows: MapRow[];
  matched: MatchedRow[];
  fill?: FillResult;
  /** 1-minute load average of the machine before and after the section (other work skews a run). */
  loadBefore: number;
  loadAfter: number;
}

const POINT_TIMEOUT_MS = 60_000;

function runChild(arg: string, script = 'point.js'): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(BENCH_DIST, 'map', script), arg], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), POINT_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line));
      else reject(new Error(`${arg} failed (${signal ?? `exit ${code}`}): ${(err.trim() || out.trim()).split('\n').slice(0, 3).join(' | ')}`));
    });
  });
}

export function measurePointInChild(spec: PointSpec): Promise<PointResult> {
  return runChild(JSON.stringify(spec)) as Promise<PointResult>;
}

export function measureFillInChild(): Promise<FillResult> {
  return runChild('fill') as Promise<FillResult>;
}

export function measureInterleavedInChild(spec: InterleaveSpec): Promise<InterleaveResult> {
  return runChild(JSON.stringify(spec), 'interleave.js') as Promise<InterleaveResult>;
}

/** The peers of `o` that can take turns in the same workers. */
function inProcessPeers(o: MapOptions): InProcessPeer[] {
  return o.peers.filter((p): p is InProcessPeer => p !== 'jsmap-postmessage');
}

/** Every point of `o` once more, its in-process peers taking turns in matched windows (interleave.ts). */
export async function matchedSuite(o: MapOptions, log: (l: string) => void = () => {}): Promise<MatchedRow[]> {
  const peers = inProcessPeers(o);
  const rows: MatchedRow[] = [];
  if (o.matchedCycles === 0 || peers.length < 2) return rows;
  for (const scenario of o.scenarios) {
    for (const workers of o.workers) {
      if (scenario === 'add_del_on_diff_cpu' && workers % 2 !== 0) continue;
      const row: MatchedRow = { scenario, workers, peers, rates: peers.map(() => []), failures: 0 };
      try {
        const r = await measureInterleavedInChild({
          scenario,
          workers,
          peers,
          cycles: o.matchedCycles,
          windowMs: o.matchedWindowMs,
          warmupCycles: MATCHED_WARMUP_CYCLES,
          keys: o.keys,
          pairWindow: o.pairWindow,
        });
        row.rates = r.rates;
        row.failures = r.failures;
        log(`  matched ${scenario} x${workers}: ${peers.map((p, i) => `${p} ${fmtRate(summarize(r.rates[i]!).median)}`).join(', ')}`);
      } catch (e) {
        row.error = (e as Error).message;
        log(`  matched ${scenario} x${workers}: ${row.error}`);
      }
      rows.push(row);
    }
  }
  return rows;
}

/** Quartiles of the per-cycle ratios a / b of a matched row (NaN where a peer is missing). */
export function matchedRatio(m: MatchedRow | undefined, a: Peer, b: Peer): { median: number; q1: number; q3: number; n: number } {
  return namedCycleRatios(m?.peers ?? [], m?.rates ?? [], a, b);
}

function findMatched(m: readonly MatchedRow[], scenario: Scenario, workers: number): MatchedRow | undefined {
  return m.find((x) => x.scenario === scenario && x.workers === workers && x.error === undefined);
}

/** One row per matched point: each peer's median rate, and the ratios of per-cycle rates with their quartiles. */
export function matchedTable(m: readonly MatchedRow[]): string {
  if (m.length === 0) return '';
  const peers = m[0]!.peers;
  const hasSm = peers.includes('sharedmap');
  const both = peers.includes('anyalloc-prealloc') && peers.includes('anyalloc-dynamic');
  return markdownTable(
    [
      'scenario',
      'workers',
      ...peers,
      ...(both ? ['dynamic / prealloc'] : []),
      ...(hasSm ? peers.filter((p) => p !== 'sharedmap').map((p) => `${p} / sharedmap`) : []),
      'failed ops',
    ],
    m.map((r) => {
      if (r.error !== undefined) return [r.scenario, r.workers, ...peers.map(() => 'error'), ...(both ? [''] : []), ...(hasSm ? peers.slice(1).map(() => '') : []), ''];
      return [
        r.scenario,
        r.workers,
        ...r.rates.map((x) => fmtRate(summarize(x).median)),
        ...(both ? [fmtQuartiles(matchedRatio(r, 'anyalloc-dynamic', 'anyalloc-prealloc'))] : []),
        ...(hasSm ? peers.filter((p) => p !== 'sharedmap').map((p) => fmtQuartiles(matchedRatio(r, p, 'sharedmap'), 1)) : []),
        r.failures,
      ];
    }),
  );
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const peak = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => Math.max(a, b), -Infinity) : NaN);

/** Every point of `o`, each run in its own process; `log` gets progress lines. */
export async function mapSuite(o: MapOptions, log: (l: string) => void = () => {}): Promise<MapRow[]> {
  const rows: MapRow[] = [];
  for (const scenario of o.scenarios) {
    for (const workers of o.workers) {
      if (scenario === 'add_del_on_diff_cpu' && workers % 2 !== 0) continue;
      const results = new Map<Peer, PointResult[]>(o.peers.map((p) => [p, []]));
      const errors = new Map<Peer, string>();
      for (let r = 0; r < o.runs; r++) {
        for (let j = 0; j < o.peers.length; j++) {
          const peer = o.peers[(j + r) % o.peers.length]!;
          if (errors.has(peer)) continue;
          try {
            const one = await measurePointInChild({
              peer,
              scenario,
              workers,
              warmupMs: o.warmupMs,
              durationMs: o.durationMs,
              keys: o.keys,
              pairWindow: o.pairWindow,
            });
            results.get(peer)!.push(one);
          } catch (e) {
            errors.set(peer, (e as Error).message);
            log(`  ${scenario} x${workers} ${peer}: ${(e as Error).message}`);
          }
        }
      }
      for (const peer of o.peers) {
        const rs = results.get(peer)!;
        const s = summarize(rs.map((x) => x.opsPerSec));
        const mem = rs.flatMap((x) => x.mapBytes);
        const row: MapRow = {
          peer,
          scenario,
          workers,
          runs: rs.map((x) => x.opsPerSec),
          opsPerSec: s.median,
          min: s.min,
          max: s.max,
          spread: s.spread,
          memMeanBytes: mean(mem),
          memPeakBytes: peak(mem),
          heapPeakBytes: peak(rs.flatMap((x) => x.heapUsedBytes)),
          cpuPerWorker: summarize(rs.map((x) => x.cpuPerWorker)).median,
          failures: rs.reduce((a, x) => a + x.failures, 0),
        };
        const err = errors.get(peer);
        if (err !== undefined) row.error = err;
        rows.push(row);
        if (rs.length) log(`  ${scenario} x${workers} ${peer}: ${fmtRate(s.median)} (${rs.map((x) => fmtRate(x.opsPerSec)).join(', ')})`);
      }
    }
  }
  return rows;
}

function mib(b: number): string {
  return Number.isFinite(b) ? `${(b / (1 << 20)).toFixed(2)} MiB` : '-';
}

function find(rows: readonly MapRow[], peer: Peer, scenario: Scenario, workers: number): MapRow | undefined {
  const r = rows.find((x) => x.peer === peer && x.scenario === scenario && x.workers === workers);
  return r && r.runs.length > 0 ? r : undefined;
}

/** Ratio of medians, and the range of the ratios of runs measured next to each other. */
function pairedRatio(a: MapRow | undefined, b: MapRow | undefined): { ratio: number; lo: number; hi: number } {
  if (!a || !b) return { ratio: NaN, lo: NaN, hi: NaN };
  const n = Math.min(a.runs.length, b.runs.length);
  const rs = Array.from({ length: n }, (_, i) => a.runs[i]! / b.runs[i]!);
  return { ratio: a.opsPerSec / b.opsPerSec, lo: Math.min(...rs), hi: Math.max(...rs) };
}

function fmtRange(p: { lo: number; hi: number }): string {
  return Number.isFinite(p.lo) ? `${p.lo.toFixed(2)}-${p.hi.toFixed(2)}` : '-';
}

const SCENARIO_NOTES: Record<Scenario, string> = {
  perf: `map_perf_test's hash loop: update (ANY), lookup, delete of one key, then the next of the worker's ${KEYS_PER_WORKER} keys (${PERF_KEYS_PER_ROUND} keys a round)`,
  overwrite: `htab-mem: each worker replaces values of its own ${KEYS_PER_WORKER} keys (all present), ${OPS_PER_ROUND} updates a round`,
  batch_add_batch_del: `htab-mem: each worker adds ${OPS_PER_ROUND / 2} of its keys, then deletes them, a round`,
  add_del_on_diff_cpu:
    `htab-mem: workers in pairs; the even one adds ${OPS_PER_ROUND} keys (NOEXIST) a round, the odd one deletes the keys of ` +
    'each round the adder has finished (round counters in shared memory, Atomics wait/notify), so elements are allocated by ' +
    'one worker and freed by the other',
};

export function scenarioNotes(o: MapOptions): string {
  const pair = o.pairWindow === 1 ? '; strict turns (--pair-window 1): only one worker of a pair works at a time' : `; the adder runs at most ${o.pairWindow} rounds ahead`;
  return o.scenarios.map((s) => `- \`${s}\`: ${SCENARIO_NOTES[s]}${s === 'add_del_on_diff_cpu' ? pair : ''}`).join('\n');
}

export function peerNotes(o: MapOptions): string {
  return o.peers
    .map((p) => `- \`${p}\`: ${PEER_NOTES[p]}${p.startsWith('anyalloc') ? ` (${o.keys === 'number' ? 'number-key calls' : '8-byte `Uint8Array` keys'})` : ''}`)
    .join('\n');
}

/** One row per point: rate, spread, per worker, ratios to prealloc and sharedmap, memory. */
export function mapTable(rows: readonly MapRow[]): string {
  return markdownTable(
    ['scenario', 'workers', 'peer', 'ops/s (median)', 'spread', 'per worker', 'x prealloc', 'x sharedmap', 'mem mean', 'mem peak', 'heap peak', 'CPU per worker', 'failed ops'],
    rows.map((r) => {
      if (r.runs.length === 0) return [r.scenario, r.workers, r.peer, r.error ? 'error' : 'n/a', '', '', '', '', '', '', '', '', ''];
      const pre = find(rows, 'anyalloc-prealloc', r.scenario, r.workers);
      const sm = find(rows, 'sharedmap', r.scenario, r.workers);
      return [
        r.scenario,
        r.workers,
        r.peer,
        fmtRate(r.opsPerSec),
        fmtPct(r.spread),
        fmtRate(r.opsPerSec / r.workers),
        pre ? fmtRatio(r.opsPerSec / pre.opsPerSec) : '-',
        sm ? fmtRatio(r.opsPerSec / sm.opsPerSec) : '-',
        mib(r.memMeanBytes),
        mib(r.memPeakBytes),
        mib(r.heapPeakBytes),
        r.cpuPerWorker.toFixed(2),
        r.failures,
      ];
    }),
  );
}

/** Scenarios down, peers across, with the dynamic / prealloc ratios. */
export function mapSummary(rows: readonly MapRow[], o: MapOptions): string {
  const points: [Scenario, number][] = [];
  for (const s of o.scenarios) for (const w of o.workers) if (rows.some((r) => r.scenario === s && r.workers === w)) points.push([s, w]);
  const cell = (p: Peer, s: Scenario, w: number): string => {
    const r = find(rows, p, s, w);
    return r ? fmtRate(r.opsPerSec) : '-';
  };
  return markdownTable(
    ['scenario', 'workers', ...o.peers, 'dynamic / prealloc ops/s', '(paired runs)', 'dynamic / prealloc peak mem'],
    points.map(([s, w]) => {
      const dyn = find(rows, 'anyalloc-dynamic', s, w);
      const pre = find(rows, 'anyalloc-prealloc', s, w);
      const sp = pairedRatio(dyn, pre);
      const mem = dyn && pre ? dyn.memPeakBytes / pre.memPeakBytes : NaN;
      return [s, w, ...o.peers.map((p) => cell(p, s, w)), fmtRatio(sp.ratio), fmtRange(sp), fmtRatio(mem)];
    }),
  );
}

export function fillReport(f: FillResult): string {
  const r = f.dynamic.mapBytes / f.prealloc.mapBytes;
  return (
    `Map of ${f.maxEntries.toLocaleString('en-US')} entries (8-byte keys and values) holding ` +
    `${f.filled.toLocaleString('en-US')} (10%): dynamic ${mib(f.dynamic.mapBytes)} ` +
    `(heap pages ${mib(f.dynamic.heapUsedBytes)}), preallocated ${mib(f.prealloc.mapBytes)} ` +
    `(heap pages ${mib(f.prealloc.heapUsedBytes)}): ${(r * 100).toFixed(1)}%.`
  );
}

/**
 * The issue's targets, each with PASS or FAIL, from ratios within this run:
 * from the separate processes (ratio of medians; the range of neighbouring
 * runs' ratios; `unclear` when that range spans the line) and, where
 * measured, from the matched windows (median of the per-cycle ratios;
 * quartiles).
 */
export function mapTargets(rows: readonly MapRow[], o: MapOptions, fill?: FillResult, matched: readonly MatchedRow[] = []): string {
  const t: (string | number)[][] = [];
  const verdict = (x: number, ok: boolean): string => (Number.isFinite(x) ? (ok ? 'PASS' : 'FAIL') : 'n/a');
  // A separate-process ratio whose neighbouring runs fall on both sides of
  // the line decides nothing either way (its spread is the machine's): the
  // matched-windows row below it does.
  const spanVerdict = (r: { ratio: number; lo: number; hi: number }, line: number): string =>
    Number.isFinite(r.ratio) && r.lo < line && r.hi >= line ? 'unclear' : verdict(r.ratio, r.ratio >= line);
  // The lower CPU share of the anyalloc rows compared. Their workers spin
  // where they wait, so well below 1 means they were preempted and
  // the ratio says more about the machine than about the maps. (sharedmap's
  // workers sleep in its locks, so its share says nothing of the kind.)
  const cpu = (...rs: MapRow[]): string => {
    const c = Math.min(...rs.map((r) => r.cpuPerWorker));
    return `${c.toFixed(2)}${c < 0.8 ? ' (busy)' : ''}`;
  };
  for (const s of o.scenarios) {
    for (const w of o.workers) {
      const dyn = find(rows, 'anyalloc-dynamic', s, w);
      const pre = find(rows, 'anyalloc-prealloc', s, w);
      if (!dyn || !pre) continue;
      const sp = pairedRatio(dyn, pre);
      t.push([`${s} x${w}: dynamic / prealloc ops/s >= 0.95`, `${sp.ratio.toFixed(2)} (runs ${fmtRange(sp)})`, spanVerdict(sp, 0.95), cpu(dyn, pre)]);
      const mr = matchedRatio(findMatched(matched, s, w), 'anyalloc-dynamic', 'anyalloc-prealloc');
      if (mr.n > 0) t.push([`${s} x${w}: the same, matched windows`, `${fmtQuartiles(mr)} of ${mr.n}`, verdict(mr.median, mr.median >= 0.95), '']);
      const m = dyn.memPeakBytes / pre.memPeakBytes;
      t.push([`${s} x${w}: dynamic / prealloc peak memory <= 2`, m.toFixed(2), verdict(m, m <= 2), '']);
    }
  }
  if (fill) {
    const r = fill.dynamic.mapBytes / fill.prealloc.mapBytes;
    t.push(['dynamic map at 10% of maxEntries / prealloc memory <= 0.15', r.toFixed(3), verdict(r, r <= 0.15), '']);
  }
  if (o.workers.includes(2) && o.peers.includes('sharedmap')) {
    for (const s of o.scenarios) {
      const sm = find(rows, 'sharedmap', s, 2);
      for (const p of ['anyalloc-prealloc', 'anyalloc-dynamic'] as const) {
        const a = find(rows, p, s, 2);
        if (!a || !sm) continue;
        const x = pairedRatio(a, sm);
        t.push([`${s} x2: ${p} / sharedmap ops/s >= 10`, `${x.ratio.toFixed(1)} (runs ${x.lo.toFixed(1)}-${x.hi.toFixed(1)})`, spanVerdict(x, 10), cpu(a)]);
        const mr = matchedRatio(findMatched(matched, s, 2), p, 'sharedmap');
        if (mr.n > 0) t.push([`${s} x2: the same, matched windows`, `${fmtQuartiles(mr, 1)} of ${mr.n}`, verdict(mr.median, mr.median >= 10), '']);
      }
    }
  }
  return markdownTable(['target', 'measured', '', 'anyalloc CPU per worker'], t, ['l', 'r', 'c', 'r']);
}

/** The whole map section as Markdown (what `npm run bench` prints). */
export function mapReport(res: MapResults): string {
  const o = res.options;
  const out: string[] = [];
  out.push(mapTable(res.rows));
  out.push(
    `\nLoad average (1 min) before / after: ${res.loadBefore.toFixed(2)} / ${res.loadAfter.toFixed(2)} ` +
      `on ${availableParallelism()} cores (the benchmark's own workers count in it). ` +
      `CPU per worker: process CPU time over wall time and workers while measuring. anyalloc's workers ` +
      `spin where they wait, so well below 1 there means they were preempted (more threads than cores, or other ` +
      `work on the machine); sharedmap's sleep in its locks and the JS Map's clients wait for replies.`,
  );
  out.push('\n### Summary\n');
  out.push(mapSummary(res.rows, o));
  if (res.fill) out.push('\n' + fillReport(res.fill));
  if (res.matched.length > 0) {
    out.push('\n### Matched windows\n');
    out.push(
      `The in-process peers again, in the same ${o.workers.join(' / ')} workers of one process, taking turns in ` +
        `${o.matchedWindowMs} ms windows (${o.matchedCycles} cycles after ${MATCHED_WARMUP_CYCLES} of warm-up; ` +
        `the order alternates each cycle). Rates: median over windows. Ratios: median of the per-cycle ratios, ` +
        `with the quartiles: both sides of each ratio were measured within a few hundred milliseconds of each other.\n`,
    );
    out.push(matchedTable(res.matched));
  }
  out.push('\n### Targets\n');
  out.push(mapTargets(res.rows, o, res.fill, res.matched));
  return out.join('\n');
}

export function mapIntro(o: MapOptions): string {
  return (
    `8-byte keys and values; anyalloc maps of maxEntries ${MAX_ENTRIES.toLocaleString('en-US')}; ` +
    `each point in its own process, ${o.warmupMs} ms of warm-up then ${o.durationMs} ms measured, ` +
    `median of ${o.runs} run(s) interleaved across peers; spread = (max - min) / median; ` +
    `x prealloc and x sharedmap: ratio of medians to that peer at the same point; ` +
    `memory sampled every 10 ms while measuring (anyalloc: \`map.memoryBytes()\`, table + element slabs; ` +
    `heap peak: heap pages in use; sharedmap: its buffer).\n\n` +
    scenarioNotes(o) +
    '\n\n' +
    peerNotes(o) +
    '\n'
  );
}

/** Runs the suite and the fill measurement; prints nothing but `log` progress lines. */
export async function runMapBench(o: MapOptions, log: (l: string) => void): Promise<MapResults> {
  const loadBefore = loadavg()[0]!;
  const rows = await mapSuite(o, log);
  let fill: FillResult | undefined;
  if (o.peers.includes('anyalloc-dynamic') && o.peers.includes('anyalloc-prealloc')) {
    try {
      fill = await measureFillInChild();
    } catch (e) {
      log(`  fill: ${(e as Error).message}`);
    }
  }
  const matched = await matchedSuite(o, log);
  const res: MapResults = { options: o, rows, matched, loadBefore, loadAfter: loadavg()[0]! };
  if (fill) res.fill = fill;
  return res;
}

/** Validated map options from command-line values (undefined: the default). */
export function mapOptions(v: {
  quick?: boolean;
  workers?: number[];
  runs?: number;
  durationMs?: number;
  warmupMs?: number;
  scenarios?: string[];
  peers?: string[];
  numberKeys?: boolean;
  pairWindow?: number;
  matchedCycles?: number;
  matchedWindowMs?: number;
}): MapOptions {
  const base = { ...DEFAULT_MAP, ...(v.quick ? QUICK_MAP : {}) };
  const o: MapOptions = {
    workers: v.workers ?? base.workers,
    runs: v.runs ?? base.runs,
    durationMs: v.durationMs ?? base.durationMs,
    warmupMs: v.warmupMs ?? base.warmupMs,
    scenarios: (v.scenarios as Scenario[] | undefined) ?? base.scenarios,
    peers: (v.peers as Peer[] | undefined) ?? base.peers,
    keys: v.numberKeys ? 'number' : base.keys,
    pairWindow: v.pairWindow ?? base.pairWindow,
    matchedCycles: v.matchedCycles ?? base.matchedCycles,
    matchedWindowMs: v.matchedWindowMs ?? base.matchedWindowMs,
  };
  if (!(Number.isInteger(o.matchedCycles) && o.matchedCycles >= 0)) throw new Error(`matched cycles must be an integer >= 0 (0: none), got ${o.matchedCycles}`);
  if (!(o.matchedWindowMs >= 10)) throw new Error(`matched window must be at least 10 ms, got ${o.matchedWindowMs}`);
  if (!(Number.isInteger(o.pairWindow) && o.pairWindow >= 1 && o.pairWindow <= MAX_PAIR_WINDOW)) {
    throw new Error(`pair window must be 1..${MAX_PAIR_WINDOW}`);
  }
  for (const w of o.workers) if (!(Number.isInteger(w) && w >= 1 && w <= MAX_WORKERS)) throw new Error(`map worker counts must be 1..${MAX_WORKERS}, got ${w}`);
  for (const s of o.scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown map scenario ${s} (${SCENARIOS.join(', ')})`);
  for (const p of o.peers) if (!PEERS.includes(p)) throw new Error(`unknown map peer ${p} (${PEERS.join(', ')})`);
  if (!(o.runs >= 1 && Number.isInteger(o.runs))) throw new Error('map runs must be a positive integer');
  if (!(o.durationMs > 0) || !(o.warmupMs >= 0)) throw new Error('map durations must be positive');
  return o;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const known = new Set([
    '--quick', '--workers', '--runs', '--duration-ms', '--warmup-ms', '--scenarios', '--peers', '--number-keys', '--pair-window',
    '--matched-cycles', '--matched-window-ms', '--out',
  ]);
  for (const a of argv) if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown option ${a}`);
  const val = (f: string): string | undefined => {
    const i = argv.indexOf(f);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${f} needs a value`);
    return v;
  };
  const num = (f: string): number | undefined => (val(f) === undefined ? undefined : Number(val(f)));
  const o = mapOptions({
    quick: argv.includes('--quick'),
    workers: val('--workers')?.split(',').map(Number),
    runs: num('--runs'),
    durationMs: num('--duration-ms'),
    warmupMs: num('--warmup-ms'),
    scenarios: val('--scenarios')?.split(','),
    peers: val('--peers')?.split(','),
    numberKeys: argv.includes('--number-keys'),
    pairWindow: num('--pair-window'),
    matchedCycles: num('--matched-cycles'),
    matchedWindowMs: num('--matched-window-ms'),
  });
  const started = Date.now();
  const machine = machineInfo();
  console.log('## Machine\n');
  console.log(formatMachine(machine));
  console.log('\n## Hash map: map_perf_test and htab-mem analogues\n');
  console.log(mapIntro(o));
  const res = await runMapBench(o, (l) => console.error(l));
  console.log(mapReport(res));
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  console.log(`\nTotal time: ${seconds} s`);
  const out = val('--out') ?? join(RESULTS_DIR, 'map-latest.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine, ...res, seconds }, null, 2) + '\n');
  console.log(`Results written to ${relative(process.cwd(), out)}`);
}

if (isEntry(import.meta.url)) {
  try {
    await main();
  } catch (e) {
    console.error(`bench:map: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
