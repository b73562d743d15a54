/**
 * The floor with Atomics: the same free-list stack, but the top word is
 * read with Atomics.load and moved with Atomics.compareExchange, as a
 * shared (multi-worker) stack has to. Measures what the atomic operations on
 * one word cost when nobody else touches it.
 */
import { makeStack, SLOTS } from './floor.js';
import type { PairFactory, PairVariant } from './types.js';

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
        let top = Atomics.load(st, 0);
        if (top === 0) throw new Error('floor stack empty');
        let p = st[top];
        while (Atomics.compareExchange(st, 0, top, top - 1) !== top) {
          top = Atomics.load(st, 0);
          p = st[top];
        }
        acc = (acc + p) | 0;
        // free: push
        let t = Atomics.load(st, 0);
        st[t + 1] = p;
        while (Atomics.compareExchange(st, 0, t, t + 1) !== t) {
          t = Atomics.load(st, 0);
          st[t + 1] = p;
        }
      }
      return acc;
    },
  };
};
