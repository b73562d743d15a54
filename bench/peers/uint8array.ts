/**
 * What plain JavaScript does: `new Uint8Array(size)` and let the garbage
 * collector free it. Each array is stored in a small ring so it escapes and
 * cannot be optimised away; it becomes garbage when its slot is reused.
 * V8 keeps arrays of up to 64 bytes on the JS heap; larger ones get a
 * separate backing store, which is much slower.
 */
import type { PairFactory, PairVariant } from './types.js';

const RING = 16;

export const create: PairFactory = (): PairVariant => {
  const ring: Uint8Array[] = [];
  return {
    prepare(size: number): void {
      ring.length = 0;
      for (let i = 0; i < RING; i++) ring.push(new Uint8Array(size));
    },
    run(size: number, iters: number): number {
      const r = ring;
      let acc = 0;
      for (let i = 0; i < iters; i++) {
        const a = new Uint8Array(size);
        a[0] = i;
        r[i & (RING - 1)] = a;
        acc = (acc + a.length) | 0;
      }
      return acc;
    },
    dispose(): void {
      ring.length = 0;
    },
  };
};
