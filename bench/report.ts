/**
 * `npm run bench:report [-- FILE]`: charts of a results file (default
 * bench/results/latest.json) as SVG in docs/benchmarks/, drawn with
 * vega-lite and vega (no canvas needed): ns per pair by size and variant,
 * throughput by worker count, map ops/s by scenario and peer, the map's
 * memory over time, and the memory suite's used / requested bytes by size bound.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { REPO_ROOT, RESULTS_DIR } from './paths.js';

const OUT_DIR = join(REPO_ROOT, 'docs', 'benchmarks');

interface Variant {
  name: string;
  median: number;
  q1: number;
  q3: number;
}
interface Results {
  date: string;
  machine: { cpuModel: string; cores: number; node: string };
  pair?: { group: string; size: number; variants: Variant[] }[];
  throughput?: { variants: Variant[] };
  map?: {
    points: { scenario: string; workers: number; peers: Variant[] }[];
    memory?: { samples: { mode: string; ms: number; committedBytes: number; usedBytes: number; mapBytes: number; liveBytes: number }[] };
  };
  memory?: { seed: number; random: { allocator: string; n: number; maxBytes: number; usedPerLive: number }[] };
}

/** A line per series with points, and the quartiles as a rule through each point; both axes logarithmic. */
function lines(x: { field: string; title: string; values: number[] }, y: string, color: string): unknown[] {
  const xEnc = { field: x.field, type: 'quantitative', title: x.title, scale: { type: 'log', base: 2 }, axis: { values: [...new Set(x.values)] } };
  const yScale = { type: 'log' };
  const colour = { field: color, type: 'nominal', scale: { scheme: 'tableau20' }, legend: { labelLimit: 240 } };
  return [
    { mark: { type: 'line', point: true }, encoding: { x: xEnc, y: { field: 'median', type: 'quantitative', title: y, scale: yScale }, color: colour } },
    { mark: 'rule', encoding: { x: xEnc, y: { field: 'q1', type: 'quantitative', scale: yScale }, y2: { field: 'q3' }, color: colour } },
  ];
}

function charts(r: Results): Record<string, TopLevelSpec> {
  const caption = `${r.machine.cpuModel}, ${r.machine.cores} cores, Node ${r.machine.node}, ${r.date.slice(0, 10)}`;
  const out: Record<string, TopLevelSpec> = {};
  if (r.pair) {
    const values = r.pair.flatMap((p) => p.variants.map((v) => ({ group: p.group, size: p.size, variant: v.name, median: v.median, q1: v.q1, q3: v.q3 })));
    out['pair'] = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'alloc+free pair, ns (median and quartiles; log scale)', subtitle: caption },
      data: { values },
      facet: { field: 'group', type: 'nominal', title: null, sort: ['pair', 'churn', 'warm', 'shared'] },
      columns: 2,
      spec: { width: 300, height: 240, layer: lines({ field: 'size', title: 'size (bytes)', values: values.map((v) => v.size) }, 'ns per pair', 'variant') },
      resolve: { scale: { y: 'independent' } },
    } as TopLevelSpec;
  }
  if (r.throughput) {
    const values = r.throughput.variants.map((v) => {
      const [peer, n] = v.name.split(' x');
      return { peer, workers: Number(n), median: v.median, q1: v.q1, q3: v.q3 };
    });
    out['throughput'] = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'alloc+free pairs per second, all workers (log scale)', subtitle: caption },
      data: { values },
      width: 360,
      height: 260,
      layer: lines({ field: 'workers', title: 'workers', values: values.map((v) => v.workers) }, 'pairs per second', 'peer'),
    } as TopLevelSpec;
  }
  if (r.map) {
    const values = r.map.points.flatMap((p) => p.peers.map((v) => ({ scenario: p.scenario, workers: `${p.workers} worker${p.workers > 1 ? 's' : ''}`, peer: v.name, median: v.median, q1: v.q1, q3: v.q3 })));
    const y = { field: 'median', type: 'quantitative', title: 'ops per second (log scale)', scale: { type: 'log' } };
    out['map'] = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'hash map ops per second (median and quartiles)', subtitle: caption },
      data: { values },
      facet: { column: { field: 'scenario', type: 'nominal', title: null }, row: { field: 'workers', type: 'nominal', title: null } },
      spec: {
        width: 150,
        height: 180,
        layer: [
          { mark: { type: 'point', filled: true, size: 70 }, encoding: { x: { field: 'peer', type: 'nominal', title: null, axis: { labelAngle: -45 } }, y, color: { field: 'peer', type: 'nominal', legend: null } } },
          { mark: 'rule', encoding: { x: { field: 'peer', type: 'nominal' }, y: { field: 'q1', type: 'quantitative', scale: { type: 'log' } }, y2: { field: 'q3' } } },
        ],
      },
    } as TopLevelSpec;
    const samples = r.map.memory?.samples;
    if (samples) {
      const names = { committedBytes: 'heap committed', usedBytes: 'heap pages in use', mapBytes: 'map memoryBytes()', liveBytes: 'live keys and values' } as const;
      const values = samples.flatMap((s) => Object.entries(names).map(([k, series]) => ({ mode: s.mode, ms: s.ms, series, MiB: s[k as keyof typeof names] / 2 ** 20 })));
      out['memory'] = {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: { text: 'map of 65,536 entries: fill to 10%, churn, grow to 50%, delete all', subtitle: caption },
        data: { values },
        facet: { column: { field: 'mode', type: 'nominal', title: null } },
        spec: {
          width: 300,
          height: 220,
          mark: 'line',
          encoding: {
            x: { field: 'ms', type: 'quantitative', title: 'ms since the map was created' },
            y: { field: 'MiB', type: 'quantitative', title: 'MiB' },
            color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 240 } },
          },
        },
        resolve: { scale: { x: 'independent' } },
      } as TopLevelSpec;
    }
  }
  if (r.memory) {
    const values = r.memory.random.map((x) => ({ allocator: x.allocator, n: x.n, ratio: x.usedPerLive }));
    out['memory-random'] = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'random sizes in [1, N] with churn: used / live requested bytes (log scales)', subtitle: `${caption}, seed ${r.memory.seed}` },
      data: { values },
      width: 360,
      height: 260,
      layer: [
        {
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'n', type: 'quantitative', title: 'N, the largest size (bytes)', scale: { type: 'log', base: 2 }, axis: { values: [...new Set(values.map((v) => v.n))] } },
            y: { field: 'ratio', type: 'quantitative', title: 'used / live requested', scale: { type: 'log', domainMin: 1 } },
            color: { field: 'allocator', type: 'nominal', title: null, legend: { labelLimit: 240 } },
          },
        },
        // The target: at most 1.25 for every N.
        { mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { y: { datum: 1.25 } } },
      ],
    } as TopLevelSpec;
  }
  return out;
}

const file = process.argv[2] ?? join(RESULTS_DIR, 'latest.json');
const results = JSON.parse(readFileSync(file, 'utf8')) as Results;
mkdirSync(OUT_DIR, { recursive: true });
for (const [name, spec] of Object.entries(charts(results))) {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const path = join(OUT_DIR, `${name}.svg`);
  writeFileSync(path, await view.toSVG());
  console.log(`wrote ${relative(process.cwd(), path)}`);
}
