/**
 * HashMap's layer of batches, after the kernel's: a cursor walk of the
 * whole map bucket by bucket (lookupBatch, lookupAndDeleteBatch: a bucket
 * is copied whole under its lock or not at all), lookupAndDelete, and the
 * key-list batches (lookupEach, updateBatch, deleteBatch). The rules are in
 * docs/map.md. The layers: ./state.ts.
 */
import { cas } from '../shm/atomic.js';
import { describe, rangeError, typeError } from '../errors.js';
import { E_NEXT, E_VER, MapSlotRow, V_LOCK } from './layout.js';
import { MapFlag, MapStatus } from './status.js';
import { midWrite } from './per-worker.js';
import { MapOperations } from './operations.js';

/** How long lookupAndDelete and lookupAndDeleteBatch wait for an element's value lock (held by an in-place writer). */
const VALUE_LOCK_SPIN_MS = 20;

/** @hidden HashMap's layer of batches (the layers: ./state.ts). */
export class MapBatches extends MapOperations {
  /* ------------------------------- batches ------------------------------ */

  /**
   * The kernel's lookup_batch: copies whole buckets, from bucket
   * `io[0]` on, into `keys` (keySize bytes each) and `values` (valueSize
   * each; per-worker maps: maxWorkers x valueSize each, slot order), at
   * most `max` elements (default: as many as both buffers hold). A bucket
   * is never split: each is copied under its lock, as one snapshot.
   * Writes the elements copied to io[1] and the next bucket to io[0] (so
   * the same `io` continues the walk; start with io[0] = 0). Returns OK
   * when more may follow, NOT_FOUND when the walk has reached the end
   * (io[1] may still be > 0), NO_SPACE when the first bucket does not fit
   * (io[1] = 0; retry with larger buffers) and BUSY when a bucket lock
   * stays taken; room for no element at all: OK, nothing copied, as the
   * kernel's count of 0. Allocates nothing. Semantics: docs/map.md.
   */
  lookupBatch(io: Uint32Array, keys: Uint8Array, values: Uint8Array, max?: number): number {
    return this.walkBatch(io, keys, values, max, false, 'lookupBatch');
  }

  /**
   * The kernel's lookup_and_delete_batch: lookupBatch, deleting each
   * bucket's elements as it copies them (same io words and statuses).
   */
  lookupAndDeleteBatch(io: Uint32Array, keys: Uint8Array, values: Uint8Array, max?: number): number {
    return this.walkBatch(io, keys, values, max, true, 'lookupAndDeleteBatch');
  }

  /** Bytes of one element's value in batch buffers and lookupAndDelete (per-worker: every slot's). */
  get batchValueBytes(): number {
    return this.perWorker ? this.valueSize * this.heap.maxSlots : this.valueSize;
  }

  /** @internal */
  walkBatch(io: Uint32Array, keys: Uint8Array, values: Uint8Array, max: number | undefined, del: boolean, op: string): number {
    if (!(io instanceof Uint32Array) || io.length < 2) throw typeError('bad-argument', `${op}: io must be a Uint32Array of 2 words (cursor, count), got ${describe(io)}`);
    if (!(keys instanceof Uint8Array)) throw typeError('bad-argument', `${op}: keys must be a Uint8Array, got ${describe(keys)}`);
    if (!(values instanceof Uint8Array)) throw typeError('bad-argument', `${op}: values must be a Uint8Array, got ${describe(values)}`);
    if (this.detached) throw rangeError('detached', `${op}: this map is detached in this agent`);
    const vb = this.batchValueBytes;
    let cap = Math.min(Math.floor(keys.length / this.keySize), Math.floor(values.length / vb));
    if (max !== undefined) {
      if (!Number.isInteger(max) || max < 0) throw rangeError('bad-argument', `${op}: max must be a non-negative integer, got ${describe(max)}`);
      cap = Math.min(cap, max);
    }
    if (cap === 0) {
      io[1] = 0;
      return MapStatus.OK;
    }
    let b = io[0]!;
    const nb = this.mask + 1;
    let n = 0;
    let status: number = MapStatus.NOT_FOUND;
    this.pin();
    try {
      for (; b < nb; b++) {
        if (this.bucketHead(b) === 0) continue;
        let head = this.lock(b);
        if (head < 0) {
          status = MapStatus.BUSY;
          break;
        }
        let size = 0;
        for (let e = head; e !== 0; e = this.u32[(e >>> 2) + E_NEXT]!) {
          this.reach(e);
          size++;
        }
        if (size > cap - n) {
          this.unlock(b, head);
          status = n === 0 ? MapStatus.NO_SPACE : MapStatus.OK;
          break;
        }
        let torn = -1;
        for (let e = head; e !== 0; e = this.u32[(e >>> 2) + E_NEXT]!) {
          this.reach(e);
          const kb = e + this.keyOff;
          for (let i = 0, o = n * this.keySize; i < this.keySize; i++) keys[o + i] = this.u8[kb + i]!;
          if (del && this.copies === 2) this.lockValue(e);
          if (this.perWorker) {
            for (let s = 0; s < this.heap.maxSlots && torn < 0; s++) if (!this.readSlot(e, s, values, n * vb + s * this.valueSize)) torn = s;
          } else {
            this.copyOutAt(this.valueAt(e), values, n * vb);
          }
          n++;
        }
        if (torn >= 0) {
          this.unlock(b, head);
          throw midWrite(torn);
        }
        if (del) {
          this.deleteChain(b, head);
          head = 0;
        }
        this.unlock(b, head);
      }
    } finally {
      this.unpin();
    }
    io[0] = b;
    io[1] = n;
    return status;
  }

  /**
   * Takes element e's value LOCK (in-place maps) for good, before it is
   * unlinked: an in-place update that found e then replaces it instead,
   * under the bucket lock, after the delete, so no update is lost between
   * the copy of the value and the unlink. (A new life of the element
   * writes a fresh version word.)
   */
  lockValue(e: number): void {
    const vw = (e >>> 2) + E_VER;
    let deadline = 0;
    for (let i = 1; ; i++) {
      const v = this.u32[vw]!;
      // A holder is a writer copying a value in: moments. One that holds
      // it longer stalled or died (a dead one never flips): go on without.
      if ((v & V_LOCK) === 0 && cas(this.u32, vw, v, (v | V_LOCK) >>> 0) === v) return;
      if ((i & 1023) === 0) {
        const now = Date.now();
        if (deadline === 0) deadline = now + VALUE_LOCK_SPIN_MS;
        else if (now > deadline) return;
      }
    }
  }

  /** copyOut into out at byte offset `at`. */
  copyOutAt(src: number, out: Uint8Array, at: number): void {
    const u8 = this.u8;
    for (let i = 0; i < this.valueSize; i++) out[at + i] = u8[src + i]!;
  }

  /**
   * The kernel's lookup_and_delete_elem: copies the value of `key` into
   * `out` (per-worker maps: every slot's, maxWorkers x valueSize bytes)
   * and deletes the key, as one step. Returns OK, NOT_FOUND or BUSY.
   */
  lookupAndDelete(key: Uint8Array, out: Uint8Array): number {
    this.takeKey(key, 'lookupAndDelete');
    const vb = this.batchValueBytes;
    if (!(out instanceof Uint8Array) || out.length < vb) {
      throw typeError('bad-argument', `lookupAndDelete: out must be a Uint8Array of at least ${vb} bytes${this.perWorker ? ' (maxWorkers x valueSize)' : ''}, got ${out instanceof Uint8Array ? `${out.length} bytes` : describe(out)}`);
    }
    const b = this.hashKey() & this.mask;
    this.pin();
    let head = this.lock(b);
    if (head < 0) {
      this.unpin();
      return MapStatus.BUSY;
    }
    const e = this.findLocked(head);
    const pred = this.pred;
    let torn = -1;
    if (e !== 0) {
      if (this.perWorker) {
        for (let s = 0; s < this.heap.maxSlots && torn < 0; s++) if (!this.readSlot(e, s, out, s * this.valueSize)) torn = s;
      } else {
        if (this.copies === 2) this.lockValue(e);
        this.copyOutAt(this.valueAt(e), out, 0);
      }
    }
    if (e === 0 || torn >= 0) {
      this.unlock(b, head);
      this.unpin();
      if (torn >= 0) throw midWrite(torn);
      return MapStatus.NOT_FOUND;
    }
    head = this.unlinkLogged(b, e, pred, head);
    this.unlock(b, head);
    this.unpin();
    this.i32[this.rowWord + MapSlotRow.OP] = 0;
    this.elems.freeDeferred(e);
    return MapStatus.OK;
  }

  /**
   * Looks up each of n = keys.length / keySize keys on its own (not a
   * kernel batch: see lookupBatch for the walk): values go to values[i *
   * valueSize], found[i] = 1 or 0 when given. Returns how many were found.
   */
  lookupEach(keys: Uint8Array, values: Uint8Array, found?: Uint8Array): number {
    const n = this.batchCount(keys, values, 'lookupEach');
    const k = new Uint8Array(this.keySize);
    const v = new Uint8Array(this.valueSize);
    let hits = 0;
    for (let i = 0; i < n; i++) {
      k.set(keys.subarray(i * this.keySize, (i + 1) * this.keySize));
      const ok = this.lookup(k, v);
      if (ok) {
        values.set(v, i * this.valueSize);
        hits++;
      }
      if (found !== undefined) found[i] = ok ? 1 : 0;
    }
    return hits;
  }

  /**
   * The kernel's update_batch: updates n = keys.length / keySize keys in
   * order and stops at the first failure. Writes the pairs written to
   * io[1] when `io` is given. Returns OK, or the status of the first
   * failure (key number io[1]).
   */
  updateBatch(keys: Uint8Array, values: Uint8Array, flag: number = MapFlag.ANY, io?: Uint32Array): number {
    const n = this.batchCount(keys, values, 'updateBatch');
    this.checkIo(io, 'updateBatch');
    const k = new Uint8Array(this.keySize);
    const v = new Uint8Array(this.valueSize);
    let i = 0;
    let st: number = MapStatus.OK;
    for (; i < n; i++) {
      k.set(keys.subarray(i * this.keySize, (i + 1) * this.keySize));
      v.set(values.subarray(i * this.valueSize, (i + 1) * this.valueSize));
      st = this.update(k, v, flag);
      if (st !== MapStatus.OK) break;
    }
    if (io !== undefined) io[1] = i;
    return st;
  }

  /**
   * The kernel's delete_batch: deletes n = keys.length / keySize keys in
   * order and stops at the first failure: an absent key stops it with
   * NOT_FOUND. Writes the keys deleted to io[1] when `io` is given.
   * Returns OK, or the status of the first failure (key number io[1]).
   */
  deleteBatch(keys: Uint8Array, io?: Uint32Array): number {
    if (!(keys instanceof Uint8Array) || keys.length % this.keySize !== 0) {
      throw typeError('bad-argument', `deleteBatch: keys must be a Uint8Array of a multiple of keySize ${this.keySize} bytes`);
    }
    this.checkIo(io, 'deleteBatch');
    const k = new Uint8Array(this.keySize);
    const n = keys.length / this.keySize;
    let i = 0;
    let st: number = MapStatus.OK;
    for (; i < n; i++) {
      k.set(keys.subarray(i * this.keySize, (i + 1) * this.keySize));
      st = this.delete(k);
      if (st !== MapStatus.OK) break;
    }
    if (io !== undefined) io[1] = i;
    return st;
  }

  /** @internal */
  checkIo(io: Uint32Array | undefined, op: string): void {
    if (io !== undefined && (!(io instanceof Uint32Array) || io.length < 2)) throw typeError('bad-argument', `${op}: io must be a Uint32Array of 2 words (cursor, count), got ${describe(io)}`);
  }

  /** @internal */
  batchCount(keys: Uint8Array, values: Uint8Array, op: string): number {
    if (!(keys instanceof Uint8Array) || keys.length % this.keySize !== 0) {
      throw typeError('bad-argument', `${op}: keys must be a Uint8Array of a multiple of keySize ${this.keySize} bytes`);
    }
    const n = keys.length / this.keySize;
    if (!(values instanceof Uint8Array) || values.length < n * this.valueSize) {
      throw typeError('bad-argument', `${op}: values must hold ${n} x valueSize ${this.valueSize} bytes`);
    }
    return n;
  }
}
