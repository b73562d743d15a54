/**
 * Runs a group of worker_threads to completion with a deadline, for the
 * concurrent tests. Nothing here waits without a bound: every worker is
 * awaited through its 'exit' event, and when the deadline passes (or one
 * worker fails) the others are terminated, so a hung or crashed worker
 * turns into a test failure instead of a hung test run.
 *
 * Protocol: a worker posts exactly one message, its result, and exits
 * with code 0. A worker that throws, exits early or posts nothing fails.
 */
import { Worker } from 'node:worker_threads';

export interface WorkerGroupOutcome<R> {
  /** results[i] is worker i's message, undefined when it failed. */
  results: (R | undefined)[];
  /** One line per failed worker ("worker 2: Error: ...", or its name); empty when all succeeded. */
  failures: string[];
  /** Indices of workers that did not finish cleanly (their slots may need releasing). */
  failed: number[];
  /** Wall-clock milliseconds from the first start to the last exit. */
  elapsedMs: number;
}

export interface WorkerGroupOptions {
  /** Deadline for the whole group. */
  timeoutMs: number;
  /** Terminate the others as soon as one worker fails (default true). */
  stopOnFailure?: boolean;
}

/** One worker to start: its script (compiled .js), its workerData, and a name for messages. */
export interface WorkerSpec {
  script: URL;
  data: unknown;
  /** Default "worker <index>". */
  name?: string;
}

export function runWorkerGroup<R>(specs: readonly WorkerSpec[], options: WorkerGroupOptions): Promise<WorkerGroupOutcome<R>> {
  const started = performance.now();
  const stopOnFailure = options.stopOnFailure !== false;
  const results: (R | undefined)[] = new Array<R | undefined>(specs.length).fill(undefined);
  const errors: (string | undefined)[] = new Array<string | undefined>(specs.length).fill(undefined);
  const workers: Worker[] = [];
  let exited = 0;
  let timedOut = false;

  return new Promise((resolve) => {
    let stopping = false;
    const stopAll = (): void => {
      stopping = true;
      for (const w of workers) void w.terminate();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stopAll();
    }, options.timeoutMs);

    const onExit = (i: number, code: number): void => {
      if (errors[i] === undefined) {
        if (timedOut && results[i] === undefined) errors[i] = `timed out after ${options.timeoutMs} ms`;
        else if (stopping && results[i] === undefined) errors[i] = 'terminated after another worker failed';
        else if (code !== 0) errors[i] = `exited with code ${code}`;
        else if (results[i] === undefined) errors[i] = 'exited without posting a result';
      }
      if (errors[i] !== undefined && stopOnFailure) stopAll();
      if (++exited < specs.length) return;
      clearTimeout(timer);
      const failed: number[] = [];
      const failures: string[] = [];
      errors.forEach((e, j) => {
        if (e === undefined) return;
        failed.push(j);
        failures.push(`${specs[j]!.name ?? `worker ${j}`}: ${e}`);
      });
      resolve({ results, failures, failed, elapsedMs: performance.now() - started });
    };

    specs.forEach(({ script, data }, i) => {
      let w: Worker;
      try {
        w = new Worker(script, { workerData: data });
      } catch (err) {
        errors[i] = `could not start: ${String(err)}`;
        onExit(i, 1);
        return;
      }
      workers.push(w);
      let posted = false;
      w.on('message', (m: R) => {
        if (posted) {
          errors[i] ??= 'posted more than one message';
          return;
        }
        posted = true;
        results[i] = m;
      });
      w.on('error', (err: unknown) => {
        // The first error wins; a terminate() after it adds nothing.
        errors[i] ??= err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      });
      w.on('exit', (code) => onExit(i, code));
    });
  });
}
