/**
 * One client worker of a map point (point.ts). It attaches to every peer's
 * map, prefills each as its scenario needs, counts itself ready, then runs
 * rounds until the stop flag: before each round it reads which peer the
 * parent is measuring now and runs that round on that peer's map, and
 * after it publishes its count of rounds done on that peer.
 *
 * add_del_on_diff_cpu: the adder picks the peer of each round and writes
 * it beside the pair's counters before it finishes the round; the deleter
 * reads it there, so both work on the same map in every round.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { anyallocOps, anyallocOpsBaseline, jsmapOps, loadLib, prefill, round, sharedmapOps, type Ops, type Slice } from './ops.js';
import {
  C_GO,
  C_LINE,
  C_PAIR,
  C_PAIR_ADDED,
  C_PAIR_DELETED,
  C_PAIR_ROUND_PEER,
  C_PHASE,
  C_READY,
  C_ROUNDS,
  C_STOP,
  KEYS_PER_WORKER,
  PAIR_WINDOW,
  type MapJob,
  type MapWorkerResult,
} from './protocol.js';

const job = workerData as MapJob;
const ctl = new Int32Array(job.control);
/** This worker's counters: rounds done on peer p at word countWord + p. */
const countWord = C_ROUNDS + C_LINE * job.index;
const stopped = (): boolean => Atomics.load(ctl, C_STOP) !== 0;

async function opsOf(p: MapJob['peers'][number]): Promise<Ops> {
  if (p.peer === 'sharedmap') return sharedmapOps(p.shared);
  if (p.peer === 'jsmap-postmessage') return jsmapOps(job.port!, new Int32Array(job.replied!), job.index);
  return p.lib === undefined ? anyallocOps(await loadLib(undefined), p.heap!, p.map!) : anyallocOpsBaseline(await loadLib(p.lib), p.heap!, p.map!);
}

async function main(): Promise<MapWorkerResult> {
  const addDel = job.scenario === 'add_del_on_diff_cpu';
  const pair = job.index >> 1;
  const adder = (job.index & 1) === 0;
  const base = (addDel ? pair : job.index) * KEYS_PER_WORKER;
  const ops: Ops[] = [];
  for (const p of job.peers) ops.push(await opsOf(p));
  // A slice per peer: every map has its own keys in flight.
  const slices: Slice[] = ops.map(() => ({ base, adder, next: 0, v: 1, failures: 0 }));
  for (let p = 0; p < ops.length; p++) prefill(job.scenario, ops[p]!, slices[p]!);
  const done = ops.map(() => 0);
  Atomics.add(ctl, C_READY, 1);
  Atomics.notify(ctl, C_READY);
  while (Atomics.load(ctl, C_GO) === 0) Atomics.wait(ctl, C_GO, 0, 50);
  if (addDel) {
    // The pair's handshake: rounds the adder has finished and rounds the
    // deleter has finished. The adder may start round r once it is fewer
    // than PAIR_WINDOW rounds ahead of the deleter, the deleter once the
    // adder has finished round r. A waiting worker spins first (a round is
    // short), then sleeps in Atomics.wait so that it does not take the core
    // from its partner when there are more threads than cores.
    const pairWord = C_PAIR + 32 * pair;
    const waitWord = pairWord + (adder ? C_PAIR_DELETED : C_PAIR_ADDED);
    const doneWord = pairWord + (adder ? C_PAIR_ADDED : C_PAIR_DELETED);
    const mayStart = (r: number): boolean => {
      for (let spins = 0; ; spins++) {
        const seen = Atomics.load(ctl, waitWord);
        if (adder ? r - seen < PAIR_WINDOW : seen > r) return true;
        if (stopped()) return false;
        if (spins > 20_000) Atomics.wait(ctl, waitWord, seen, 1);
      }
    };
    for (let r = 0; mayStart(r); r++) {
      // At most PAIR_WINDOW rounds of a pair are in flight.
      const at = pairWord + C_PAIR_ROUND_PEER + (r % PAIR_WINDOW);
      let p: number;
      if (adder) {
        p = Atomics.load(ctl, C_PHASE);
        Atomics.store(ctl, at, p);
      } else {
        p = Atomics.load(ctl, at);
      }
      round(job.scenario, ops[p]!, slices[p]!);
      Atomics.store(ctl, doneWord, r + 1);
      Atomics.notify(ctl, doneWord);
      Atomics.store(ctl, countWord + p, ++done[p]!);
    }
  } else {
    while (!stopped()) {
      const p = Atomics.load(ctl, C_PHASE);
      round(job.scenario, ops[p]!, slices[p]!);
      Atomics.store(ctl, countWord + p, ++done[p]!);
    }
  }
  for (const o of ops) o.close();
  return { failures: slices.reduce((a, s) => a + s.failures, 0) };
}

main().then(
  (r) => parentPort!.postMessage(r),
  (e: unknown) => {
    // Count as ready so the parent does not wait for this worker.
    Atomics.add(ctl, C_READY, 1);
    Atomics.notify(ctl, C_READY);
    parentPort!.postMessage({ failures: 0, error: String((e as Error)?.stack ?? e) } satisfies MapWorkerResult);
  },
);
