/**
 * The invariants of a quiet map (no writer running), as ./layout.ts
 * states them: chains end and hold each key once, in the bucket its hash
 * names; the per-slot counts match the reachable elements; RESERVED
 * covers the counts and quotas (plus what writers that died
 * mid-reservation may have left); no lock or write record is left open.
 */
import { load } from '../shm/atomic.js';
import { E_NEXT, MapHeader, MAP_HEADER_WORDS, MAP_SLOT_WORDS, MapSlotRow, markEntries } from './layout.js';
import { LOCKED, type MapBuckets } from './buckets.js';

/** @internal HashMap.validate: the problems found. */
export function validateMap(m: MapBuckets): string[] {
  const errors: string[] = [];
  m.heap.refresh();
  const u32 = m.u32;
  let reachable = 0;
  const seen = new Set<string>();
  for (let b = 0; b <= m.mask; b++) {
    if ((load(u32, m.bucketWord + b) & LOCKED) !== 0) errors.push(`bucket ${b} is locked`);
    let guard = 0;
    for (let e = (load(u32, m.bucketWord + b) & ~LOCKED) >>> 0; e !== 0; e = load(u32, (e >>> 2) + E_NEXT)) {
      if (++guard > m.maxEntries + 1) {
        errors.push(`bucket ${b}: chain loops`);
        break;
      }
      reachable++;
      const k = m.u8.slice(e + m.keyOff, e + m.keyOff + m.keySize);
      m.kw.fill(0);
      m.kb.set(k);
      const h = m.hashKey();
      if ((h & m.mask) !== b) errors.push(`element ${e}: in bucket ${b}, hashes to ${h & m.mask}`);
      const id = k.join(',');
      if (seen.has(id)) errors.push(`key ${id} appears twice`);
      seen.add(id);
    }
  }
  const counted = m.sumSlotRows(MapSlotRow.COUNT);
  if (counted !== reachable) errors.push(`per-slot counts sum to ${counted}, ${reachable} elements reachable`);
  let quota = 0;
  for (let s = 0; s < m.heap.maxSlots; s++) quota += markEntries(m.i32[m.W + MAP_HEADER_WORDS + s * MAP_SLOT_WORDS + MapSlotRow.QUOTA]!);
  const reserved = load(u32, m.W + MapHeader.RESERVED);
  const slack = load(u32, m.W + MapHeader.RESERVED_SLACK);
  if (reserved < counted + quota || reserved > counted + quota + slack) {
    errors.push(`reserved ${reserved} is not count ${counted} + quota ${quota} (+ up to ${slack} from writers that died mid-reservation)`);
  }
  for (let s = 0; s < m.heap.maxSlots; s++) {
    const row = m.W + MAP_HEADER_WORDS + s * MAP_SLOT_WORDS;
    if (m.i32[row + MapSlotRow.OP] !== 0) errors.push(`slot ${s}: a write is in flight in a quiet map (op ${m.i32[row + MapSlotRow.OP]})`);
    if (m.i32[row + MapSlotRow.INTENT] !== 0) errors.push(`slot ${s}: names bucket ${m.i32[row + MapSlotRow.INTENT]! - 1} as locked in a quiet map`);
  }
  if (reserved > m.maxEntries) errors.push(`reserved ${reserved} > maxEntries ${m.maxEntries}`);
  return errors;
}
