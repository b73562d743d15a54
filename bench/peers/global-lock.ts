/**
 * A global-lock allocator written for the benchmark (not a published
 * package). It stands for the usual way to share one heap between workers:
 * every alloc and every free takes the same lock.
 *
 * Layout of the SharedArrayBuffer, in 32-bit words:
 *   0      lock word (0 free, 1 held, 2 held and someone may be sleeping)
 *   1      bump pointer (byte offset of the next never-used block)
 *   2      end of the heap (bytes)
 *   4..14  free-list heads of the 11 size classes (byte offsets, 0 = empty)
 * Blocks start at byte 64. Each block has an 8-byte header: its class index,
 * and the next-free link while it is free. Pointers handed out are
 * header + 8. Classes: 16 32 64 96 128 192 256 512 1024 2048 4096 bytes.
 *
 * The lock spins briefly, then sleeps with Atomics.wait (the three-state
 * futex mutex). Freed blocks go back to their class list; nothing is ever
 * returned to the bump region.
 */
import type { PairFactory, PairVariant, ThroughputPeer, WorkerOps } from './types.js';

const W_LOCK = 0;
const W_TOP = 1;
const W_END = 2;
const W_HEADS = 4;
const HEAP_START = 64;
const HDR = 8;
const SPIN = 64;

export const CLASS_SIZES = [16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096] as const;
const SMALL = new Uint8Array(24); // (size - 1) >> 3 -> class, sizes 1..192
for (let s = 1; s <= 192; s++) {
  let c = 0;
  while (CLASS_SIZES[c] < s) c++;
  SMALL[(s - 1) >> 3] = c;
}

/** Size class of `size` bytes, or -1 when it is too large. */
export function classOf(size: number): number {
  if (size <= 192) return SMALL[(size - 1) >> 3];
  if (size <= 256) return 6;
  if (size > 4096) return -1;
  return 31 - Math.clz32(size - 1) - 1; // 257..512 -> 7, ..., 2049..4096 -> 10
}

export class GlobalLockHeap {
  readonly sab: SharedArrayBuffer;
  private readonly i32: Int32Array;

  private constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    // Fixed-length view: never a length-tracking one.
    this.i32 = new Int32Array(sab, 0, sab.byteLength >> 2);
  }

  static create(bytes: number): GlobalLockHeap {
    const h = new GlobalLockHeap(new SharedArrayBuffer(bytes));
    h.i32[W_TOP] = HEAP_START;
    h.i32[W_END] = bytes;
    return h;
  }

  static attach(sab: SharedArrayBuffer): GlobalLockHeap {
    return new GlobalLockHeap(sab);
  }

  private lock(): void {
    const w = this.i32;
    if (Atomics.compareExchange(w, W_LOCK, 0, 1) === 0) return;
    for (let i = 0; i < SPIN; i++) {
      if (Atomics.load(w, W_LOCK) === 0 && Atomics.compareExchange(w, W_LOCK, 0, 1) === 0) return;
    }
    let c = Atomics.exchange(w, W_LOCK, 2);
    while (c !== 0) {
      Atomics.wait(w, W_LOCK, 2);
      c = Atomics.exchange(w, W_LOCK, 2);
    }
  }

  private unlock(): void {
    if (Atomics.exchange(this.i32, W_LOCK, 0) === 2) Atomics.notify(this.i32, W_LOCK, 1);
  }

  /** Returns a byte offset, or 0 when out of memory or `size` is too large. */
  alloc(size: number): number {
    const c = classOf(size);
    if (c < 0) return 0;
    const w = this.i32;
    this.lock();
    let hdr = w[W_HEADS + c];
    if (hdr !== 0) {
      w[W_HEADS + c] = w[(hdr >> 2) + 1];
    } else {
      hdr = w[W_TOP];
      const next = hdr + HDR + CLASS_SIZES[c];
      if (next > w[W_END]) {
        this.unlock();
        return 0;
      }
      w[W_TOP] = next;
      w[hdr >> 2] = c;
    }
    this.unlock();
    return hdr + HDR;
  }

  free(ptr: number): void {
    const w = this.i32;
    const h = (ptr - HDR) >> 2;
    const c = w[h];
    this.lock();
    w[h + 1] = w[W_HEADS + c];
    w[W_HEADS + c] = ptr - HDR;
    this.unlock();
  }
}

const HEAP_BYTES = 64 << 20;

export const create: PairFactory = (): PairVariant => {
  let heap = GlobalLockHeap.create(HEAP_BYTES);
  return {
    prepare(): void {
      heap = GlobalLockHeap.create(HEAP_BYTES);
    },
    run(size: number, iters: number): number {
      const h = heap;
      let acc = 0;
      for (let i = 0; i < iters; i++) {
        const p = h.alloc(size);
        if (p === 0) throw new Error('global-lock alloc failed');
        acc = (acc + p) | 0;
        h.free(p);
      }
      return acc;
    },
  };
};

export const throughput: ThroughputPeer<{ sab: SharedArrayBuffer }, number> = {
  async setup() {
    const heap = GlobalLockHeap.create(HEAP_BYTES);
    return { data: { sab: heap.sab }, close() {} };
  },
  async attach(data): Promise<WorkerOps<number>> {
    const heap = GlobalLockHeap.attach(data.sab);
    return {
      alloc: (size) => {
        const p = heap.alloc(size);
        return p === 0 ? null : p;
      },
      free: (p) => heap.free(p),
      detach() {},
    };
  },
};
