/**
 * Matched windows, the one measuring method of every suite: the variants
 * of a group take turns, one window each per cycle, the order reversing
 * every cycle (A B C, then C B A) so that a drift within a cycle favours
 * nobody. A ratio between two variants is the median of the per-cycle
 * ratios, with their quartiles (stats.ts cycleRatios).
 *
 * Why: the machines this runs on change speed for seconds at a time (one
 * ran a plain counting loop at 0.35 ns per iteration for a few seconds,
 * then at 0.60 ns for the next few), so two variants measured in separate
 * processes seconds apart can differ by 2x for reasons that are not
 * theirs. Both sides of a matched ratio ran within milliseconds (pair,
 * map) or a second (throughput) of each other.
 *
 * What a window is belongs to the suite: a timed loop of alloc+free pairs
 * (pair.ts), a fresh set of workers churning for half a second
 * (throughput.ts), or the rounds the map's workers finish on one map
 * while the others wait (map/point.ts).
 */
import { cycleRatios, fmtPct, fmtQuartiles, markdownTable, summarize, type Summary } from './stats.js';

export interface Contender {
  readonly name: string;
  /** Measures one window; returns its figure (ns per pair, ops per second, ...). */
  window(): number | Promise<number>;
}

/** values[i][c]: the figure of names[i] in measured cycle c. */
export interface Matched {
  names: string[];
  values: number[][];
}

/** Runs `warmupCycles` cycles that are not kept, then `cycles` that are; `onWindow` after every window. */
export async function runMatched(contenders: readonly Contender[], cycles: number, warmupCycles = 0, onWindow?: () => void): Promise<Matched> {
  if (!(Number.isInteger(cycles) && cycles >= 1)) throw new RangeError(`cycles must be a positive integer, got ${cycles}`);
  const n = contenders.length;
  const values = contenders.map(() => [] as number[]);
  for (let c = 0; c < warmupCycles + cycles; c++) {
    for (let k = 0; k < n; k++) {
      const j = c % 2 === 0 ? k : n - 1 - k;
      const v = await contenders[j]!.window();
      if (c >= warmupCycles) values[j]!.push(v);
      onWindow?.();
    }
  }
  return { names: contenders.map((c) => c.name), values };
}

/** Suffix of the variants loaded from the build given with --baseline. */
export const AT_BASELINE = '@baseline';

/** The variant of this build that a baseline variant is matched against (undefined for others). */
export function twinOf(name: string): string | undefined {
  return name.endsWith(AT_BASELINE) ? name.slice(0, -AT_BASELINE.length) : undefined;
}

/** Per-cycle ratios of `a` to `b` in one matched set (NaN when either is missing). */
export function ratio(m: Matched, a: string | undefined, b: string | undefined): Summary {
  const ia = a === undefined ? -1 : m.names.indexOf(a);
  const ib = b === undefined ? -1 : m.names.indexOf(b);
  return ia < 0 || ib < 0 || ia === ib ? summarize([]) : cycleRatios(m.values[ia]!, m.values[ib]!);
}

/** A ratio column: its heading, and the variant each row is divided by (undefined: none). */
export interface RefColumn {
  heading: string;
  ref(name: string): string | undefined;
}

/** The column every suite gets when a baseline ran: each baseline variant over its twin of this build. */
export const TWIN_COLUMN: RefColumn = { heading: 'x this build', ref: twinOf };

/** A column's reference for a row; a baseline row is compared with the baseline's own reference where there is one. */
function refOf(m: Matched, name: string, c: RefColumn): string | undefined {
  const ref = c.ref(name);
  const twin = twinOf(name);
  return twin !== undefined && ref !== undefined && ref !== twin && m.names.includes(ref + AT_BASELINE) ? ref + AT_BASELINE : ref;
}

/**
 * One matched set as JSON: each variant's summary, and its ratios to the
 * reference columns (median and quartiles of the per-cycle ratios).
 */
export function matchedJson(m: Matched, refs: readonly RefColumn[]): Record<string, unknown>[] {
  return m.names.map((name, i) => ({
    name,
    values: m.values[i],
    ...summarize(m.values[i]!),
    ratios: Object.fromEntries(refs.map((c) => [c.heading, ratio(m, name, refOf(m, name, c))]).filter(([, r]) => (r as Summary).n > 0)),
  }));
}

/** One matched set as table rows: name, median, quartiles, spread, then the ratio columns. */
export function matchedRows(m: Matched, fmt: (x: number) => string, refs: readonly RefColumn[], lead: (string | number)[] = []): (string | number)[][] {
  return m.names.map((name, i) => {
    const s = summarize(m.values[i]!);
    return [...lead, name, fmt(s.median), `${fmt(s.q1)}-${fmt(s.q3)}`, fmtPct(s.spread), ...refs.map((c) => fmtQuartiles(ratio(m, name, refOf(m, name, c))))];
  });
}

export function matchedTable(leadHeads: readonly string[], unit: string, refs: readonly RefColumn[], rows: (string | number)[][], extraHeads: readonly string[] = []): string {
  return markdownTable([...leadHeads, 'variant', `${unit} (median)`, 'quartiles', 'spread', ...refs.map((c) => c.heading), ...extraHeads], rows, leadHeads.length + 1);
}
