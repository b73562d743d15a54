/**
 * HashMap's layer of the operations on one key: lookups (lock-free: pin,
 * walk the chain, copy out), updates (in place, or a new element swapped in
 * under the bucket lock), deletes, clear and iteration. The layers: ./state.ts.
 *
 * The operations on every call (lookup, update, delete and the methods
 * they call) allocate nothing.
 */
import { load, store } from '../shm/atomic.js';
import { describe, rangeError, typeError } from '../errors.js';
import { E_NEXT, MapSlotRow, OP_DELETE, OP_INSERT, OP_QUOTA_NONE, OP_REPLACE } from './layout.js';
import { MapFlag, MapStatus } from './status.js';
import { UPDATE_REPLACE } from './element.js';
import { MapPerWorker, midWrite } from './per-worker.js';

/** @hidden HashMap's layer of the operations on one key (the layers: ./state.ts). */
export class MapOperations extends MapPerWorker {
  /**
   * @internal The write-ahead record (layout.ts) of an insert of element
   * `fresh` into bucket b, written before the bucket lock is taken: OP goes
   * last. No allocation.
   */
  logInsert(b: number, fresh: number): void {
    const i32 = this.i32;
    const row = this.rowWord;
    i32[row + MapSlotRow.OP_BUCKET] = b + 1;
    i32[row + MapSlotRow.OP_ELEM] = fresh;
    i32[row + MapSlotRow.OP_OLD] = 0;
    i32[row + MapSlotRow.OP_COUNT] = i32[row + MapSlotRow.COUNT]!;
    i32[row + MapSlotRow.OP_QUOTA] = OP_QUOTA_NONE;
    i32[row + MapSlotRow.OP] = OP_INSERT;
  }

  /** @internal The write-ahead record of a delete of element e from bucket b (locked by this agent): OP goes last. */
  logDelete(b: number, e: number): void {
    const i32 = this.i32;
    const row = this.rowWord;
    i32[row + MapSlotRow.OP_BUCKET] = b + 1;
    i32[row + MapSlotRow.OP_ELEM] = e;
    i32[row + MapSlotRow.OP_COUNT] = i32[row + MapSlotRow.COUNT]!;
    i32[row + MapSlotRow.OP_QUOTA] = OP_QUOTA_NONE;
    i32[row + MapSlotRow.OP] = OP_DELETE;
  }

  /**
   * @internal Unlinks element e (after `pred`, 0 when e heads the chain)
   * from bucket b, whose lock this agent holds, with its write-ahead
   * record: the slot's count and its entry go with it (under the lock: a
   * slot changes its QUOTA only there, ./quota.ts). Returns the chain's new
   * head, which the caller's unlock publishes (a survivor that finds e
   * still heading the chain of a lock the dead writer held, with the
   * entry given, completes the delete: ../recovery/map-slot.ts). No
   * allocation.
   */
  unlinkLogged(b: number, e: number, pred: number, head: number): number {
    const i32 = this.i32;
    const row = this.rowWord;
    this.logDelete(b, e);
    const next = this.u32[(e >>> 2) + E_NEXT]!;
    if (pred === 0) head = next;
    else store(this.u32, (pred >>> 2) + E_NEXT, next);
    i32[row + MapSlotRow.COUNT]!--;
    this.giveEntry();
    return head;
  }

  /**
   * Deletes every element of locked bucket b's chain (from head), each
   * logged as an OP_DELETE for a survivor, and retires them. The bucket is
   * left empty (still locked). Returns how many were deleted.
   */
  deleteChain(b: number, head: number): number {
    const i32 = this.i32;
    const row = this.rowWord;
    let n = 0;
    let e = head;
    while (e !== 0) {
      this.reach(e);
      const next = this.u32[(e >>> 2) + E_NEXT]!;
      this.logDelete(b, e);
      // Unlinked from the head: the bucket word is stored at unlock, but
      // a survivor walks the chain from the word, so store it now.
      store(this.u32, this.bucketWord + b, (next | 1) >>> 0);
      i32[row + MapSlotRow.COUNT]!--;
      this.giveEntry();
      i32[row + MapSlotRow.OP] = 0;
      this.elems.freeDeferred(e);
      n++;
      e = next;
    }
    return n;
  }

  /* -------------------------------- reads ------------------------------- */

  /**
   * Copies the value of `key` into `out` (per-worker maps: this agent's
   * slot). Returns false when the key is absent. Lock-free; never sees a
   * torn value. No JS allocation.
   */
  lookup(key: Uint8Array, out: Uint8Array): boolean {
    this.takeKey(key, 'lookup');
    this.checkValue(out, 'lookup', 'out');
    return this.lookupTaken(out);
  }

  /** lookup() with a number key (keySize >= 4: the number little-endian, zero-extended). */
  lookupNumber(key: number, out: Uint8Array): boolean {
    this.takeNumber(key, 'lookupNumber');
    this.checkValue(out, 'lookupNumber', 'out');
    return this.lookupTaken(out);
  }

  /** @internal */
  lookupTaken(out: Uint8Array): boolean {
    const h = this.hashKey();
    this.pin();
    const e = this.find(h & this.mask);
    let torn = false;
    if (e !== 0) {
      if (this.perWorker) torn = !this.readSlot(e, this.heap.slot, out);
      else this.copyOut(this.valueAt(e), out);
    }
    // Unpinned before any throw: a pin left behind would hold every grace
    // period in the heap back.
    this.unpin();
    if (torn) throw midWrite(this.heap.slot);
    return e !== 0;
  }

  /** True when `key` is in the map. */
  has(key: Uint8Array): boolean {
    return this.locate(key, 'has') !== 0;
  }

  /** The element of `key` (0 if absent), found in a read-side section of its own. */
  locate(key: Uint8Array, op: string): number {
    this.takeKey(key, op);
    const h = this.hashKey();
    this.pin();
    const e = this.find(h & this.mask);
    this.unpin();
    return e;
  }

  /**
   * Byte offset of the value of `key` in the heap (per-worker: this
   * agent's slot value), 0 when absent: for in-place Atomics updates such
   * as counters. The offset stays valid until the key is deleted or its
   * value replaced by update(); an agent that may race with those should
   * do its in-place work inside read().
   */
  lookupOffset(key: Uint8Array): number {
    this.takeKey(key, 'lookupOffset');
    const h = this.hashKey();
    this.pin();
    const e = this.find(h & this.mask);
    const at = e === 0 ? 0 : this.perWorker ? e + this.valueOff + this.stride * this.heap.slot + 8 : this.valueAt(e);
    this.unpin();
    return at;
  }

  /** Runs fn inside a read-side section: offsets from lookupOffset stay valid until it returns. */
  read<T>(fn: () => T): T {
    if (this.detached) throw rangeError('detached', 'read: this map is detached in this agent');
    this.pin();
    try {
      return fn();
    } finally {
      this.unpin();
    }
  }

  /* ------------------------------- writes ------------------------------- */

  /**
   * Sets the value of `key` (per-worker maps: this agent's slot). flag:
   * MapFlag.ANY, NOEXIST (EXISTS if present) or EXIST (NOT_FOUND if
   * absent). Returns MapStatus.OK or a negative MapStatus.
   */
  update(key: Uint8Array, value: Uint8Array, flag: number = MapFlag.ANY): number {
    this.takeKey(key, 'update');
    return this.updateTaken(value, flag, 'update');
  }

  /** update() with a number key (keySize >= 4: the number little-endian, zero-extended). */
  updateNumber(key: number, value: Uint8Array, flag: number = MapFlag.ANY): number {
    this.takeNumber(key, 'updateNumber');
    return this.updateTaken(value, flag, 'updateNumber');
  }

  /** @internal */
  updateTaken(value: Uint8Array, flag: number, op: string): number {
    this.checkValue(value, op);
    if (flag !== 0 && flag !== 1 && flag !== 2) throw (Number.isInteger(flag) ? rangeError : typeError)('bad-argument', `${op} flag must be MapFlag.ANY (0), NOEXIST (1) or EXIST (2), got ${describe(flag)}`);
    const b = this.hashKey() & this.mask;
    if (this.perWorker && flag !== MapFlag.NOEXIST) {
      // In place in our own slot: no lock, no new element; pinned, since
      // the element may be deleted and retired meanwhile.
      this.pin();
      const e = this.find(b);
      if (e !== 0) this.writeSlot(e, value);
      this.unpin();
      if (e !== 0) return MapStatus.OK;
      if (flag === MapFlag.EXIST) return MapStatus.NOT_FOUND;
    } else if (this.copies === 2 && (flag === MapFlag.EXIST || (flag === MapFlag.ANY && this.anyHits >= 2))) {
      const st = this.updateInPlace(b, value, flag);
      if (st !== UPDATE_REPLACE) return st;
    }
    // Writers need no pin: under the bucket lock every element of the
    // chain is live (retired ones are unlinked first), so the epoch is
    // never held back by a writer waiting for a lock (unless it writes
    // inside read(): its own pin then also holds back what newElement
    // may wait for).
    return this.updateLocked(b, value, flag);
  }

  /**
   * This agent's updates of present keys in an in-place map, since it
   * attached: done in place, and done by replacing the element (its spare
   * copy was locked by another writer or could still have readers, or the
   * update went to the bucket lock first because this agent's recent ANY
   * updates were inserts). Both 0 in other maps.
   */
  get updateCounts(): {
    /** Updates of a present key written in place (the element's spare value copy). */
    inPlace: number;
    /** Updates that built a new element and swapped it in. */
    replaced: number;
  } {
    return { inPlace: this.inPlaceCount, replaced: this.replacedCount };
  }

  /** @internal */
  updateLocked(b: number, value: Uint8Array, flag: number, fresh = this.newElement(value), whole = false): number {
    // The new element is built before the lock is taken (the default
    // argument; updateAll passes its own with every slot's value, `whole`):
    // the lock is held only for the search and the pointer swap.
    const i32 = this.i32;
    const row = this.rowWord;
    if (fresh !== 0) {
      // The write-ahead record (layout.ts): OP goes last.
      this.logInsert(b, fresh);
    }
    let head = this.lock(b);
    if (head < 0) {
      i32[row + MapSlotRow.OP] = 0;
      if (fresh !== 0) this.elems.free(fresh);
      return MapStatus.BUSY;
    }
    const e = this.findLocked(head);
    const pred = this.pred;
    if (flag === MapFlag.ANY && !whole) this.anyHits = e !== 0 ? Math.min(3, this.anyHits + 1) : Math.max(0, this.anyHits - 1);
    let status: number = MapStatus.OK;
    if (e !== 0 && flag === MapFlag.NOEXIST) status = MapStatus.EXISTS;
    else if (e === 0 && flag === MapFlag.EXIST) status = MapStatus.NOT_FOUND;
    else if (e !== 0 && this.perWorker && !whole) {
      this.writeSlot(e, value); // raced with an insert of the same key
    } else if (fresh === 0) {
      status = MapStatus.NO_MEMORY;
    } else if (e === 0 && !this.takeEntry()) {
      status = MapStatus.FULL;
    } else {
      // fresh.next is published by the atomic store that links fresh.
      if (e !== 0) {
        // Replace: readers see the old element or the new one, never a mix.
        if (this.copies === 2) this.replacedCount++;
        i32[row + MapSlotRow.OP_OLD] = e;
        i32[row + MapSlotRow.OP] = OP_REPLACE;
        this.u32[(fresh >>> 2) + E_NEXT] = this.u32[(e >>> 2) + E_NEXT]!;
        if (pred === 0) head = fresh;
        else store(this.u32, (pred >>> 2) + E_NEXT, fresh);
      } else {
        this.u32[(fresh >>> 2) + E_NEXT] = head;
        head = fresh;
        this.i32[this.rowWord + MapSlotRow.COUNT]!++;
      }
      fresh = 0;
    }
    this.unlock(b, head);
    // Done: the record goes before any free, so that a survivor never acts
    // on an element that may have been reused.
    i32[row + MapSlotRow.OP] = 0;
    if (fresh !== 0) this.elems.free(fresh);
    if (status === MapStatus.OK && e !== 0 && (!this.perWorker || whole)) this.elems.freeDeferred(e);
    return status;
  }

  /**
   * Per-worker maps: sets every slot's value of `key` at once (the
   * kernel's update of a per-CPU map from user space): `values` holds
   * maxWorkers x valueSize bytes, slot order. flag as update(). The key's
   * element is replaced by a new one, so readers see all old values or
   * all new ones; a slot's own in-place update that races with it lands
   * in the old element and is lost, as it would be overwritten anyway.
   */
  updateAll(key: Uint8Array, values: Uint8Array, flag: number = MapFlag.ANY): number {
    this.takeKey(key, 'updateAll');
    if (!this.perWorker) throw typeError('wrong-mode', 'updateAll needs a per-worker map');
    const slots = this.heap.maxSlots;
    if (!(values instanceof Uint8Array) || values.length < slots * this.valueSize) {
      throw typeError('bad-argument', `updateAll: values must hold maxWorkers x valueSize = ${slots * this.valueSize} bytes, got ${values instanceof Uint8Array ? `${values.length} bytes` : describe(values)}`);
    }
    if (flag !== 0 && flag !== 1 && flag !== 2) throw rangeError('bad-argument', `updateAll flag must be MapFlag.ANY (0), NOEXIST (1) or EXIST (2), got ${describe(flag)}`);
    const b = this.hashKey() & this.mask;
    const fresh = this.newElement(values);
    if (fresh !== 0) {
      // Unpublished yet: plain stores (the linking store publishes them).
      const u8 = this.u8;
      for (let s = 0; s < slots; s++) {
        const dst = fresh + this.valueOff + this.stride * s + 8;
        const src = s * this.valueSize;
        for (let i = 0; i < this.valueSize; i++) u8[dst + i] = values[src + i]!;
      }
    }
    return this.updateLocked(b, values, flag, fresh, true);
  }

  /** Deletes `key`. Returns MapStatus.OK, NOT_FOUND or BUSY. */
  delete(key: Uint8Array): number {
    this.takeKey(key, 'delete');
    return this.deleteTaken();
  }

  /** delete() with a number key (keySize >= 4). */
  deleteNumber(key: number): number {
    this.takeNumber(key, 'deleteNumber');
    return this.deleteTaken();
  }

  /** @internal */
  deleteTaken(): number {
    const h = this.hashKey();
    const b = h & this.mask;
    let head = this.lock(b);
    if (head < 0) return MapStatus.BUSY;
    const e = this.findLocked(head);
    const pred = this.pred;
    const i32 = this.i32;
    const row = this.rowWord;
    if (e !== 0) {
      head = this.unlinkLogged(b, e, pred, head);
    }
    this.unlock(b, head);
    if (e === 0) return MapStatus.NOT_FOUND;
    i32[row + MapSlotRow.OP] = 0;
    this.elems.freeDeferred(e);
    return MapStatus.OK;
  }

  /** Deletes every element. Returns how many were deleted. */
  clear(): number {
    if (this.detached) throw rangeError('detached', 'clear: this map is detached in this agent');
    let n = 0;
    for (let b = 0; b <= this.mask; b++) {
      if (load(this.u32, this.bucketWord + b) === 0) continue;
      const head = this.lock(b);
      if (head < 0) throw rangeError('busy', `clear: bucket ${b} stays locked: a writer stalled or died`);
      // Each element with its write record, as the batch delete does: a
      // survivor settles an agent terminated mid-clear element by element.
      n += this.deleteChain(b, head);
      this.unlock(b, 0);
    }
    return n;
  }

  /* ------------------------------ iteration ----------------------------- */

  /**
   * The kernel's get_next_key: writes into `out` the key after `key` in
   * iteration order (the first key when `key` is null or absent). Returns
   * false at the end. Keys inserted or deleted meanwhile may or may not be
   * seen; each key present throughout is seen exactly once.
   */
  getNextKey(key: Uint8Array | null, out: Uint8Array): boolean {
    if (!(out instanceof Uint8Array) || out.length < this.keySize) throw typeError('bad-argument', `getNextKey: out must hold keySize ${this.keySize} bytes`);
    if (this.detached) throw rangeError('detached', 'getNextKey: this map is detached in this agent');
    let b = 0;
    this.pin();
    try {
      if (key !== null) {
        this.takeKey(key, 'getNextKey');
        const h = this.hashKey();
        b = h & this.mask;
        const e = this.find(b);
        if (e !== 0) {
          const next = load(this.u32, (e >>> 2) + E_NEXT);
          if (next !== 0) return this.copyKey(next, out);
          b++;
        } else {
          b = 0;
        }
      }
      for (; b <= this.mask; b++) {
        const e = this.bucketHead(b);
        if (e !== 0) return this.copyKey(e, out);
      }
      return false;
    } finally {
      this.unpin();
    }
  }

  /** Iterates over the keys (each a new Uint8Array: allocates). */
  *keys(): IterableIterator<Uint8Array> {
    let prev: Uint8Array | null = null;
    for (;;) {
      const k = new Uint8Array(this.keySize);
      if (!this.getNextKey(prev, k)) return;
      yield k;
      prev = k;
    }
  }

  /** Iterates over [key, value] pairs (allocates; pairs whose key vanished meanwhile are skipped). */
  *entries(): IterableIterator<[Uint8Array, Uint8Array]> {
    for (const k of this.keys()) {
      const v = new Uint8Array(this.valueSize);
      if (this.lookup(k, v)) yield [k, v];
    }
  }
}
