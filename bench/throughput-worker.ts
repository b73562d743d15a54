/**
 * One worker of the throughput suite (throughput.ts): attaches to the
 * peer's shared state, churns for the warm-up, counts itself ready in
 * ctl[CTL_READY], waits for ctl[CTL_GO], then churns for the measured time.
 * A step frees the block allocated `live` steps earlier and allocates a
 * new one of 16, 24, ..., 256 bytes (xorshift32 from the seed): one
 * alloc+free pair.
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
  /** Live blocks each worker holds (a power of two). */
  live: number;
  seed: number;
}

export interface WorkerOutput {
  pairs: number;
  fails: number;
  elapsedMs: number;
  error?: string;
}

export const CTL_READY = 0;
export const CTL_GO = 1;
export const CTL_WORDS = 2;

const SIZES = 1024;
const BATCH = 128;

function churn<H>(ops: WorkerOps<H>, slots: (H | null)[], sizes: Uint16Array, durationMs: number): WorkerOutput {
  const mask = slots.length - 1;
  const t0 = performance.now();
  let pairs = 0;
  let fails = 0;
  for (let i = 0; ; ) {
    for (let k = 0; k < BATCH; k++, i++) {
      const old = slots[i & mask];
      if (old !== null) ops.free(old!);
      const h = ops.alloc(sizes[i & (SIZES - 1)]!);
      if (h === null) fails++;
      slots[i & mask] = h;
    }
    pairs += BATCH;
    const t = performance.now();
    if (t - t0 >= durationMs) return { pairs, fails, elapsedMs: t - t0 };
  }
}

async function main(input: WorkerInput): Promise<WorkerOutput> {
  const ops = await (await loadThroughputPeer(input.peer, input.baseline)).attach(input.data, input.index);
  const slots: unknown[] = new Array<unknown>(input.live).fill(null);
  const sizes = new Uint16Array(SIZES);
  let x = (input.seed + input.index * 7919) | 0 || 0x9e3779b9;
  for (let i = 0; i < SIZES; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    sizes[i] = 16 + 8 * ((x >>> 0) % 31);
  }
  const drain = (): void => slots.forEach((h, s) => (h !== null && ops.free(h), (slots[s] = null)));
  if (input.warmupMs > 0) churn(ops, slots, sizes, input.warmupMs);
  drain();
  Atomics.add(input.ctl, CTL_READY, 1);
  Atomics.notify(input.ctl, CTL_READY);
  while (Atomics.load(input.ctl, CTL_GO) === 0) Atomics.wait(input.ctl, CTL_GO, 0);
  const r = churn(ops, slots, sizes, input.durationMs);
  drain();
  ops.detach();
  return r;
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
      port.postMessage({ pairs: 0, fails: 0, elapsedMs: 0, error: String((e as Error)?.stack ?? e) } satisfies WorkerOutput);
    },
  );
}
