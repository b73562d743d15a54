/** Small statistics and table helpers for the benchmark reports. */

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  mean: number;
  /** (max - min) / median: the whole range relative to the median. */
  spread: number;
  /** Interquartile range relative to the median. */
  iqr: number;
}

function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Linear-interpolated quantile of already sorted values, q in [0, 1]. */
export function quantileSorted(s: readonly number[], q: number): number {
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function median(xs: readonly number[]): number {
  return quantileSorted(sorted(xs), 0.5);
}

/**
 * Ratios a[i] / b[i] of two series measured in the same cycles (matched
 * windows), as median and quartiles: the ratio of each cycle first, then
 * their distribution (not a ratio of medians).
 */
export function cycleRatios(a: readonly number[], b: readonly number[]): { median: number; q1: number; q3: number; n: number } {
  const n = Math.min(a.length, b.length);
  if (n === 0) return { median: NaN, q1: NaN, q3: NaN, n: 0 };
  const rs = sorted(Array.from({ length: n }, (_, i) => a[i]! / b[i]!));
  return { median: quantileSorted(rs, 0.5), q1: quantileSorted(rs, 0.25), q3: quantileSorted(rs, 0.75), n };
}

/**
 * cycleRatios of the series named a and b among `names` (series[i] belongs
 * to names[i]); NaN, n 0 when either is missing.
 */
export function namedCycleRatios(names: readonly string[], series: readonly (readonly number[])[], a: string, b: string): { median: number; q1: number; q3: number; n: number } {
  const ia = names.indexOf(a);
  const ib = names.indexOf(b);
  if (ia < 0 || ib < 0) return { median: NaN, q1: NaN, q3: NaN, n: 0 };
  return cycleRatios(series[ia]!, series[ib]!);
}

/** "median (q1-q3)" of a ratio's distribution, or "-" when there is none. */
export function fmtQuartiles(r: { median: number; q1: number; q3: number }, digits = 2): string {
  return Number.isFinite(r.median) ? `${r.median.toFixed(digits)} (${r.q1.toFixed(digits)}-${r.q3.toFixed(digits)})` : '-';
}

export function summarize(xs: readonly number[]): Summary {
  const s = sorted(xs);
  const n = s.length;
  if (n === 0) return { n: 0, median: NaN, min: NaN, max: NaN, mean: NaN, spread: NaN, iqr: NaN };
  const med = quantileSorted(s, 0.5);
  const mean = s.reduce((a, b) => a + b, 0) / n;
  return {
    n,
    median: med,
    min: s[0],
    max: s[n - 1],
    mean,
    spread: med === 0 ? 0 : (s[n - 1] - s[0]) / med,
    iqr: med === 0 ? 0 : (quantileSorted(s, 0.75) - quantileSorted(s, 0.25)) / med,
  };
}

/** Nanoseconds with sensible precision: 4.73, 27.6, 637, 2,134. */
export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return '-';
  if (ns < 10) return ns.toFixed(2);
  if (ns < 100) return ns.toFixed(1);
  return Math.round(ns).toLocaleString('en-US');
}

/** Operations per second: 271.9M/s, 14.8M/s, 850k/s. */
export function fmtRate(opsPerSec: number): string {
  if (!Number.isFinite(opsPerSec)) return '-';
  if (opsPerSec >= 1e9) return `${(opsPerSec / 1e9).toFixed(2)}G/s`;
  if (opsPerSec >= 1e6) return `${(opsPerSec / 1e6).toFixed(opsPerSec >= 1e8 ? 0 : 1)}M/s`;
  if (opsPerSec >= 1e3) return `${(opsPerSec / 1e3).toFixed(0)}k/s`;
  return `${opsPerSec.toFixed(0)}/s`;
}

export function fmtPct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%` : '-';
}

export function fmtRatio(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (x < 0.1) return `${x.toPrecision(2)}x`;
  if (x < 10) return `${x.toFixed(2)}x`;
  if (x < 100) return `${x.toFixed(1)}x`;
  return `${Math.round(x).toLocaleString('en-US')}x`;
}

export type Align = 'l' | 'r' | 'c';

/** Renders a GitHub-flavoured Markdown table with padded columns. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly (string | number)[])[], align?: readonly Align[]): string {
  const cells = rows.map((r) => headers.map((_, i) => String(r[i] ?? '')));
  const widths = headers.map((h, i) => Math.max(3, h.length, ...cells.map((r) => r[i].length)));
  const al = headers.map((_, i) => align?.[i] ?? (i === 0 ? 'l' : 'r'));
  const pad = (s: string, i: number): string => (al[i] === 'r' ? s.padStart(widths[i]) : s.padEnd(widths[i]));
  const line = (r: readonly string[]): string => `| ${r.map(pad).join(' | ')} |`;
  const rule = `| ${widths
    .map((w, i) => {
      const a = al[i];
      if (a === 'r') return '-'.repeat(w - 1) + ':';
      if (a === 'c') return ':' + '-'.repeat(w - 2) + ':';
      return '-'.repeat(w);
    })
    .join(' | ')} |`;
  return [line(headers), rule, ...cells.map(line)].join('\n');
}
