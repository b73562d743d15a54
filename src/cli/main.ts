#!/usr/bin/env node
/**
 * The anyalloc command-line tool.
 *
 *   anyalloc demo [--workers N] [--ops N] [--seed N]
 *       Workers share one heap: each allocates messages, swaps them into a
 *       shared mailbox and frees what it takes out (mostly other workers'
 *       objects). Prints what happened and the allocator's stats.
 *   anyalloc help [command]     anyalloc <command> --help
 *   anyalloc --version
 *
 * Options parse with node:util parseArgs, strictly: an unknown option or a
 * bad value is a usage error (exit code 2). `--flag value` and
 * `--flag=value` both work. Exit codes: 0 done, 1 the demo found a
 * problem, 2 usage error. A closed stdout (`anyalloc demo | head -1`) ends
 * the process quietly with code 0.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Worker } from 'node:worker_threads';
import { Heap } from '../index.js';

/** A mistake in the command line: printed with a hint, exit code 2. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

interface DemoResult {
  id: number;
  sent: number;
  received: number;
  fromOthers: number;
  failures: number;
}

interface CommandInfo {
  summary: string;
  usage: string;
  details: string[];
}

const COMMANDS: Record<string, CommandInfo> = {
  demo: {
    summary: 'workers share objects in one heap, then print stats',
    usage: 'anyalloc demo [--workers N] [--ops N] [--seed N]',
    details: [
      'Starts N worker threads on one shared heap. Each allocates messages of',
      '16 to 1015 bytes, swaps them into a shared 1024-slot mailbox and frees',
      'the message it takes out, most often one another worker allocated.',
      'Then prints what each worker did, checks the heap, and prints the',
      "allocator's stats per size class and per worker slot.",
      '',
      'options:',
      '  -w, --workers N   worker threads, 1..64 (default 4)',
      '  -n, --ops N       messages per worker, 1..100000000 (default 50000)',
      '  -s, --seed N      random seed, 1..4294967295 (default 12345)',
      '  -h, --help        this text',
      '',
      'exit code: 0 when the heap is consistent, nothing leaked and no',
      'allocation failed; 1 otherwise.',
    ],
  },
  help: {
    summary: 'this text, or a command\'s',
    usage: 'anyalloc help [command]',
    details: ['Prints the list of commands, or the help of one command (the same as anyalloc <command> --help).'],
  },
};

function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length - 'anyalloc '.length));
  return [
    'usage: anyalloc <command> [options]',
    '       anyalloc --version',
    '',
    'commands:',
    ...Object.values(COMMANDS).map((c) => `  ${c.usage.slice('anyalloc '.length).padEnd(width)}   ${c.summary}`),
    '',
    "anyalloc <command> --help prints a command's options.",
  ].join('\n');
}

function commandHelp(name: string): string {
  const c = COMMANDS[name]!;
  return [`usage: ${c.usage}`, '', `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`, '', ...c.details].join('\n');
}

/** The package's version, from the package.json above this compiled file. */
function version(): string {
  let dir = new URL('./', import.meta.url);
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'anyalloc' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json here: look one folder up
    }
    dir = new URL('../', dir);
  }
  throw new Error('cannot find the package.json of anyalloc');
}

/**
 * parseArgs, strict, with its errors turned into usage errors that name
 * the option at fault.
 */
function parse(
  command: string | undefined,
  args: string[],
  options: NonNullable<ParseArgsConfig['options']>,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    const code = (e as { code?: string }).code;
    const msg = e instanceof Error ? e.message : String(e);
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /option '([^']+)'/i.exec(msg)?.[1] ?? msg;
      throw new UsageError(`unknown option ${flag}`, command);
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const flag = /option '(?:-\w, )?(-[^ ',]+)/i.exec(msg)?.[1];
      throw new UsageError(flag !== undefined ? `option ${flag} needs a value` : msg, command);
    }
    throw new UsageError(msg, command);
  }
}

function intOption(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined) return def;
  const v = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`, 'demo');
  }
  return v;
}

function kib(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

async function demo(args: string[]): Promise<number> {
  const { values, positionals } = parse('demo', args, {
    workers: { type: 'string', short: 'w' },
    ops: { type: 'string', short: 'n' },
    seed: { type: 'string', short: 's' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) {
    console.log(commandHelp('demo'));
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`, 'demo');
  const workers = intOption('workers', values.workers as string | undefined, 4, 1, 64);
  const ops = intOption('ops', values.ops as string | undefined, 50_000, 1, 100_000_000);
  const seed = intOption('seed', values.seed as string | undefined, 12345, 1, 0xffffffff);
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

function help(args: string[]): number {
  const { values, positionals } = parse('help', args, { help: { type: 'boolean', short: 'h' } });
  if (values.help === true) {
    console.log(commandHelp('help'));
    return 0;
  }
  const [topic, extra] = positionals;
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`, 'help');
  if (topic === undefined) {
    console.log(usage());
    return 0;
  }
  if (!Object.hasOwn(COMMANDS, topic)) throw new UsageError(`unknown command ${JSON.stringify(topic)}`);
  console.log(commandHelp(topic));
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) {
    console.log(usage());
    return 0;
  }
  if (cmd.startsWith('-')) {
    // Options before any command: only the global ones.
    const { values, positionals } = parse(undefined, argv, {
      version: { type: 'boolean', short: 'v' },
      help: { type: 'boolean', short: 'h' },
    });
    if (positionals.length > 0) throw new UsageError(`put the command first: anyalloc ${positionals[0]} [options]`);
    if (values.version === true) {
      console.log(version());
      return 0;
    }
    console.log(usage());
    return 0;
  }
  switch (cmd) {
    case 'demo':
      return demo(rest);
    case 'help':
      return help(rest);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  }
}

// A reader that goes away (`anyalloc demo | head -1`) is not an error:
// stop quietly, with success, instead of dying on EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      const hint = err.command !== undefined ? `anyalloc ${err.command} --help` : 'anyalloc --help';
      console.error(`anyalloc${err.command !== undefined ? ' ' + err.command : ''}: ${err.message}\nrun '${hint}' for the options`);
      process.exitCode = 2;
      return;
    }
    console.error(`anyalloc: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
