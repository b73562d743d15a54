/**
 * What a map benchmark worker does to a peer's map: the three operations
 * on u32 keys (Ops), one adapter per peer, and one round of each scenario.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import * as thisBuild from '../../src/index.js';
import type { HashMapHandle, HeapHandle } from '../../src/index.js';
import { SharedMap, type SharedMapLike } from '../peers/sharedmap-lib.js';
import {
  KEYS_PER_WORKER,
  OPS_PER_ROUND,
  OP_ADD,
  OP_DELETE,
  OP_GET,
  OP_SET,
  PERF_KEYS_PER_ROUND,
  type Scenario,
} from './protocol.js';

/** The three operations on u32 keys, whatever the peer. true: it did what the scenario expects. */
export interface Ops {
  update(k: number, v: number, noexist: boolean): boolean;
  lookup(k: number): boolean;
  remove(k: number): boolean;
  close(): void;
}

/** The library's public entry: this build's, or another build's (a baseline) by its dist/src/index.js. */
export type Lib = typeof thisBuild;
export async function loadLib(entry: string | undefined): Promise<Lib> {
  return entry === undefined ? thisBuild : ((await import(pathToFileURL(entry).href)) as Lib);
}

/** anyalloc's map with 8-byte Uint8Array keys, as any caller with binary keys would pass them. */
export function anyallocOps(lib: Lib, heapHandle: HeapHandle, mapHandle: HashMapHandle): Ops {
  const heap = lib.Heap.attach(heapHandle);
  const map = lib.HashMap.attach(heap, mapHandle);
  const { ANY, NOEXIST } = lib.MapFlag;
  const val = new Uint8Array(8);
  const valWords = new Uint32Array(val.buffer);
  const out = new Uint8Array(8);
  const key = new Uint8Array(8);
  const keyWords = new Uint32Array(key.buffer);
  return {
    update(k, v, noexist) {
      keyWords[0] = k;
      valWords[0] = v;
      return map.update(key, val, noexist ? NOEXIST : ANY) === 0;
    },
    lookup(k) {
      keyWords[0] = k;
      return map.lookup(key, out);
    },
    remove(k) {
      keyWords[0] = k;
      return map.delete(key) === 0;
    },
    close() {
      map.detach();
      heap.detach();
    },
  };
}

/**
 * The same for a baseline build, written again: one set of method literals
 * per build, or the two builds' maps share their feedback (each call site
 * polymorphic) and both measure slow.
 */
export function anyallocOpsBaseline(lib: Lib, heapHandle: HeapHandle, mapHandle: HashMapHandle): Ops {
  const heap = lib.Heap.attach(heapHandle);
  const map = lib.HashMap.attach(heap, mapHandle);
  const { ANY, NOEXIST } = lib.MapFlag;
  const val = new Uint8Array(8);
  const valWords = new Uint32Array(val.buffer);
  const out = new Uint8Array(8);
  const key = new Uint8Array(8);
  const keyWords = new Uint32Array(key.buffer);
  return {
    update(k, v, noexist) {
      keyWords[0] = k;
      valWords[0] = v;
      return map.update(key, val, noexist ? NOEXIST : ANY) === 0;
    },
    lookup(k) {
      keyWords[0] = k;
      return map.lookup(key, out);
    },
    remove(k) {
      keyWords[0] = k;
      return map.delete(key) === 0;
    },
    close() {
      map.detach();
      heap.detach();
    },
  };
}

/** The JS Map server's client (server.ts): one postMessage round trip per operation. */
export function jsmapOps(port: MessagePort, replied: Int32Array, i: number): Ops {
  const call = (op: number, k: number, v: number): boolean => {
    Atomics.store(replied, i, 0);
    port.postMessage([op, k, v]);
    while (Atomics.load(replied, i) === 0) Atomics.wait(replied, i, 0);
    return receiveMessageOnPort(port)!.message as boolean;
  };
  return {
    update: (k, v, noexist) => call(noexist ? OP_ADD : OP_SET, k, v),
    lookup: (k) => call(OP_GET, k, 0),
    remove: (k) => call(OP_DELETE, k, 0),
    close: () => port.close(),
  };
}

/** `shared`: the SharedMap as structured-cloned into this worker (its buffers are shared). */
export function sharedmapOps(shared: unknown): Ops {
  // The package's documented way to share it: clone the object into the
  // worker and restore the prototype.
  const m = shared as SharedMapLike;
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

/** A worker's place in its scenario: its key slice and how far it got. */
export interface Slice {
  /** First key of the slice the rounds walk ([base, base + KEYS_PER_WORKER)). */
  readonly base: number;
  /** add_del_on_diff_cpu: this worker adds (else it deletes). */
  readonly adder: boolean;
  /** Offset of the next round's first key in the slice (grows without bound; taken mod KEYS_PER_WORKER). */
  next: number;
  /** Next value to write. */
  v: number;
  /** Operations that did not do what the scenario expects (a lookup missing its key, ...). */
  failures: number;
}

const KEY_MASK = KEYS_PER_WORKER - 1;

/** Keys an overwrite worker puts in before it starts: its whole slice. */
export function prefill(s: Scenario, o: Ops, sl: Slice): void {
  if (s === 'overwrite') for (let i = 0; i < KEYS_PER_WORKER; i++) o.update(sl.base + i, sl.v++, false);
}

/**
 * One round of scenario s on the worker's slice. add_del_on_diff_cpu: the
 * adder and the deleter of a pair walk the same slice round by round, so
 * round r of both touches the same 64 keys (the caller makes them take
 * turns).
 */
export function round(s: Scenario, o: Ops, sl: Slice): void {
  const base = sl.base;
  let v = sl.v;
  let bad = 0;
  switch (s) {
    case 'perf':
      // map_perf_test's hash loop: update (ANY), lookup, delete of one key,
      // then the next of the worker's keys.
      for (let i = 0; i < PERF_KEYS_PER_ROUND; i++) {
        const k = base + ((sl.next + i) & KEY_MASK);
        if (!o.update(k, v++, false)) bad++;
        if (!o.lookup(k)) bad++;
        if (!o.remove(k)) bad++;
      }
      sl.next += PERF_KEYS_PER_ROUND;
      break;
    case 'overwrite':
      // Every key of the slice exists (prefill); each update replaces one.
      for (let i = 0; i < OPS_PER_ROUND; i++) if (!o.update(base + ((sl.next + i) & KEY_MASK), v++, false)) bad++;
      sl.next += OPS_PER_ROUND;
      break;
    case 'batch_add_batch_del': {
      // Add 32 keys of the slice, then delete the same 32.
      const from = base + (sl.next & KEY_MASK);
      for (let i = 0; i < OPS_PER_ROUND / 2; i++) if (!o.update(from + i, v++, false)) bad++;
      for (let i = 0; i < OPS_PER_ROUND / 2; i++) if (!o.remove(from + i)) bad++;
      sl.next += OPS_PER_ROUND / 2;
      break;
    }
    case 'add_del_on_diff_cpu': {
      // The adder creates 64 keys (NOEXIST), the deleter deletes them once
      // the adder is done: every element is allocated by one worker and
      // freed by the other.
      const from = base + (sl.next & KEY_MASK);
      if (sl.adder) {
        for (let i = 0; i < OPS_PER_ROUND; i++) if (!o.update(from + i, v++, true)) bad++;
      } else {
        for (let i = 0; i < OPS_PER_ROUND; i++) if (!o.remove(from + i)) bad++;
      }
      sl.next += OPS_PER_ROUND;
      break;
    }
  }
  sl.v = v;
  sl.failures += bad;
}
