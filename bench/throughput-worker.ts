/**
 * Worker side of the throughput suite (see throughput.ts).
 *
 * Attaches to the shared state of one peer, warms up, waits at the barrier,
 * then churns for a fixed time: each step frees the block allocated `live`
 * steps earlier and allocates a new one of a size drawn from 16..256 bytes.
 * One step is one alloc+free pair.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { loadThroughputPeer } from './peers/index.js';
import type { WorkerOps } from './peers/types.js';

export interface WorkerInput {
  peer: string;
  /** Entry file of the baseline build, for `anyalloc@baseline`. */
  baseline?: string;
  data: unknown;
  ctl: Int32Array;
  index: number;
  durationMs: number;
  warmupMs: number;
  /** Live blocks each worker holds (power of two). */
  live: number;
  seed: number;
}

export interface WorkerOutput {
  index: number;
  pairs: number;
  fails: number;
  elapsedMs: number;
  error?: string;
}

/** Control words shared with the main thread. */
export const CTL_READY = 0;
export const CTL_GO = 1;
export const CTL_WORDS = 4;

export const SIZE_TABLE = 1024;
export const MIN_SIZE = 16;
export const MAX_SIZE = 256;

/** Sizes 16, 24, ..., 256 drawn with xorshift32 from `seed`. */
export function sizeTable(seed: number): Uint16Array {
  const t = new Uint16Array(SIZE_TABLE);
  let x = seed | 0 || 0x9e3779b9;
  const steps = (MAX_SIZE - MIN_SIZE) / 8 + 1;
  for (let i = 0; i < SIZE_TABLE; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    t[i] = MIN_SIZE + 8 * ((x >>> 0) % steps);
  }
  return t;
}

const BATCH = 128;

function churn<H>(ops: WorkerOps<H>, slots: (H | null)[], sizes: Uint16Array, durationMs: number) {
  const mask = slots.length - 1;
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  let pairs = 0;
  let fails = 0;
  let i = 0;
  for (;;) {
    for (let k = 0; k < BATCH; k++) {
      const s = i & mask;
      const old = slots[s];
      if (old !== null) ops.free(old);
      const h = ops.alloc(sizes[i & (SIZE_TABLE - 1)]);
      if (h === null) fails++;
      slots[s] = h;
      i++;
    }
    pairs += BATCH;
    const t = performance.now();
    if (t >= deadline) return { pairs, fails, elapsedMs: t - t0 };
  }
}

function drain<H>(ops: WorkerOps<H>, slots: (H | null)[]): void {
  for (let s = 0; s < slots.length; s++) {
    const h = slots[s];
    if (h !== null) ops.free(h);
    slots[s] = null;
  }
}

async function main(input: WorkerInput): Promise<WorkerOutput> {
  const peer = await loadThroughputPeer(input.peer, input.baseline);
  const ops = await peer.attach(input.data, input.index);
  const slots: unknown[] = new Array<unknown>(input.live).fill(null);
  const sizes = sizeTable(input.seed + input.index * 7919);

  if (input.warmupMs > 0) churn(ops, slots, sizes, input.warmupMs);
  drain(ops, slots);

  const ctl = input.ctl;
  Atomics.add(ctl, CTL_READY, 1);
  Atomics.notify(ctl, CTL_READY);
  while (Atomics.load(ctl, CTL_GO) === 0) Atomics.wait(ctl, CTL_GO, 0);

  const r = churn(ops, slots, sizes, input.durationMs);
  drain(ops, slots);
  ops.detach();
  return { index: input.index, ...r };
}

const input = workerData as WorkerInput | undefined;
if (parentPort && input) {
  const port = parentPort;
  main(input).then(
    (out) => port.postMessage(out),
    (e: unknown) => {
      // Still count as ready so the main thread does not wait forever.
      Atomics.add(input.ctl, CTL_READY, 1);
      Atomics.notify(input.ctl, CTL_READY);
      const msg: WorkerOutput = { index: input.index, pairs: 0, fails: 0, elapsedMs: 0, error: String((e as Error)?.stack ?? e) };
      port.postMessage(msg);
    },
  );
}
