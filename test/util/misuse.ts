/**
 * Set-up and checks shared by the misuse tests (test/unit/misuse.test.ts,
 * one agent; test/concurrent/misuse.test.ts, across workers): an
 * allocator of each mode and kind on a fresh heap, the exact-error check,
 * and the consistency checks after a misuse.
 */
import assert from 'node:assert/strict';
import { Heap, type Allocator } from '../../src/index.js';
import { AllocatorMisuseError, DebugAllocator, type MisuseCode } from '../../src/alloc/debug.js';
import { liveObjects } from './checks.js';

export const MAX_BYTES = 16 << 20;
export const FIXED_UNIT = 48;

export type Mode = 'release' | 'debug';
export type Kind = 'bucketed' | 'fixed';
export const VARIANTS: [Mode, Kind][] = [
  ['release', 'bucketed'],
  ['release', 'fixed'],
  ['debug', 'bucketed'],
  ['debug', 'fixed'],
];

export interface Setup {
  heap: Heap;
  a: Allocator;
  mode: Mode;
  kind: Kind;
  /** What alloc takes in this variant (undefined: fixed size). */
  size: number | undefined;
  /** Unit of the objects alloc(size) returns, as the release allocator sees them. */
  unit: number;
  /** Bytes from the raw object start to the pointer alloc returns (16 for bucketed debug objects). */
  head: number;
}

export function setup(mode: Mode, kind: Kind, extra: object = {}): Setup {
  const heap = Heap.create({ maxBytes: MAX_BYTES });
  const a = heap.createAllocator({ debug: mode === 'debug', ...(kind === 'fixed' ? { unitSize: FIXED_UNIT } : {}), ...extra });
  const size = kind === 'fixed' ? undefined : 64;
  const unit = kind === 'fixed' ? FIXED_UNIT : a.unitFor(64);
  return { heap, a, mode, kind, size, unit, head: mode === 'debug' && kind === 'bucketed' ? 16 : 0 };
}

export function quarantinedIn(a: Allocator): number {
  return a instanceof DebugAllocator ? a.quarantined : 0;
}

/**
 * `f` must throw an error of class `cls` whose message contains `text`;
 * in debug mode RangeErrors must be AllocatorMisuseErrors with `code`.
 */
export function expectError(f: () => unknown, cls: typeof TypeError | typeof RangeError, text: string, code?: MisuseCode, debug = false): Error {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected a ${cls.name} with "${text}", nothing was thrown`);
  const err = caught as Error;
  assert.ok(err instanceof cls, `expected a ${cls.name}, got ${err.name}: ${err.message}`);
  assert.ok(err.message.includes(text), `message "${err.message}" lacks "${text}"`);
  if (debug && cls === RangeError) {
    assert.ok(err instanceof AllocatorMisuseError, `debug mode: expected an AllocatorMisuseError, got ${err.name}`);
    if (code !== undefined) assert.equal((err as AllocatorMisuseError).code, code, err.message);
  }
  return err;
}

/** validate() passes (both of them in debug mode) and the live objects are exactly the ones the test holds. */
export function intact(s: Setup, held: readonly number[], note = ''): void {
  assert.deepEqual(s.heap.validate(), [], `heap.validate() ${note}`);
  if (s.a instanceof DebugAllocator) assert.deepEqual(s.a.validate(), [], `debug validate() ${note}`);
  assert.equal(liveObjects(s.a) - quarantinedIn(s.a), held.length, `live objects ${note}`);
}

/** Frees what the test holds, destroys the allocator: no leak, every page back. */
export function finish(s: Setup, held: readonly number[]): void {
  for (const p of held) s.a.free(p);
  const report = s.a.destroy();
  assert.equal(report.leakedObjects, 0, JSON.stringify(report));
  assert.deepEqual(s.heap.validate(), []);
  assert.equal(s.heap.stats().usedPages, 0);
}

export function alloc(s: Setup, size = s.size): number {
  const p = s.a.alloc(size);
  assert.notEqual(p, 0);
  s.heap.refresh();
  return p;
}
