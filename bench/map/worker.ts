/**
 * One client worker of the map benchmark. It attaches to its peer's map,
 * counts itself ready, waits for the go signal, then runs rounds of its
 * scenario until the stop flag, publishing its round count after every
 * round (the parent reads the counts at the start and end of the measured
 * window, so start-up and warm-up do not count).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Turns, anyallocOps, prefill, round, sharedmapOps, type Ops, type Slice } from './ops.js';
import {
  C_GO,
  C_LINE,
  C_READY,
  C_PAIR,
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
 * add_del_on_diff_cpu: pair p is workers 2p (the adder) and 2p + 1 (the
 * deleter), on the keys of slice p (ops.ts Turns, round).
 */
const pairBase = (job.index >> 1) * KEYS_PER_WORKER;
const isAdder = (job.index & 1) === 0;
const turns = new Turns(ctl, C_PAIR + 32 * (job.index >> 1), isAdder, job.pairWindow, stopped);

function runSync(o: Ops): MapBenchResult {
  const sl: Slice = { base: job.scenario === 'add_del_on_diff_cpu' ? pairBase : base, adder: isAdder, next: 0, v: 1, failures: 0 };
  let rounds = 0;
  prefill(job.scenario, o, sl);
  ready();
  if (job.scenario === 'add_del_on_diff_cpu') {
    while (turns.await(rounds)) {
      round(job.scenario, o, sl);
      turns.finish(rounds);
      Atomics.store(ctl, roundsWord, ++rounds);
    }
  } else {
    while (!stopped()) {
      round(job.scenario, o, sl);
      Atomics.store(ctl, roundsWord, ++rounds);
    }
  }
  return { rounds, failures: sl.failures };
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
      if (!turns.await(rounds)) break;
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
        turns.finish(rounds);
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
  const o = job.peer === 'sharedmap' ? sharedmapOps(job.shared) : anyallocOps(job.heap!, job.map!, job.keys);
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
