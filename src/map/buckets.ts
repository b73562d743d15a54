/**
 * Buckets: a word each, the head of a chain of elements with bit 0 as the
 * writers' lock (./layout.ts). Readers walk a chain without the lock,
 * inside a read-side section; writers that insert, delete or replace an
 * element take the lock, naming the bucket in their slot row's INTENT
 * first, so that a survivor can tell a lock held by a dead writer
 * (../recovery/map-slot.ts).
 */
import { cas, load, store } from '../shm/atomic.js';
import { E_NEXT, MapSlotRow } from './layout.js';
import { MapKeys } from './key.js';

/** @internal Bit 0 of a bucket word: its lock (elements are 16-byte aligned). */
export const LOCKED = 1;
/** How long a writer spins on a bucket lock before it reports BUSY. */
const LOCK_SPIN_MS = 500;

/** @hidden HashMap's layer of buckets: chain search and bucket locks (the layers: ./state.ts). */
export class MapBuckets extends MapKeys {
  /**
   * @internal
   * Finds the element of the key in the scratch words in bucket b (pinned,
   * or holding the lock); 0 if absent.
   * The head is read with an atomic load, which orders it after the
   * writer's publishing store. The rest of the walk uses plain loads, as
   * the kernel's rcu_dereference does: every later load takes its address
   * from the previous one, and an element is fully written before the
   * atomic store that links it (Atomics.load costs ~8 ns in V8 here; a
   * plain load ~1.5 ns).
   */
  find(b: number): number {
    let e = (load(this.u32, this.bucketWord + b) & ~LOCKED) >>> 0;
    while (e !== 0) {
      if (e + 64 > this.heap.viewBytes) this.reach(e);
      const u32 = this.u32;
      if (this.keyEquals(e)) return e;
      e = u32[(e >>> 2) + E_NEXT]!;
    }
    return 0;
  }

  /**
   * @internal
   * Finds the key in a locked bucket's chain starting at head; the element
   * before it (0 if it is first) is left in m.pred.
   */
  findLocked(head: number): number {
    let pred = 0;
    let e = head;
    while (e !== 0) {
      if (e + 64 > this.heap.viewBytes) this.reach(e);
      if (this.keyEquals(e)) break;
      pred = e;
      e = this.u32[(e >>> 2) + E_NEXT]!;
    }
    this.pred = pred;
    return e;
  }

  /**
   * @internal
   * Takes bucket b's lock, spinning; returns the chain's head, or -1 (BUSY).
   * A holder can be descheduled by the OS for a whole time slice, so the
   * bound is in time: after LOCK_SPIN_MS the lock is taken to be held by a
   * stalled or dead writer.
   */
  lock(b: number): number {
    const w = this.bucketWord + b;
    const u32 = this.u32;
    let deadline = 0;
    for (let i = 0; ; i++) {
      const v = u32[w]!;
      if ((v & LOCKED) === 0) {
        // Named before the cas and until after the unlock: a survivor that
        // finds the bucket locked and named by no live slot knows the dead
        // one held it (../recovery/map-slot.ts).
        this.i32[this.rowWord + MapSlotRow.INTENT] = b + 1;
        if (cas(u32, w, v, v | LOCKED) === v) return v;
        this.i32[this.rowWord + MapSlotRow.INTENT] = 0;
      }
      if ((i & 1023) === 1023) {
        const now = Date.now();
        if (deadline === 0) deadline = now + LOCK_SPIN_MS;
        else if (now > deadline) return -1;
      }
    }
  }

  /** @internal Releases bucket b's lock, publishing `head` as its first element in the same store. */
  unlock(b: number, head: number): void {
    store(this.u32, this.bucketWord + b, head);
    this.i32[this.rowWord + MapSlotRow.INTENT] = 0;
  }

  /** @internal The first element of bucket b (lock bit masked off), 0 if empty. */
  bucketHead(b: number): number {
    return (load(this.u32, this.bucketWord + b) & ~LOCKED) >>> 0;
  }
}
