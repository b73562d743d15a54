/**
 * Per-worker values (the kernel's per-CPU hash): an element holds one
 * record per worker slot, [seq | pad | value padded to 8], and each slot
 * writes only its own, in place, inside a seqlock: seq odd while the owner
 * writes; readers copy and retry while seq is odd or changed. Seq and
 * every value word are stored and loaded with Atomics (./layout.ts). A
 * survivor settles a record its dead writer left odd
 * (../recovery/map-slot.ts).
 */
import { load, store } from '../shm/atomic.js';
import { MapSlotRow, OP_SLOT_WRITE } from './layout.js';
import { MapElements } from './element.js';
import { describe, rangeError, typeError } from '../errors.js';
import type { HeapCore } from '../heap/core.js';
import type { Allocator } from '../alloc/allocator.js';

/** How long a reader retries a per-worker value whose writer is mid-write. */
const SEQ_WAIT_MS = 500;

/** @internal The error of a per-worker value that stays mid-write (thrown once the reader has unpinned). */
export function midWrite(slot: number): RangeError {
  return rangeError('busy', `per-worker value of slot ${slot} stays mid-write: its writer stalled or died (release its slot)`);
}

/** @hidden HashMap's layer of per-worker values (the layers: ./state.ts). */
export class MapPerWorker extends MapElements {
  /** @internal sumInto's view of its caller's array (kept while the caller passes the same buffer). */
  sumView: Uint32Array | null;
  /** @internal sumInto's scratch: the first 8 bytes of one slot's value, and the same as two words. */
  first8: Uint8Array;
  /** @internal */
  first8Words: Uint32Array;

  protected constructor(heap: HeapCore, region: number, elems: Allocator) {
    super(heap, region, elems);
    this.sumView = null;
    this.first8Words = new Uint32Array(2);
    this.first8 = new Uint8Array(this.first8Words.buffer);
  }

  /**
   * @internal
   * Copies the first n bytes (all of them by default) of slot `slot`'s
   * value of e into out (seqlock read). false: the slot stayed mid-write
   * for SEQ_WAIT_MS (its writer stalled, or died and was not released);
   * the caller throws once it has unpinned.
   */
  readSlot(e: number, slot: number, out: Uint8Array, outOff = 0, n = this.valueSize): boolean {
    const rec = e + this.valueOff + this.stride * slot;
    let deadline = 0;
    for (let tries = 1; ; tries++) {
      if ((tries & 1023) === 0) {
        const now = Date.now();
        if (deadline === 0) deadline = now + SEQ_WAIT_MS;
        else if (now > deadline) return false;
      }
      const u32 = this.u32;
      const s1 = load(u32, rec >>> 2);
      if ((s1 & 1) !== 0) continue;
      // Atomic loads: JS has no read fence, and plain loads could be
      // performed after the second load of seq on a weakly ordered CPU.
      for (let i = 0, w = (rec + 8) >>> 2; i < n; i += 4, w++) {
        const x = load(u32, w);
        out[outOff + i] = x & 255;
        if (i + 1 < n) out[outOff + i + 1] = (x >>> 8) & 255;
        if (i + 2 < n) out[outOff + i + 2] = (x >>> 16) & 255;
        if (i + 3 < n) out[outOff + i + 3] = x >>> 24;
      }
      if (load(u32, rec >>> 2) === s1) return true;
    }
  }

  /**
   * @internal
   * Writes this agent's slot value of e (seqlock write), logged in the
   * slot row as OP_SLOT_WRITE unless a write record is open already.
   */
  writeSlot(e: number, v: Uint8Array): void {
    const rec = e + this.valueOff + this.stride * this.heap.slot;
    const u32 = this.u32;
    const i32 = this.i32;
    const row = this.rowWord;
    const op = i32[row + MapSlotRow.OP]!;
    if (op === 0) {
      i32[row + MapSlotRow.OP_ELEM] = e;
      i32[row + MapSlotRow.OP] = OP_SLOT_WRITE;
    }
    const s = u32[rec >>> 2]!;
    store(u32, rec >>> 2, (s + 1) >>> 0);
    // Atomic stores, so that on a weakly ordered CPU no value word becomes
    // visible before the odd seq or after the even one (readSlot).
    const n = this.valueSize;
    for (let i = 0, w = (rec + 8) >>> 2; i < n; i += 4, w++) {
      const x = v[i]! | (i + 1 < n ? v[i + 1]! << 8 : 0) | (i + 2 < n ? v[i + 2]! << 16 : 0) | (i + 3 < n ? v[i + 3]! << 24 : 0);
      store(u32, w, x >>> 0);
    }
    store(u32, rec >>> 2, (s + 2) >>> 0);
    if (op === 0) i32[row + MapSlotRow.OP] = 0;
  }

  /**
   * Per-worker maps: copies every slot's value of `key` into `out`
   * (maxWorkers x valueSize bytes, slot order). False when absent.
   */
  lookupAll(key: Uint8Array, out: Uint8Array): boolean {
    this.takeKey(key, 'lookupAll');
    if (!this.perWorker) throw typeError('wrong-mode', 'lookupAll needs a per-worker map');
    const slots = this.heap.maxSlots;
    if (!(out instanceof Uint8Array) || out.length < slots * this.valueSize) {
      throw typeError('bad-argument', `lookupAll: out must hold maxWorkers x valueSize = ${slots * this.valueSize} bytes`);
    }
    const h = this.hashKey();
    this.pin();
    const e = this.find(h & this.mask);
    let torn = -1;
    if (e !== 0) {
      for (let s = 0; s < slots; s++) {
        if (!this.readSlot(e, s, out, s * this.valueSize)) {
          torn = s;
          break;
        }
      }
    }
    this.unpin();
    if (torn >= 0) throw midWrite(torn);
    return e !== 0;
  }

  /**
   * Per-worker maps whose values are little-endian numbers: the sum over
   * all slots of the value read as `type` ('u32', 'i32' or 'f64'; for
   * exact 64-bit sums see sumInto). undefined when absent.
   */
  sum(key: Uint8Array, type: 'u32' | 'i32' | 'f64' = 'f64'): number | undefined {
    if (!this.perWorker) throw typeError('wrong-mode', 'sum needs a per-worker map');
    if (type !== 'u32' && type !== 'i32' && type !== 'f64') {
      throw typeError('bad-argument', `sum: type must be 'u32', 'i32' or 'f64' (sumInto sums u64 and i64), got ${describe(type)}`);
    }
    const size = type === 'f64' ? 8 : 4;
    if (this.valueSize < size) throw rangeError('bad-argument', `sum as ${type} needs valueSize >= ${size}, map has ${this.valueSize}`);
    const slots = this.heap.maxSlots;
    const buf = new Uint8Array(slots * this.valueSize);
    if (!this.lookupAll(key, buf)) return undefined;
    const dv = new DataView(buf.buffer);
    let total = 0;
    for (let s = 0; s < slots; s++) {
      const o = s * this.valueSize;
      total += type === 'f64' ? dv.getFloat64(o, true) : type === 'u32' ? dv.getUint32(o, true) : dv.getInt32(o, true);
    }
    return total;
  }

  /**
   * Per-worker maps whose values start with a little-endian 64-bit
   * integer: writes into out[0] the exact sum over all slots, modulo 2^64
   * (the same bits whether the values are u64 or i64: out's type says how
   * they read). Returns false, leaving out alone, when the key is absent.
   * Allocates nothing (after the first call with a given `out`).
   */
  sumInto(key: Uint8Array, out: BigUint64Array | BigInt64Array): boolean {
    if (!this.perWorker) throw typeError('wrong-mode', 'sumInto needs a per-worker map');
    if (!(out instanceof BigUint64Array || out instanceof BigInt64Array) || out.length < 1) {
      throw typeError('bad-argument', `sumInto: out must be a BigUint64Array or BigInt64Array of at least 1 element, got ${describe(out)}`);
    }
    if (this.valueSize < 8) throw rangeError('bad-argument', `sumInto needs valueSize >= 8, map has ${this.valueSize}`);
    this.takeKey(key, 'sumInto');
    const h = this.hashKey();
    this.pin();
    const e = this.find(h & this.mask);
    let lo = 0;
    let hi = 0;
    let torn = -1;
    if (e !== 0) {
      for (let s = 0; s < this.heap.maxSlots; s++) {
        if (!this.readSlot(e, s, this.first8, 0, 8)) {
          torn = s;
          break;
        }
        // Halves summed apart as doubles: exact for up to 2^21 slots.
        lo += this.first8Words[0]!;
        hi += this.first8Words[1]!;
      }
    }
    this.unpin();
    if (torn >= 0) throw midWrite(torn);
    if (e === 0) return false;
    const carry = Math.floor(lo / 0x1_0000_0000);
    let view = this.sumView;
    if (view === null || view.buffer !== out.buffer) view = this.sumView = new Uint32Array(out.buffer);
    const w = out.byteOffset >>> 2;
    view[w] = lo % 0x1_0000_0000;
    view[w + 1] = (hi + carry) % 0x1_0000_0000;
    return true;
  }
}
