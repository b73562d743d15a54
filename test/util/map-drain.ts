/**
 * Draining an agent's deferred frees before it detaches.
 *
 * Allocator.detach() tries a bounded number of times to run this agent's
 * pending deferred frees and drops what is left (those elements stay
 * retired for good; see the map tests' notes). A worker whose test checks
 * that every element came back therefore drains first: it runs
 * map.collect() until nothing waits, sleeping a millisecond between tries
 * so that a reader the OS descheduled inside its read-side section gets to
 * leave it. Bounded in time.
 */
import type { HashMap } from '../../src/index.js';

const nap = new Int32Array(new SharedArrayBuffer(4));

/** Runs deferred frees until none wait or timeoutMs passes; returns how many still wait. */
export function drainDeferred(map: HashMap, timeoutMs = 5_000): number {
  const deadline = performance.now() + timeoutMs;
  let left = map.collect();
  while (left > 0 && performance.now() < deadline) {
    Atomics.wait(nap, 0, 0, 1);
    left = map.collect();
  }
  return left;
}
