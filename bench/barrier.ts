/**
 * Starting benchmark workers together: every worker counts itself in a
 * ready word of a shared control array and waits for a go word, so that
 * none starts measuring while others still load.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker, type WorkerOptions } from 'node:worker_threads';

export interface BarrierWords {
  /** Index in ctl that each worker increments when it is ready. */
  ready: number;
  /** Index in ctl set to 1 (and notified) once all are ready. */
  go: number;
  /** How long to wait for all to be ready before throwing. */
  timeoutMs: number;
}

/**
 * Starts `n` workers from `file` (options from `job(index)`), each pushed
 * to `workers` at once so the caller can terminate them whatever happens;
 * waits until all have counted themselves in ctl[ready] (a worker that
 * fails first, or the timeout, throws), then raises ctl[go]. Returns each
 * worker's coming report (its first message), and the first failure of
 * any so far.
 */
export async function startAtBarrier<T>(
  file: URL | string,
  ctl: Int32Array,
  words: BarrierWords,
  workers: Worker[],
  n: number,
  job: (index: number) => WorkerOptions,
): Promise<{ results: Promise<T>[]; failed: () => unknown }> {
  const results = Array.from({ length: n }, (_, index) => {
    const w = new Worker(file, job(index));
    workers.push(w);
    return new Promise<T>((resolve, reject) => {
      w.once('message', (m: T) => resolve(m));
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`worker ${index} exited (${code}) before reporting`)));
    });
  });
  let failed: unknown;
  for (const p of results) p.catch((e: unknown) => (failed ??= e));
  const startBy = Date.now() + words.timeoutMs;
  while (Atomics.load(ctl, words.ready) < n) {
    if (failed) throw failed;
    if (Date.now() > startBy) throw new Error(`workers did not get ready within ${words.timeoutMs / 1000} s`);
    await sleep(1);
  }
  Atomics.store(ctl, words.go, 1);
  Atomics.notify(ctl, words.go);
  return { results, failed: () => failed };
}
