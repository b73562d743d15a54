/**
 * Worker of test/concurrent/map-quota-kill.test.ts: writes to two maps,
 * one kept at its maxEntries and one far from it, with every kind of
 * write (update, delete, lookupAndDelete, the key-list batches, the
 * cursor delete batch, clear) until it is terminated. It never stops on
 * its own: the main thread terminates it at a random moment.
 */
import { workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag, type HashMapHandle, type HeapHandle } from '../../../src/index.js';
import { Prng } from '../../util/prng.js';

export interface QuotaKillJob {
  /** A slot reserved for the worker (Heap.reserveSlot). */
  heap: HeapHandle;
  maps: HashMapHandle[];
  /** Keys each map's writes pick from. */
  keys: number[];
  /** Word `index` is set to 1 once the worker writes. */
  started: SharedArrayBuffer;
  index: number;
  seed: number;
}

const job = workerData as QuotaKillJob;
const heap = Heap.attach(job.heap);
const maps = job.maps.map((h) => HashMap.attach(heap, h));
const rng = new Prng(job.seed);
const value = new Uint8Array(8);
const out = new Uint8Array(8);
const key = new Uint8Array(4);
const kv = new DataView(key.buffer);
const batchKeys = new Uint8Array(16);
const bkv = new DataView(batchKeys.buffer);
const batchValues = new Uint8Array(32);
const walkKeys = new Uint8Array(4 * 8);
const walkValues = new Uint8Array(8 * 8);
const io = new Uint32Array(2);

Atomics.store(new Int32Array(job.started), job.index, 1);

for (;;) {
  const m = rng.below(maps.length);
  const map = maps[m]!;
  const keys = job.keys[m]!;
  const k = rng.below(keys);
  const r = rng.below(1000);
  try {
    if (r < 300) map.updateNumber(k, value, rng.chance(0.5) ? MapFlag.ANY : MapFlag.NOEXIST);
    else if (r < 600) map.deleteNumber(k);
    else if (r < 720) {
      kv.setUint32(0, k, true);
      map.lookupAndDelete(key, out);
    } else if (r < 800) {
      for (let i = 0; i < 4; i++) bkv.setUint32(4 * i, rng.below(keys), true);
      map.updateBatch(batchKeys, batchValues, MapFlag.NOEXIST);
    } else if (r < 900) {
      for (let i = 0; i < 4; i++) bkv.setUint32(4 * i, rng.below(keys), true);
      map.deleteBatch(batchKeys);
    } else if (r < 960) {
      io[0] = rng.below(map.mask + 1);
      map.lookupAndDeleteBatch(io, walkKeys, walkValues);
    } else if (r < 962) map.clear();
    else map.lookupNumber(k, out);
  } catch (err) {
    // A bucket a terminated writer holds until its slot is released:
    // clear() says so (busy); the others return BUSY.
    if (!(err instanceof RangeError && (err as { code?: string }).code === 'busy')) throw err;
  }
}
