/**
 * validate() of a debug allocator: beyond heap.validate(), the header and
 * canary of each live object, the poison of each quarantined one (in any
 * agent's quarantine) and of each really free one that was poisoned.
 */
import { KIND_LARGE, ST_ALLOCATED, ST_FREE, ST_RETIRED, tagKind } from '../../shm/layout.js';
import { MISUSE, type AllocatorMisuseError } from '../misuse.js';
import {
  DEBUG_HEADER,
  DEBUG_OVERHEAD,
  DEFR,
  LIVE,
  canaryFault,
  checkWord,
  hasMarker,
  isQuarantinedHead,
  poisonFault,
  quarantineFault,
  writeAfterFreeError,
} from './guard.js';
import { forEachObject, misuseError, stateOf, userPointer, type DebugShape } from './objects.js';
import type { Quarantine } from './quarantine.js';

const HEAD = DEBUG_HEADER;

/**
 * Appends to `errors` what is wrong with the objects of the allocator,
 * `mine` being this agent's quarantine (checked in full; other agents'
 * quarantined objects are recognised in the walk by their QUAR header).
 */
export function validateObjects(a: DebugShape, mine: Quarantine, errors: string[]): void {
  const heap = a.heap;
  const say = (e: AllocatorMisuseError): void => {
    errors.push(`allocator ${a.id}: ${e.message}`);
  };
  const own = new Set<number>();
  mine.forEach((base, unit) => {
    own.add(base);
    if (stateOf(a, base) !== ST_ALLOCATED && tagKind(heap.u32[heap.tagWord + (base >>> a.pageShift)]!) !== KIND_LARGE) {
      errors.push(`allocator ${a.id}: object ${userPointer(a, base)} is in this agent's quarantine but not allocated`);
      return;
    }
    const bad = quarantineFault(heap, base, unit);
    if (bad !== -1) say(writeAfterFreeError(heap, 'validate', userPointer(a, base), base, unit, bad, "found in this agent's quarantine"));
  });
  forEachObject(a, (base, unit, state) => {
    if (own.has(base)) return;
    const e = objectProblem(a, base, unit, state);
    if (e !== null) say(e);
  });
}

/** What is wrong with the object at base (state byte st), or null. */
function objectProblem(a: DebugShape, base: number, unit: number, st: number): AllocatorMisuseError | null {
  const heap = a.heap;
  const u32 = heap.u32;
  const w = base >>> 2;
  const p = userPointer(a, base);
  if (st === ST_FREE) {
    if (unit < 2 * HEAD || !hasMarker(heap, base, unit)) return null;
    const bad = poisonFault(heap, base, unit);
    return bad < 0 ? null : writeAfterFreeError(heap, 'validate', p, base, unit, bad, 'found in a free object');
  }
  if (st !== ST_ALLOCATED && st !== ST_RETIRED) return null;
  if (isQuarantinedHead(heap, base)) {
    const bad = quarantineFault(heap, base, unit);
    return bad === -1 ? null : writeAfterFreeError(heap, 'validate', p, base, unit, bad, `found in the quarantine of agent slot ${u32[w + 3]}`);
  }
  if (a.fixed) return null;
  const state = st === ST_RETIRED ? DEFR : LIVE;
  if (u32[w + 1] !== (state ^ base) >>> 0 || u32[w + 2] !== checkWord(u32[w]!, u32[w + 3]!, base) || u32[w]! + DEBUG_OVERHEAD > unit) {
    return misuseError('validate', p, `${MISUSE.canary}: the 16-byte header before the object was overwritten`, 'canary');
  }
  const size = u32[w]!;
  const j = canaryFault(heap, base, size);
  if (j < 0) return null;
  return misuseError('validate', p, `${MISUSE.canary}: byte ${size + j} (${j} past the end of the ${size}-byte object) was overwritten`, 'canary');
}
