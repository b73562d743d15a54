/**
 * The floor: a free-list stack of block offsets in a plain Int32Array with
 * no Atomics. Word 0 holds the number of free entries, words 1..n the
 * offsets. An alloc+free pair is a pop followed by a push; nothing cheaper
 * can still be called an allocator, so every other variant is reported as a
 * multiple of this one. The block size does not matter to it.
 */
import type { PairFactory, PairVariant, ThroughputPeer, WorkerOps } from './types.js';

export const SLOTS = 1024;

/** Builds a full stack over a fixed-length view (never length-tracking). */
export function makeStack(slots: number, slotBytes: number): Int32Array {
  const words = new Int32Array(new SharedArrayBuffer((slots + 1) * 4), 0, slots + 1);
  for (let i = 1; i <= slots; i++) words[i] = i * slotBytes;
  words[0] = slots;
  return words;
}

export const create: PairFactory = (): PairVariant => {
  let s = makeStack(SLOTS, 16);
  return {
    prepare(size: number): void {
      s = makeStack(SLOTS, Math.max(16, size));
    },
    run(_size: number, iters: number): number {
      const st = s;
      let acc = 0;
      for (let i = 0; i < iters; i++) {
        // alloc: pop
        const top = st[0];
        if (top === 0) throw new Error('floor stack empty');
        const p = st[top];
        st[0] = top - 1;
        acc = (acc + p) | 0;
        // free: push
        const t2 = st[0] + 1;
        st[t2] = p;
        st[0] = t2;
      }
      return acc;
    },
  };
};

/**
 * Throughput ideal line: every worker pops and pushes on its own private
 * floor stack (slots of 256 bytes, size ignored). Nothing is shared, so it
 * scales with the cores.
 */
export const throughputPrivate: ThroughputPeer<Record<string, never>, number> = {
  async setup() {
    return { data: {}, close() {} };
  },
  async attach(): Promise<WorkerOps<number>> {
    const st = makeStack(SLOTS, 256);
    return {
      alloc: () => {
        const top = st[0];
        if (top === 0) return null;
        st[0] = top - 1;
        return st[top];
      },
      free: (p) => {
        const t = st[0] + 1;
        st[t] = p;
        st[0] = t;
      },
      detach() {},
    };
  },
};
