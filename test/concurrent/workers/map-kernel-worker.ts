/**
 * Worker of test/concurrent/map-kernel.test.ts. Jobs:
 *   insert: inserts the number keys [from, to) with NOEXIST and reports
 *     how many returned OK, FULL or anything else;
 *   hold: enters a read-side section of `map` (read()) and stays in it
 *     until the main thread sets word 0 of `flag` to 1 (it sets word 1 to
 *     1 once inside), then detaches.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapStatus, type HashMapHandle, type HeapHandle } from '../../../src/index.js';

export type KernelJob =
  | { kind: 'insert'; heap: HeapHandle; map: HashMapHandle; from: number; to: number }
  | { kind: 'hold'; heap: HeapHandle; map: HashMapHandle; flag: SharedArrayBuffer };
export interface InsertResult {
  ok: number;
  full: number;
  other: number;
}

const job = workerData as KernelJob;
const heap = Heap.attach(job.heap);
const map = HashMap.attach(heap, job.map);
if (job.kind === 'insert') {
  const v = new Uint8Array(map.valueSize);
  const r: InsertResult = { ok: 0, full: 0, other: 0 };
  for (let k = job.from; k < job.to; k++) {
    const st = map.updateNumber(k, v, 1);
    if (st === MapStatus.OK) r.ok++;
    else if (st === MapStatus.FULL) r.full++;
    else r.other++;
  }
  map.detach();
  heap.detach();
  parentPort!.postMessage(r);
} else {
  const flag = new Int32Array(job.flag);
  map.read(() => {
    Atomics.store(flag, 1, 1);
    Atomics.notify(flag, 1);
    while (Atomics.load(flag, 0) === 0) Atomics.wait(flag, 0, 0, 50);
  });
  map.detach();
  heap.detach();
  parentPort!.postMessage('done');
}
