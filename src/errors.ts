/**
 * Error helpers. Bad input raises TypeError (wrong type or not an integer)
 * or RangeError (a number outside its rule, or a pointer the allocator does
 * not own); messages name the value and the rule. Running out of memory is
 * not an error: alloc returns 0.
 */

export function describe(v: unknown): string {
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (Object.is(v, -0)) return '-0';
    return String(v);
  }
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  return typeof v;
}

/** Checks that `v` is a safe integer within [min, max]; returns it. */
export function checkInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new TypeError(`${name} must be a safe integer, got ${describe(v)}`);
  }
  if (v < min || v > max) {
    throw new RangeError(`${name} must be in [${min}, ${max}], got ${v}`);
  }
  return v;
}

export function hex(p: number): string {
  return `0x${p.toString(16)}`;
}

/** A pointer that the allocator does not own or that is not live. */
export function badPointer(op: string, p: unknown, why: string): RangeError {
  const shown = typeof p === 'number' && Number.isSafeInteger(p) && p >= 0 ? `${p} (${hex(p)})` : describe(p);
  return new RangeError(`${op}(${shown}): ${why}`);
}
