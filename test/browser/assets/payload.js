// Payloads the page, the workers and the worklet write and check: bytes
// derived from a seed, and a map value derived from its key.

/** Fills len bytes at p with the pattern of `seed`. */
export function fill(heap, p, len, seed) {
  const u8 = heap.u8;
  for (let i = 0; i < len; i++) u8[p + i] = (seed + i * 7) & 0xff;
}

/** Whether the len bytes at p still hold the pattern of `seed`. */
export function matches(heap, p, len, seed) {
  const u8 = heap.u8;
  for (let i = 0; i < len; i++) if (u8[p + i] !== ((seed + i * 7) & 0xff)) return false;
  return true;
}

/** The 8-byte map value of `key`. */
export function valueOf(key) {
  const v = new Uint8Array(8);
  new DataView(v.buffer).setUint32(0, key * 3 + 1, true);
  new DataView(v.buffer).setUint32(4, key ^ 0x5a5a, true);
  return v;
}
