/**
 * Worker of test/concurrent/map-kernel.test.ts. Jobs:
 *   insert: inserts the number keys [from, to) with NOEXIST and reports
 *     how many returned OK, FULL or anything else;
 *   hold: enters a read-side section of `map` (read()) and stays in it
 *     until the main thread sets word 0 of `flag` to 1 (it sets word 1 to
 *     1 once inside), then detaches.
 *   selftests: `rounds` times, creates maps of its own in the shared heap
 *     and runs the kernel's test_hashmap, test_hashmap_walk and
 *     test_hashmap_percpu steps on them, then destroys them (the kernel's
 *     test_map_stress runs those tests in many processes at once); reports
 *     the failures.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag, MapStatus, type HashMapHandle, type HeapHandle } from '../../../src/index.js';

export type KernelJob =
  | { kind: 'insert'; heap: HeapHandle; map: HashMapHandle; from: number; to: number }
  | { kind: 'hold'; heap: HeapHandle; map: HashMapHandle; flag: SharedArrayBuffer }
  | { kind: 'selftests'; heap: HeapHandle; rounds: number };
export interface InsertResult {
  ok: number;
  full: number;
  other: number;
}

const job = workerData as KernelJob;
const heap = Heap.attach(job.heap);
if (job.kind === 'selftests') {
  const bad: string[] = [];
  const check = (ok: boolean, what: string): void => {
    if (!ok && bad.length < 8) bad.push(what);
  };
  const k8 = (n: number): Uint8Array => {
    const k = new Uint8Array(8);
    new DataView(k.buffer).setUint32(0, n, true);
    return k;
  };
  const v8 = (v: Uint8Array): number => new DataView(v.buffer, v.byteOffset).getUint32(0, true);
  for (let r = 0; r < job.rounds; r++) {
    // test_hashmap
    const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 2 });
    const out = new Uint8Array(8);
    check(m.update(k8(1), k8(1234), MapFlag.ANY) === MapStatus.OK, 'insert 1');
    check(m.update(k8(1), k8(1), MapFlag.NOEXIST) === MapStatus.EXISTS, 'NOEXIST 1');
    check(m.update(k8(2), k8(1), MapFlag.EXIST) === MapStatus.NOT_FOUND, 'EXIST 2');
    check(m.update(k8(2), k8(1), MapFlag.NOEXIST) === MapStatus.OK, 'insert 2');
    check(m.update(k8(0), k8(0), MapFlag.ANY) === MapStatus.FULL, 'full');
    check(m.lookup(k8(1), out) && v8(out) === 1234, 'lookup 1');
    check(m.lookupAndDelete(k8(1), out) === MapStatus.OK && v8(out) === 1234, 'lookup_and_delete 1');
    check(m.delete(k8(1)) === MapStatus.NOT_FOUND, 'delete 1 again');
    check(m.delete(k8(2)) === MapStatus.OK, 'delete 2');
    check(!m.getNextKey(null, out), 'empty');
    m.destroy();
    // test_hashmap_walk
    const w = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 256, mode: 'dynamic' });
    for (let i = 0; i < 256; i++) check(w.update(k8(i), k8(i), MapFlag.NOEXIST) === MapStatus.OK, `walk insert ${i}`);
    const k = new Uint8Array(8);
    let n = 0;
    for (let ok = w.getNextKey(null, k); ok; ok = w.getNextKey(k, k)) {
      check(w.lookup(k, out) && v8(out) === v8(k), 'walk value');
      check(w.update(k, k8(v8(k) + 1), MapFlag.EXIST) === MapStatus.OK, 'walk update');
      n++;
    }
    check(n === 256, `walk saw ${n}`);
    w.destroy();
    // test_hashmap_percpu
    const p = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 2, perWorker: true });
    const all = new Uint8Array(8 * heap.maxSlots);
    for (let s = 0; s < heap.maxSlots; s++) all[8 * s] = 100 + s;
    check(p.updateAll(k8(1), all) === MapStatus.OK, 'percpu updateAll');
    const sum = new BigUint64Array(1);
    check(p.sumInto(k8(1), sum) && sum[0] === BigInt(100 * heap.maxSlots + (heap.maxSlots * (heap.maxSlots - 1)) / 2), 'percpu sum');
    check(p.update(k8(1), k8(7)) === MapStatus.OK && p.lookup(k8(1), out) && v8(out) === 7, 'percpu own slot');
    p.destroy();
  }
  heap.detach();
  parentPort!.postMessage(bad);
} else {
  runMapJob(job);
}

function runMapJob(job: Exclude<KernelJob, { kind: 'selftests' }>): void {
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
}
