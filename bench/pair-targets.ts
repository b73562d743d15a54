/**
 * The allocator's matched-window groups and its targets.
 *
 * Variants that share anyalloc's alloc and free share V8's feedback for
 * them within a process: a FIFO churn or a start-up fill in the same
 * process as the plain pair makes the pair's loop compile with the slow
 * paths in it (measured: 8.3 ns alone, 13.2 ns beside the churn variant).
 * So the pair, the churn and the warmed pair each get a process (a group)
 * of their own, with the floor and the peer they are compared with.
 *
 * The targets are read from the matched ratios (both sides measured
 * within milliseconds of each other), as for the map: a ratio is the
 * median of the per-cycle ratios, and a target over sizes takes the worst
 * size.
 */
import { fmtNs, fmtQuartiles, fmtRatio, markdownTable, namedCycleRatios, summarize } from './stats.js';
import type { MatchedPairs } from './pair-matched.js';
import type { ScalingRow, ThroughputRow } from './throughput.js';

export interface MatchedGroup {
  name: string;
  variants: readonly string[];
  /** All sizes of the run (false: only those of SPOT_SIZES among them). */
  allSizes: boolean;
}

export const MATCHED_GROUPS: readonly MatchedGroup[] = [
  { name: 'pair', variants: ['floor', 'floor-checked', 'thing-malloc', 'anyalloc', 'anyalloc-fixed', 'uint8array'], allSizes: true },
  { name: 'churn', variants: ['floor', 'thing-malloc-1000', 'anyalloc-1000'], allSizes: false },
  { name: 'warm', variants: ['floor', 'thing-malloc', 'anyalloc-warm'], allSizes: false },
];
/** Sizes of the groups that do not run at every size. */
export const SPOT_SIZES = [16, 256, 4096];

export type MatchedRow = { group: string; size: number } & (MatchedPairs | { error: string });

/** The sizes a group runs at, of those given. */
export function groupSizes(g: MatchedGroup, sizes: readonly number[]): number[] {
  if (g.allSizes) return [...sizes];
  const spot = sizes.filter((s) => SPOT_SIZES.includes(s));
  return spot.length > 0 ? spot : sizes.slice(0, 1);
}

/** Median (quartiles) of num/den per cycle (ns: num/den > 1 means den is faster); NaN when either is missing. */
export function matchedRatio(m: MatchedPairs, num: string, den: string): { median: number; q1: number; q3: number; n: number } {
  return namedCycleRatios(m.variants, m.ns, num, den);
}

/** Per group: [heading, numerator, denominator, digits]. */
const RATIO_COLUMNS: Record<string, [string, string, string, number][]> = {
  pair: [
    ['thi.ng / anyalloc', 'thing-malloc', 'anyalloc', 2],
    ['thi.ng / fixed', 'thing-malloc', 'anyalloc-fixed', 2],
    ['anyalloc / floor', 'anyalloc', 'floor', 2],
    ['checked / floor', 'floor-checked', 'floor', 2],
    ['anyalloc / checked', 'anyalloc', 'floor-checked', 2],
    ['Uint8Array / anyalloc', 'uint8array', 'anyalloc', 1],
  ],
  churn: [
    ['thi.ng 1000 / anyalloc 1000', 'thing-malloc-1000', 'anyalloc-1000', 0],
    ['anyalloc 1000 / floor', 'anyalloc-1000', 'floor', 2],
  ],
  warm: [
    ['thi.ng / warm', 'thing-malloc', 'anyalloc-warm', 2],
    ['warm / floor', 'anyalloc-warm', 'floor', 2],
  ],
};

/** One table per group: each variant's median ns, then the group's ratios. */
export function matchedGroupTable(rows: readonly MatchedRow[], group: MatchedGroup): string {
  const mine = rows.filter((r) => r.group === group.name);
  const cols = RATIO_COLUMNS[group.name] ?? [];
  const body = mine.map((r) => {
    if ('error' in r) return [`${r.size} B`, `failed: ${r.error}`, ...group.variants.slice(1).map(() => ''), ...cols.map(() => '')];
    const ns = group.variants.map((v) => {
      const i = r.variants.indexOf(v);
      return i < 0 ? 'n/a' : fmtNs(summarize(r.ns[i]!).median);
    });
    const ratios = cols.map(([, num, den, digits]) => fmtQuartiles(matchedRatio(r, num, den), digits));
    return [`${r.size} B`, ...ns, ...ratios];
  });
  return markdownTable(
    ['size', ...group.variants.map((v) => `${v} ns`), ...cols.map(([h]) => h)],
    body,
    ['l', ...group.variants.map(() => 'r' as const), ...cols.map(() => 'r' as const)],
  );
}

interface Target {
  what: string;
  line: string;
  measured: string;
  verdict: string;
}

/**
 * The issue's allocator targets from this run. Over sizes the worst size
 * decides (largest for "within", smallest for "faster than"); a target
 * whose variants did not run reads n/a. Scaling is read from the
 * back-to-back runs when there are any, else from the suite's medians;
 * 16 workers vs 1 is judged only on a machine with 16 cores or more.
 */
export function pairTargets(
  rows: readonly MatchedRow[],
  throughput: readonly ThroughputRow[],
  scaling: readonly ScalingRow[] = [],
  cores = Infinity,
): string {
  const ok = rows.filter((r): r is { group: string; size: number } & MatchedPairs => !('error' in r));
  const over = (group: string, num: string, den: string, onlySize?: number): { worst: number; best: number; at: string } | undefined => {
    const vals: { size: number; median: number }[] = [];
    for (const r of ok) {
      if (r.group !== group || (onlySize !== undefined && r.size !== onlySize)) continue;
      const q = matchedRatio(r, num, den);
      if (Number.isFinite(q.median)) vals.push({ size: r.size, median: q.median });
    }
    if (vals.length === 0) return undefined;
    const ms = vals.map((v) => v.median);
    return { worst: Math.min(...ms), best: Math.max(...ms), at: vals.length === 1 ? `${vals[0]!.size} B` : `${vals.length} sizes` };
  };
  const targets: Target[] = [];
  const range = (r: { worst: number; best: number; at: string }): string =>
    r.worst === r.best ? `${fmtRatio(r.worst)} (${r.at})` : `${fmtRatio(r.worst)}-${fmtRatio(r.best)} (${r.at})`;
  // "at most": the largest ratio over sizes decides; "at least": the smallest.
  const judge = (what: string, line: number, atMost: boolean, r: ReturnType<typeof over>): void => {
    const lineText = `${atMost ? '<=' : '>='} ${line}x`;
    if (r === undefined) targets.push({ what, line: lineText, measured: 'not run', verdict: 'n/a' });
    else targets.push({ what, line: lineText, measured: range(r), verdict: (atMost ? r.best <= line : r.worst >= line) ? 'PASS' : 'FAIL' });
  };
  judge('cache-hit pair within 1.5x of the floor', 1.5, true, over('pair', 'anyalloc', 'floor'));
  // What the checks the allocator must make cost by themselves (see
  // peers/floor-checked.ts): the floor with them, against the floor, and
  // anyalloc against the floor with them. Context for the line above.
  const reference = (what: string, r: ReturnType<typeof over>): void => {
    if (r !== undefined) targets.push({ what: `for reference, no target: ${what}`, line: '-', measured: range(r), verdict: '-' });
  };
  reference('the floor with the required checks vs the floor', over('pair', 'floor-checked', 'floor'));
  reference('anyalloc vs the floor with the required checks', over('pair', 'anyalloc', 'floor-checked'));
  judge('faster than @thi.ng/malloc, empty pool (bucketed)', 1.5, false, over('pair', 'thing-malloc', 'anyalloc'));
  judge('faster than @thi.ng/malloc, empty pool (fixed size)', 1.5, false, over('pair', 'thing-malloc', 'anyalloc-fixed'));
  judge('faster than @thi.ng/malloc, 1000 live blocks', 100, false, over('churn', 'thing-malloc-1000', 'anyalloc-1000'));
  judge('faster than new Uint8Array(256)', 50, false, over('pair', 'uint8array', 'anyalloc', 256));
  const rate = (peer: string, w: number): number | undefined => {
    const r = throughput.find((x) => x.peer === peer && x.workers === w);
    return r !== undefined && Number.isFinite(r.median) ? r.median : undefined;
  };
  // A peer's n-vs-1 scaling: the back-to-back runs when there are any, else the suite's medians.
  const scalingOf = (peer: string, w: number): { value: number; text: string } | undefined => {
    const m = scaling.find((x) => x.peer === peer && x.workers === w && Number.isFinite(x.median));
    if (m !== undefined) return { value: m.median, text: `${fmtQuartiles(m)}x back to back` };
    const one = rate(peer, 1);
    const many = rate(peer, w);
    return one !== undefined && many !== undefined ? { value: many / one, text: `${fmtRatio(many / one)} (separate runs)` } : undefined;
  };
  const scalingTarget = (w: number, line: number): void => {
    const what = `${w} workers vs 1 (throughput${w > 2 ? `, ${w} cores` : ''})`;
    const a = scalingOf('anyalloc', w);
    if (a === undefined) {
      targets.push({ what, line: `>= ${line}x`, measured: 'not run', verdict: 'n/a' });
      return;
    }
    const p = scalingOf('private', w);
    const verdict = w > cores ? `n/a (needs ${w} cores, this machine has ${cores})` : a.value >= line ? 'PASS' : 'FAIL';
    targets.push({ what, line: `>= ${line}x`, measured: `${a.text}${p !== undefined ? `; private lists ${p.text}` : ''}`, verdict });
  };
  scalingTarget(2, 1.8);
  scalingTarget(16, 12);
  reference('@thi.ng/malloc empty pool vs a pair after a start-up fill', over('warm', 'thing-malloc', 'anyalloc-warm'));
  return markdownTable(
    ['target', 'line', 'measured', 'verdict'],
    targets.map((t) => [t.what, t.line, t.measured, t.verdict]),
    ['l', 'r', 'l', 'l'],
  );
}
