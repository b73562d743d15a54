/**
 * Helpers shared by the hash map tests: byte keys from numbers, the quiet
 * map checks (map.validate() and heap.validate() with their findings in the
 * message), and a worker group that must succeed.
 */
import assert from 'node:assert/strict';
import type { HashMap, Heap } from '../../src/index.js';
import { assertHeapValid } from './checks.js';
import { runWorkerGroup, type WorkerSpec } from './workers.js';

/** A key (or value) of `size` bytes whose first word is n, little-endian; the rest zero. */
export function u32Bytes(n: number, size = 8): Uint8Array {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

/** Word `index` (little-endian uint32) of a byte array. */
export function wordOf(b: Uint8Array, index = 0): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4 * index, true);
}

/** The map is quiet: map.validate() and heap.validate() find nothing. */
export function assertMapValid(map: HashMap, heap: Heap, note: string): void {
  const problems = map.validate();
  if (problems.length > 0) assert.fail(`${note}: map.validate() found ${problems.length} problem(s):\n  ${problems.slice(0, 12).join('\n  ')}`);
  assertHeapValid(heap, note);
}

/** Elements the map's allocator counts as live (out of every cache and depot, retired ones included). */
export function liveElements(map: HashMap): number {
  return map.elementStats().classes.reduce((n, c) => n + c.live, 0);
}

/** Runs workers to completion; any failure fails the test with every worker's story and the note. */
export async function runWorkers<R>(specs: readonly WorkerSpec[], timeoutMs: number, note: string): Promise<R[]> {
  const out = await runWorkerGroup<R>(specs, { timeoutMs });
  if (out.failures.length > 0) assert.fail(`${note}: ${out.failures.length} worker(s) failed:\n  ${out.failures.join('\n  ')}`);
  return out.results as R[];
}
