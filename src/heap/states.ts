/**
 * The state buffer: a heap's object states, one byte per 16 bytes of its
 * buffer, in a SharedArrayBuffer of their own (layout in ../shm/layout.ts,
 * "The buffer"). Its size, the identity stamp an attach checks, and its
 * growth ahead of the heap's buffer.
 */
import { GRANULE } from '../shm/layout.js';
import { rangeError } from '../errors.js';

/** Bytes of the state buffer that cover the first `bytes` of a heap's buffer (granules, rounded up to 8). */
export function stateBytesFor(bytes: number): number {
  return Math.ceil(bytes / (GRANULE * 8)) * 8;
}

/**
 * Writes the heap's identity into the state bytes of its header's first
 * granules (no object lies there), once, at create.
 */
export function stampStates(states: SharedArrayBuffer, base: number, id: number): void {
  new Uint8Array(states, base >>> 4, 4).set([id & 255, (id >>> 8) & 255, (id >>> 16) & 255, id >>> 24]);
}

/**
 * Checks that `states` is the state buffer of the heap whose header says
 * `maxBytes`, `committedBytes` (read before: the states grow first) and
 * `id`, at `base`: its size, its reach, its stamp. RangeError 'bad-handle'.
 */
export function checkStates(states: SharedArrayBuffer, base: number, maxBytes: number, committedBytes: number, id: number): void {
  const max = states.growable ? states.maxByteLength : states.byteLength;
  if (max !== stateBytesFor(maxBytes)) {
    throw rangeError('bad-handle', `states: a state buffer of ${max} bytes is not this heap's (it has ${stateBytesFor(maxBytes)}, one byte per 16 bytes of maxBytes)`);
  }
  const foreign = (): Error => rangeError('bad-handle', `states: not this heap's state buffer (another heap's, or one it never made)`);
  if (states.byteLength < Math.max(stateBytesFor(committedBytes), (base >>> 4) + 4)) throw foreign();
  const stamp = new Uint8Array(states, base >>> 4, 4);
  if ((stamp[0]! | (stamp[1]! << 8) | (stamp[2]! << 16) | (stamp[3]! << 24)) >>> 0 !== id) throw foreign();
}

/**
 * Grows the state buffer to cover at least `bytes` of the heap's buffer,
 * `ahead` if it can (the heap's next growth step). False when it cannot
 * cover `bytes` (at its maximum, or the engine refused).
 */
export function growStates(states: SharedArrayBuffer, bytes: number, ahead: number): boolean {
  if (states.byteLength >= stateBytesFor(bytes)) return true;
  try {
    states.grow(Math.min(stateBytesFor(Math.max(bytes, ahead)), states.maxByteLength));
  } catch {
    // Another agent may have grown it meanwhile (a smaller size throws).
  }
  return states.byteLength >= stateBytesFor(bytes);
}
