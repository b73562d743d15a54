/**
 * Soak: the chaos workers' stress mix at scale for a long time, with
 *   - kill chaos every --kill-every-ms (default 2000): a random worker is
 *     terminated, its slot released alternately by the main thread and by
 *     a surviving worker, its keys checked against its records, and a new
 *     worker takes its place;
 *   - every --check-every-s (default 15): the workers hold still, misuse
 *     cases are tried (each must throw RangeError), heap.validate() and
 *     both maps' validate() must find nothing and every key must hold what
 *     its owner's record says;
 *   - every --lin-every-s (default 60): a linearizability batch (three
 *     map-lin workers, a fresh map in the same heap, the Wing & Gong checker);
 *   - heap and map memory sampled every second.
 * One progress line a minute; at the end a summary, printed and returned
 * (ok: false if anything was lost or a check failed). The command line is
 * ./run.ts (npm run soak); a short run is one of the soak tier's tests
 * (./soak.test.ts).
 *
 * Lost means: a dead worker's key holding neither its record nor its
 * operation in flight, a key that differs from its record at a check, a
 * block whose cookie broke, or, at the end, more still allocated than
 * the dead workers held (their published counts plus one in flight per
 * death and allocator, one element in flight per death and map).
 */
import { HashMap, Heap } from '../../src/index.js';
import { ChaosRun, KEY_SIZE, VALUE_SIZE, canonicalProblem, checkMapsAgainstRecords, liveElementsOf, liveObjectsOf, sleep } from '../util/chaos.js';
import { Prng, deriveSeed } from '../util/prng.js';
import { linBatch, tryMisuse } from './checks.js';

export interface SoakOptions {
  minutes: number;
  workers: number;
  seed: number;
  killEveryMs: number;
  checkEveryS: number;
  linEveryS: number;
}

const MiB = 1 << 20;
const fmtMiB = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;
const fmtRate = (r: number): string => (r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r.toFixed(0));

interface Sample {
  /** Seconds since the start. */
  t: number;
  /** Operations done by all workers since the start. */
  ops: number;
  heapUsed: number;
  mapBytes: number;
}

/** Runs a soak; `log` gets the progress and summary lines. */
export async function runSoak(o: SoakOptions, log: (line: string) => void = console.log) {
  const seedLine = `seed ${o.seed} (replay the decisions with --seed ${o.seed})`;
  log(`soak: ${o.minutes} min, ${o.workers} workers, kill every ${o.killEveryMs} ms, checks every ${o.checkEveryS} s, linearizability every ${o.linEveryS} s, ${seedLine}`);

  const WORKERS = o.workers;
  const KEYS = WORKERS * 1024;
  const heap = Heap.create({ maxBytes: 1 << 30, maxWorkers: 64 });
  const bucketed = heap.createAllocator();
  const fixed = heap.createAllocator({ unitSize: 48 });
  const dynamic = HashMap.create(heap, { keySize: KEY_SIZE, valueSize: VALUE_SIZE, maxEntries: 65536, mode: 'dynamic', seed: o.seed });
  const prealloc = HashMap.create(heap, { keySize: KEY_SIZE, valueSize: VALUE_SIZE, maxEntries: 16384, mode: 'prealloc', seed: (o.seed ^ 0x5eed) >>> 0 });
  const maps = [dynamic, prealloc];
  const run = new ChaosRun({
    heap,
    bucketed,
    fixed,
    dynamic,
    prealloc,
    workers: WORKERS,
    keys: KEYS,
    seed: o.seed,
    sharedSlots: 1024,
    localBlocks: 64,
    largeChance: 0.01,
    chunkOps: 256,
    timeoutMs: 20_000,
  });
  const rng = new Prng(deriveSeed(o.seed, 0x50a4));

  const counts = {
    kills: 0,
    releasesByMain: 0,
    releasesByWorker: 0,
    checks: 0,
    misuseTried: 0,
    misuseFailed: 0,
    validateFailures: 0,
    linBatches: 0,
    linHistories: 0,
    linOverlapping: 0,
    linFailures: 0,
    recordsLost: 0,
    objectsLost: 0,
  };
  /** First few problems of each kind, for the summary. */
  const problems: string[] = [];
  const note = (p: string): void => {
    if (problems.length < 50) problems.push(p);
    log(`  PROBLEM: ${p}`);
  };

  const samples: Sample[] = [];
  let lastOps = run.opsWords();
  let totalOps = 0;
  const t0 = performance.now();
  const secs = (): number => (performance.now() - t0) / 1000;
  function sample(): void {
    const now = run.opsWords();
    for (let i = 0; i < now.length; i++) totalOps += (now[i]! - lastOps[i]!) >>> 0;
    lastOps = now;
    samples.push({ t: secs(), ops: totalOps, heapUsed: heap.stats().usedBytes, mapBytes: dynamic.memoryBytes() + prealloc.memoryBytes() });
  }

  /** ops/s between times a and b (seconds), from the samples. */
  function rateBetween(a: number, b: number): number {
    const inside = samples.filter((s) => s.t >= a - 0.5 && s.t <= b + 0.5);
    if (inside.length < 2) return 0;
    const first = inside[0]!;
    const last = inside[inside.length - 1]!;
    return (last.ops - first.ops) / (last.t - first.t);
  }

  let fatal: string | null = null;
  /** validate() findings already reported (a lost object stays lost: report each once). */
  const seenValidate = new Set<string>();

  async function quietCheck(round: number): Promise<void> {
    await run.pause();
    try {
      for (const m of tryMisuse(heap, bucketed, fixed, round)) {
        counts.misuseTried++;
        if (m.problem !== null) {
          counts.misuseFailed++;
          note(`misuse "${m.name}": ${m.problem}`);
        }
      }
      const validateAll = (): string[] =>
        [...dynamic.validate().map((e) => `dynamic map: ${e}`), ...prealloc.validate().map((e) => `preallocated map: ${e}`), ...heap.validate()].map(canonicalProblem);
      let found = validateAll();
      if (found.length > 0) {
        // A live agent may hold retired objects in its spill list for a
        // moment, which validate() cannot tell from lost ones: count only
        // what is still there a little later.
        run.resume();
        await sleep(20);
        await run.pause();
        const again = new Set(validateAll());
        found = found.filter((p) => again.has(p));
      }
      if (found.length > 0) {
        counts.validateFailures++;
        const fresh = found.filter((p) => !seenValidate.has(p));
        for (const p of fresh) seenValidate.add(p);
        if (fresh.length > 0) note(`validate() at ${secs().toFixed(0)} s: ${fresh.slice(0, 6).join('; ')}${fresh.length > 6 ? ` (+${fresh.length - 6})` : ''}`);
      }
      const diff = checkMapsAgainstRecords(maps, run.records, KEYS);
      if (diff.length > 0) {
        counts.recordsLost += diff.length;
        note(`maps differ from the records at ${secs().toFixed(0)} s: ${diff.slice(0, 4).join('; ')}`);
        // Take the maps' word for it from here, so one loss is counted once.
        resyncRecords();
      }
      counts.checks++;
    } finally {
      run.resume();
    }
  }

  function resyncRecords(): void {
    const out = new Uint8Array(VALUE_SIZE);
    const o32 = new Uint32Array(out.buffer);
    maps.forEach((map, m) => {
      for (let k = 0; k < KEYS; k++) Atomics.store(run.records, m * KEYS + k, map.lookupNumber(k, out) ? o32[0]! : 0);
    });
  }

  async function killCycle(): Promise<void> {
    const victim = rng.below(WORKERS);
    const death = await run.kill(victim);
    const survivors = run.alive();
    const byMain = counts.kills % 2 === 0;
    await run.recover(death, byMain ? -1 : survivors[rng.below(survivors.length)]!);
    if (byMain) counts.releasesByMain++;
    else counts.releasesByWorker++;
    const lost = run.resolveDeadKeys(death);
    if (lost.length > 0) {
      counts.recordsLost += lost.length;
      note(`kill ${counts.kills + 1}: ${lost.slice(0, 4).join('; ')}`);
    }
    await run.spawn(victim);
    counts.kills++;
  }

  function progress(): void {
    const t = secs();
    const s = samples[samples.length - 1];
    const rate = rateBetween(Math.max(0, t - 60), t);
    const peak = heap.stats().peakUsedBytes;
    log(
      `[${(t / 60).toFixed(1)} min] ${fmtRate(rate)} ops/s, kills ${counts.kills}, checks ${counts.checks}, misuse ${counts.misuseTried}, ` +
        `lin batches ${counts.linBatches}, validate failures ${counts.validateFailures}, records lost ${counts.recordsLost}, ` +
        `heap used ${fmtMiB(s?.heapUsed ?? 0)} (peak ${fmtMiB(peak)}), maps ${fmtMiB(s?.mapBytes ?? 0)}`,
    );
  }

  const durationS = o.minutes * 60;
  const sampler = setInterval(sample, 1000);
  let leak = { bucketed: 0, fixed: 0, dynamic: 0, prealloc: 0 };
  let bound = { bucketed: 0, fixed: 0, dynamic: 0, prealloc: 0 };
  let deadPending: [number, number] = [0, 0];
  try {
    await run.spawnAll();
    sample();
    let nextKill = o.killEveryMs / 1000;
    let nextCheck = o.checkEveryS;
    let nextLin = o.linEveryS;
    let nextProgress = 60;
    let round = 0;
    while (secs() < durationS) {
      const wake = Math.min(nextKill, nextCheck, nextLin, nextProgress, durationS);
      const wait = (wake - secs()) * 1000;
      if (wait > 0) await sleep(Math.min(wait, 250));
      run.assertNoFailure();
      if (secs() < wake) continue;
      if (secs() >= nextKill) {
        await killCycle();
        nextKill += o.killEveryMs / 1000;
        if (nextKill < secs()) nextKill = secs() + o.killEveryMs / 1000;
      }
      if (secs() >= nextCheck) {
        await quietCheck(round++);
        nextCheck = secs() + o.checkEveryS;
      }
      if (secs() >= nextLin && secs() < durationS - 5) {
        const mode = counts.linBatches % 2 === 0 ? 'dynamic' : 'prealloc';
        const r = await linBatch(heap, mode, deriveSeed(o.seed, 0x11, counts.linBatches), 5, 20_000);
        counts.linBatches++;
        counts.linHistories += r.histories;
        counts.linOverlapping += r.overlapping;
        if (r.problems.length > 0) {
          counts.linFailures++;
          for (const p of r.problems.slice(0, 4)) note(`linearizability: ${p}`);
        }
        nextLin = secs() + o.linEveryS;
      }
      if (secs() >= nextProgress) {
        progress();
        nextProgress += 60;
      }
    }
    run.assertNoFailure();
    // The end: the survivors free what they hold and detach; the rest is the leak.
    const results = await run.stopAll();
    for (const r of results) if (r.undrained !== 0) note(`worker ${r.index} left ${r.undrained} deferred frees undrained`);
    const shared = run.freeSharedBlocks();
    for (const p of shared.problems) note(`cookie broken in a shared slot: ${p}`);
    counts.objectsLost += shared.problems.length;
    for (const map of maps) map.collect();
    const diff = checkMapsAgainstRecords(maps, run.records, KEYS);
    if (diff.length > 0) {
      counts.recordsLost += diff.length;
      note(`at the end the maps differ from the records: ${diff.slice(0, 4).join('; ')}`);
    }
    const found = [...dynamic.validate(), ...prealloc.validate(), ...heap.validate()];
    if (found.length > 0) {
      counts.validateFailures++;
      note(`validate() at the end: ${found.slice(0, 6).join('; ')}`);
    }
    bound = run.leakBound();
    deadPending = run.deadPending();
    leak = {
      bucketed: liveObjectsOf(bucketed),
      fixed: liveObjectsOf(fixed),
      dynamic: liveElementsOf(dynamic) - dynamic.count(),
      prealloc: liveElementsOf(prealloc) - prealloc.count(),
    };
    for (const k of ['bucketed', 'fixed', 'dynamic', 'prealloc'] as const) {
      const over = leak[k] - bound[k];
      if (over > 0) {
        counts.objectsLost += over;
        note(`${k}: ${leak[k]} still allocated, the dead account for at most ${bound[k]}${k === 'dynamic' || k === 'prealloc' ? ` (they had ${deadPending[k === 'dynamic' ? 0 : 1]} deferred frees waiting)` : ''}`);
      }
    }
  } catch (err) {
    fatal = err instanceof Error ? (err.stack ?? err.message) : String(err);
    note(`fatal: ${fatal.split('\n')[0]}`);
    await run.abort();
  } finally {
    clearInterval(sampler);
    sample();
  }

  // Load held: the first vs the last 10 minutes (a sixth of the run when shorter than an hour).
  const elapsed = secs();
  const window = Math.min(600, elapsed / 6);
  const firstRate = rateBetween(0, window);
  const lastRate = rateBetween(samples[samples.length - 1]!.t - window, samples[samples.length - 1]!.t);
  const quarter = (q: number): number => {
    const part = samples.filter((s) => s.t >= (q * elapsed) / 4 && s.t < ((q + 1) * elapsed) / 4);
    return part.length === 0 ? 0 : part.reduce((n, s) => n + s.heapUsed, 0) / part.length;
  };
  const hs = heap.stats();
  const lost = counts.recordsLost + counts.objectsLost;
  const failed = fatal !== null || counts.validateFailures > 0 || counts.misuseFailed > 0 || counts.linFailures > 0;
  const summary = {
    ok: lost === 0 && !failed,
    seed: o.seed,
    minutes: o.minutes,
    elapsedSeconds: Math.round(elapsed),
    workers: WORKERS,
    load: {
      windowSeconds: Math.round(window),
      firstOpsPerSec: Math.round(firstRate),
      lastOpsPerSec: Math.round(lastRate),
      lastOverFirst: firstRate > 0 ? Number((lastRate / firstRate).toFixed(3)) : null,
      totalOps: totalOps,
    },
    kills: counts.kills,
    releasesByMain: counts.releasesByMain,
    releasesByWorker: counts.releasesByWorker,
    workersStarted: run.started,
    quietChecks: counts.checks,
    misuseTried: counts.misuseTried,
    misuseFailed: counts.misuseFailed,
    validateFailures: counts.validateFailures,
    lin: { batches: counts.linBatches, histories: counts.linHistories, overlappingOps: counts.linOverlapping, failures: counts.linFailures },
    lost: { records: counts.recordsLost, objects: counts.objectsLost },
    leak: { stillAllocated: leak, bound, deadDeferredPending: { dynamic: deadPending[0], prealloc: deadPending[1] } },
    memory: {
      peakUsedBytes: hs.peakUsedBytes,
      finalUsedBytes: hs.usedBytes,
      committedBytes: hs.committedBytes,
      secondQuarterMeanUsed: Math.round(quarter(1)),
      lastQuarterMeanUsed: Math.round(quarter(3)),
      samples: samples.length,
    },
    fatal,
    problems,
  };

  log('');
  log(`soak summary (${(elapsed / 60).toFixed(1)} min, ${seedLine})`);
  log(`  load held:        ${fmtRate(firstRate)} ops/s in the first ${Math.round(window)} s, ${fmtRate(lastRate)} ops/s in the last (x${summary.load.lastOverFirst ?? '-'})`);
  log(`  kills survived:   ${counts.kills} (${counts.releasesByMain} released by the main thread, ${counts.releasesByWorker} by a surviving worker; ${run.started} workers started)`);
  log(`  misuse cases:     ${counts.misuseTried} tried, ${counts.misuseFailed} not refused as they must be`);
  log(`  quiet checks:     ${counts.checks}, validate failures ${counts.validateFailures}`);
  log(`  linearizability:  ${counts.linBatches} batches, ${counts.linHistories} histories, ${counts.linOverlapping} overlapping operations, ${counts.linFailures} failed`);
  log(
    `  still allocated:  bucketed ${leak.bucketed} (bound ${bound.bucketed}), fixed ${leak.fixed} (bound ${bound.fixed}), ` +
      `dynamic map ${leak.dynamic} (bound ${bound.dynamic}), preallocated map ${leak.prealloc} (bound ${bound.prealloc})`,
  );
  log(`  lost:             ${counts.recordsLost} records, ${counts.objectsLost} objects${lost === 0 ? ' (nothing)' : ''}`);
  log(`  heap use:         peak ${fmtMiB(hs.peakUsedBytes)}, final ${fmtMiB(hs.usedBytes)}; mean ${fmtMiB(quarter(1))} in the second quarter, ${fmtMiB(quarter(3))} in the last`);
  if (fatal !== null) log(`  fatal:            ${fatal}`);
  return summary;
}

export type SoakSummary = Awaited<ReturnType<typeof runSoak>>;
