/**
 * Helpers shared by the hash map tests: byte keys from numbers, the quiet
 * map checks (map.validate() and heap.validate() with their findings in the
 * message), a worker group that must succeed, and the grace-period tests'
 * dynamic map and retirement of elements.
 */
import assert from 'node:assert/strict';
import { HashMap, Heap, MapFlag, MapStatus } from '../../src/index.js';
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

/** The grace-period tests' map: a dynamic map with 8-byte keys on a fresh 64 MiB heap; used0 = the heap's pages before it. */
export function graceMapHeap(valueSize: number, maxEntries: number, seed: number): { heap: Heap; map: HashMap; used0: number } {
  const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 8 });
  const used0 = heap.stats().usedPages;
  const map = HashMap.create(heap, { keySize: 8, valueSize, maxEntries, mode: 'dynamic', seed });
  return { heap, map, used0 };
}

/** Retires `n` elements from this agent: insert and delete keys from `first` on. */
export function retire(map: HashMap, first: number, n: number): void {
  const v = new Uint8Array(map.valueSize);
  for (let i = 0; i < n; i++) {
    assert.equal(map.update(u32Bytes(first + i), v, MapFlag.NOEXIST), MapStatus.OK);
    assert.equal(map.delete(u32Bytes(first + i)), MapStatus.OK);
  }
}
