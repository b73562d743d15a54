/**
 * Misuse of the allocator: the exact texts of the errors that pointer and
 * size checks raise (release mode and debug mode alike), and the error
 * class of debug mode with its stable codes.
 */
import type { LeakReport } from './types.js';

/** The exact texts of the errors of debug mode (and of release mode's pointer checks). */
export const MISUSE = {
  doubleFree: 'double free',
  unalignedFree: 'invalid unaligned free',
  notObjectStart: 'not the start of an object',
  notAllocated: 'not allocated',
  wrongAllocator: 'wrong allocator',
  outsideHeap: 'outside the heap',
  notInteger: 'pointer must be an integer byte offset',
  badSize: 'alloc size must be',
  writeAfterFree: 'write after free detected',
  canary: 'canary corrupted',
  stale: 'stale handle',
  detached: 'is detached in this agent',
  largeDeferred: 'large allocations cannot be freed deferred',
} as const;

export type MisuseCode =
  | 'double-free'
  | 'unaligned'
  | 'not-allocated'
  | 'wrong-allocator'
  | 'out-of-range'
  | 'write-after-free'
  | 'canary'
  | 'stale'
  | 'detached'
  | 'bad-size'
  | 'large-deferred';

/** A misuse found by a DebugAllocator. A RangeError, like release mode's pointer errors. */
export class AllocatorMisuseError extends RangeError {
  readonly code: MisuseCode;
  /** The pointer the error is about (as the user holds it), NaN when none. */
  readonly pointer: number;
  /** destroy() only: its leak report (destroy completed before throwing). */
  leakReport?: LeakReport;
  constructor(message: string, code: MisuseCode, pointer: number) {
    super(message);
    this.name = 'AllocatorMisuseError';
    this.code = code;
    this.pointer = pointer;
  }
}
