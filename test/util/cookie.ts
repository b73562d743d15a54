/**
 * Cookie patterns for the concurrent tests: every byte of a live block is
 * a function of (pointer, size, stamp, offset), written when the block is
 * allocated and checked just before it is freed. Two live blocks that
 * overlap, a block handed out twice, a write after free by the allocator
 * (a free-list link written into a live block) or a torn hand-over all
 * show up as a byte that does not match.
 *
 * Whole words are written through an Int32Array (the fast part), the last
 * size % 4 bytes through a Uint8Array. Pointers are 16-byte aligned, so
 * p >>> 2 indexes the block's first word.
 */

function cookieBase(p: number, size: number, stamp: number): number {
  let h = Math.imul(p ^ 0x5bd1e995, 0x9e3779b1);
  h ^= Math.imul(size ^ (stamp << 17), 0x85ebca6b) ^ (h >>> 15);
  return h | 0;
}

/** The expected int32 at word k of the block (p, size). */
function cookieWord(base: number, k: number): number {
  return (base + Math.imul(k, 0x2545f491)) ^ k;
}

/**
 * Fills [p, p + size) with the block's cookie. `stamp` (any 32-bit value,
 * e.g. who allocated it and when) makes two allocations of the same
 * pointer and size differ, so a block handed out twice while still live
 * is caught even when both owners asked for the same size. The views must
 * cover the block.
 */
export function fillCookie(i32: Int32Array, u8: Uint8Array, p: number, size: number, stamp = 0): void {
  const base = cookieBase(p, size, stamp);
  const words = size >>> 2;
  const w0 = p >>> 2;
  for (let k = 0; k < words; k++) i32[w0 + k] = cookieWord(base, k);
  const rest = size & 3;
  if (rest !== 0) {
    const last = cookieWord(base, words);
    for (let j = 0; j < rest; j++) u8[p + words * 4 + j] = (last >>> (8 * j)) & 255;
  }
}

/**
 * Checks the cookie of [p, p + size). Returns null when intact, else a
 * description of the first bad byte or word.
 */
export function checkCookie(i32: Int32Array, u8: Uint8Array, p: number, size: number, stamp = 0): string | null {
  if (p + size > u8.length) return `block ${p}+${size} lies beyond the views (${u8.length} bytes)`;
  const base = cookieBase(p, size, stamp);
  const words = size >>> 2;
  const w0 = p >>> 2;
  for (let k = 0; k < words; k++) {
    const want = cookieWord(base, k);
    const got = i32[w0 + k]!;
    if (got !== want) {
      return `block ${p}+${size}: word at offset ${k * 4} is 0x${(got >>> 0).toString(16)}, want 0x${(want >>> 0).toString(16)}`;
    }
  }
  const rest = size & 3;
  if (rest !== 0) {
    const last = cookieWord(base, words);
    for (let j = 0; j < rest; j++) {
      const want = (last >>> (8 * j)) & 255;
      const got = u8[p + words * 4 + j]!;
      if (got !== want) return `block ${p}+${size}: byte at offset ${words * 4 + j} is ${got}, want ${want}`;
    }
  }
  return null;
}
