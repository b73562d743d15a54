/**
 * The key of the operation in progress: checked, copied into the map's
 * scratch words (zero-padded to whole words), hashed, and compared with or
 * written into an element's key (a key is written once, before the store
 * that publishes its element, and never changes while a reader may see it:
 * ./layout.ts).
 */
import { describe, rangeError, typeError } from '../errors.js';
import { MapQuota } from './quota.js';

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** @hidden HashMap's layer of the key in progress (the layers: ./state.ts). */
export class MapKeys extends MapQuota {
  /**
   * @internal
   * Hash of the key in the scratch words (a murmur3-style mix over 32-bit
   * words; the key is zero-padded to whole words, so byte keys and number
   * keys of the same bytes hash alike).
   */
  hashKey(): number {
    const kw = this.kw;
    let h = this.seed ^ this.keySize;
    for (let i = 0; i < kw.length; i++) {
      const k = Math.imul(rotl(Math.imul(kw[i]!, 0xcc9e2d51), 15), 0x1b873593);
      h = (Math.imul(rotl(h ^ k, 13), 5) + 0xe6546b64) | 0;
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  }

  /** @internal Checks a key and copies it into the scratch words. */
  takeKey(key: Uint8Array, op: string): void {
    this.checkKey(key, op);
    // Whole words built in registers: byte stores read back as words
    // would stall store-to-load forwarding in hashKey.
    const kw = this.kw;
    const n = this.keySize;
    let i = 0;
    let w = 0;
    for (; i + 4 <= n; i += 4) kw[w++] = key[i]! | (key[i + 1]! << 8) | (key[i + 2]! << 16) | (key[i + 3]! << 24);
    if (i < n) {
      let x = 0;
      for (let sh = 0; i < n; i++, sh += 8) x |= key[i]! << sh;
      kw[w] = x;
    }
  }

  /** @internal Checks a number key (keySize >= 4) and puts it, little-endian and zero-extended, in the scratch words. */
  takeNumber(k: number, op: string): void {
    if ((k >>> 0) !== k) throw typeError('bad-argument', `${op}: a number key must be an integer in [0, 2^32), got ${describe(k)}`);
    if (this.keySize < 4) throw rangeError('wrong-mode', `${op}: number keys need keySize >= 4, the map has ${this.keySize}`);
    if (this.detached) throw rangeError('detached', `${op}: this map is detached in this agent`);
    const kw = this.kw;
    kw[0] = k;
    for (let i = 1; i < kw.length; i++) kw[i] = 0;
  }

  private checkKey(key: Uint8Array, op: string): void {
    if (!(key instanceof Uint8Array) || key.length < this.keySize) {
      throw typeError('bad-argument', `${op}: key must be a Uint8Array of at least keySize ${this.keySize} bytes, got ${key instanceof Uint8Array ? `${key.length} bytes` : describe(key)}`);
    }
    if (this.detached) throw rangeError('detached', `${op}: this map is detached in this agent`);
  }

  /** @internal True when element e holds the key in the scratch words. */
  keyEquals(e: number): boolean {
    const u32 = this.u32;
    const kw = this.kw;
    const base = (e + this.keyOff) >>> 2;
    for (let i = 0; i < kw.length; i++) if (u32[base + i] !== kw[i]) return false;
    return true;
  }

  /** @internal Writes the key in the scratch words into new element e (before it is published). */
  writeKey(e: number): void {
    const u32 = this.u32;
    const kw = this.kw;
    const base = (e + this.keyOff) >>> 2;
    for (let i = 0; i < kw.length; i++) u32[base + i] = kw[i]!;
  }

  /** @internal Copies element e's key into out; true (getNextKey returns it). */
  copyKey(e: number, out: Uint8Array): boolean {
    this.reach(e);
    const base = e + this.keyOff;
    for (let i = 0; i < this.keySize; i++) out[i] = this.u8[base + i]!;
    return true;
  }
}
