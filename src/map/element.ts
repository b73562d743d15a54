/**
 * Elements: building one (key, value, version word) before it is linked,
 * and the value copies of an element that readers may be reading. An
 * in-place map's element holds two copies and a version word; an update
 * of a present key writes the copy no reader uses and flips to it
 * (updateInPlace), without the bucket lock or a new element. Layout and
 * the grace argument for the spare copy: ./layout.ts.
 */
import { cas, load, store } from '../shm/atomic.js';
import { describe, typeError } from '../errors.js';
import { tryAdvance } from '../reclaim/epoch.js';
import { E_VER, V_COPY_SHIFT, V_GRACE, V_LOCK, V_STAMP_AHEAD, V_STAMP_MASK, V_STAMP_SHIFT } from './layout.js';
import { MapFlag, MapStatus } from './status.js';
import { ADVANCE_EVERY } from './state.js';
import { MapBuckets } from './buckets.js';

/** How long a writer keeps reclaiming when no element is free (grace periods pending). */
const RECLAIM_WAIT_MS = 500;
/** @internal updateInPlace: the element must be replaced (not a MapStatus). */
export const UPDATE_REPLACE = 1;

/** @hidden HashMap's layer of elements: building them, their value copies, in-place updates (the layers: ./state.ts). */
export class MapElements extends MapBuckets {
  /** @internal Checks that v holds a value (valueSize bytes or more). */
  checkValue(v: Uint8Array, op: string, name = 'value'): void {
    if (!(v instanceof Uint8Array) || v.length < this.valueSize) {
      throw typeError('bad-argument', `${op}: ${name} must be a Uint8Array of at least valueSize ${this.valueSize} bytes, got ${v instanceof Uint8Array ? `${v.length} bytes` : describe(v)}`);
    }
  }

  /**
   * @internal
   * Byte offset of e's value now (not per-worker maps): in-place maps,
   * the copy its version word names (a plain load: the copy's address
   * depends on it, see ./layout.ts).
   */
  valueAt(e: number): number {
    if (this.copies === 1) return e + this.valueOff;
    const v = this.u32[(e >>> 2) + E_VER]!;
    return e + this.valueOff + ((v >>> V_COPY_SHIFT) & 1) * this.stride;
  }

  /** @internal Copies valueSize bytes of v to dst (4-byte aligned: value offsets are multiples of 8), a word at a time. */
  copyIn(dst: number, v: Uint8Array): void {
    const n = this.valueSize;
    const u32 = this.u32;
    let i = 0;
    for (let w = dst >>> 2; i + 4 <= n; i += 4, w++) u32[w] = v[i]! | (v[i + 1]! << 8) | (v[i + 2]! << 16) | (v[i + 3]! << 24);
    const u8 = this.u8;
    for (; i < n; i++) u8[dst + i] = v[i]!;
  }

  /** @internal Copies the valueSize bytes at src to out. */
  copyOut(src: number, out: Uint8Array): void {
    const u8 = this.u8;
    for (let i = 0; i < this.valueSize; i++) out[i] = u8[src + i]!;
  }

  /**
   * @internal
   * A new element for the key in the scratch words, value from v
   * (per-worker: this slot's value, others zero). 0 if none. When the
   * allocator has nothing (preallocated pool or heap used up), elements
   * retired by any agent may only be
   * waiting for readers to leave their sections: a writer may wait for
   * that, collecting from every agent's limbo ring (an agent that went
   * idle after deleting leaves its ring to the others), within
   * RECLAIM_WAIT_MS (readers never wait). A preallocated map waits even
   * when no ring holds anything: its pool has room for maxEntries plus
   * what caches and limbo lists hold, so an empty pool means elements in
   * transit (in another agent's private spill list until its ring is
   * free, or in a batch between a cache and the depot), not a full map.
   */
  newElement(v: Uint8Array): number {
    let e = this.elems.alloc();
    const prealloc = this.mode === 'prealloc';
    if (e === 0 && (prealloc || this.elems.retiredObjects() > 0)) {
      const deadline = Date.now() + RECLAIM_WAIT_MS;
      do {
        this.elems.collectDeferred(true);
        e = this.elems.alloc();
      } while (e === 0 && (prealloc || this.elems.retiredObjects() > 0) && Date.now() < deadline);
    }
    if (e === 0) return 0;
    this.reach(e);
    this.writeKey(e);
    if (this.perWorker) {
      const end = e + this.valueOff + this.stride * this.heap.maxSlots;
      this.u8.fill(0, e + this.valueOff, end);
      this.copyIn(e + this.valueOff + this.stride * this.heap.slot + 8, v);
    } else {
      // In-place maps: copy 0 current, and a stamp already V_GRACE old,
      // since copy 1 was never current in this element's life (readers of
      // its previous life left before it was freed), so the first in-place
      // update may write it at once.
      if (this.copies === 2) this.u32[(e >>> 2) + E_VER] = (((this.u32[this.epochWord]! - V_GRACE) & V_STAMP_MASK) << V_STAMP_SHIFT) >>> 0;
      this.copyIn(e + this.valueOff, v);
    }
    return e;
  }

  /**
   * @internal
   * An update of an existing key in an in-place map (./layout.ts, ver and
   * copies): no bucket lock, no new element. Returns OK, NOT_FOUND (EXIST
   * and no key), or UPDATE_REPLACE when the element must be replaced
   * instead: the key is absent (ANY inserts), another writer holds the
   * element's LOCK, or the spare copy may still have readers.
   *
   * Linearizable: a writer that finds the element and flips it after a
   * concurrent replace or delete unlinked it takes effect just before
   * that replace or delete (it found the element linked, so it began
   * before), and no later reader sees its value. Pinned, so the element
   * is not reused meanwhile.
   */
  updateInPlace(b: number, value: Uint8Array, flag: number): number {
    this.pin();
    // The epoch now, read after the pin is visible: until the unpin the
    // epoch stays at most one past it (a pin, whatever value it holds,
    // is at most this epoch, and an advance needs every pin equal to the
    // epoch it leaves). Not the pin word's value: a pin stored after a
    // stall may be far behind the epoch.
    const now = load(this.u32, this.epochWord);
    const e = this.find(b);
    let status: number = UPDATE_REPLACE;
    if (e !== 0) {
      const u32 = this.u32; // after find, which may have renewed the views
      const vw = (e >>> 2) + E_VER;
      const v = u32[vw]!;
      // Epochs since the stamp, mod 2^30; a stamp ahead of `now` (by a
      // writer that read the epoch later) wraps to a huge count, so
      // counts of 2^29 or more are read as not passed.
      const since = (now - (v >>> V_STAMP_SHIFT)) & V_STAMP_MASK;
      if ((v & V_LOCK) === 0 && since >= V_GRACE && since < V_STAMP_AHEAD && cas(u32, vw, v, v | V_LOCK) === v) {
        const spare = ((v >>> V_COPY_SHIFT) & 1) ^ 1;
        this.copyIn(e + this.valueOff + spare * this.stride, value);
        store(u32, vw, (((now & V_STAMP_MASK) << V_STAMP_SHIFT) | (spare << V_COPY_SHIFT)) >>> 0);
        status = MapStatus.OK;
      }
    } else if (flag === MapFlag.EXIST) {
      status = MapStatus.NOT_FOUND;
    }
    this.unpin();
    // A miss goes on to updateLocked, which counts it.
    if (flag === MapFlag.ANY && e !== 0) this.anyHits = 3;
    if (status === MapStatus.OK) {
      this.inPlaceCount++;
      // Grace periods advance, and limbo rings are collected, with
      // deferred frees; an agent that mostly updates in place frees little,
      // so now and then it collects its ring (which advances the epoch as
      // far as its entries need) or moves the epoch on, or every key would
      // wait for the others' frees and replaced elements for its next ones.
      if (--this.advanceIn === 0) {
        this.advanceIn = ADVANCE_EVERY;
        if (this.elems.deferredPending > 0) this.elems.collectDeferred();
        else tryAdvance(this.heap);
      }
    }
    return status;
  }
}
