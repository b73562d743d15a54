/**
 * Misuse of the allocator: the exact texts of the errors that pointer and
 * size checks raise (release mode and debug mode alike), and the error
 * class of debug mode with its stable codes.
 */
import type { LeakReport } from './types.js';
import type { MisuseCode } from '../errors.js';

/** The exact texts of the errors of debug mode (and of release mode's pointer checks). */
export const MISUSE = {
  /** free of an object that is free already (or waiting for its grace period). */
  doubleFree: 'double free',
  /** free of a pointer that is not on a 16-byte boundary. */
  unalignedFree: 'invalid unaligned free',
  /** A pointer inside an object (or inside a large run), not at its start. */
  notObjectStart: 'not the start of an object',
  /** A pointer into a page that holds no live object. */
  notAllocated: 'not allocated',
  /** A pointer to another allocator's object. */
  wrongAllocator: 'wrong allocator',
  /** A pointer beyond the heap's pages. */
  outsideHeap: 'outside the heap',
  /** A pointer that is not a whole number (TypeError). */
  notInteger: 'pointer must be an integer byte offset',
  /** An alloc size outside the allocator's range, or not a whole number. */
  badSize: 'alloc size must be',
  /** Debug mode: a freed object's poison was overwritten. */
  writeAfterFree: 'write after free detected',
  /** Debug mode: the bytes after an object, or the header before it, were overwritten. */
  canary: 'canary corrupted',
  /** This agent's slot was released (releaseSlot) while it still ran. */
  stale: 'stale handle',
  /** A call on an allocator this agent detached. */
  detached: 'is detached in this agent',
  /** freeDeferred of a large run. */
  largeDeferred: 'large allocations cannot be freed deferred',
} as const;

/**
 * The codes of allocator misuse (MISUSE_CODES, MisuseCode) live with every
 * other code in ../errors.ts; debug mode's AllocatorMisuseError uses them,
 * and release mode's errors carry the same ones for the same misuse.
 */
export { MISUSE_CODES, type MisuseCode } from '../errors.js';

/**
 * A misuse found by a DebugAllocator. A RangeError, like release mode's
 * pointer errors, which carry the same `code` (release mode throws plain
 * RangeErrors and TypeErrors with it).
 */
export class AllocatorMisuseError extends RangeError {
  /** What kind of misuse (stable: match on this, not on the message). */
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
