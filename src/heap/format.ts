/**
 * Laying out a new heap: the options of Heap.create, where the heap's
 * tables go, and the one-time writes that make a buffer a heap. The
 * layout itself (header fields, slot rows, allocator entries, page tags)
 * is described in ../shm/layout.ts.
 */
import {
  HeapHeader,
  HEADER_BYTES,
  HEAP_MAGIC,
  KIND_META,
  KIND_RESERVED,
  LAYOUT_VERSION,
  MAX_ALLOCATOR_ID,
  ALLOC_ROW_WORDS,
  SLOT_ROW_WORDS,
  pageTag,
} from '../shm/layout.js';
import { store } from '../shm/atomic.js';
import { checkInt, checkOptions, rangeError, typeError } from '../errors.js';
import { stampStates, stateBytesFor } from './states.js';

/** Options of Heap.create. */
export interface HeapOptions {
  /**
   * Bytes the buffer may grow to. Default 1 GiB; at most 4 GiB; rounded up
   * to a multiple of pageSize. Pointers above 2 GiB are not small integers
   * in V8, so hot paths may box them: keep heaps at or below 2 GiB where
   * that matters.
   */
  maxBytes?: number;
  /** Bytes to commit at creation. Default: the meta pages plus 16 pages. */
  initialBytes?: number;
  /**
   * Page size, a power of two from 4 KiB to 1 MiB. Default 4 KiB: the
   * granule of allocations above the largest size class and of the
   * memory empty slabs give back (a slab is one or more pages).
   */
  pageSize?: number;
  /** Worker slots: how many agents may be attached at once. Default 64, at most 1024. */
  maxWorkers?: number;
  /** Allocators that may exist at once in the heap. Default 64, at most 4095. */
  maxAllocators?: number;
  /**
   * Use this shared WebAssembly.Memory instead of a new SharedArrayBuffer,
   * so wasm code can read and write the objects. The heap takes over the
   * memory from `reserveBytes` on. Give `maxBytes` as the memory's
   * maximum in bytes (default 4 GiB). The heap's state buffer (one byte
   * per 16) may grow to maxBytes / 16, 256 MiB for the default: an engine
   * whose SharedArrayBuffer cannot grow takes that up front.
   */
  memory?: SharedMemory;
  /** With `memory`: bytes at the start left to the wasm module (rounded up to pageSize). Default 0. */
  reserveBytes?: number;
}

const GiB = 1024 * 1024 * 1024;
const MAX_BUFFER = 4 * GiB;
/**
 * A shared WebAssembly.Memory, as the heap uses it. Described by its shape
 * so that the library's types need no DOM or WebAssembly declarations.
 */
export interface SharedMemory {
  /** The memory's buffer: a SharedArrayBuffer for a memory created with `shared: true`. */
  readonly buffer: ArrayBufferLike;
  /** Grows the memory by `delta` 64 KiB pages; returns the old size in pages. */
  grow(delta: number): number;
}

/** Bytes in one page of a WebAssembly.Memory (its unit of growth). */
export const WASM_PAGE = 65536;

function isPow2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Where the tables go, computed from the parameters (same in every agent). */
export interface MetaLayout {
  slotTable: number;
  allocTable: number;
  pageTags: number;
  pageArgs: number;
  freeBitmap: number;
  bitmapWords: number;
  end: number;
}

export function metaLayout(base: number, maxSlots: number, maxAllocators: number, maxPages: number): MetaLayout {
  const slotTable = base + HEADER_BYTES;
  const allocTable = slotTable + maxSlots * SLOT_ROW_WORDS * 4;
  const pageTags = allocTable + (maxAllocators + 1) * ALLOC_ROW_WORDS * 4;
  const pageArgs = pageTags + maxPages * 4;
  const freeBitmap = pageArgs + maxPages * 4;
  const bitmapWords = Math.ceil(maxPages / 32);
  return { slotTable, allocTable, pageTags, pageArgs, freeBitmap, bitmapWords, end: freeBitmap + bitmapWords * 4 };
}

/**
 * A growable SharedArrayBuffer of `initial` bytes that may grow to `max`.
 * An engine without growable shared buffers ignores maxByteLength and
 * returns a fixed buffer of `initial` bytes: the heap then takes all of
 * `max` up front (a heap that silently stopped at `initial` would look
 * full long before maxBytes), or says why it cannot.
 */
export function newBuffer(initial: number, max: number, what = 'maxBytes'): SharedArrayBuffer {
  let sab: SharedArrayBuffer;
  try {
    sab = new SharedArrayBuffer(initial, { maxByteLength: max });
  } catch (e) {
    throw rangeError('no-memory', `cannot make a SharedArrayBuffer of ${initial} bytes growable to ${max} (${what}): ${(e as Error).message}`);
  }
  if ((sab as { growable?: boolean }).growable === true || initial === max) return sab;
  try {
    return new SharedArrayBuffer(max);
  } catch (e) {
    throw rangeError(
      'no-memory',
      `this engine's SharedArrayBuffer cannot grow, and ${max} bytes (${what}) cannot be taken up front: ` +
        `give a smaller maxBytes (${(e as Error).message})`,
    );
  }
}

/** The option names of Heap.create and their types (checkOptions). */
const HEAP_OPTIONS = {
  maxBytes: 'integer',
  initialBytes: 'integer',
  pageSize: 'integer',
  maxWorkers: 'integer',
  maxAllocators: 'integer',
  memory: 'object',
  reserveBytes: 'integer',
} as const;

/**
 * A heap's identity: a random nonzero 32-bit number. From
 * crypto.getRandomValues where the scope has it (some worklet scopes do
 * not), else Math.random mixed with the clock; it only has to differ
 * between the heaps one program sees.
 */
function newHeapId(): number {
  const c = (globalThis as { crypto?: { getRandomValues?(a: Uint32Array): Uint32Array } }).crypto;
  let id = 0;
  if (c !== undefined && typeof c.getRandomValues === 'function') {
    try {
      id = c.getRandomValues(new Uint32Array(1))[0]!;
    } catch {
      id = 0;
    }
  }
  id = (id ^ (Math.random() * 2 ** 32) ^ Math.imul(Date.now() >>> 0, 0x9e3779b1)) >>> 0;
  return id === 0 ? 1 : id;
}

/** The memory a new heap lives in: a SharedArrayBuffer, or a shared wasm memory from `base` on. */
export interface HeapMemory {
  sab: SharedArrayBuffer | undefined;
  memory: SharedMemory | undefined;
  base: number;
  /** The state buffer: one byte per 16 bytes of the buffer (../shm/layout.ts). */
  states: SharedArrayBuffer;
}


/**
 * Checks the options, makes (or grows) the buffer and writes an empty
 * heap into it: header, zeroed tables, meta pages tagged, the committed
 * data pages free. The magic word is stored last: an agent that sees it
 * sees everything else.
 */
export function formatHeap(given: HeapOptions | undefined): HeapMemory {
  const options = checkOptions<HeapOptions>('Heap.create', given, HEAP_OPTIONS);
  if (typeof SharedArrayBuffer !== 'function') {
    throw typeError(
      'unsupported',
      'SharedArrayBuffer is not available in this scope. In a browser the page must be cross-origin isolated: ' +
        'serve it with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp ' +
        '(see docs/browsers.md)',
    );
  }
  const pageSize = options.pageSize === undefined ? 4096 : checkInt('pageSize', options.pageSize, 4096, 1 << 20, 'bad-option');
  if (!isPow2(pageSize)) throw rangeError('bad-option', `pageSize must be a power of two, got ${pageSize}`);
  const maxSlots = options.maxWorkers === undefined ? 64 : checkInt('maxWorkers', options.maxWorkers, 1, 1024, 'bad-option');
  const maxAllocators =
    options.maxAllocators === undefined ? 64 : checkInt('maxAllocators', options.maxAllocators, 1, MAX_ALLOCATOR_ID, 'bad-option');
  const memory = options.memory;
  let maxBytes: number;
  let base = 0;
  if (memory !== undefined) {
    const wasm = (globalThis as { WebAssembly?: { Memory: abstract new (...args: never[]) => unknown } }).WebAssembly;
    if (wasm === undefined || !(memory instanceof wasm.Memory) || !(memory.buffer instanceof SharedArrayBuffer)) {
      throw typeError('bad-option', 'memory must be a shared WebAssembly.Memory (created with shared: true)');
    }
    const reserve = options.reserveBytes === undefined ? 0 : checkInt('reserveBytes', options.reserveBytes, 0, MAX_BUFFER, 'bad-option');
    base = roundUp(reserve, pageSize);
    // WebAssembly.Memory does not expose its maximum: the creator states
    // it (the `maximum` it gave, in bytes); growth past the real maximum
    // just fails cleanly (alloc returns 0).
    maxBytes = options.maxBytes === undefined ? MAX_BUFFER : checkInt('maxBytes', options.maxBytes, 1, MAX_BUFFER, 'bad-option');
  } else {
    if (options.reserveBytes !== undefined) throw typeError('bad-option', 'reserveBytes needs memory');
    maxBytes = options.maxBytes === undefined ? GiB : checkInt('maxBytes', options.maxBytes, 1, MAX_BUFFER, 'bad-option');
  }
  maxBytes = Math.min(Math.floor(maxBytes / pageSize) * pageSize, MAX_BUFFER);
  const maxPages = maxBytes / pageSize;
  const m = metaLayout(base, maxSlots, maxAllocators, maxPages);
  const metaEnd = roundUp(m.end, pageSize);
  const firstDataPage = metaEnd / pageSize;
  if (firstDataPage + 1 > maxPages) {
    throw rangeError('bad-option', `maxBytes ${maxBytes} leaves no room for data pages (the tables need ${metaEnd} bytes)`);
  }
  let initial = options.initialBytes === undefined ? metaEnd + 16 * pageSize : checkInt('initialBytes', options.initialBytes, 0, maxBytes, 'bad-option');
  initial = Math.min(maxBytes, Math.max(metaEnd, roundUp(initial, pageSize)));

  let sab: SharedArrayBuffer | undefined;
  if (memory !== undefined) {
    const have = memory.buffer.byteLength;
    if (have < initial) {
      try {
        memory.grow(Math.ceil((initial - have) / WASM_PAGE));
      } catch (e) {
        throw rangeError('no-memory', `memory cannot grow from ${have} to ${initial} bytes (initialBytes): ${(e as Error).message}`);
      }
    }
  } else {
    sab = newBuffer(initial, maxBytes);
  }
  const buf = memory !== undefined ? (memory.buffer as unknown as SharedArrayBuffer) : sab!;
  // The state bytes of the committed pages, growable to those of maxBytes.
  const states = newBuffer(stateBytesFor(Math.min(buf.byteLength, maxBytes)), stateBytesFor(maxBytes), 'maxBytes / 16, the state buffer');
  const u32 = new Uint32Array(buf, 0, buf.byteLength >>> 2);
  const hdr = base >>> 2;
  // Zero the meta area (a wasm memory may hold anything there).
  new Uint8Array(buf, base, metaEnd - base).fill(0);
  u32[hdr + HeapHeader.PAGE_SHIFT] = Math.log2(pageSize);
  u32[hdr + HeapHeader.MAX_PAGES] = maxPages;
  const committed = Math.floor(buf.byteLength / pageSize);
  u32[hdr + HeapHeader.COMMITTED_PAGES] = Math.min(committed, maxPages);
  u32[hdr + HeapHeader.FIRST_DATA_PAGE] = firstDataPage;
  u32[hdr + HeapHeader.MAX_SLOTS] = maxSlots;
  u32[hdr + HeapHeader.MAX_ALLOCATORS] = maxAllocators;
  u32[hdr + HeapHeader.SLOT_TABLE] = m.slotTable;
  u32[hdr + HeapHeader.ALLOC_TABLE] = m.allocTable;
  u32[hdr + HeapHeader.PAGE_TAGS] = m.pageTags;
  u32[hdr + HeapHeader.PAGE_ARGS] = m.pageArgs;
  u32[hdr + HeapHeader.FREE_BITMAP] = m.freeBitmap;
  u32[hdr + HeapHeader.BASE] = base;
  const tags = m.pageTags >>> 2;
  const reservedPages = base / pageSize;
  for (let p = 0; p < firstDataPage; p++) u32[tags + p] = pageTag(p < reservedPages ? KIND_RESERVED : KIND_META, 0, 0);
  // Pages already committed beyond the meta pages start out free.
  const bitmap = m.freeBitmap >>> 2;
  for (let p = firstDataPage; p < u32[hdr + HeapHeader.COMMITTED_PAGES]!; p++) {
    u32[bitmap + (p >>> 5)] = (u32[bitmap + (p >>> 5)]! | (1 << (p & 31))) >>> 0;
  }
  u32[hdr + HeapHeader.EPOCH] = 1;
  u32[hdr + HeapHeader.HEAP_ID] = newHeapId();
  // The heap's identity in the state bytes of its header (no object lies
  // there), so an attach finds out whether a handle's states are its own.
  stampStates(states, base, u32[hdr + HeapHeader.HEAP_ID]!);
  u32[hdr + HeapHeader.VERSION] = LAYOUT_VERSION;
  // Publish: an agent that sees the magic sees everything above.
  store(u32, hdr + HeapHeader.MAGIC, HEAP_MAGIC);
  return { sab, memory, base, states };
}
