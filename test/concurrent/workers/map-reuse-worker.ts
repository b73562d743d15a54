/**
 * Worker of test/concurrent/map-reuse.test.ts (the kernel's htab_reuse): one writer
 * inserts, replaces and deletes two keys in rounds; readers look them up
 * until the writer stops. See the test for what a reader may and may not
 * see.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag, MapStatus } from '../../../src/index.js';
import { V_GRACE } from '../../../src/map/layout.js';
import { tryAdvance } from '../../../src/reclaim/epoch.js';
import { waitWhileEquals } from '../../util/barrier.js';
import { drainDeferred } from '../../util/map-drain.js';
import {
  REUSE,
  REUSE_KEYS,
  REUSE_KEY_SIZE,
  REUSE_VALUE_SIZE,
  type ReuseJob,
  type ReuseReaderResult,
  type ReuseWriterResult,
  reuseKeyIntact,
  reuseRound,
  reuseValueProblem,
  writeReuseKey,
  writeReuseValue,
} from '../../util/map-jobs.js';

const job = workerData as ReuseJob;
const heap = Heap.attach(job.heap);
const map = HashMap.attach(heap, job.map);
const control = new Int32Array(job.control);
const deadline = performance.now() + job.deadlineMs;
const keys = REUSE_KEYS.map((k) => {
  const b = new Uint8Array(REUSE_KEY_SIZE);
  writeReuseKey(new DataView(b.buffer), k);
  return b;
});

function writer(): ReuseWriterResult {
  const value = new Uint8Array(REUSE_VALUE_SIZE);
  const vv = new DataView(value.buffer);
  const out = new Uint8Array(REUSE_VALUE_SIZE);
  const ov = new DataView(out.buffer);
  const res: ReuseWriterResult = { rounds: 0, writes: 0, bad: [], undrained: 0, inPlace: 0, replaced: 0 };
  const rewrites = job.rewrites ?? 1;
  const bad = (what: string): void => {
    if (res.bad.length < 8) res.bad.push(what);
  };
  // Start once every reader is looking.
  for (let ready = Atomics.load(control, REUSE.READY); ready < job.readers; ) {
    ready = waitWhileEquals(control, REUSE.READY, ready, Math.max(1, deadline - performance.now()), 'the readers to start');
  }
  const stopAt = performance.now() + job.durationMs;
  let gen = 0;
  while (res.bad.length === 0) {
    if ((res.rounds & 15) === 0 && performance.now() > stopAt) break;
    // Generations count writes, reuseWritesPerRound(rewrites) per round,
    // in this order: insert key 1, insert key 2, then update key 1, update
    // key 2, `rewrites` times (in place when the spare copy's grace period
    // has passed, else by a new element).
    for (let pass = 0; pass <= rewrites; pass++) {
      const flag = pass === 0 ? MapFlag.NOEXIST : MapFlag.EXIST;
      // With several updates per round, move the epoch on before every
      // other pass (as other agents' frees would), so that those updates
      // also meet copies that were current before and whose grace period
      // may have passed; the passes between find the copy just retired
      // (too few advances since) and replace the element.
      if (pass > 1 && pass % 2 === 0) for (let a = 0; a < V_GRACE; a++) tryAdvance(heap);
      for (let i = 0; i < keys.length; i++) {
        writeReuseValue(vv, REUSE_KEYS[i]!, ++gen);
        const st = map.update(keys[i]!, value, flag);
        if (st !== MapStatus.OK) bad(`round ${res.rounds}: update(key ${REUSE_KEYS[i]}, flag ${flag}) returned ${st}`);
        if (!map.lookup(keys[i]!, out) || ov.getUint32(4, true) !== gen) bad(`round ${res.rounds}: the writer does not read back gen ${gen}`);
        res.writes++;
      }
    }
    for (let i = 0; i < keys.length; i++) {
      const st = map.delete(keys[i]!);
      if (st !== MapStatus.OK) bad(`round ${res.rounds}: delete(key ${REUSE_KEYS[i]}) returned ${st}`);
    }
    res.rounds++;
    Atomics.store(control, REUSE.GEN, gen);
  }
  Atomics.store(control, REUSE.STOP, 1);
  ({ inPlace: res.inPlace, replaced: res.replaced } = map.updateCounts);
  res.undrained = drainDeferred(map);
  return res;
}

function reader(): ReuseReaderResult {
  const out = new Uint8Array(REUSE_VALUE_SIZE);
  const ov = new DataView(out.buffer);
  const again = new Uint8Array(REUSE_VALUE_SIZE);
  const walkOut = new Uint8Array(REUSE_KEY_SIZE);
  const walkView = new DataView(walkOut.buffer);
  const res: ReuseReaderResult = { lookups: 0, hits: 0, walks: 0, walkedKeys: 0, violations: [] };
  const violation = (what: string): void => {
    if (res.violations.length < 8) res.violations.push(`${what} (writer at gen ${Atomics.load(control, REUSE.GEN)})`);
  };
  // What this reader has seen: the newest generation per key, and the
  // newest round of any value.
  const lastGen = REUSE_KEYS.map(() => 0);
  let lastRound = -1;
  const check = (i: number, how: string): void => {
    const k = REUSE_KEYS[i]!;
    const problem = reuseValueProblem(ov);
    if (problem !== null) return violation(`${how}(key ${k}): ${problem}`);
    const gotKey = ov.getUint32(0, true);
    const gen = ov.getUint32(4, true);
    if (gotKey !== k) return violation(`${how}(key ${k}) returned a value of key ${gotKey} (gen ${gen})`);
    // The writer writes key 1 at odd generations, key 2 at even ones.
    if (REUSE_KEYS[(gen - 1) % 2] !== k) return violation(`${how}(key ${k}) returned gen ${gen}, which the writer wrote to the other key`);
    if (gen < lastGen[i]!) violation(`${how}(key ${k}) returned gen ${gen} after this reader saw gen ${lastGen[i]}`);
    const round = reuseRound(gen, job.rewrites ?? 1);
    if (round < lastRound) violation(`${how}(key ${k}) returned a value of round ${round} after this reader saw round ${lastRound}, whose start deleted it`);
    lastGen[i] = Math.max(lastGen[i]!, gen);
    lastRound = Math.max(lastRound, round);
  };
  Atomics.add(control, REUSE.READY, 1);
  Atomics.notify(control, REUSE.READY);
  for (let iter = 0; Atomics.load(control, REUSE.STOP) === 0; iter++) {
    if ((iter & 1023) === 0 && performance.now() > deadline) throw new Error(`reader: the writer did not stop within ${job.deadlineMs} ms`);
    for (let i = 0; i < keys.length; i++) {
      res.lookups++;
      if ((iter & 3) !== 3) {
        if (!map.lookup(keys[i]!, out)) continue;
        res.hits++;
        check(i, 'lookup');
      } else {
        // In place, inside a read-side section: the element must stay as
        // it was until read() returns, even if the writer deletes or
        // replaces it meanwhile. Copy it twice with a pause between.
        const found = map.read(() => {
          const at = map.lookupOffset(keys[i]!);
          if (at === 0) return false;
          out.set(heap.u8.subarray(at, at + REUSE_VALUE_SIZE));
          for (let spin = 0; spin < 200 && Atomics.load(control, REUSE.STOP) === 0; spin++);
          again.set(heap.u8.subarray(at, at + REUSE_VALUE_SIZE));
          return true;
        });
        if (!found) continue;
        res.hits++;
        check(i, 'read+lookupOffset');
        for (let b = 0; b < REUSE_VALUE_SIZE; b++) {
          if (again[b] !== out[b]) {
            violation(`read+lookupOffset(key ${REUSE_KEYS[i]}): the element changed inside read() at byte ${b} (gen ${ov.getUint32(4, true)})`);
            break;
          }
        }
      }
    }
    if ((iter & 255) === 0) {
      // Iteration: every key it returns is one of the two, intact. Under
      // churn a walk may restart (its key vanished), so it is bounded.
      res.walks++;
      let prev: Uint8Array | null = null;
      for (let step = 0; step < 8 && map.getNextKey(prev, walkOut); step++) {
        res.walkedKeys++;
        const k = walkView.getUint32(0, true);
        if (!reuseKeyIntact(walkView) || !REUSE_KEYS.includes(k as 1 | 2)) violation(`getNextKey returned a key never inserted: [${walkOut.join(', ')}]`);
        prev = walkOut;
      }
    }
  }
  return res;
}

const result = job.role === 'writer' ? writer() : reader();
map.detach();
heap.detach();
parentPort!.postMessage(result);
