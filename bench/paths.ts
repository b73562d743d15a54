/** Locations the harness needs, resolved from the compiled file (dist/bench/). */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** Repository root (this file compiles to <root>/dist/bench/paths.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Compiled benchmark scripts. */
export const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));
/** Peers that ship only TypeScript are compiled here (git-ignored). */
export const PEERS_BUILD = join(REPO_ROOT, 'bench', '.peers-build');
/** Result files (git-ignored). */
export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
/** The compiled anyalloc entry point. */
export const ANYALLOC_ENTRY = join(REPO_ROOT, 'dist', 'src', 'index.js');

/** True when the module whose `import.meta.url` is given is the process entry. */
export function isEntry(metaUrl: string): boolean {
  const argv1 = process.argv[1];
  return argv1 !== undefined && fileURLToPath(metaUrl) === argv1;
}
