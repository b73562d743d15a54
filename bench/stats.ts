/** Small statistics and table helpers for the benchmark reports. */

export interface Summary {
  n: number;
  median: number;
  q1: number;
  q3: number;
  min: number;
  max: number;
  /** (max - min) / median: the whole range relative to the median. */
  spread: number;
}

/** Linear-interpolated quantile of already sorted values, q in [0, 1]. */
function quantileSorted(s: readonly number[], q: number): number {
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export function summarize(xs: readonly number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const median = quantileSorted(s, 0.5);
  return {
    n: s.length,
    median,
    q1: quantileSorted(s, 0.25),
    q3: quantileSorted(s, 0.75),
    min: s.length ? s[0]! : NaN,
    max: s.length ? s[s.length - 1]! : NaN,
    spread: s.length ? (s[s.length - 1]! - s[0]!) / median : NaN,
  };
}

/**
 * Ratios a[i] / b[i] of two series measured in the same cycles, as median
 * and quartiles: the ratio of each cycle first, then their distribution
 * (not a ratio of medians). Only cycles both series have count.
 */
export function cycleRatios(a: readonly number[], b: readonly number[]): Summary {
  const n = Math.min(a.length, b.length);
  return summarize(Array.from({ length: n }, (_, i) => a[i]! / b[i]!));
}

/** "median (q1-q3)" of a ratio's distribution, or "-" when there is none. */
export function fmtQuartiles(r: { median: number; q1: number; q3: number }, digits = 2): string {
  if (!Number.isFinite(r.median)) return '-';
  const m = Math.abs(r.median);
  const f = (x: number): string => (m >= 100 ? Math.round(x).toLocaleString('en-US') : m >= 10 ? x.toFixed(1) : m >= 0.1 ? x.toFixed(digits) : x.toPrecision(2));
  return `${f(r.median)} (${f(r.q1)}-${f(r.q3)})`;
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

export function fmtMiB(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(2)} MiB` : '-';
}

/** Renders a GitHub-flavoured Markdown table, the first `left` columns left-aligned, the others right. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly (string | number)[])[], left = 1): string {
  const cells = rows.map((r) => headers.map((_, i) => String(r[i] ?? '')));
  const widths = headers.map((h, i) => Math.max(3, h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: readonly string[]): string => `| ${r.map((s, i) => (i < left ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (i < left ? '-'.repeat(w) : '-'.repeat(w - 1) + ':')).join(' | ')} |`;
  return [line(headers), rule, ...cells.map(line)].join('\n');
}
