/**
 * The one module that calls Atomics. Every shared-memory access that needs
 * ordering or atomicity goes through these helpers, so the set of atomic
 * operations the allocator relies on is visible in one place (and can be
 * replaced by an instrumented version to explore interleavings).
 *
 * All helpers take a Uint32Array view and a word index; values are uint32.
 * None of them waits: anyalloc never calls Atomics.wait.
 */

export function load(u32: Uint32Array, i: number): number {
  return Atomics.load(u32, i);
}

export function store(u32: Uint32Array, i: number, v: number): void {
  Atomics.store(u32, i, v);
}

/** Returns the value found; the swap happened when it equals `expected`. */
export function cas(u32: Uint32Array, i: number, expected: number, replacement: number): number {
  return Atomics.compareExchange(u32, i, expected, replacement);
}

/** Adds `v` (may be negative) and returns the previous value. */
export function add(u32: Uint32Array, i: number, v: number): number {
  return Atomics.add(u32, i, v);
}

export function or(u32: Uint32Array, i: number, bits: number): number {
  return Atomics.or(u32, i, bits);
}

/** Raises word i to at least v (a racy-free running maximum). */
export function maxTo(u32: Uint32Array, i: number, v: number): void {
  let cur = Atomics.load(u32, i);
  while (cur < v) {
    const seen = Atomics.compareExchange(u32, i, cur, v);
    if (seen === cur) return;
    cur = seen;
  }
}
