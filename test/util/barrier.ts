/**
 * A reusable barrier and bounded waits over a small SharedArrayBuffer, for
 * workers that must start a phase together (so their operations overlap)
 * and for one agent waiting for a signal from another.
 *
 * Layout (Int32 words): 0 arrivals in the current phase, 1 phase number.
 * The last agent to arrive resets the count and bumps the phase (the store
 * other agents wait on). Every wait has a deadline: a peer that died or
 * hangs turns into an Error, never into a hung test.
 */

const ARRIVED = 0;
const PHASE = 1;
/** How long arrive() spins before it sleeps. */
const SPIN_MS = 20;
/** Words of the buffer a Barrier uses. */
export const BARRIER_WORDS = 2;

export class Barrier {
  private readonly i32: Int32Array;

  /** parties: agents that call arrive() in each phase. */
  constructor(
    buffer: SharedArrayBuffer,
    readonly parties: number,
    offsetWords = 0,
  ) {
    this.i32 = new Int32Array(buffer, offsetWords * 4, BARRIER_WORDS);
  }

  static buffer(): SharedArrayBuffer {
    return new SharedArrayBuffer(BARRIER_WORDS * 4);
  }

  /**
   * Waits until all parties have arrived in this phase. It spins for the
   * first SPIN_MS, so parties that arrive close together leave within
   * microseconds of each other (which is the point), then sleeps in 1 ms
   * slices (a party may still be starting up). Throws after timeoutMs.
   */
  arrive(timeoutMs: number): void {
    const i32 = this.i32;
    const phase = Atomics.load(i32, PHASE);
    if (Atomics.add(i32, ARRIVED, 1) + 1 === this.parties) {
      Atomics.store(i32, ARRIVED, 0);
      Atomics.store(i32, PHASE, phase + 1);
      Atomics.notify(i32, PHASE);
      return;
    }
    const start = performance.now();
    for (let spins = 1; Atomics.load(i32, PHASE) === phase; spins++) {
      if ((spins & 255) !== 0) continue;
      const waited = performance.now() - start;
      if (waited > timeoutMs) throw new Error(`barrier: ${Atomics.load(i32, ARRIVED)} of ${this.parties} arrived within ${timeoutMs} ms`);
      if (waited > SPIN_MS) Atomics.wait(i32, PHASE, phase, 1);
    }
  }
}

/**
 * Waits (in a worker, where Atomics.wait is allowed) until word `index` of
 * i32 differs from `value`, in slices of at most 10 ms. Returns the new
 * value; throws after timeoutMs.
 */
export function waitWhileEquals(i32: Int32Array, index: number, value: number, timeoutMs: number, what: string): number {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = Atomics.load(i32, index);
    if (v !== value) return v;
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    Atomics.wait(i32, index, value, Math.min(10, left));
  }
}

/** Sets word `index` and wakes its waiters. */
export function signal(i32: Int32Array, index: number, value: number): void {
  Atomics.store(i32, index, value);
  Atomics.notify(i32, index);
}

/**
 * The main thread may not block in Atomics.wait for long: it polls
 * word `index` every millisecond until it differs from `value`. Rejects
 * after timeoutMs.
 */
export async function pollWhileEquals(i32: Int32Array, index: number, value: number, timeoutMs: number, what: string): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = Atomics.load(i32, index);
    if (v !== value) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
