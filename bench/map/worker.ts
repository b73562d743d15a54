/**
 * One client worker of the map benchmark: runs a scenario against a peer
 * until the main thread raises the stop flag, then reports its op count.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashMap, Heap, MapFlag } from '../../src/index.js';
import { SharedMap, type SharedMapLike } from '../peers/sharedmap-lib.js';
import { C_GO, C_PAIRS, C_READY, C_STOP, KEYS_PER_WORKER, OPS_PER_ROUND, type MapBenchJob, type MapBenchResult } from './protocol.js';

const job = workerData as MapBenchJob;
const ctl = new Int32Array(job.control);

/** The three map operations on u32 keys, whatever the peer. */
interface Ops {
  update(k: number, v: number, noexist: boolean): boolean;
  lookup(k: number): boolean;
  remove(k: number): boolean;
  close(): void;
}

function anyallocOps(): Ops {
  // u32 keys through the map's number-key fast path (8-byte keys, the
  // number little-endian and zero-extended).
  const heap = Heap.attach(job.heap!);
  const map = HashMap.attach(heap, job.map!);
  const val = new Uint8Array(8);
  const vv = new DataView(val.buffer);
  const out = new Uint8Array(8);
  return {
    update(k, v, noexist) {
      vv.setUint32(0, v, true);
      return map.updateNumber(k, val, noexist ? MapFlag.NOEXIST : MapFlag.ANY) === 0;
    },
    lookup(k) {
      return map.lookupNumber(k, out);
    },
    remove(k) {
      return map.deleteNumber(k) === 0;
    },
    close() {
      map.detach();
      heap.detach();
    },
  };
}

function sharedmapOps(): Ops {
  const m = job.shared as SharedMapLike;
  Object.setPrototypeOf(m, SharedMap.prototype);
  const names: string[] = [];
  const name = (k: number): string => (names[k] ??= `k${k}`);
  return {
    update(k, v, noexist) {
      if (noexist && m.has(name(k))) return false;
      m.set(name(k), v);
      return true;
    },
    lookup(k) {
      return m.get(name(k)) !== undefined;
    },
    remove(k) {
      if (!m.has(name(k))) return false;
      m.delete(name(k));
      return true;
    },
    close() {},
  };
}

/** A client of the JS Map server: one postMessage round trip per operation. */
function serverOps(): { call(op: number, k: number, v: number): Promise<boolean>; close(): void } {
  const port = job.port!;
  let pending: ((ok: boolean) => void) | undefined;
  port.on('message', (ok: boolean) => pending!(ok));
  return {
    call(op, k, v) {
      return new Promise<boolean>((resolve) => {
        pending = resolve;
        port.postMessage([op, k, v]);
      });
    },
    close() {
      port.close();
    },
  };
}

function waitGo(): void {
  Atomics.add(ctl, C_READY, 1);
  while (Atomics.load(ctl, C_GO) === 0) {
    /* the main thread raises go once every worker is ready */
  }
}

const base = job.index * KEYS_PER_WORKER;
const pair = C_PAIRS + (job.index >> 1);

function runSync(o: Ops): MapBenchResult {
  let ops = 0;
  let failures = 0;
  let v = 0;
  if (job.scenario === 'overwrite') for (let i = 0; i < KEYS_PER_WORKER; i++) o.update(base + i, i, false);
  waitGo();
  let next = 0;
  while (Atomics.load(ctl, C_STOP) === 0) {
    switch (job.scenario) {
      case 'perf':
        // map_perf_test: update, lookup, delete over the worker's own keys.
        for (let i = 0; i < OPS_PER_ROUND / 4; i++) {
          const k = base + ((next + i) & (KEYS_PER_WORKER - 1));
          if (!o.update(k, v++, false)) failures++;
          if (!o.lookup(k)) failures++;
          o.lookup(k + 1_000_000); // a miss
          if (!o.remove(k)) failures++;
        }
        ops += OPS_PER_ROUND;
        next += OPS_PER_ROUND / 4;
        break;
      case 'overwrite':
        for (let i = 0; i < OPS_PER_ROUND; i++) if (!o.update(base + ((next + i) & (KEYS_PER_WORKER - 1)), v++, false)) failures++;
        ops += OPS_PER_ROUND;
        next += OPS_PER_ROUND;
        break;
      case 'batch_add_batch_del':
        for (let i = 0; i < OPS_PER_ROUND / 2; i++) if (!o.update(base + i, v++, true)) failures++;
        for (let i = 0; i < OPS_PER_ROUND / 2; i++) if (!o.remove(base + i)) failures++;
        ops += OPS_PER_ROUND;
        break;
      case 'add_del_on_diff_cpu': {
        // Pairs: the even worker adds the pair's keys, the odd one deletes
        // them, so elements are allocated by one worker and freed by the other.
        const adder = (job.index & 1) === 0;
        const pbase = (job.index >> 1) * KEYS_PER_WORKER;
        const turn = adder ? 0 : 1;
        // Spin (longer than any peer takes for a turn), then sleep until the
        // partner hands the turn over:
        // a worker spinning for its turn would otherwise compete for the
        // core with its partner whenever the OS runs a third thread.
        for (let spins = 0; Atomics.load(ctl, pair) !== turn; spins++) {
          if (Atomics.load(ctl, C_STOP) !== 0) return { ops, failures };
          if (spins > 20_000) Atomics.wait(ctl, pair, 1 - turn, 1);
        }
        for (let i = 0; i < OPS_PER_ROUND; i++) {
          const ok = adder ? o.update(pbase + i, v++, true) : o.remove(pbase + i);
          if (!ok) failures++;
        }
        Atomics.store(ctl, pair, 1 - turn);
        Atomics.notify(ctl, pair);
        ops += OPS_PER_ROUND;
        break;
      }
    }
  }
  return { ops, failures };
}

async function runServerClient(): Promise<MapBenchResult> {
  const c = serverOps();
  let ops = 0;
  let failures = 0;
  let v = 0;
  const UPDATE = 0;
  const LOOKUP = 1;
  const DELETE = 2;
  if (job.scenario === 'overwrite') for (let i = 0; i < KEYS_PER_WORKER; i++) await c.call(UPDATE, base + i, i);
  waitGo();
  while (Atomics.load(ctl, C_STOP) === 0) {
    if (job.scenario === 'perf') {
      for (let i = 0; i < OPS_PER_ROUND / 4; i++) {
        const k = base + i;
        if (!(await c.call(UPDATE, k, v++))) failures++;
        if (!(await c.call(LOOKUP, k, 0))) failures++;
        await c.call(LOOKUP, k + 1_000_000, 0);
        if (!(await c.call(DELETE, k, 0))) failures++;
      }
    } else if (job.scenario === 'batch_add_batch_del') {
      for (let i = 0; i < OPS_PER_ROUND / 2; i++) if (!(await c.call(UPDATE, base + i, v++))) failures++;
      for (let i = 0; i < OPS_PER_ROUND / 2; i++) if (!(await c.call(DELETE, base + i, 0))) failures++;
    } else {
      for (let i = 0; i < OPS_PER_ROUND; i++) if (!(await c.call(UPDATE, base + i, v++))) failures++;
    }
    ops += OPS_PER_ROUND;
  }
  c.close();
  return { ops, failures };
}

if (job.peer === 'jsmap-postmessage') {
  parentPort!.postMessage(await runServerClient());
} else {
  const o = job.peer === 'sharedmap' ? sharedmapOps() : anyallocOps();
  const r = runSync(o);
  o.close();
  parentPort!.postMessage(r);
}
