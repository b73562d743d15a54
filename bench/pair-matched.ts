/**
 * Matched windows for the single-threaded alloc+free pair: several variants
 * in one process take turns, one window each per cycle (the order reverses
 * every cycle), and every ratio is the median of the per-cycle ratios.
 *
 *   node dist/bench/pair-matched.js <size> <cycles> <window-ms> <variant,variant,...>
 *
 * Prints one JSON object (MatchedPairs) on stdout.
 *
 * Why: this machine class changes speed for seconds at a time, so two
 * variants measured in separate processes a few seconds apart can differ
 * by 2x for reasons that are not theirs (bench/pair.ts reports each alone).
 * Both sides of a matched ratio ran within a few tens of milliseconds of
 * each other. Each variant's loop is its own function literal (its peer
 * module's run), and, as in pair.ts, a first instance of every variant is
 * exercised and dropped before the measured one is made, so no loop is
 * compiled for one closure only.
 */
import { loadPairFactory } from './peers/index.js';
import { Unavailable, type PairVariant } from './peers/types.js';
import { isEntry } from './paths.js';

export interface MatchedPairs {
  size: number;
  /** Variants measured, in the order given (those unavailable left out). */
  variants: string[];
  /** ns per pair: ns[v][cycle]. */
  ns: number[][];
  /** Variant name -> why it could not run. */
  unavailable: Record<string, string>;
  checksum: number;
}

export async function measureMatchedPairs(names: readonly string[], size: number, cycles: number, windowMs: number): Promise<MatchedPairs> {
  if (!(cycles >= 1) || !(windowMs > 0)) throw new RangeError(`cycles must be >= 1 and windowMs > 0, got ${cycles} and ${windowMs}`);
  const variants: string[] = [];
  const live: PairVariant[] = [];
  const unavailable: Record<string, string> = {};
  let checksum = 0;
  for (const name of names) {
    let factory;
    try {
      factory = await loadPairFactory(name);
    } catch (e) {
      if (e instanceof Unavailable) {
        unavailable[name] = e.message;
        continue;
      }
      throw e;
    }
    const extra = factory();
    extra.prepare(size);
    checksum ^= extra.run(size, 256);
    extra.dispose?.();
    const v = factory();
    v.prepare(size);
    variants.push(name);
    live.push(v);
  }
  // Warm up every variant and size its window: iterations for ~windowMs.
  const iters = live.map((v) => {
    let n = 256;
    for (;;) {
      const t0 = performance.now();
      checksum ^= v.run(size, n);
      const dt = performance.now() - t0;
      if (dt >= windowMs / 2) return Math.max(1, Math.round((n * windowMs) / dt));
      n *= 2;
    }
  });
  const ns = live.map(() => [] as number[]);
  for (let c = 0; c < cycles; c++) {
    for (let k = 0; k < live.length; k++) {
      const j = c % 2 === 0 ? k : live.length - 1 - k;
      const t0 = performance.now();
      checksum ^= live[j]!.run(size, iters[j]!);
      ns[j]!.push(((performance.now() - t0) * 1e6) / iters[j]!);
    }
  }
  for (const v of live) v.dispose?.();
  return { size, variants, ns, unavailable, checksum };
}

if (isEntry(import.meta.url)) {
  const [sizeS, cyclesS, windowS, list] = process.argv.slice(2);
  if (!sizeS || !cyclesS || !windowS || !list) throw new Error('usage: pair-matched.js <size> <cycles> <window-ms> <variant,variant,...>');
  const r = await measureMatchedPairs(list.split(','), Number(sizeS), Number(cyclesS), Number(windowS));
  process.stdout.write(JSON.stringify(r) + '\n');
}
