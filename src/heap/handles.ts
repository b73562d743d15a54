/**
 * Checking handles before anything is written: a heap handle's every field,
 * an allocator's (or a map's) heap identity and generation. A handle of
 * another heap, of a destroyed object, or a forged one is refused with a
 * clear error and attaches nothing.
 */
import { ALLOC_LIVE, HEADER_BYTES } from '../shm/layout.js';
import { checkInt, describe, rangeError, typeError } from '../errors.js';
import type { HeapCore, HeapHandle } from './core.js';

// `threads`: the thread table of anyalloc/node's releaseExitedWorkers handle, which Heap.attach accepts too.
const HEAP_HANDLE_KEYS = new Set(['kind', 'buffer', 'memory', 'base', 'states', 'slot', 'gen', 'threads']);
const ALLOCATOR_HANDLE_KEYS = new Set(['kind', 'id', 'gen', 'heap']);

function isUint32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/** @internal Throws a TypeError (code 'bad-handle') if `handle` has a key not in `keys`. */
export function checkHandleKeys(handle: object, keys: ReadonlySet<string>, what: string): void {
  for (const key of Object.keys(handle)) {
    if (!keys.has(key)) {
      throw typeError('bad-handle', `${what}: unknown field ${JSON.stringify(key)}; a handle has ${[...keys].join(', ')}`);
    }
  }
}

/**
 * @internal
 * Checks every field of a heap handle before anything reads the buffer or
 * takes a slot: the kind; exactly one of `buffer` (a SharedArrayBuffer)
 * and `memory` (a shared memory's shape); `base` a non-negative multiple
 * of 8 with a header's room inside the buffer; `states` a
 * SharedArrayBuffer (its size is checked against the header's, by the
 * heap's constructor); `slot` and `gen` together,
 * integers, or neither; `threads` (anyalloc/node's thread table) a
 * SharedArrayBuffer when present; no other field. TypeError or
 * RangeError, code 'bad-handle'.
 */
export function checkHeapHandle(handle: HeapHandle): void {
  if (handle === null || typeof handle !== 'object' || (handle as { kind?: unknown }).kind !== 'anyalloc.heap') {
    throw typeError('bad-handle', `attach needs a heap handle (heap.handle), got ${describe(handle)}`);
  }
  const what = 'Heap.attach: bad heap handle';
  checkHandleKeys(handle, HEAP_HANDLE_KEYS, what);
  const { buffer, memory, base, states, slot, gen, threads } = handle as {
    buffer?: unknown;
    memory?: unknown;
    base?: unknown;
    states?: unknown;
    slot?: unknown;
    gen?: unknown;
    threads?: unknown;
  };
  if (threads !== undefined && !(threads instanceof SharedArrayBuffer)) {
    throw typeError('bad-handle', `${what}: threads (a thread table) must be a SharedArrayBuffer, got ${describe(threads)}`);
  }
  if ((buffer === undefined) === (memory === undefined)) {
    throw typeError('bad-handle', `${what}: it must have exactly one of buffer and memory, got ${buffer === undefined ? 'neither' : 'both'}`);
  }
  let sab: SharedArrayBuffer;
  if (buffer !== undefined) {
    if (!(buffer instanceof SharedArrayBuffer)) throw typeError('bad-handle', `${what}: buffer must be a SharedArrayBuffer, got ${describe(buffer)}`);
    sab = buffer;
  } else {
    const m = memory as { buffer?: unknown; grow?: unknown } | null;
    if (m === null || typeof m !== 'object' || !(m.buffer instanceof SharedArrayBuffer) || typeof m.grow !== 'function') {
      throw typeError('bad-handle', `${what}: memory must be a shared WebAssembly.Memory (a SharedArrayBuffer buffer and grow()), got ${describe(memory)}`);
    }
    sab = m.buffer;
  }
  if (!(states instanceof SharedArrayBuffer)) {
    throw typeError('bad-handle', `${what}: states (the heap's state buffer) must be a SharedArrayBuffer, got ${describe(states)}`);
  }
  const limit = sab.byteLength - HEADER_BYTES;
  if (typeof base !== 'number' || !Number.isSafeInteger(base)) throw typeError('bad-handle', `${what}: base must be a safe integer, got ${describe(base)}`);
  if (base < 0 || base % 8 !== 0 || base > limit) {
    throw rangeError('bad-handle', `${what}: base must be a multiple of 8 in [0, ${Math.max(limit, 0)}] (a header inside the buffer), got ${base}`);
  }
  if ((slot === undefined) !== (gen === undefined)) {
    throw typeError('bad-handle', `${what}: slot and gen go together (reserveSlot()), got slot ${describe(slot)} and gen ${describe(gen)}`);
  }
  if (slot !== undefined) {
    if (typeof slot !== 'number' || !Number.isSafeInteger(slot) || slot < 0) throw typeError('bad-handle', `${what}: slot must be a non-negative integer, got ${describe(slot)}`);
    if (!isUint32(gen)) throw typeError('bad-handle', `${what}: gen must be an integer in [0, 2^32), got ${describe(gen)}`);
  }
}

/**
 * @internal
 * Checks an allocator handle against `heap` before anything is written:
 * its kind and fields (TypeError 'bad-handle'), its heap (RangeError
 * 'foreign-handle'), and that its id is live in its generation (RangeError
 * 'stale-handle' for a destroyed allocator, 'bad-handle' for a generation
 * this heap never handed out). Returns the id.
 */
export function checkAllocatorHandle(heap: HeapCore, handle: { kind?: unknown; id?: unknown; gen?: unknown; heap?: unknown }, op: string): number {
  if (handle === null || typeof handle !== 'object' || handle.kind !== 'anyalloc.allocator') {
    throw typeError('bad-handle', `${op} needs an allocator handle (allocator.handle), got ${describe(handle)}`);
  }
  const what = `${op}: bad allocator handle`;
  checkHandleKeys(handle, ALLOCATOR_HANDLE_KEYS, what);
  const id = checkInt('allocator id', handle.id, 1, heap.maxAllocators, 'bad-handle');
  if (isUint32(handle.heap) && handle.heap !== heap.id) checkHandleHeap(heap, handle.heap, op, `allocator ${id}`);
  const gen = handle.gen;
  const row = heap.allocatorRow(id);
  if (row.state !== ALLOC_LIVE) {
    const stale = isUint32(gen) && handle.heap === heap.id && heap.allocatorGenGone(gen);
    throw rangeError(stale ? 'stale-handle' : 'bad-handle', `allocator ${id} is not live (destroyed or never created)${stale ? `: stale handle of generation ${gen}` : ''}`);
  }
  checkHandleHeap(heap, handle.heap, op, `allocator ${id}`);
  checkGenField(gen, what);
  const now = heap.allocatorGen(id);
  if (gen !== now) {
    if (heap.allocatorGenGone(gen)) {
      throw rangeError('stale-handle', `${op}: stale handle: allocator ${id} of generation ${gen} was destroyed; id ${id} now holds a newer allocator (generation ${now})`);
    }
    throw rangeError('bad-handle', `${what}: generation ${gen} ${heap.allocatorGenIssued(gen) ? `is not allocator ${id}'s` : 'was never handed out in this heap'} (a forged handle)`);
  }
  return id;
}

/** @internal Checks a handle's `gen` field: an integer in [1, 2^32). */
export function checkGenField(gen: unknown, what: string): asserts gen is number {
  if (!isUint32(gen) || gen === 0) throw typeError('bad-handle', `${what}: gen must be an integer in [1, 2^32), got ${describe(gen)}`);
}

/**
 * @internal
 * Checks a handle's `heap` field: an integer (TypeError 'bad-handle') equal
 * to this heap's id (RangeError 'foreign-handle').
 */
export function checkHandleHeap(heap: HeapCore, id: unknown, op: string, what: string): void {
  if (!isUint32(id)) throw typeError('bad-handle', `${op}: bad handle of ${what}: heap must be an integer in [0, 2^32), got ${describe(id)}`);
  if (id !== heap.id) {
    throw rangeError('foreign-handle', `${op}: the handle of ${what} belongs to another heap (heap id ${id}, this heap is ${heap.id})`);
  }
}
