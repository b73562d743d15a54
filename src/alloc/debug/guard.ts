/**
 * The bytes debug mode adds around an object: a header before it, a
 * canary after it, and poison with a marker once it is freed. Everything
 * here reads and writes one object's bytes; nothing keeps state.
 *
 * An object of a size-bucketed debug allocator (`size` bytes asked for;
 * the release allocator hands out a unit of at least size + 24 bytes):
 *
 *   base (from the release allocator)       p = base + 16 (what alloc returns)
 *   |                                       |
 *   v                                       v
 *   +--------+--------+--------+--------+---------------------+--------+--------+
 *   | w0     | w1     | w2     | w3     | size bytes of user  | canary | slack  |
 *   | size   | LIVE^  | check  | slot   | data                | 8 B    |        |
 *   |        | base   |        |        |                     |        |        |
 *   +--------+--------+--------+--------+---------------------+--------+--------+
 *   '------ header, 16 bytes ----------'                      base + unit  -----'
 *
 * The same object once freed (quarantined, then really free):
 *
 *   +--------+--------+--------+--------+-------------------------------+--------+
 *   | w0 gen | QUAR^  | check  | slot   | 0x6b 0x6b 0x6b ... (poison)   | marker |
 *   |        | base   |        |        |                               | 8 B    |
 *   +--------+--------+--------+--------+-------------------------------+--------+
 *   '- the release allocator's free-list  '- checked when the object      '- FREED^base,
 *      links once really freed (words      leaves the quarantine and       FREED2^unit
 *      0..3): the user pointer never       when it is handed out again
 *      reaches them
 *
 * - w1, the state word, is LIVE, QUAR (in an agent's quarantine; w0 and w3
 *   are that agent's slot generation and slot) or DEFR (freeDeferred,
 *   waiting for a grace period), xor the base address, so a state word
 *   copied from elsewhere does not match. w2 is a check word over w0, w3
 *   and the base address (checkWord). w3 is the slot of the agent that
 *   allocated (LIVE) or quarantined (QUAR) the object.
 * - The canary is 8 bytes derived from the base address and the size.
 * - The marker in the last 8 bytes of the unit says "poisoned by a debug
 *   free". Those bytes are never user data (the unit holds size + 24), so
 *   a fresh object (never freed, no marker) is told from a freed one, and
 *   only a freed object's poison is checked on reuse. destroy() wipes the
 *   markers of the slabs it gives back, so a page that later comes back
 *   to another debug allocator carries none.
 * - Large objects (page runs) have the same header and canary and are
 *   poisoned too.
 * - A fixed-size unit (`unitSize`) has no header and no canary: the user
 *   may write all of it. Once freed it gets the QUAR words 0..3, poison and
 *   marker like the picture (units of 16 bytes: the QUAR words only).
 */
import type { HeapCore } from '../../heap/core.js';
import { AllocatorMisuseError, MISUSE } from '../misuse.js';
import { hex } from '../../errors.js';

/** Header bytes before a bucketed debug object. */
export const DEBUG_HEADER = 16;
/** Canary bytes after it. */
export const DEBUG_CANARY = 8;
/** Bytes a bucketed debug allocation adds to the requested size. */
export const DEBUG_OVERHEAD = DEBUG_HEADER + DEBUG_CANARY;
/** The byte freed objects are filled with (the kernel's POISON_FREE). */
export const POISON_BYTE = 0x6b;

const HEAD = DEBUG_HEADER;
/** Eight poison bytes read as a float64 (a plain number, neither NaN nor zero). */
const POISON64 = new Float64Array(new Uint32Array([0x6b6b6b6b, 0x6b6b6b6b]).buffer)[0]!;
// State words (xor the base address), and the keys of the check word and the marker.
export const LIVE = 0x4556494c; // "LIVE"
export const QUAR = 0x52415551; // "QUAR"
export const DEFR = 0x52464544; // "DEFR"
const KEY = 0x5a17e5c3;
const FREED_A = 0x44454546; // "FEED"
const FREED_B = 0x1dead0ff;
/** Bytes of the marker at the end of a freed unit. */
export const MARKER = 8;
/** quarantineFault: the header changed, and its check word cannot say where. */
export const HEADER_FAULT = -2;

/** Header word w2: checks w0 and w3 (and ties them to the address). */
export function checkWord(w0: number, w3: number, base: number): number {
  return (w0 ^ base ^ KEY ^ Math.imul(w3 + 1, 0x9e3779b1)) >>> 0;
}

function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d);
  x = Math.imul(x ^ (x >>> 12), 0x297a2d39);
  return (x ^ (x >>> 15)) >>> 0;
}
function canaryWord(base: number, size: number, i: number): number {
  return mix((base ^ Math.imul(size + i, 0x9e3779b1) ^ 0x63616e61) >>> 0);
}

/* ------------------------------- header ------------------------------- */

/** Writes the LIVE header of a bucketed object handed out to agent `slot`. */
export function writeLiveHeader(u32: Uint32Array, base: number, size: number, slot: number): void {
  const w = base >>> 2;
  u32[w] = size;
  u32[w + 1] = (LIVE ^ base) >>> 0;
  u32[w + 2] = checkWord(size, slot, base);
  u32[w + 3] = slot;
}

/** Writes the QUAR header of an object entering the quarantine of agent `slot` (generation `gen`). */
export function writeQuarantinedHeader(u32: Uint32Array, base: number, gen: number, slot: number): void {
  const w = base >>> 2;
  u32[w] = gen;
  u32[w + 2] = checkWord(gen, slot, base);
  u32[w + 3] = slot;
  u32[w + 1] = (QUAR ^ base) >>> 0;
}

/** The state word says `state` (LIVE, QUAR, DEFR) and the check word matches. */
export function hasHeader(u32: Uint32Array, base: number, state: number): boolean {
  const w = base >>> 2;
  return u32[w + 1] === (state ^ base) >>> 0 && u32[w + 2] === checkWord(u32[w]!, u32[w + 3]!, base);
}

export function isLiveHead(heap: HeapCore, base: number): boolean {
  return hasHeader(heap.u32, base, LIVE);
}

export function isQuarantinedHead(heap: HeapCore, base: number): boolean {
  return hasHeader(heap.u32, base, QUAR);
}

/* ------------------------------- canary ------------------------------- */

export function writeCanary(heap: HeapCore, base: number, size: number): void {
  const u8 = heap.u8;
  const at = base + HEAD + size;
  const k0 = canaryWord(base, size, 0);
  const k1 = canaryWord(base, size, 1);
  for (let j = 0; j < 4; j++) {
    u8[at + j] = (k0 >>> (8 * j)) & 255;
    u8[at + 4 + j] = (k1 >>> (8 * j)) & 255;
  }
}

/** Index (0..7) of the first canary byte that changed, or -1. */
export function canaryFault(heap: HeapCore, base: number, size: number): number {
  const u8 = heap.u8;
  const at = base + HEAD + size;
  const k0 = canaryWord(base, size, 0);
  const k1 = canaryWord(base, size, 1);
  for (let j = 0; j < 4; j++) {
    if (u8[at + j] !== ((k0 >>> (8 * j)) & 255)) return j;
    if (u8[at + 4 + j] !== ((k1 >>> (8 * j)) & 255)) return 4 + j;
  }
  return -1;
}

/* ---------------------------- poison, marker --------------------------- */

/** Poisons a unit and writes its marker (no header). */
export function poison(heap: HeapCore, base: number, unit: number): void {
  if (unit < 2 * HEAD) return;
  // Whole 8-byte words: base is 16-aligned and units are multiples of 16.
  // A loop beats the fill builtin's call overhead for small units.
  const f64 = heap.f64;
  const end = (base + unit - MARKER) >>> 3;
  if (unit <= 1024) for (let w = (base + HEAD) >>> 3; w < end; w++) f64[w] = POISON64;
  else f64.fill(POISON64, (base + HEAD) >>> 3, end);
  const m = (base + unit - MARKER) >>> 2;
  heap.u32[m] = (FREED_A ^ base) >>> 0;
  heap.u32[m + 1] = (FREED_B ^ unit) >>> 0;
}

export function hasMarker(heap: HeapCore, base: number, unit: number): boolean {
  const u32 = heap.u32;
  const m = (base + unit - MARKER) >>> 2;
  return u32[m] === (FREED_A ^ base) >>> 0 && u32[m + 1] === (FREED_B ^ unit) >>> 0;
}

/** Offset from base of the first poisoned byte that changed, or -1. */
export function poisonFault(heap: HeapCore, base: number, unit: number): number {
  if (unit < 2 * HEAD) return -1;
  const f64 = heap.f64;
  const end = (base + unit - MARKER) >>> 3;
  // The poison is no NaN and no zero: === on the 8-byte words compares bits.
  for (let w = (base + HEAD) >>> 3; w < end; w++) {
    if (f64[w] !== POISON64) {
      for (let b = w * 8; ; b++) if (heap.u8[b] !== POISON_BYTE) return b - base;
    }
  }
  return -1;
}

/**
 * A quarantined object: its QUAR header, poison and marker. -1 when
 * intact, else the offset from base of a changed byte, or HEADER_FAULT.
 */
export function quarantineFault(heap: HeapCore, base: number, unit: number): number {
  if (!isQuarantinedHead(heap, base)) {
    const u8 = heap.u8;
    const want = (QUAR ^ base) >>> 0;
    for (let j = 0; j < 4; j++) if (u8[base + 4 + j] !== ((want >>> (8 * j)) & 255)) return 4 + j;
    return HEADER_FAULT; // w0, w2 or w3: the check word does not say which
  }
  const bad = poisonFault(heap, base, unit);
  if (bad >= 0) return bad;
  if (unit >= 2 * HEAD && !hasMarker(heap, base, unit)) return unit - MARKER;
  return -1;
}

/**
 * The error for a freed object (user pointer p, unit at base) whose byte
 * at `offset` from base (or header: HEADER_FAULT) changed; `when` says
 * where it was found.
 */
export function writeAfterFreeError(
  heap: HeapCore,
  op: string,
  p: number,
  base: number,
  unit: number,
  offset: number,
  when: string,
): AllocatorMisuseError {
  const rel = base + offset - p;
  const where =
    offset === HEADER_FAULT
      ? `the header of the freed object (the 16 bytes at ${base}) was overwritten`
      : `${rel < 0 ? `byte ${-rel} before the start` : `byte ${rel}`} of the freed object was overwritten ` +
        `(now ${hex(heap.u8[base + offset]!)}; freed memory holds ${hex(POISON_BYTE)} and a header)`;
  return new AllocatorMisuseError(
    `${op}: ${MISUSE.writeAfterFree} in object ${p} (${hex(p)}, a ${unit}-byte unit): ${where}, ${when}`,
    'write-after-free',
    p,
  );
}
