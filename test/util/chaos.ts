/**
 * Kill chaos: what the chaos test, the growth test and the soak share.
 *
 * Workers (../soak/workers/chaos-worker.ts) run a stress mix on one heap:
 *   - a size-bucketed allocator (every bucket, some large page runs) and a
 *     fixed-size one, every block filled with a cookie and checked before
 *     it is freed; blocks change hands through shared slot arrays
 *     (Atomics.exchange), so many are freed by another worker;
 *   - a dynamic and a preallocated HashMap. Worker `index` owns the keys k
 *     with k % workers === index, so it knows exactly what each of its keys
 *     holds: every status it gets is predictable, and every lookup of its
 *     own keys must return exactly its record.
 * The main thread terminates workers at random moments, releases the dead
 * slot (itself or through a surviving worker), checks what the dead worker
 * left, and starts a new incarnation of the same index in a fresh slot.
 *
 * Shared memory (all outside the heap, so it never moves):
 *
 * ctl (Int32Array): global words, then CTL.WORKER_WORDS per worker index
 *   STOP        1: workers free what they hold, detach, post 'done'
 *   PAUSE       n > 0: workers acknowledge n in their PAUSED word and
 *               hold still (no allocator or map call) until PAUSE is 0
 *   per index (written by the worker, read by the main thread):
 *   STARTED     the incarnation, once it has attached and run one chunk
 *   PAUSED      last pause number acknowledged
 *   LIVE_B/F    blocks it holds (bucketed / fixed), stored after every
 *               alloc, free and exchange: after a death, the exact number
 *               of blocks lost with it (within one in flight)
 *   OPS         operations done (wraps at 2^32; the main thread diffs it)
 *   IF_KEY      key of the map operation in flight, -1 when none; IF_MAP
 *   IF_MAP      0 dynamic, 1 preallocated
 *   IF_AFTER    the value id the key holds once that operation is done
 *               (0 = absent). Written IF_KEY = -1, IF_MAP, IF_AFTER,
 *               IF_KEY = k before the call; the record is updated after
 *               the call returns, then IF_KEY = -1.
 *   PENDING_D/P the worker's deferred frees still waiting (dynamic /
 *               preallocated map), for diagnosis of leaks
 *
 * records (Int32Array, 2 x keys): records[m * keys + k] is the value id
 *   key k holds in map m (0 dynamic, 1 preallocated) after the last
 *   operation on it that returned, 0 when absent. Written only by the
 *   key's owner (or by the main thread while the owner index is dead).
 *
 * slots (BigInt64Array, one array per allocator): 0n or one block,
 *   pointer (32 bits) | size (17 bits) << 32 | stamp (15 bits) << 49.
 *
 * Values (VALUE_SIZE bytes, four uint32): [id, key, id ^ mix(key), ~id],
 * so a torn value or one of another key shows.
 */
import { Worker } from 'node:worker_threads';
import type { Allocator, AllocatorHandle, HashMap, HashMapHandle, Heap, HeapHandle } from '../../src/index.js';
import { checkCookie } from './cookie.js';
import { blockPointer, blockSize, blockStamp } from './stress-protocol.js';

/* ------------------------------- layout ---------------------------------- */

export const CTL = {
  STOP: 0,
  PAUSE: 1,
  /** First word of worker 0's words. */
  WORKER_BASE: 16,
  /** Words per worker index (a 64-byte line). */
  WORKER_WORDS: 16,
} as const;

export const WK = {
  STARTED: 0,
  PAUSED: 1,
  LIVE_B: 2,
  LIVE_F: 3,
  OPS: 4,
  IF_KEY: 5,
  IF_MAP: 6,
  IF_AFTER: 7,
  PENDING_D: 8,
  PENDING_P: 9,
} as const;

export const KEY_SIZE = 8;
export const VALUE_SIZE = 16;
/** Largest block the slot encoding holds. */
export const MAX_BLOCK_SIZE = (1 << 17) - 1;
/** Map index: 0 dynamic, 1 preallocated. */
export const MAP_NAMES = ['dynamic', 'prealloc'] as const;

export function ctlWords(workers: number): number {
  return CTL.WORKER_BASE + workers * CTL.WORKER_WORDS;
}

export function wordOf(index: number, field: number): number {
  return CTL.WORKER_BASE + index * CTL.WORKER_WORDS + field;
}

/* ---------------------------- job and results ----------------------------- */

/** What the worker's operations look like (weights out of 100; the rest are map operations). */
export interface ChaosMix {
  bucketedReplace: number;
  bucketedFree: number;
  fixedReplace: number;
  fixedFree: number;
  exchange: number;
}

export const STRESS_MIX: ChaosMix = { bucketedReplace: 24, bucketedFree: 10, fixedReplace: 7, fixedFree: 4, exchange: 10 };

export interface ChaosJob {
  heap: HeapHandle;
  bucketed: AllocatorHandle;
  fixed: AllocatorHandle;
  dynamic: HashMapHandle;
  prealloc: HashMapHandle;
  ctl: SharedArrayBuffer;
  records: SharedArrayBuffer;
  slotsBucketed: SharedArrayBuffer;
  slotsFixed: SharedArrayBuffer;
  /** The run's seed (for messages); the worker's stream is deriveSeed(seed, incarnation, index). */
  seed: number;
  index: number;
  workers: number;
  /** Counts every worker started in the run, from 1. */
  incarnation: number;
  /** Keys per map (all workers together). */
  keys: number;
  /** Blocks a worker holds privately per allocator. */
  localBlocks: number;
  /** Chance that a bucketed allocation is large (5000..70000 bytes). */
  largeChance: number;
  /** Operations between two yields to the event loop (messages, pause, stop). */
  chunkOps: number;
  mix: ChaosMix;
  /** A pause or a stop that lasts longer than this fails the worker. */
  holdTimeoutMs: number;
}

/** Main thread -> worker. */
export interface ReleaseRequest {
  type: 'release';
  id: number;
  slot: number;
  gen: number;
}

export interface ChaosWorkerResult {
  index: number;
  incarnation: number;
  ops: number;
  allocs: number;
  largeAllocs: number;
  frees: number;
  /** Frees of blocks another incarnation allocated. */
  remoteFrees: number;
  mapOps: number;
  /** Statuses that changed nothing for a reason outside the key (BUSY, FULL, NO_MEMORY), by status. */
  noEffect: Record<string, number>;
  /** releaseSlot calls this worker made for the main thread. */
  releases: number;
  /** Deferred frees still waiting when it detached (must be 0). */
  undrained: number;
}

/** Worker -> main thread. */
export type ChaosMessage =
  | { type: 'released'; id: number; ok: boolean; error?: string }
  | { type: 'done'; result: ChaosWorkerResult };

/* ------------------------------- encodings -------------------------------- */

export function packBlock(p: number, size: number, stamp: number): bigint {
  return (BigInt((((stamp & 0x7fff) << 17) | size) >>> 0) << 32n) | BigInt(p >>> 0);
}

// The same packing as the stress test's (pointer, 17-bit size, 15-bit stamp).
export { blockPointer, blockSize, blockStamp };

/** Stamps name the incarnation that allocated a block (mod 64) and its serial. */
export function makeStamp(incarnation: number, serial: number): number {
  return ((incarnation & 63) | (serial << 6)) & 0x7fff;
}

export function stampIncarnation(stamp: number): number {
  return stamp & 63;
}

function mix(x: number): number {
  let h = Math.imul(x ^ 0x27d4eb2d, 0x165667b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca77);
  return (h ^ (h >>> 13)) >>> 0;
}

/** Value ids are nonzero, positive int32, unique per (incarnation mod 4096, serial mod 2^19). */
export function valueId(incarnation: number, serial: number): number {
  return (((incarnation & 0xfff) << 19) | (serial & 0x7ffff)) || 1;
}

export function writeValue(v32: Uint32Array, id: number, key: number): void {
  v32[0] = id;
  v32[1] = key;
  v32[2] = (id ^ mix(key)) >>> 0;
  v32[3] = ~id >>> 0;
}

/** null when v32 is a well-formed value of `key`, else what is wrong. */
export function valueProblem(v32: Uint32Array, key: number): string | null {
  const id = v32[0]!;
  if (v32[1] !== key) return `value [${[...v32].join(', ')}] belongs to key ${v32[1]}, not ${key}`;
  if (v32[2] !== ((id ^ mix(key)) >>> 0) || v32[3] !== (~id >>> 0)) return `value [${[...v32].join(', ')}] of key ${key} is torn`;
  if (id === 0 || id > 0x7fffffff) return `value id ${id} of key ${key} was never written`;
  return null;
}

/* --------------------------------- waits ---------------------------------- */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `cond` every millisecond; rejects after timeoutMs, or as soon as
 * `abort` returns a reason (a worker failed meanwhile).
 */
export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string, abort?: () => string | null): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (cond()) return;
    const why = abort?.() ?? null;
    if (why !== null) throw new Error(`while waiting for ${what}: ${why}`);
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(1);
  }
}

/** p, or a rejection after timeoutMs. The timer never outlives the race. */
export async function withTimeout<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/* --------------------------------- checks --------------------------------- */

/** Live objects of an allocator: slab objects in no cache or depot (retired included), plus large runs. */
export function liveObjectsOf(a: Allocator): number {
  const st = a.stats();
  return st.classes.reduce((n, c) => n + c.live, 0) + st.large.live;
}

/** Elements a map's allocator counts as live. */
export function liveElementsOf(map: HashMap): number {
  return map.elementStats().classes.reduce((n, c) => n + c.live, 0);
}

/**
 * Compares the maps with the records, key by key (call only while no
 * worker writes: paused or stopped). Also checks that each map's count()
 * equals the keys the records say are present. Returns the problems.
 */
export function checkMapsAgainstRecords(maps: readonly HashMap[], records: Int32Array, keys: number): string[] {
  const problems: string[] = [];
  const out = new Uint8Array(VALUE_SIZE);
  const o32 = new Uint32Array(out.buffer);
  maps.forEach((map, m) => {
    let present = 0;
    for (let k = 0; k < keys; k++) {
      const want = Atomics.load(records, m * keys + k);
      if (want !== 0) present++;
      const found = map.lookupNumber(k, out);
      if (!found) {
        if (want !== 0) problems.push(`${MAP_NAMES[m]} map: key ${k} is absent, its record says ${want}`);
        continue;
      }
      const bad = valueProblem(o32, k);
      if (bad !== null) problems.push(`${MAP_NAMES[m]} map: ${bad}`);
      else if (o32[0] !== want) problems.push(`${MAP_NAMES[m]} map: key ${k} holds ${o32[0]}, its record says ${want === 0 ? 'absent' : want}`);
    }
    const count = map.count();
    if (count !== present) problems.push(`${MAP_NAMES[m]} map: count() ${count}, the records hold ${present} keys`);
  });
  return problems;
}

/** A problem that states two totals that differ, as their difference (so it is reported once while the totals move). */
export function canonicalProblem(problem: string): string {
  return problem
    .replace(/(\d+) free objects in slabs, (\d+) in lists/, (_, a: string, b: string) => `${Number(a) - Number(b)} free object(s) in no list`)
    .replace(/per-slot counts sum to (\d+), (\d+) elements reachable/, (_, a: string, b: string) => `per-slot counts exceed the reachable elements by ${Number(a) - Number(b)}`)
    .replace(/reserved (\d+) != count (\d+) \+ quota (\d+)/, (_, r: string, c: string, q: string) => `reserved exceeds count + quota by ${Number(r) - Number(c) - Number(q)}`)
    .replace(/count\(\) (\d+), the records hold (\d+) keys/, (_, a: string, b: string) => `count() exceeds the keys the records hold by ${Number(a) - Number(b)}`)
    .replace(/(\d+) objects are RETIRED, (\d+) wait in limbo rings/, (_, a: string, b: string) => `${Number(a) - Number(b)} RETIRED object(s) in no limbo ring`)
    .replace(/used pages (\d+) != tagged pages (\d+)/, (_, a: string, b: string) => `used pages exceed the tagged pages by ${Number(a) - Number(b)}`)
    .replace(/committed data pages (\d+) != free (\d+) \+ used (\d+)/, (_, c: string, f: string, u: string) => `committed data pages exceed free + used by ${Number(c) - Number(f) - Number(u)}`);
}

/* -------------------------------- the run --------------------------------- */

export interface ChaosRunOptions {
  heap: Heap;
  bucketed: Allocator;
  fixed: Allocator;
  dynamic: HashMap;
  prealloc: HashMap;
  workers: number;
  keys: number;
  seed: number;
  /** Slots per shared slot array. */
  sharedSlots: number;
  localBlocks: number;
  largeChance: number;
  chunkOps: number;
  mix?: ChaosMix;
  /** Deadline of each wait (start, pause, release, stop). */
  timeoutMs: number;
  /** The compiled worker script; default ../soak/workers/chaos-worker.js (from this module). */
  script?: URL;
}

/** What a dead worker took with it, read from its words after it was terminated. */
export interface Death {
  index: number;
  incarnation: number;
  slot: number;
  gen: number;
  liveBucketed: number;
  liveFixed: number;
  /** Deferred frees it had waiting (dynamic, preallocated map). */
  pending: [number, number];
  /** Its map operation in flight, if any. */
  inflight: { map: number; key: number; after: number } | null;
}

interface Running {
  worker: Worker;
  incarnation: number;
  slot: number;
  gen: number;
  exited: boolean;
  done: ChaosWorkerResult | null;
  killing: boolean;
}

/**
 * Runs the chaos workers: start, kill, recover, pause, stop. Every wait is
 * bounded by options.timeoutMs; a worker that throws or exits on its own
 * is recorded in `failures` and makes the next wait fail.
 */
export class ChaosRun {
  readonly ctl: Int32Array;
  readonly records: Int32Array;
  readonly slotsBucketed: BigInt64Array;
  readonly slotsFixed: BigInt64Array;
  readonly failures: string[] = [];
  /** Every worker's final result (stopped ones), and the deaths. */
  readonly results: ChaosWorkerResult[] = [];
  readonly deaths: Death[] = [];
  /** releaseSlot done by the main thread / by a surviving worker. */
  releasesByMain = 0;
  releasesByWorker = 0;
  private readonly o: ChaosRunOptions & { mix: ChaosMix; script: URL };
  private readonly jobBase: Omit<ChaosJob, 'heap' | 'index' | 'incarnation'>;
  private readonly running: (Running | null)[];
  private incarnations = 0;
  private pauses = 0;
  private requestId = 0;
  private readonly replies = new Map<number, (m: { ok: boolean; error?: string }) => void>();

  constructor(options: ChaosRunOptions) {
    this.o = { mix: STRESS_MIX, script: new URL('../soak/workers/chaos-worker.js', import.meta.url), ...options };
    const { workers, keys, sharedSlots } = this.o;
    if (keys % workers !== 0) throw new RangeError(`keys (${keys}) must be a multiple of workers (${workers})`);
    const ctl = new SharedArrayBuffer(ctlWords(workers) * 4);
    const records = new SharedArrayBuffer(2 * keys * 4);
    const slotsBucketed = new SharedArrayBuffer(sharedSlots * 8);
    const slotsFixed = new SharedArrayBuffer(sharedSlots * 8);
    this.ctl = new Int32Array(ctl);
    this.records = new Int32Array(records);
    this.slotsBucketed = new BigInt64Array(slotsBucketed);
    this.slotsFixed = new BigInt64Array(slotsFixed);
    for (let i = 0; i < workers; i++) Atomics.store(this.ctl, wordOf(i, WK.IF_KEY), -1);
    this.running = new Array<Running | null>(workers).fill(null);
    this.jobBase = {
      bucketed: this.o.bucketed.handle,
      fixed: this.o.fixed.handle,
      dynamic: this.o.dynamic.handle,
      prealloc: this.o.prealloc.handle,
      ctl,
      records,
      slotsBucketed,
      slotsFixed,
      seed: this.o.seed,
      workers,
      keys,
      localBlocks: this.o.localBlocks,
      largeChance: this.o.largeChance,
      chunkOps: this.o.chunkOps,
      mix: this.o.mix,
      holdTimeoutMs: this.o.timeoutMs,
    };
  }

  get workers(): number {
    return this.o.workers;
  }

  /** Workers started so far (the last incarnation number). */
  get started(): number {
    return this.incarnations;
  }

  private failure(): string | null {
    return this.failures.length > 0 ? this.failures.join('; ') : null;
  }

  /** Throws if any worker failed. */
  assertNoFailure(): void {
    const f = this.failure();
    if (f !== null) throw new Error(`worker failure: ${f}`);
  }

  /** Words of worker index i. */
  word(i: number, field: number): number {
    return Atomics.load(this.ctl, wordOf(i, field));
  }

  /** Operations done by every worker so far (mod 2^32 per index; diff it). */
  opsWords(): number[] {
    return Array.from({ length: this.o.workers }, (_, i) => this.word(i, WK.OPS) >>> 0);
  }

  /** Starts (or restarts) worker `index` in a freshly reserved slot and waits until it runs. */
  async spawn(index: number): Promise<void> {
    if (this.running[index] !== null) throw new Error(`worker ${index} is still running`);
    const handle = this.o.heap.reserveSlot();
    const incarnation = ++this.incarnations;
    const job: ChaosJob = { ...this.jobBase, heap: handle, index, incarnation };
    const r: Running = { worker: new Worker(this.o.script, { workerData: job }), incarnation, slot: handle.slot, gen: handle.gen, exited: false, done: null, killing: false };
    // A run that is abandoned (a test that timed out) must not keep the process alive.
    r.worker.unref();
    this.running[index] = r;
    const name = `worker ${index} (incarnation ${incarnation}, slot ${handle.slot})`;
    r.worker.on('message', (m: ChaosMessage) => {
      if (m.type === 'done') r.done = m.result;
      else {
        const reply = this.replies.get(m.id);
        this.replies.delete(m.id);
        reply?.(m);
      }
    });
    r.worker.on('error', (err: unknown) => {
      this.failures.push(`${name}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    });
    r.worker.on('exit', (code) => {
      r.exited = true;
      if (!r.killing && r.done === null) this.failures.push(`${name} exited (code ${code}) without being stopped`);
    });
    await waitUntil(() => this.word(index, WK.STARTED) === incarnation, this.o.timeoutMs, `${name} to start`, () => this.failure());
  }

  /** Starts every index. */
  async spawnAll(): Promise<void> {
    for (let i = 0; i < this.o.workers; i++) await this.spawn(i);
  }

  /** Indices with a running worker. */
  alive(): number[] {
    return this.running.flatMap((r, i) => (r !== null ? [i] : []));
  }

  /**
   * Terminates worker `index` (it gets no chance to clean up) and reads
   * what it left in its words. Its slot is not released yet.
   */
  async kill(index: number): Promise<Death> {
    const r = this.running[index];
    if (r === null || r === undefined) throw new Error(`worker ${index} is not running`);
    r.killing = true;
    await withTimeout(r.worker.terminate(), this.o.timeoutMs, `worker ${index} to terminate`);
    this.running[index] = null;
    const key = this.word(index, WK.IF_KEY);
    const death: Death = {
      index,
      incarnation: r.incarnation,
      slot: r.slot,
      gen: r.gen,
      liveBucketed: this.word(index, WK.LIVE_B),
      liveFixed: this.word(index, WK.LIVE_F),
      pending: [this.word(index, WK.PENDING_D), this.word(index, WK.PENDING_P)],
      inflight: key < 0 ? null : { map: this.word(index, WK.IF_MAP), key, after: this.word(index, WK.IF_AFTER) },
    };
    this.deaths.push(death);
    return death;
  }

  /**
   * Releases a dead worker's slot: in the main thread (by = -1) or in the
   * surviving worker `by`, through a message. releaseSlot must return true.
   */
  async recover(death: Death, by: number): Promise<void> {
    if (by < 0) {
      const ok = this.o.heap.releaseSlot(death.slot, death.gen);
      if (!ok) throw new Error(`main thread: releaseSlot(${death.slot}, ${death.gen}) of dead worker ${death.index} returned false`);
      this.releasesByMain++;
      return;
    }
    const r = this.running[by];
    if (r === null || r === undefined) throw new Error(`recover: worker ${by} is not running`);
    const id = ++this.requestId;
    const reply = new Promise<{ ok: boolean; error?: string }>((resolve) => this.replies.set(id, resolve));
    const req: ReleaseRequest = { type: 'release', id, slot: death.slot, gen: death.gen };
    r.worker.postMessage(req);
    let poll: NodeJS.Timeout | undefined;
    const abort = new Promise<never>((_, reject) => {
      poll = setInterval(() => {
        const f = this.failure();
        if (f !== null) reject(new Error(`while worker ${by} released slot ${death.slot}: ${f}`));
      }, 5);
    });
    let m: { ok: boolean; error?: string };
    try {
      m = await withTimeout(Promise.race([reply, abort]), this.o.timeoutMs, `worker ${by} to release slot ${death.slot}`);
    } finally {
      clearInterval(poll);
      this.replies.delete(id);
    }
    if (!m.ok) throw new Error(`worker ${by}: releaseSlot(${death.slot}, ${death.gen}) of dead worker ${death.index} ${m.error ?? 'returned false'}`);
    this.releasesByWorker++;
  }

  /**
   * The dead worker's keys: each must hold its record, or what its one
   * operation in flight would have made of it. The records then take what
   * the maps hold, so the next incarnation starts from an exact record.
   * Returns the problems (records lost). Safe while the others run: only
   * the dead index wrote these keys.
   */
  resolveDeadKeys(death: Death): string[] {
    const { workers, keys, dynamic, prealloc } = this.o;
    const problems: string[] = [];
    const out = new Uint8Array(VALUE_SIZE);
    const o32 = new Uint32Array(out.buffer);
    [dynamic, prealloc].forEach((map, m) => {
      for (let k = death.index; k < keys; k += workers) {
        const rec = Atomics.load(this.records, m * keys + k);
        let holds = 0;
        if (map.lookupNumber(k, out)) {
          const bad = valueProblem(o32, k);
          if (bad !== null) {
            problems.push(`${MAP_NAMES[m]} map, dead worker ${death.index}'s ${bad}`);
            continue;
          }
          holds = o32[0]!;
        }
        const inflight = death.inflight !== null && death.inflight.map === m && death.inflight.key === k ? death.inflight.after : rec;
        if (holds !== rec && holds !== inflight) {
          problems.push(
            `${MAP_NAMES[m]} map: dead worker ${death.index}'s key ${k} holds ${holds || 'nothing'}; ` +
              `its record says ${rec || 'absent'}${death.inflight?.key === k && death.inflight.map === m ? `, its operation in flight ${inflight || 'absent'}` : ''}`,
          );
        }
        Atomics.store(this.records, m * keys + k, holds);
      }
    });
    Atomics.store(this.ctl, wordOf(death.index, WK.IF_KEY), -1);
    return problems;
  }

  /** Asks every running worker to hold still and waits until all do. */
  async pause(): Promise<void> {
    const n = ++this.pauses;
    Atomics.store(this.ctl, CTL.PAUSE, n);
    const alive = this.alive();
    await waitUntil(() => alive.every((i) => this.word(i, WK.PAUSED) === n), this.o.timeoutMs, `workers ${alive.join(', ')} to pause`, () => this.failure());
  }

  resume(): void {
    Atomics.store(this.ctl, CTL.PAUSE, 0);
  }

  /** Stops every running worker (they free what they hold and detach) and collects their results. */
  async stopAll(): Promise<ChaosWorkerResult[]> {
    Atomics.store(this.ctl, CTL.PAUSE, 0);
    Atomics.store(this.ctl, CTL.STOP, 1);
    const alive = this.alive();
    const rs = alive.map((i) => this.running[i]!);
    await waitUntil(() => rs.every((r) => r.exited), this.o.timeoutMs, `workers ${alive.join(', ')} to stop`, () => this.failure());
    const out: ChaosWorkerResult[] = [];
    for (const [j, r] of rs.entries()) {
      if (r.done === null) throw new Error(`worker ${alive[j]} exited without its result`);
      out.push(r.done);
      this.results.push(r.done);
      this.running[alive[j]!] = null;
    }
    return out;
  }

  /** Terminates whatever still runs (after a failure); bounded. */
  async abort(): Promise<void> {
    await Promise.all(
      this.running.map(async (r, i) => {
        if (r === null) return;
        r.killing = true;
        this.running[i] = null;
        await withTimeout(r.worker.terminate(), this.o.timeoutMs, `worker ${i} to terminate`).catch(() => undefined);
        this.o.heap.releaseSlot(r.slot, r.gen);
      }),
    );
  }

  /**
   * With every worker stopped: checks and frees every block left in the
   * shared slot arrays. Returns the problems (broken cookies).
   */
  freeSharedBlocks(): { freed: number; problems: string[] } {
    const heap = this.o.heap;
    const problems: string[] = [];
    let freed = 0;
    for (const [slots, a, what] of [
      [this.slotsBucketed, this.o.bucketed, 'bucketed'],
      [this.slotsFixed, this.o.fixed, 'fixed'],
    ] as const) {
      for (let j = 0; j < slots.length; j++) {
        const v = Atomics.exchange(slots, j, 0n);
        if (v === 0n) continue;
        heap.refresh();
        const p = blockPointer(v);
        const bad = checkCookie(heap.i32, heap.u8, p, blockSize(v), blockStamp(v));
        if (bad !== null) problems.push(`${what} slot ${j}: ${bad}`);
        else {
          a.free(p);
          freed++;
        }
      }
    }
    return { freed, problems };
  }

  /**
   * The leak the deaths allow: per allocator, the blocks the dead workers
   * held plus one in flight each; per map, one element in flight each.
   */
  leakBound(): { bucketed: number; fixed: number; dynamic: number; prealloc: number } {
    const d = this.deaths;
    return {
      bucketed: d.reduce((n, x) => n + x.liveBucketed + 1, 0),
      fixed: d.reduce((n, x) => n + x.liveFixed + 1, 0),
      dynamic: d.length,
      prealloc: d.length,
    };
  }

  /** Deferred frees the dead workers had waiting when they died (dynamic, preallocated). */
  deadPending(): [number, number] {
    return [this.deaths.reduce((n, x) => n + x.pending[0], 0), this.deaths.reduce((n, x) => n + x.pending[1], 0)];
  }
}
