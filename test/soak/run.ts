/**
 * The soak from the command line (what it does: ./soak.ts):
 *
 *   npm run soak -- [--minutes 60] [--workers 4] [--seed N] [--kill-every-ms 2000]
 *                   [--check-every-s 15] [--lin-every-s 60]
 *
 * Prints progress and a summary, writes the summary to
 * bench/results/soak-latest.json, and exits with code 1 if anything was
 * lost or a check failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSoak, type SoakOptions } from './soak.js';

/** Result files (git-ignored): <root>/bench/results, this file being <root>/dist/test/soak/run.js. */
const RESULTS_DIR = join(fileURLToPath(new URL('../../../', import.meta.url)), 'bench', 'results');

function parseArgs(argv: string[]): SoakOptions {
  const o: SoakOptions = { minutes: 60, workers: 4, seed: (Math.random() * 0xffffffff) >>> 0 || 1, killEveryMs: 2000, checkEveryS: 15, linEveryS: 60 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const num = (): number => {
      const n = Number(v);
      if (v === undefined || !Number.isFinite(n) || n <= 0) throw new RangeError(`${a} needs a positive number, got ${String(v)}`);
      i++;
      return n;
    };
    if (a === '--minutes') o.minutes = num();
    else if (a === '--workers') o.workers = Math.max(2, Math.floor(num()));
    else if (a === '--seed') o.seed = Math.floor(num()) >>> 0;
    else if (a === '--kill-every-ms') o.killEveryMs = num();
    else if (a === '--check-every-s') o.checkEveryS = num();
    else if (a === '--lin-every-s') o.linEveryS = num();
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run soak -- [--minutes 60] [--workers 4] [--seed N] [--kill-every-ms 2000] [--check-every-s 15] [--lin-every-s 60]');
      process.exit(0);
    } else throw new RangeError(`unknown option ${a}`);
  }
  return o;
}

const o = parseArgs(process.argv.slice(2));
const summary = await runSoak(o);
mkdirSync(RESULTS_DIR, { recursive: true });
const file = join(RESULTS_DIR, 'soak-latest.json');
writeFileSync(file, JSON.stringify(summary, null, 2) + '\n');
console.log(`  ${summary.ok ? 'PASS' : 'FAIL'}; written to ${file}`);
process.exit(summary.ok ? 0 : 1);
