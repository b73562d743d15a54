/**
 * Worker side of the hash map tests. One script, several jobs (see
 * ../util/map-protocol.ts); every job posts exactly one result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag, MapStatus } from '../../src/index.js';
import { Prng } from '../util/prng.js';
import { LIN_KEYS, type LinOp, type MapJob, reuseChecksum } from '../util/map-protocol.js';

const job = workerData as MapJob;
const heap = Heap.attach(job.heap);
const map = HashMap.attach(heap, job.map);
const key = new Uint8Array(map.keySize);
const kv = new DataView(key.buffer);
const value = new Uint8Array(map.valueSize);
const vv = new DataView(value.buffer);
const out = new Uint8Array(map.valueSize);
const ov = new DataView(out.buffer);

function setKey(k: number): void {
  kv.setUint32(0, k, true);
}

function run(): unknown {
  switch (job.kind) {
    case 'parallel-insert': {
      let inserted = 0;
      let updated = 0;
      const bad: string[] = [];
      for (let k = job.index; k < job.keys; k += job.workers) {
        setKey(k);
        vv.setUint32(0, k, true);
        const st = map.update(key, value, MapFlag.NOEXIST);
        if (st === MapStatus.OK) inserted++;
        else if (bad.length < 5) bad.push(`insert ${k}: ${st}`);
      }
      for (let k = job.index; k < job.keys; k += job.workers) {
        setKey(k);
        vv.setUint32(0, k, true);
        const st = map.update(key, value, MapFlag.EXIST);
        if (st === MapStatus.OK) updated++;
        else if (bad.length < 5) bad.push(`update ${k}: ${st}`);
      }
      return { inserted, updated, bad };
    }
    case 'parallel-delete': {
      let deleted = 0;
      for (let k = job.index; k < job.keys; k += job.workers) {
        setKey(k);
        if (map.delete(key) === MapStatus.OK) deleted++;
      }
      return { deleted };
    }
    case 'reuse-writer': {
      const flag = new Int32Array(job.stop);
      const deadline = performance.now() + 10_000;
      // Readers start a worker start-up later than this one: without the wait
      // and the rounds past maxRounds, a late reader could see only the
      // rounds' ends, where both keys are deleted.
      while (Atomics.load(flag, 1) < job.readers && performance.now() < deadline) {
        /* bounded by the deadline */
      }
      let gen = 0;
      let rounds = 0;
      while (
        Atomics.load(flag, 0) === 0 &&
        (rounds < job.maxRounds || (Atomics.load(flag, 2) < job.readers && performance.now() < deadline))
      ) {
        gen++;
        for (const k of [1, 2]) {
          setKey(k);
          vv.setUint32(0, k, true);
          vv.setUint32(4, gen, true);
          vv.setUint32(8, reuseChecksum(k, gen), true);
          if (map.update(key, value, MapFlag.ANY) !== MapStatus.OK) throw new Error(`update of ${k} failed`);
        }
        for (const k of [1, 2]) {
          setKey(k);
          if (map.delete(key) !== MapStatus.OK) throw new Error(`delete of ${k} failed`);
        }
        rounds++;
      }
      Atomics.store(flag, 0, 1);
      return { rounds };
    }
    case 'reuse-reader': {
      const flag = new Int32Array(job.stop);
      let lookups = 0;
      let hits = 0;
      const violations: string[] = [];
      Atomics.add(flag, 1, 1);
      while (Atomics.load(flag, 0) === 0) {
        for (const k of [1, 2]) {
          setKey(k);
          lookups++;
          if (!map.lookup(key, out)) continue;
          if (hits++ === 0) Atomics.add(flag, 2, 1);
          const gotKey = ov.getUint32(0, true);
          const gen = ov.getUint32(4, true);
          const sum = ov.getUint32(8, true);
          if (gotKey !== k && violations.length < 5) violations.push(`lookup(${k}) returned a value of key ${gotKey}`);
          if (sum !== reuseChecksum(gotKey, gen) && violations.length < 5) violations.push(`lookup(${k}) returned a torn value (gen ${gen})`);
        }
      }
      return { lookups, hits, violations };
    }
    case 'linear': {
      const clock = new Int32Array(job.clock);
      const rng = new Prng(job.seed);
      const ops: LinOp[] = [];
      // Wait for the common start so the histories overlap.
      while (Atomics.load(clock, 1) < job.workers) {
        /* bounded by the group deadline */
      }
      for (let i = 0; i < job.ops; i++) {
        const k = rng.below(LIN_KEYS);
        setKey(k);
        const r = rng.below(10);
        const written = job.index * 1_000_000 + i + 1;
        let op: LinOp;
        const inv = Atomics.add(clock, 0, 1);
        if (r < 4) {
          const flag = r === 0 ? MapFlag.NOEXIST : r === 1 ? MapFlag.EXIST : MapFlag.ANY;
          vv.setUint32(0, written, true);
          const st = map.update(key, value, flag);
          op = { kind: 'update', key: k, flag, value: written, status: st, found: false, inv, res: 0 };
        } else if (r < 6) {
          const st = map.delete(key);
          op = { kind: 'delete', key: k, flag: 0, value: 0, status: st, found: false, inv, res: 0 };
        } else {
          const found = map.lookup(key, out);
          op = { kind: 'lookup', key: k, flag: 0, value: found ? ov.getUint32(0, true) : 0, status: 0, found, inv, res: 0 };
        }
        op.res = Atomics.add(clock, 0, 1);
        ops.push(op);
      }
      return { ops };
    }
    case 'per-worker-count': {
      // Increment this worker's own value of random keys; report how many
      // increments each key got. Meanwhile read the sums: they must never
      // exceed what all workers together can have done, and never go down.
      const rng = new Prng(job.seed);
      const counts = new Array<number>(job.keys).fill(0);
      const lastSum = new Array<number>(job.keys).fill(0);
      const violations: string[] = [];
      for (let i = 0; i < job.ops; i++) {
        const k = rng.below(job.keys);
        setKey(k);
        const mine = map.lookup(key, out) ? ov.getUint32(0, true) : 0;
        vv.setUint32(0, mine + 1, true);
        if (map.update(key, value, MapFlag.ANY) !== MapStatus.OK) throw new Error(`update of ${k} failed`);
        counts[k]!++;
        if ((i & 15) === 0) {
          const sum = map.sum(key, 'u32') ?? 0;
          if (sum < lastSum[k]! && violations.length < 5) violations.push(`sum of key ${k} went down: ${lastSum[k]} -> ${sum}`);
          lastSum[k] = sum;
        }
      }
      return { counts, violations };
    }
    case 'churn': {
      let maxPending = 0;
      let maxMemory = 0;
      const pending: number[] = [];
      const rng = new Prng(job.seed);
      for (let i = 0; i < job.ops; i++) {
        setKey(rng.below(job.keys));
        if (rng.below(2) === 0) {
          vv.setUint32(0, i, true);
          map.update(key, value, MapFlag.ANY);
        } else {
          map.delete(key);
        }
        if ((i & 255) === 0) {
          maxPending = Math.max(maxPending, map.deferredPending);
          pending.push(map.deferredPending);
          maxMemory = Math.max(maxMemory, map.memoryBytes());
        }
      }
      pending.sort((x, y) => x - y);
      return { maxPending, medianPending: pending[pending.length >> 1]!, maxMemory };
    }
  }
}

const result = run();
map.detach();
heap.detach();
parentPort!.postMessage(result);
