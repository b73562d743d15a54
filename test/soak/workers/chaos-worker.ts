/**
 * One chaos worker (see ../../util/chaos.ts for the protocol and the shared
 * words). It runs the stress mix in chunks until told to stop, yielding to
 * the event loop between chunks so that the main thread's messages (a
 * releaseSlot to do for it) get through. It may be terminated at any
 * moment: everything the main thread needs to judge its death (blocks it
 * holds, its map operation in flight, its records) is in shared memory
 * before and after each step.
 *
 * Checks (any failure throws, with the worker, incarnation and seed):
 * cookies before every free and on every block received; every map status
 * is what its record predicts (BUSY, FULL and NO_MEMORY are counted as
 * no-ops); a lookup of its own key returns exactly its record; a lookup of
 * another worker's key returns a well-formed value of that key or nothing.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BUCKET_SIZES, HashMap, Heap, MAX_SMALL, MapFlag, MapStatus, type Allocator } from '../../../src/index.js';
import {
  CTL,
  MAX_BLOCK_SIZE,
  VALUE_SIZE,
  WK,
  blockPointer,
  blockSize,
  blockStamp,
  makeStamp,
  packBlock,
  stampIncarnation,
  valueId,
  valueProblem,
  wordOf,
  writeValue,
  type ChaosJob,
  type ChaosMessage,
  type ChaosWorkerResult,
  type ReleaseRequest,
} from '../../util/chaos.js';
import { checkCookie, fillCookie } from '../../util/cookie.js';
import { drainDeferred } from '../../util/map-drain.js';
import { Prng, deriveSeed, seedNote } from '../../util/prng.js';

const job = workerData as ChaosJob;
const where = `chaos worker ${job.index} (incarnation ${job.incarnation}), ${seedNote(job.seed)}`;

function fail(msg: string): never {
  throw new Error(`${msg} [${where}]`);
}

const rng = new Prng(deriveSeed(job.seed, job.incarnation, job.index));
const heap = Heap.attach(job.heap);
const bucketed: Allocator = heap.attachAllocator(job.bucketed);
const fixed: Allocator = heap.attachAllocator(job.fixed);
const maps = [HashMap.attach(heap, job.dynamic), HashMap.attach(heap, job.prealloc)] as const;
const ctl = new Int32Array(job.ctl);
const records = new Int32Array(job.records);
const slotsB = new BigInt64Array(job.slotsBucketed);
const slotsF = new BigInt64Array(job.slotsFixed);
const fixedUnit = fixed.unitSize;
const ownKeys = job.keys / job.workers;

const W_LIVE_B = wordOf(job.index, WK.LIVE_B);
const W_LIVE_F = wordOf(job.index, WK.LIVE_F);
const W_IF_KEY = wordOf(job.index, WK.IF_KEY);
const W_IF_MAP = wordOf(job.index, WK.IF_MAP);
const W_IF_AFTER = wordOf(job.index, WK.IF_AFTER);

const result: ChaosWorkerResult = {
  index: job.index,
  incarnation: job.incarnation,
  ops: 0,
  allocs: 0,
  largeAllocs: 0,
  frees: 0,
  remoteFrees: 0,
  mapOps: 0,
  noEffect: {},
  releases: 0,
  undrained: 0,
};

/** Private blocks per allocator (0n = empty) and how many are held. */
const localB: bigint[] = new Array<bigint>(job.localBlocks).fill(0n);
const localF: bigint[] = new Array<bigint>(job.localBlocks).fill(0n);
let liveB = 0;
let liveF = 0;
Atomics.store(ctl, W_LIVE_B, 0);
Atomics.store(ctl, W_LIVE_F, 0);

const value = new Uint8Array(VALUE_SIZE);
const v32 = new Uint32Array(value.buffer);
const out = new Uint8Array(VALUE_SIZE);
const o32 = new Uint32Array(out.buffer);
let valueSerial = 0;

/** Classes up to 4 KiB; the larger ones (to 32 KiB) take a tenth of the picks, so the bytes a killed worker leaves allocated stay near what they were with 4 KiB the largest class. */
const SMALL_CLASSES = BUCKET_SIZES.indexOf(4096) + 1;

function pickSize(): number {
  if (rng.chance(job.largeChance)) return rng.between(MAX_SMALL + 1, 70000);
  const b = rng.chance(0.1) ? rng.between(SMALL_CLASSES, BUCKET_SIZES.length - 1) : rng.below(SMALL_CLASSES);
  return rng.between(b === 0 ? 1 : BUCKET_SIZES[b - 1]! + 1, BUCKET_SIZES[b]!);
}

function allocBlock(a: Allocator, size: number, isB: boolean): bigint {
  if (size > MAX_BLOCK_SIZE) fail(`size ${size} does not fit the slot encoding`);
  const p = a === fixed && size === fixedUnit ? a.alloc() : a.alloc(size);
  if (p === 0) fail(`${isB ? 'bucketed' : 'fixed'} alloc(${size}) returned 0`);
  // Published at once: from here the block is this worker's to lose.
  if (isB) Atomics.store(ctl, W_LIVE_B, ++liveB);
  else Atomics.store(ctl, W_LIVE_F, ++liveF);
  if (p % 16 !== 0) fail(`alloc(${size}) returned ${p}, not 16-byte aligned`);
  if (p + size > heap.viewBytes) fail(`alloc(${size}) returned ${p}, beyond this agent's views (${heap.viewBytes} bytes)`);
  const stamp = makeStamp(job.incarnation, result.allocs);
  fillCookie(heap.i32, heap.u8, p, size, stamp);
  result.allocs++;
  if (size > 4096) result.largeAllocs++;
  return packBlock(p, size, stamp);
}

function checkBlock(v: bigint, how: string): void {
  const p = blockPointer(v);
  const size = blockSize(v);
  if (p + size > heap.viewBytes) heap.refresh();
  const bad = checkCookie(heap.i32, heap.u8, p, size, blockStamp(v));
  if (bad !== null) fail(`${how}: cookie broken (allocated by incarnation ${stampIncarnation(blockStamp(v))} mod 64): ${bad}`);
}

function freeBlock(a: Allocator, v: bigint, isB: boolean, how: string): void {
  checkBlock(v, how);
  a.free(blockPointer(v));
  if (isB) Atomics.store(ctl, W_LIVE_B, --liveB);
  else Atomics.store(ctl, W_LIVE_F, --liveF);
  result.frees++;
  if (stampIncarnation(blockStamp(v)) !== (job.incarnation & 63)) result.remoteFrees++;
}

function replace(isB: boolean, i: number): void {
  const local = isB ? localB : localF;
  const a = isB ? bucketed : fixed;
  const old = local[i]!;
  local[i] = 0n;
  if (old !== 0n) freeBlock(a, old, isB, 'replace');
  local[i] = allocBlock(a, isB ? pickSize() : rng.chance(0.5) ? fixedUnit : rng.between(1, fixedUnit), isB);
}

function release(isB: boolean, i: number): void {
  const local = isB ? localB : localF;
  const old = local[i]!;
  local[i] = 0n;
  if (old !== 0n) freeBlock(isB ? bucketed : fixed, old, isB, 'free');
}

function exchange(i: number): void {
  const isB = rng.chance(0.7);
  const local = isB ? localB : localF;
  const slots = isB ? slotsB : slotsF;
  const j = rng.below(slots.length);
  const freeNow = rng.chance(0.5);
  const mine = local[i]!;
  const got = Atomics.exchange(slots, j, mine);
  local[i] = got;
  if (isB) {
    liveB += (got !== 0n ? 1 : 0) - (mine !== 0n ? 1 : 0);
    Atomics.store(ctl, W_LIVE_B, liveB);
  } else {
    liveF += (got !== 0n ? 1 : 0) - (mine !== 0n ? 1 : 0);
    Atomics.store(ctl, W_LIVE_F, liveF);
  }
  if (got === 0n) return;
  heap.refresh();
  if (freeNow) {
    local[i] = 0n;
    freeBlock(isB ? bucketed : fixed, got, isB, `received from slot ${j}`);
  } else {
    checkBlock(got, `received from slot ${j}`);
  }
}

function noEffect(st: number): boolean {
  if (st !== MapStatus.BUSY && st !== MapStatus.FULL && st !== MapStatus.NO_MEMORY) return false;
  result.noEffect[st] = (result.noEffect[st] ?? 0) + 1;
  return true;
}

function mapOp(): void {
  const m = rng.chance(0.7) ? 0 : 1;
  const map = maps[m];
  const k = rng.below(ownKeys) * job.workers + job.index;
  const rw = m * job.keys + k;
  const cur = records[rw]!;
  const r = rng.below(100);
  result.mapOps++;
  if (r < 50) {
    const flag = r < 20 ? MapFlag.ANY : r < 35 ? MapFlag.NOEXIST : MapFlag.EXIST;
    const id = valueId(job.incarnation, ++valueSerial);
    const skip = (flag === MapFlag.NOEXIST && cur !== 0) || (flag === MapFlag.EXIST && cur === 0);
    const want = !skip ? MapStatus.OK : flag === MapFlag.NOEXIST ? MapStatus.EXISTS : MapStatus.NOT_FOUND;
    const after = skip ? cur : id;
    writeValue(v32, id, k);
    Atomics.store(ctl, W_IF_KEY, -1);
    Atomics.store(ctl, W_IF_MAP, m);
    Atomics.store(ctl, W_IF_AFTER, after);
    Atomics.store(ctl, W_IF_KEY, k);
    const st = map.updateNumber(k, value, flag);
    if (st === want) Atomics.store(records, rw, after);
    else if (!noEffect(st)) fail(`${m === 0 ? 'dynamic' : 'prealloc'} update(${k}, flag ${flag}) returned ${st}, want ${want} (record ${cur || 'absent'})`);
    Atomics.store(ctl, W_IF_KEY, -1);
  } else if (r < 75) {
    const want = cur !== 0 ? MapStatus.OK : MapStatus.NOT_FOUND;
    Atomics.store(ctl, W_IF_KEY, -1);
    Atomics.store(ctl, W_IF_MAP, m);
    Atomics.store(ctl, W_IF_AFTER, 0);
    Atomics.store(ctl, W_IF_KEY, k);
    const st = map.deleteNumber(k);
    if (st === want) Atomics.store(records, rw, 0);
    else if (!noEffect(st)) fail(`${m === 0 ? 'dynamic' : 'prealloc'} delete(${k}) returned ${st}, want ${want} (record ${cur || 'absent'})`);
    Atomics.store(ctl, W_IF_KEY, -1);
  } else if (r < 90) {
    const found = map.lookupNumber(k, out);
    if (found !== (cur !== 0)) fail(`${m === 0 ? 'dynamic' : 'prealloc'} lookup(${k}) found ${found}, record ${cur || 'absent'}`);
    if (found) {
      const bad = valueProblem(o32, k);
      if (bad !== null) fail(`lookup of own key: ${bad}`);
      if (o32[0] !== cur) fail(`${m === 0 ? 'dynamic' : 'prealloc'} lookup(${k}) read ${o32[0]}, record ${cur}`);
    }
  } else {
    const other = rng.below(job.keys);
    if (map.lookupNumber(other, out)) {
      const bad = valueProblem(o32, other);
      if (bad !== null) fail(`lookup of key ${other}: ${bad}`);
    }
  }
}

const mix = job.mix;
const T1 = mix.bucketedReplace;
const T2 = T1 + mix.bucketedFree;
const T3 = T2 + mix.fixedReplace;
const T4 = T3 + mix.fixedFree;
const T5 = T4 + mix.exchange;

function step(): void {
  const r = rng.below(100);
  const i = rng.below(job.localBlocks);
  if (r < T1) replace(true, i);
  else if (r < T2) release(true, i);
  else if (r < T3) replace(false, i);
  else if (r < T4) release(false, i);
  else if (r < T5) exchange(i);
  else mapOp();
}

function publishPending(): void {
  Atomics.store(ctl, wordOf(job.index, WK.PENDING_D), maps[0].deferredPending);
  Atomics.store(ctl, wordOf(job.index, WK.PENDING_P), maps[1].deferredPending);
}

parentPort!.on('message', (m: ReleaseRequest) => {
  if (m.type !== 'release') return;
  let reply: ChaosMessage;
  try {
    const ok = heap.releaseSlot(m.slot, m.gen);
    if (ok) result.releases++;
    reply = { type: 'released', id: m.id, ok };
  } catch (err) {
    reply = { type: 'released', id: m.id, ok: false, error: `threw ${String(err)}` };
  }
  parentPort!.postMessage(reply);
});

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
const nap = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

async function holdStill(n: number): Promise<void> {
  // Quiet means no deferred work in this agent's hands: run what has
  // passed its grace period, and move any entries spilled while a
  // collector held this agent's limbo ring into the ring, where
  // validate() sees them.
  maps[0].collect();
  maps[1].collect();
  publishPending();
  Atomics.store(ctl, wordOf(job.index, WK.PAUSED), n);
  const deadline = performance.now() + job.holdTimeoutMs;
  while (Atomics.load(ctl, CTL.PAUSE) === n && Atomics.load(ctl, CTL.STOP) === 0) {
    if (performance.now() > deadline) fail(`paused for more than ${job.holdTimeoutMs} ms`);
    await nap();
  }
}

async function run(): Promise<void> {
  let first = true;
  while (Atomics.load(ctl, CTL.STOP) === 0) {
    const pause = Atomics.load(ctl, CTL.PAUSE);
    if (pause !== 0 && Atomics.load(ctl, wordOf(job.index, WK.PAUSED)) !== pause) {
      await holdStill(pause);
      continue;
    }
    for (let n = 0; n < job.chunkOps; n++) step();
    result.ops += job.chunkOps;
    Atomics.add(ctl, wordOf(job.index, WK.OPS), job.chunkOps);
    publishPending();
    if (first) {
      first = false;
      Atomics.store(ctl, wordOf(job.index, WK.STARTED), job.incarnation);
    }
    await yieldToLoop();
  }
  // Stop: give back every block this worker holds, run its deferred frees, detach.
  for (let i = 0; i < job.localBlocks; i++) {
    release(true, i);
    release(false, i);
  }
  result.undrained = drainDeferred(maps[0], job.holdTimeoutMs) + drainDeferred(maps[1], job.holdTimeoutMs);
  publishPending();
  heap.detach();
  parentPort!.postMessage({ type: 'done', result } satisfies ChaosMessage);
  parentPort!.close();
}

await run();
