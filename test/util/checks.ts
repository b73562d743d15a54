/**
 * Assertions shared by the concurrent tests, with messages that carry the
 * evidence (the problems validate() found, the leak report) and the note
 * the caller passes (the test, the round, the seed).
 */
import assert from 'node:assert/strict';
import type { Allocator, Heap } from '../../src/index.js';

/** heap.validate() must find nothing; the message lists what it found. */
export function assertHeapValid(heap: Heap, note: string): void {
  const problems = heap.validate();
  if (problems.length === 0) return;
  const shown = problems.slice(0, 12).join('\n  ');
  const more = problems.length > 12 ? `\n  ... and ${problems.length - 12} more` : '';
  assert.fail(`${note}: heap.validate() found ${problems.length} problem(s):\n  ${shown}${more}`);
}

/** Objects the allocator counts as live: slab objects in no cache or depot, plus large runs. */
export function liveObjects(a: Allocator): number {
  const st = a.stats();
  return st.classes.reduce((n, c) => n + c.live, 0) + st.large.live;
}

/** destroy() must report no leaks at all. */
export function assertDestroyClean(a: Allocator, note: string): void {
  const report = a.destroy();
  const clean = { leakedObjects: 0, leakedBytes: 0, classes: [], largeRuns: 0, pagesKept: 0 };
  assert.deepEqual(report, clean, `${note}: destroy() reported leaks: ${JSON.stringify(report)}`);
}
