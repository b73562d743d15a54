/**
 * One client worker of the map benchmark. It attaches to its peer's map,
 * counts itself ready, waits for the go signal, then runs rounds of its
 * scenario until the stop flag, publishing its round count after every
 * round (the parent reads the counts at the start and end of the measured
 * window, so start-up and warm-up do not count).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag } from '../../src/index.js';
import { SharedMap, type SharedMapLike } from '../peers/sharedmap-lib.js';
import {
  C_GO,
  C_LINE,
  C_READY,
  C_PAIR,
  C_PAIR_ADDED,
  C_PAIR_DELETED,
  C_ROUNDS,
  C_STOP,
  KEYS_PER_WORKER,
  OPS_PER_ROUND,
  PERF_KEYS_PER_ROUND,
  type MapBenchJob,
  type MapBenchResult,
} from './protocol.js';

const job = workerData as MapBenchJob;
const ctl = new Int32Array(job.control);
const roundsWord = C_ROUNDS + C_LINE * job.index;
/** The worker's own keys: [base, base + KEYS_PER_WORKER). */
const base = job.index * KEYS_PER_WORKER;
const KEY_MASK = KEYS_PER_WORKER - 1;

/** The three operations on u32 keys, whatever the peer. true: it did what the scenario expects. */
interface Ops {
  update(k: number, v: number, noexist: boolean): boolean;
  lookup(k: number): boolean;
  remove(k: number): boolean;
  close(): void;
}

function anyallocOps(): Ops {
  const heap = Heap.attach(job.heap!);
  const map = HashMap.attach(heap, job.map!);
  const val = new Uint8Array(8);
  const valWords = new Uint32Array(val.buffer);
  const out = new Uint8Array(8);
  const close = (): void => {
    map.detach();
    heap.detach();
  };
  if (job.keys === 'number') {
    // Number-key calls: the key's little-endian bytes, zero-extended to 8.
    return {
      update(k, v, noexist) {
        valWords[0] = v;
        return map.updateNumber(k, val, noexist ? MapFlag.NOEXIST : MapFlag.ANY) === 0;
      },
      lookup: (k) => map.lookupNumber(k, out),
      remove: (k) => map.deleteNumber(k) === 0,
      close,
    };
  }
  // 8-byte Uint8Array keys, as any caller with binary keys would pass them.
  const key = new Uint8Array(8);
  const keyWords = new Uint32Array(key.buffer);
  return {
    update(k, v, noexist) {
      keyWords[0] = k;
      valWords[0] = v;
      return map.update(key, val, noexist ? MapFlag.NOEXIST : MapFlag.ANY) === 0;
    },
    lookup(k) {
      keyWords[0] = k;
      return map.lookup(key, out);
    },
    remove(k) {
      keyWords[0] = k;
      return map.delete(key) === 0;
    },
    close,
  };
}

function sharedmapOps(): Ops {
  // The package's documented way to share it: clone the object into the
  // worker (its SharedArrayBuffers are shared) and restore the prototype.
  const m = job.shared as SharedMapLike;
  Object.setPrototypeOf(m, SharedMap.prototype);
  const names: string[] = [];
  const name = (k: number): string => (names[k] ??= `k${k}`);
  return {
    // sharedmap has no create-only flag; every scenario here adds only keys
    // it knows are absent, so a plain set does the same work.
    update(k, v) {
      m.set(name(k), v);
      return true;
    },
    lookup: (k) => m.get(name(k)) !== undefined,
    remove(k) {
      try {
        m.delete(name(k)); // throws RangeError when the key is absent
        return true;
      } catch (e) {
        if (e instanceof RangeError) return false;
        throw e;
      }
    },
    close() {},
  };
}

/** The JS Map server's client side: one postMessage round trip per call. */
const OP_SET = 0;
const OP_GET = 1;
const OP_DELETE = 2;
const OP_ADD = 3;
function serverClient(): { call(op: number, k: number, v: number): Promise<boolean>; close(): void } {
  const port = job.port!;
  let pending: ((ok: boolean) => void) | undefined;
  port.on('message', (ok: boolean) => {
    const p = pending!;
    pending = undefined;
    p(ok);
  });
  return {
    call(op, k, v) {
      return new Promise<boolean>((resolve) => {
        pending = resolve;
        port.postMessage([op, k, v]);
      });
    },
    close: () => port.close(),
  };
}

function ready(): void {
  Atomics.add(ctl, C_READY, 1);
  Atomics.notify(ctl, C_READY);
  while (Atomics.load(ctl, C_GO) === 0) Atomics.wait(ctl, C_GO, 0, 50);
}

const stopped = (): boolean => Atomics.load(ctl, C_STOP) !== 0;

/**
 * add_del_on_diff_cpu. Pair p is workers 2p (the adder) and 2p + 1 (the
 * deleter), on the keys of slice p. Two counters in shared memory make the
 * handshake: rounds the adder has finished and rounds the deleter has
 * finished. The adder may start round r once r - deleted < window (it
 * runs at most `window` rounds ahead; window 1: strict turns, one worker
 * of the pair working at a time); the deleter may start round r once
 * added > r.
 * Round r uses the 64 keys at (r * 64) mod 1024 of the slice, so the keys
 * in flight never overlap.
 */
const pairWord = C_PAIR + 32 * (job.index >> 1);
const addedWord = pairWord + C_PAIR_ADDED;
const deletedWord = pairWord + C_PAIR_DELETED;
const pairBase = (job.index >> 1) * KEYS_PER_WORKER;
const isAdder = (job.index & 1) === 0;

/**
 * Waits until this worker may start round `r` of its pair. Spins first (a
 * round is short), then sleeps in Atomics.wait so a waiting worker does
 * not take the core from its partner when the machine has more threads
 * than cores. false: stop was raised meanwhile.
 */
function awaitRound(r: number): boolean {
  const word = isAdder ? deletedWord : addedWord;
  for (let spins = 0; ; spins++) {
    const seen = Atomics.load(ctl, word);
    if (isAdder ? r - seen < job.pairWindow : seen > r) return true;
    if (stopped()) return false;
    if (spins > 20_000) Atomics.wait(ctl, word, seen, 1);
  }
}

function finishRound(r: number): void {
  const word = isAdder ? addedWord : deletedWord;
  Atomics.store(ctl, word, r + 1);
  Atomics.notify(ctl, word);
}

function runSync(o: Ops): MapBenchResult {
  let rounds = 0;
  let failures = 0;
  let v = 1;
  let next = 0;
  if (job.scenario === 'overwrite') for (let i = 0; i < KEYS_PER_WORKER; i++) o.update(base + i, v++, false);
  ready();
  switch (job.scenario) {
    case 'perf':
      // map_perf_test's hash loop: update (ANY), lookup, delete of one key,
      // then the next of the worker's keys.
      while (!stopped()) {
        for (let i = 0; i < PERF_KEYS_PER_ROUND; i++) {
          const k = base + ((next + i) & KEY_MASK);
          if (!o.update(k, v++, false)) failures++;
          if (!o.lookup(k)) failures++;
          if (!o.remove(k)) failures++;
        }
        next += PERF_KEYS_PER_ROUND;
        Atomics.store(ctl, roundsWord, ++rounds);
      }
      break;
    case 'overwrite':
      // Every key of the slice exists (added above); each update replaces one.
      while (!stopped()) {
        for (let i = 0; i < OPS_PER_ROUND; i++) if (!o.update(base + ((next + i) & KEY_MASK), v++, false)) failures++;
        next += OPS_PER_ROUND;
        Atomics.store(ctl, roundsWord, ++rounds);
      }
      break;
    case 'batch_add_batch_del':
      // Add 32 keys of the slice, then delete the same 32.
      while (!stopped()) {
        const from = base + (next & KEY_MASK);
        for (let i = 0; i < OPS_PER_ROUND / 2; i++) if (!o.update(from + i, v++, false)) failures++;
        for (let i = 0; i < OPS_PER_ROUND / 2; i++) if (!o.remove(from + i)) failures++;
        next += OPS_PER_ROUND / 2;
        Atomics.store(ctl, roundsWord, ++rounds);
      }
      break;
    case 'add_del_on_diff_cpu':
      // The adder creates 64 keys (NOEXIST), the deleter deletes them once
      // the adder is done: every element is allocated by one worker and
      // freed by the other.
      while (awaitRound(rounds)) {
        const from = pairBase + ((rounds * OPS_PER_ROUND) & KEY_MASK);
        for (let i = 0; i < OPS_PER_ROUND; i++) {
          if (!(isAdder ? o.update(from + i, v++, true) : o.remove(from + i))) failures++;
        }
        finishRound(rounds);
        Atomics.store(ctl, roundsWord, ++rounds);
      }
      break;
  }
  return { rounds, failures };
}

/** The same rounds as runSync, each operation awaited through the server. */
async function runServerClient(): Promise<MapBenchResult> {
  const c = serverClient();
  let rounds = 0;
  let failures = 0;
  let v = 1;
  let next = 0;
  if (job.scenario === 'overwrite') for (let i = 0; i < KEYS_PER_WORKER; i++) await c.call(OP_SET, base + i, v++);
  ready();
  const check = (ok: boolean): void => {
    if (!ok) failures++;
  };
  for (;;) {
    if (job.scenario === 'add_del_on_diff_cpu') {
      if (!awaitRound(rounds)) break;
    } else if (stopped()) break;
    switch (job.scenario) {
      case 'perf':
        for (let i = 0; i < PERF_KEYS_PER_ROUND; i++) {
          const k = base + ((next + i) & KEY_MASK);
          check(await c.call(OP_SET, k, v++));
          check(await c.call(OP_GET, k, 0));
          check(await c.call(OP_DELETE, k, 0));
        }
        next += PERF_KEYS_PER_ROUND;
        break;
      case 'overwrite':
        for (let i = 0; i < OPS_PER_ROUND; i++) check(await c.call(OP_SET, base + ((next + i) & KEY_MASK), v++));
        next += OPS_PER_ROUND;
        break;
      case 'batch_add_batch_del': {
        const from = base + (next & KEY_MASK);
        for (let i = 0; i < OPS_PER_ROUND / 2; i++) check(await c.call(OP_SET, from + i, v++));
        for (let i = 0; i < OPS_PER_ROUND / 2; i++) check(await c.call(OP_DELETE, from + i, 0));
        next += OPS_PER_ROUND / 2;
        break;
      }
      case 'add_del_on_diff_cpu': {
        const from = pairBase + ((rounds * OPS_PER_ROUND) & KEY_MASK);
        for (let i = 0; i < OPS_PER_ROUND; i++) check(await c.call(isAdder ? OP_ADD : OP_DELETE, from + i, v++));
        finishRound(rounds);
        break;
      }
    }
    Atomics.store(ctl, roundsWord, ++rounds);
  }
  c.close();
  return { rounds, failures };
}

async function main(): Promise<MapBenchResult> {
  if (job.peer === 'jsmap-postmessage') return runServerClient();
  const o = job.peer === 'sharedmap' ? sharedmapOps() : anyallocOps();
  const r = runSync(o);
  o.close();
  return r;
}

main().then(
  (r) => parentPort!.postMessage(r),
  (e: unknown) => {
    // Count as ready so the parent does not wait for this worker.
    Atomics.add(ctl, C_READY, 1);
    Atomics.notify(ctl, C_READY);
    parentPort!.postMessage({ rounds: 0, failures: 0, error: String((e as Error)?.stack ?? e) } satisfies MapBenchResult);
  },
);
