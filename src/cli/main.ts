#!/usr/bin/env node
/**
 * The anyalloc command-line tool.
 *
 *   anyalloc demo [--workers N] [--ops N] [--seed N]
 *       Workers share one heap: each allocates messages, swaps them into a
 *       shared mailbox and frees what it takes out (mostly other workers'
 *       objects). Prints what happened and the allocator's stats.
 *   anyalloc help
 */
import { Worker } from 'node:worker_threads';
import { Heap } from '../index.js';

interface DemoResult {
  id: number;
  sent: number;
  received: number;
  fromOthers: number;
  failures: number;
}

function usage(): string {
  return [
    'usage: anyalloc <command> [options]',
    '',
    'commands:',
    '  demo [--workers N] [--ops N] [--seed N]   workers share objects in one heap, then print stats',
    '  help                                       this text',
  ].join('\n');
}

function intFlag(args: string[], name: string, def: number, min: number, max: number): number {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const raw = args[i + 1];
  const v = Number(raw);
  if (raw === undefined || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${raw === undefined ? 'nothing' : JSON.stringify(raw)}`);
  }
  return v;
}

function kib(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

async function demo(args: string[]): Promise<number> {
  const workers = intFlag(args, '--workers', 4, 1, 64);
  const ops = intFlag(args, '--ops', 50_000, 1, 100_000_000);
  const seed = intFlag(args, '--seed', 12345, 1, 0xffffffff);
  const heap = Heap.create({ maxBytes: 256 << 20, maxWorkers: workers + 1 });
  const a = heap.createAllocator();
  const mailboxSlots = 1024;
  const mailbox = a.alloc(mailboxSlots * 4);
  heap.u8.fill(0, mailbox, mailbox + mailboxSlots * 4);
  console.log(`anyalloc demo: ${workers} workers x ${ops} messages through a ${mailboxSlots}-slot shared mailbox`);
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: workers }, (_, id) => {
      const w = new Worker(new URL('./demo-worker.js', import.meta.url), {
        workerData: { heap: heap.reserveSlot(), alloc: a.handle, mailbox, mailboxSlots, ops, id, seed: seed + id * 7919 },
      });
      return new Promise<DemoResult>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
        w.once('exit', (code) => code !== 0 && reject(new Error(`worker ${id} exited with code ${code}`)));
      });
    }),
  );
  const ms = performance.now() - t0;
  // Free what is still in the mailbox.
  heap.refresh();
  let left = 0;
  for (let i = 0; i < mailboxSlots; i++) {
    const p = Atomics.exchange(heap.u32, (mailbox >>> 2) + i, 0) >>> 0;
    if (p !== 0) {
      a.free(p);
      left++;
    }
  }
  a.free(mailbox);
  for (const r of results) {
    console.log(
      `  worker ${r.id}: sent ${r.sent}, freed ${r.received} (${r.fromOthers} allocated by another worker), alloc failures ${r.failures}`,
    );
  }
  const total = results.reduce((s, r) => s + r.sent + r.received, 0);
  console.log(`  ${left} messages left in the mailbox, freed by the main thread`);
  console.log(`  ${total} allocs + frees in ${ms.toFixed(0)} ms (including worker start-up)`);
  const errors = heap.validate();
  console.log(`  heap.validate(): ${errors.length === 0 ? 'consistent' : errors.join('; ')}`);
  const st = a.stats();
  const hs = heap.stats();
  console.log('\nallocator stats (per size class, all workers):');
  console.log('  unit  slab pages  objects   depot  cached    live');
  for (const c of st.classes) {
    if (c.slabPages === 0) continue;
    console.log(
      `  ${String(c.unit).padStart(4)}  ${String(c.slabPages).padStart(10)}  ${String(c.objects).padStart(7)}  ${String(c.depot).padStart(6)}  ${String(c.cached).padStart(6)}  ${String(c.live).padStart(6)}`,
    );
  }
  console.log('\nper worker slot (allocs / frees / refills / trims):');
  for (const w of st.workers) {
    const sum = (k: 'allocs' | 'frees' | 'refills' | 'trims'): number => w.classes.reduce((s, c) => s + c[k], 0);
    console.log(`  slot ${w.slot}: ${sum('allocs')} / ${sum('frees')} / ${sum('refills')} / ${sum('trims')}`);
  }
  console.log(
    `\nheap: ${hs.usedPages} of ${hs.committedPages} committed pages in use (${kib(hs.usedBytes)}), peak ${kib(hs.peakUsedBytes)}; bytes in use now ${st.bytesInUse}`,
  );
  const report = a.destroy();
  console.log(`destroy(): ${report.leakedObjects} objects leaked`);
  return errors.length === 0 && report.leakedObjects === 0 && results.every((r) => r.failures === 0) ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'demo':
      return demo(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(usage());
      return 0;
    default:
      console.error(`anyalloc: unknown command ${JSON.stringify(cmd)}\n\n${usage()}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`anyalloc: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
