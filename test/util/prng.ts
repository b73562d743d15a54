/**
 * A small seeded PRNG for the concurrent tests (mulberry32: 32 bits of
 * state, one multiply-xorshift round per draw). Plain code, no Node APIs,
 * so the same module runs in the main thread and in workers.
 *
 * Seeds: a run takes its seed from the environment variable ANYALLOC_SEED
 * (decimal, or hex with 0x) or draws a random one; tests print it in every
 * failure message so a failing run can be replayed with
 *   ANYALLOC_SEED=<seed> node --test dist/test/concurrent/stress.test.js
 * Each worker derives its own stream with deriveSeed(seed, round, worker),
 * so a worker's sequence of decisions depends only on the seed and on who
 * it is. (What it receives from other workers still depends on timing.)
 */

export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next 32-bit unsigned value. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n), n >= 1 (n up to 2^32). */
  below(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** An integer in [lo, hi] (both inclusive). */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p * 0x1_0000_0000;
  }
}

/** Mixes a seed with further numbers (round, worker id) into a new seed. */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const part of parts) {
    h = Math.imul(h ^ (part >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  // 0 is a valid mulberry32 state, but keep seeds nonzero so they read well.
  return h >>> 0 || 1;
}

/**
 * The seed of this run: ANYALLOC_SEED if set (decimal or 0x-hex), else a
 * random 32-bit value. Throws on a malformed ANYALLOC_SEED rather than
 * silently running with another seed.
 */
export function testSeed(env: Record<string, string | undefined> = process.env): number {
  const text = env['ANYALLOC_SEED'];
  if (text === undefined || text === '') return (Math.floor(Math.random() * 0xffff_ffff) >>> 0) || 1;
  const value = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text.slice(2), 16) : /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new RangeError(`ANYALLOC_SEED must be a 32-bit unsigned integer (decimal or 0x-hex), got ${JSON.stringify(text)}`);
  }
  return value;
}

/** The line to put in failure messages. */
export function seedNote(seed: number): string {
  return `seed ${seed} (replay with ANYALLOC_SEED=${seed})`;
}
