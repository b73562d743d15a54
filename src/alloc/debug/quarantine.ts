/**
 * The quarantine: the objects an agent freed last stay allocated and
 * poisoned (guard.ts) before they really go back to the release
 * allocator, so a write through a dangling pointer lands in poison that
 * is checked later. Each agent keeps its own, in its JS memory; the
 * objects carry a QUAR header naming that agent's slot and generation, so
 * the quarantine of an agent that is gone can be found in the heap.
 */
import { SlotRow, SLOT_ATTACHED, SLOT_ROW_WORDS, ST_ALLOCATED } from '../../shm/layout.js';
import { isQuarantinedHead } from './guard.js';
import { forEachObject, type DebugShape } from './objects.js';

export const DEFAULT_QUARANTINE_OBJECTS = 64;
export const DEFAULT_QUARANTINE_BYTES = 4 << 20;

/** One agent's quarantine: a ring of (base, unit), oldest first. */
export class Quarantine {
  private base = new Uint32Array(DEFAULT_QUARANTINE_OBJECTS);
  private unit = new Float64Array(DEFAULT_QUARANTINE_OBJECTS);
  private head = 0;
  /** Objects in it. */
  count = 0;
  /** Bytes (whole units) in it. */
  bytes = 0;

  push(base: number, unit: number): void {
    if (this.count === this.base.length) this.grow();
    const i = (this.head + this.count) & (this.base.length - 1);
    this.base[i] = base;
    this.unit[i] = unit;
    this.count++;
    this.bytes += unit;
  }

  /** Base of the oldest object (count > 0). */
  get oldestBase(): number {
    return this.base[this.head]!;
  }

  /** Unit of the oldest object (count > 0). */
  get oldestUnit(): number {
    return this.unit[this.head]!;
  }

  /** Removes the oldest object. */
  dropOldest(): void {
    const unit = this.unit[this.head]!;
    this.head = (this.head + 1) & (this.base.length - 1);
    this.count--;
    this.bytes -= unit;
  }

  /** Calls visit for each object, oldest first. */
  forEach(visit: (base: number, unit: number) => void): void {
    for (let i = 0; i < this.count; i++) {
      const j = (this.head + i) & (this.base.length - 1);
      visit(this.base[j]!, this.unit[j]!);
    }
  }

  /** The bases of its objects. */
  bases(): Set<number> {
    const mine = new Set<number>();
    this.forEach((base) => mine.add(base));
    return mine;
  }

  private grow(): void {
    const n = this.base.length;
    const b = new Uint32Array(n * 2);
    const u = new Float64Array(n * 2);
    for (let i = 0; i < this.count; i++) {
      b[i] = this.base[(this.head + i) & (n - 1)]!;
      u[i] = this.unit[(this.head + i) & (n - 1)]!;
    }
    this.base = b;
    this.unit = u;
    this.head = 0;
  }
}

/**
 * The quarantined objects of agents that are gone (slot released, or since
 * taken by another agent); with `all`, those of every agent but the
 * owner of `mine`. Changes nothing.
 */
export function findOrphans(a: DebugShape, mine: Quarantine, all: boolean): { base: number; unit: number }[] {
  const heap = a.heap;
  heap.refresh();
  const own = mine.bases();
  const orphans: { base: number; unit: number }[] = [];
  forEachObject(a, (base, unit, state) => {
    if (state !== ST_ALLOCATED || own.has(base) || !isQuarantinedHead(heap, base)) return;
    const u32 = heap.u32;
    const w = base >>> 2;
    const slot = u32[w + 3]!;
    const gen = u32[w]!;
    if (!all && slot < heap.maxSlots) {
      const sw = heap.slotWord + slot * SLOT_ROW_WORDS;
      if (u32[sw + SlotRow.STATE] === SLOT_ATTACHED && u32[sw + SlotRow.GEN] === gen) return;
    }
    orphans.push({ base, unit });
  });
  return orphans;
}
