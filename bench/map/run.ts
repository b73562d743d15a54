/**
 * Map benchmarks: a map_perf_test analogue and the kernel's htab-mem
 * scenarios, anyalloc's preallocated and dynamic maps beside sharedmap and
 * a JS Map owned by one worker (postMessage), all in the same run.
 *
 *   node dist/bench/map/run.js [--quick] [--workers 1,2] [--runs 3] [--duration-ms 600]
 *     [--scenarios perf,overwrite,...] [--peers anyalloc-prealloc,sharedmap,...]
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { SharedMap } from '../peers/sharedmap-lib.js';
import { HashMap, Heap } from '../../src/index.js';
import { formatMachine } from '../machine.js';
import { fmtRate, markdownTable, summarize } from '../stats.js';
import {
  C_GO,
  C_READY,
  C_STOP,
  KEYS_PER_WORKER,
  SCENARIOS,
  type MapBenchJob,
  type MapBenchResult,
  type Peer,
  type Scenario,
} from './protocol.js';

const PEERS: readonly Peer[] = ['anyalloc-prealloc', 'anyalloc-dynamic', 'sharedmap', 'jsmap-postmessage'];
const MAX_WORKERS = 16;
const MAX_ENTRIES = MAX_WORKERS * KEYS_PER_WORKER;

export interface MapRow {
  peer: Peer;
  scenario: Scenario;
  workers: number;
  opsPerSec: number;
  spread: number;
  memMeanBytes: number;
  memPeakBytes: number;
  failures: number;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** One timed run; returns ops/s and memory samples (anyalloc peers only). */
async function runOnce(peer: Peer, scenario: Scenario, workers: number, durationMs: number): Promise<{ rate: number; mem: number[]; failures: number }> {
  const control = new SharedArrayBuffer(4 * (8 + MAX_WORKERS));
  const ctl = new Int32Array(control);
  const extra: Partial<MapBenchJob> = {};
  const transfer: MessagePort[][] = [];
  let heap: Heap | undefined;
  let map: HashMap | undefined;
  let server: Worker | undefined;
  if (peer.startsWith('anyalloc')) {
    heap = Heap.create({ maxBytes: 512 << 20, maxWorkers: MAX_WORKERS + 2 });
    map = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: MAX_ENTRIES, mode: peer === 'anyalloc-prealloc' ? 'prealloc' : 'dynamic' });
    extra.heap = heap.handle;
    extra.map = map.handle;
  } else if (peer === 'sharedmap') {
    extra.shared = new SharedMap(MAX_ENTRIES * 2, 16, 16);
  } else {
    server = new Worker(new URL('./server.js', import.meta.url));
    const clientPorts: MessagePort[] = [];
    const serverPorts: MessagePort[] = [];
    for (let i = 0; i < workers; i++) {
      const ch = new MessageChannel();
      clientPorts.push(ch.port1);
      serverPorts.push(ch.port2);
    }
    const ready = new Promise((r) => server!.once('message', r));
    server.postMessage(serverPorts, serverPorts as never);
    await ready;
    for (let i = 0; i < workers; i++) transfer.push([clientPorts[i]!]);
  }
  const results = Array.from({ length: workers }, (_, index) => {
    const job: MapBenchJob = { peer, scenario, index, workers, control, ...extra };
    if (transfer[index] !== undefined) job.port = transfer[index]![0];
    const w = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: job,
      transferList: (transfer[index] ?? []) as never,
    });
    return new Promise<MapBenchResult>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  });
  const readyBy = Date.now() + 30_000;
  while (Atomics.load(ctl, C_READY) < workers) {
    if (Date.now() > readyBy) throw new Error(`${peer} ${scenario}: workers did not start`);
    await new Promise((r) => setTimeout(r, 1));
  }
  const mem: number[] = [];
  const t0 = performance.now();
  Atomics.store(ctl, C_GO, 1);
  while (performance.now() - t0 < durationMs) {
    await new Promise((r) => setTimeout(r, 10));
    if (map !== undefined) mem.push(map.memoryBytes());
  }
  Atomics.store(ctl, C_STOP, 1);
  const elapsed = (performance.now() - t0) / 1000;
  const res = await Promise.all(results);
  await server?.terminate();
  map?.destroy();
  heap?.detach();
  const ops = res.reduce((s, r) => s + r.ops, 0);
  return { rate: ops / elapsed, mem, failures: res.reduce((s, r) => s + r.failures, 0) };
}

function mib(b: number): string {
  return Number.isFinite(b) && b > 0 ? `${(b / (1 << 20)).toFixed(2)} MiB` : '-';
}

export async function mapSuite(
  opts: { workers: number[]; runs: number; durationMs: number; scenarios?: readonly Scenario[]; peers?: readonly Peer[] },
  log: (l: string) => void,
): Promise<MapRow[]> {
  const rows: MapRow[] = [];
  for (const scenario of opts.scenarios ?? SCENARIOS) {
    for (const workers of opts.workers) {
      if (scenario === 'add_del_on_diff_cpu' && workers % 2 !== 0) continue;
      for (const peer of opts.peers ?? PEERS) {
        if (peer === 'jsmap-postmessage' && scenario === 'add_del_on_diff_cpu') continue;
        const rates: number[] = [];
        const mem: number[] = [];
        let failures = 0;
        for (let r = 0; r < opts.runs; r++) {
          const one = await runOnce(peer, scenario, workers, opts.durationMs);
          rates.push(one.rate);
          log(`    run ${r + 1}: ${fmtRate(one.rate)}`);
          mem.push(...one.mem);
          failures += one.failures;
        }
        const s = summarize(rates);
        const row: MapRow = {
          peer,
          scenario,
          workers,
          opsPerSec: s.median,
          spread: s.spread,
          memMeanBytes: mem.length ? mem.reduce((a, b) => a + b, 0) / mem.length : NaN,
          memPeakBytes: mem.length ? Math.max(...mem) : NaN,
          failures,
        };
        rows.push(row);
        log(`  ${scenario} x${workers} ${peer}: ${fmtRate(row.opsPerSec)} (spread ${(row.spread * 100).toFixed(0)}%)`);
      }
    }
  }
  return rows;
}

/** Memory of a dynamic map filled to 10% against the preallocated map. */
export function tenPercentMemory(): { dynamic: number; prealloc: number } {
  const heap = Heap.create({ maxBytes: 256 << 20 });
  const key = new Uint8Array(8);
  const kv = new DataView(key.buffer);
  const out: Record<string, number> = {};
  for (const mode of ['prealloc', 'dynamic'] as const) {
    const m = HashMap.create(heap, { keySize: 8, valueSize: 8, maxEntries: 65536, mode });
    for (let i = 0; i < 6554; i++) {
      kv.setUint32(0, i, true);
      m.update(key, key);
    }
    out[mode] = m.memoryBytes();
    m.destroy();
  }
  return { dynamic: out.dynamic!, prealloc: out.prealloc! };
}

export function mapReport(rows: MapRow[], ten: { dynamic: number; prealloc: number }): string {
  const lines: string[] = [];
  const get = (peer: Peer, sc: Scenario, w: number): MapRow | undefined => rows.find((r) => r.peer === peer && r.scenario === sc && r.workers === w);
  lines.push(
    markdownTable(
      ['scenario', 'workers', 'peer', 'ops/s (median)', 'spread', 'mem mean', 'mem peak', 'failed ops'],
      rows.map((r) => [r.scenario, r.workers, r.peer, fmtRate(r.opsPerSec), `${(r.spread * 100).toFixed(0)}%`, mib(r.memMeanBytes), mib(r.memPeakBytes), r.failures]),
    ),
  );
  lines.push('\nTargets (ratios within this run):\n');
  const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
  const targets: string[][] = [];
  for (const r of rows.filter((x) => x.peer === 'anyalloc-dynamic')) {
    const pre = get('anyalloc-prealloc', r.scenario, r.workers);
    if (pre === undefined) continue;
    const speed = r.opsPerSec / pre.opsPerSec;
    const memRatio = r.memPeakBytes / pre.memPeakBytes;
    targets.push([`${r.scenario} x${r.workers}: dynamic / prealloc ops/s >= 0.95`, speed.toFixed(2), verdict(speed >= 0.95)]);
    targets.push([`${r.scenario} x${r.workers}: dynamic / prealloc peak memory <= 2`, memRatio.toFixed(2), verdict(memRatio <= 2)]);
    const sm = get('sharedmap', r.scenario, r.workers);
    if (sm !== undefined && r.workers === 2) {
      const x = r.opsPerSec / sm.opsPerSec;
      targets.push([`${r.scenario} x2: anyalloc dynamic / sharedmap >= 10`, x.toFixed(1), verdict(x >= 10)]);
    }
  }
  const tr = ten.dynamic / ten.prealloc;
  targets.push([`dynamic map at 10% of maxEntries / prealloc memory <= 0.15 (${mib(ten.dynamic)} / ${mib(ten.prealloc)})`, tr.toFixed(3), verdict(tr <= 0.15)]);
  lines.push(markdownTable(['target', 'measured', ''], targets));
  return lines.join('\n');
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const workers = (arg('--workers') ?? '1,2').split(',').map(Number);
  const runs = Number(arg('--runs') ?? (quick ? 1 : 3));
  const durationMs = Number(arg('--duration-ms') ?? (quick ? 300 : 600));
  console.log('## Machine\n');
  console.log(formatMachine());
  console.log(`\n## Hash map: map_perf_test and htab-mem analogues\n\n${KEYS_PER_WORKER} keys per worker, 8-byte keys and values, ${durationMs} ms per run after a common start, median of ${runs} run(s); memory sampled every 10 ms from the main thread (anyalloc maps: table + element slabs).\n`);
  const scenarios = arg('--scenarios')?.split(',') as Scenario[] | undefined;
  const peers = arg('--peers')?.split(',') as Peer[] | undefined;
  for (const sc of scenarios ?? []) if (!SCENARIOS.includes(sc)) throw new Error(`unknown scenario ${sc}`);
  for (const p of peers ?? []) if (!PEERS.includes(p)) throw new Error(`unknown peer ${p}`);
  const rows = await mapSuite({ workers, runs, durationMs, scenarios, peers }, (l) => console.error(l));
  console.log(mapReport(rows, tenPercentMemory()));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
