/**
 * Errors. Every error the library throws carries a stable `code`
 * (ERROR_CODES; docs/errors.md says when each is thrown). Bad input raises
 * TypeError (wrong type, not an integer, not a handle, an unknown option)
 * or RangeError (a number outside its rule, a pointer the allocator does
 * not own, a handle of another heap or of a destroyed object, no free slot
 * or id); messages name the value and the rule. Running out of memory is
 * not an error: alloc returns 0, and map writes return a MapStatus.
 */

/**
 * The codes of allocator misuse, one per kind: those debug mode's
 * AllocatorMisuseError uses (./alloc/misuse.ts); release mode's errors
 * carry the same ones for the same misuse.
 */
export const MISUSE_CODES = [
  'double-free',
  'unaligned',
  'not-allocated',
  'wrong-allocator',
  'out-of-range',
  'write-after-free',
  'canary',
  'stale',
  'detached',
  'bad-size',
  'large-deferred',
] as const;

/** The stable code of an AllocatorMisuseError, one per kind of misuse. */
export type MisuseCode = (typeof MISUSE_CODES)[number];

/**
 * Every code an error of the library may carry (docs/errors.md says when
 * each is thrown): the misuse codes that debug mode's AllocatorMisuseError
 * uses, then the others. One style: lowercase words joined by hyphens.
 */
export const ERROR_CODES = [
  ...MISUSE_CODES,
  'bad-option',
  'bad-argument',
  'bad-handle',
  'foreign-handle',
  'stale-handle',
  'bad-version',
  'no-slot',
  'no-allocator-id',
  'heap-full',
  'no-memory',
  'already-attached',
  'still-attached',
  'wrong-mode',
  'busy',
  'unsupported',
  'inconsistent',
] as const;

/** The stable code of every error the library throws: match on it, not on the message. */
export type ErrorCode = MisuseCode | (typeof ERROR_CODES)[number];

/** An error of this library: a TypeError, RangeError or Error with its code. */
export interface CodedError extends Error {
  /** What went wrong (stable: match on this, not on the message). */
  readonly code: ErrorCode;
}

/** Sets `code` on `e` and returns it. */
export function withCode<E extends Error>(e: E, code: ErrorCode): E & { readonly code: ErrorCode } {
  (e as { code?: ErrorCode }).code = code;
  return e as E & { readonly code: ErrorCode };
}

/** A TypeError with a code. */
export function typeError(code: ErrorCode, message: string): TypeError & { readonly code: ErrorCode } {
  return withCode(new TypeError(message), code);
}

/** A RangeError with a code. */
export function rangeError(code: ErrorCode, message: string): RangeError & { readonly code: ErrorCode } {
  return withCode(new RangeError(message), code);
}

export function describe(v: unknown): string {
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (Object.is(v, -0)) return '-0';
    return String(v);
  }
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'boolean') return String(v);
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  return typeof v;
}

/**
 * Checks that `v` is a safe integer within [min, max]; returns it. A
 * TypeError (code 'bad-argument') or RangeError ('out-of-range'), or both
 * with `code` when given (options pass 'bad-option', handles 'bad-handle').
 */
export function checkInt(name: string, v: unknown, min: number, max: number, code?: ErrorCode): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw typeError(code ?? 'bad-argument', `${name} must be a safe integer, got ${describe(v)}`);
  }
  if (v < min || v > max) {
    throw rangeError(code ?? 'out-of-range', `${name} must be in [${min}, ${max}], got ${v}`);
  }
  return v;
}

export function hex(p: number): string {
  return `0x${p.toString(16)}`;
}

/**
 * The misuse code of a release-mode pointer error, from the text it starts
 * with (the MISUSE texts; ./alloc/misuse.ts).
 */
function pointerCode(why: string): MisuseCode {
  if (why.startsWith('double free')) return 'double-free';
  if (why.startsWith('invalid unaligned')) return 'unaligned';
  if (why.startsWith('wrong allocator') || why.startsWith('not an object of allocator')) return 'wrong-allocator';
  if (why.startsWith('outside the heap') || why.startsWith('not a pointer into this heap')) return 'out-of-range';
  if (why.startsWith('large allocations cannot be freed deferred')) return 'large-deferred';
  return 'not-allocated';
}

/**
 * A pointer that the allocator does not own or that is not live. Its code
 * is the misuse code of `why` (a MISUSE text), or `code` when given.
 */
export function badPointer(op: string, p: unknown, why: string, code?: MisuseCode): RangeError & { readonly code: ErrorCode } {
  const shown = typeof p === 'number' && Number.isSafeInteger(p) && p >= 0 ? `${p} (${hex(p)})` : describe(p);
  return rangeError(code ?? pointerCode(why), `${op}(${shown}): ${why}`);
}

/** The types checkOptions checks an option against ('integer': a safe integer). */
export type OptionType = 'integer' | 'boolean' | 'string' | 'object';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function describeObject(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v !== null && typeof v === 'object') return `an instance of ${(v as object).constructor?.name ?? 'a class'}`;
  if (typeof v === 'function') return 'a function';
  return describe(v);
}

/** Edit distance of two short strings (case-insensitive), capped: enough to suggest a near miss. */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The known name `key` probably meant (a different case, or two edits away), if any. */
export function nearMiss(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : distance(key, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  const allowed = key.length >= 8 ? 3 : key.length >= 5 ? 2 : 1;
  return bestD <= allowed ? best : undefined;
}

/**
 * Checks the options object of `where` (a call such as 'Heap.create')
 * before anything is written: undefined (when `required` is false) or a
 * plain object; every key one of `spec`; each value present of its
 * type ('integer': a safe integer). A value undefined counts as absent.
 * Throws a TypeError with code 'bad-option' naming the option (and, for
 * an unknown key, the option it probably meant); returns the options, {}
 * for undefined. Ranges are the caller's: checkInt(..., 'bad-option').
 */
export function checkOptions<T extends object>(
  where: string,
  options: T | undefined,
  spec: Readonly<Record<string, OptionType>>,
  required = false,
): T {
  if (options === undefined && !required) return {} as T;
  if (!isPlainObject(options)) {
    const rule = required ? 'options must be an object' : 'options must be a plain object or undefined';
    throw typeError('bad-option', `${where}: ${rule}, got ${describeObject(options)}`);
  }
  const known = Object.keys(spec);
  for (const key of Object.keys(options)) {
    const type = spec[key];
    if (type === undefined) {
      const hint = nearMiss(key, known);
      throw typeError(
        'bad-option',
        `${where}: unknown option ${JSON.stringify(key)}${hint === undefined ? '' : ` (did you mean ${hint}?)`}; the options are ${known.join(', ')}`,
      );
    }
    const v = options[key];
    if (v === undefined) continue;
    let ok: boolean;
    let rule: string;
    switch (type) {
      case 'integer':
        ok = typeof v === 'number' && Number.isSafeInteger(v);
        rule = 'a safe integer';
        break;
      case 'boolean':
        ok = typeof v === 'boolean';
        rule = 'a boolean';
        break;
      case 'string':
        ok = typeof v === 'string';
        rule = 'a string';
        break;
      default:
        ok = v !== null && typeof v === 'object';
        rule = 'an object';
    }
    if (!ok) throw typeError('bad-option', `${key} must be ${rule}, got ${describe(v)}`);
  }
  return options as T;
}
