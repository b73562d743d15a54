/**
 * Native allocators on the memory suite's random-sizes case, for
 * reference: jemalloc, mimalloc and glibc's malloc run
 * bench/native/random-sizes.c, which replays randomSizes (memory.ts) with
 * the same generator, seed and steps, so each reads the live set the JS
 * arenas hold at their read. Built here with the system's C compiler
 * against the system's libraries (Debian: libjemalloc-dev,
 * libmimalloc-dev); an allocator whose build fails is left out, with the
 * reason.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';
import { markdownTable } from './stats.js';

/** One native allocator's figures for one N and heap (the JS case's maxBytes). */
export interface NativeRandomResult {
  allocator: string;
  n: number;
  maxBytes: number;
  liveBytes: number;
  objects: number;
  /** Bytes in pages that hold objects (see random-sizes.c). */
  heldBytes: number;
  heldPerLive: number;
}

const SOURCE = join(REPO_ROOT, 'bench', 'native', 'random-sizes.c');

const BUILDS: readonly { name: string; flags: string[] }[] = [
  { name: 'jemalloc', flags: ['-DUSE_JEMALLOC', '-ljemalloc'] },
  { name: 'mimalloc', flags: ['-DUSE_MIMALLOC', '-lmimalloc'] },
  { name: 'glibc', flags: [] },
];

/**
 * Runs every native allocator that builds on each [N, maxBytes] case, one
 * process per case (an allocator keeps state between runs). Returns the
 * results and a line per allocator left out.
 */
export function nativeRandom(cases: readonly [number, number][], seed: number): { results: NativeRandomResult[]; skipped: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'anyalloc-native-'));
  const results: NativeRandomResult[] = [];
  const skipped: string[] = [];
  try {
    for (const b of BUILDS) {
      const exe = join(dir, b.name);
      try {
        execFileSync('cc', ['-O2', '-o', exe, SOURCE, ...b.flags, '-lm'], { stdio: 'pipe' });
      } catch (e) {
        const err = e as { stderr?: Buffer; message: string };
        const why = (err.stderr?.toString() ?? err.message).split('\n').find((l) => l.trim() !== '') ?? 'the build failed';
        skipped.push(`${b.name}: not built (${why.trim()})`);
        continue;
      }
      for (const [n, maxBytes] of cases) {
        const out = execFileSync(exe, [String(seed), String(n), String(maxBytes)], { encoding: 'utf8' });
        for (const line of out.split('\n')) if (line.trim() !== '') results.push(JSON.parse(line) as NativeRandomResult);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { results, skipped };
}

/** A readable name: jemalloc's version without its git suffix, mimalloc's 209 as 2.0.9. */
function allocatorName(raw: string): string {
  const mi = /^mimalloc (\d)(\d)(\d)$/.exec(raw);
  if (mi !== null) return `mimalloc ${mi[1]}.${mi[2]}.${mi[3]}`;
  return raw.replace(/^(jemalloc [\d.]+)-.*$/, '$1');
}

/** The markdown section: each native allocator beside anyalloc on the same case. */
export function nativeReport(native: { results: NativeRandomResult[]; skipped: string[] }, anyalloc: readonly { allocator: string; n: number; maxBytes: number; liveBytes: number; usedPerLive: number; usedPerLiveWithoutStates: number }[]): string {
  const out: string[] = [];
  out.push(
    '\n### Random sizes: native allocators on the same live set\n\nbench/native/random-sizes.c replays the case above (same generator, seed and steps) on native allocators, one process per case, so each reads the live set the anyalloc and ideal arenas read. held: jemalloc `stats.active` (pages of active slabs and extents), mimalloc the committed bytes of the default heap\'s pages (`mi_heap_visit_blocks` areas), glibc `arena + hblkhd - keepcost` (mallinfo2). anyalloc: its used / live from the table above, and the same without the state map.\n',
  );
  if (native.results.length === 0) {
    out.push(`No native allocator was built: ${native.skipped.join('; ') || 'none configured'}.`);
    return out.join('\n');
  }
  const key = (n: number, m: number): string => `${n}/${m}`;
  const mine = new Map<string, (typeof anyalloc)[number]>();
  for (const r of anyalloc) if (r.allocator.startsWith('anyalloc')) mine.set(key(r.n, r.maxBytes), r);
  const names = [...new Set(native.results.map((r) => allocatorName(r.allocator)))];
  const cases = [...new Map(native.results.map((r) => [key(r.n, r.maxBytes), r])).values()];
  const f = (x: number | undefined): string => (x !== undefined && Number.isFinite(x) ? x.toFixed(2) : '-');
  const rows = cases.map((c) => {
    const a = mine.get(key(c.n, c.maxBytes));
    const held = names.map((nm) => f(native.results.find((r) => allocatorName(r.allocator) === nm && r.n === c.n && r.maxBytes === c.maxBytes)?.heldPerLive));
    return [c.n.toLocaleString('en-US'), `${c.maxBytes / 2 ** 20} MiB`, c.objects.toLocaleString('en-US'), ...held, f(a?.usedPerLive), f(a?.usedPerLiveWithoutStates)];
  });
  out.push(markdownTable(['N', 'heap', 'objects', ...names.map((nm) => `${nm} held / live`), 'anyalloc used / live', 'anyalloc without the state map'], rows, 0));
  if (native.skipped.length > 0) out.push(`\nLeft out: ${native.skipped.join('; ')}.`);
  return out.join('\n');
}
