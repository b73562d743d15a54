/**
 * Compiles peers that are published as TypeScript sources only.
 *
 * `@daneren2005/shared-memory-objects` ships `src/*.ts` written for a
 * bundler (Vite): relative imports have no file extension and the code reads
 * `import.meta.env.MODE`. Node cannot load that directly, so each file is
 * compiled with the TypeScript compiler (transpile only: no type checking,
 * which would need Vite's type declarations), then
 *   - relative import specifiers get the `.js` file they resolve to,
 *   - `import.meta.env.MODE` is replaced by "production", which is what a
 *     Vite production build does.
 * The package's own code is otherwise unchanged. Output goes to
 * bench/.peers-build/shared-memory-objects/ (git-ignored).
 *
 * Run: node dist/bench/build-peers.js [--force]
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { PEERS_BUILD, isEntry } from './paths.js';

export const SMO_PACKAGE = '@daneren2005/shared-memory-objects';
export const SMO_OUT = join(PEERS_BUILD, 'shared-memory-objects');
export const SMO_ENTRY = join(SMO_OUT, 'main.js');
const STAMP = join(SMO_OUT, '.source-version');
/** Bumped when the rewriting below changes, so old builds are redone. */
const BUILD_REV = 1;

function packageSrcDir(): string {
  // The package's only export is its TypeScript entry (src/main.ts).
  const entry = fileURLToPath(import.meta.resolve(SMO_PACKAGE));
  return dirname(entry);
}

function packageVersion(srcDir: string): string {
  const pkg = JSON.parse(readFileSync(join(srcDir, '..', 'package.json'), 'utf8')) as { version?: string };
  return `${pkg.version ?? 'unknown'}+build${BUILD_REV}`;
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) {
      if (name === '__tests__') continue;
      out.push(...listFiles(full));
    } else {
      out.push(full);
    }
  }
  return out;
}

/** Maps an extensionless relative specifier to the compiled file it names. */
function fixSpecifier(fromFile: string, spec: string): string {
  if (!spec.startsWith('./') && !spec.startsWith('../')) return spec;
  if (/\.(m?js|json)$/.test(spec)) return spec;
  const base = join(dirname(fromFile), spec);
  if (existsSync(base + '.ts') || existsSync(base + '.js')) return spec + '.js';
  if (existsSync(join(base, 'index.ts')) || existsSync(join(base, 'index.js'))) return spec + '/index.js';
  throw new Error(`cannot resolve ${spec} from ${fromFile}`);
}

function rewrite(fromFile: string, code: string): string {
  code = code.replace(
    /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])([^'"]+)\2/g,
    (_m, lead: string, q: string, spec: string) => `${lead}${q}${fixSpecifier(fromFile, spec)}${q}`,
  );
  return code.replace(/import\.meta\.env\.MODE/g, '"production"');
}

export interface BuildResult {
  built: boolean;
  files: number;
  version: string;
  out: string;
}

/** Builds the package unless an up-to-date build is present. */
export function buildSharedMemoryObjects(force = false): BuildResult {
  const srcDir = packageSrcDir();
  const version = packageVersion(srcDir);
  if (!force && existsSync(SMO_ENTRY) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === version) {
    return { built: false, files: 0, version, out: SMO_OUT };
  }
  rmSync(SMO_OUT, { recursive: true, force: true });
  let files = 0;
  for (const file of listFiles(srcDir)) {
    const rel = relative(srcDir, file);
    if (file.endsWith('.d.ts') || /\.(test|spec|bench)\.ts$/.test(file)) continue;
    if (file.endsWith('.ts')) {
      const source = readFileSync(file, 'utf8');
      const out = ts.transpileModule(source, {
        fileName: file,
        compilerOptions: {
          module: ts.ModuleKind.ES2022,
          target: ts.ScriptTarget.ES2022,
          useDefineForClassFields: true,
        },
      });
      const dest = join(SMO_OUT, rel.replace(/\.ts$/, '.js'));
      mkdirSync(dirname(dest), { recursive: true });
      writeFileSync(dest, rewrite(file, out.outputText));
      files++;
    } else if (file.endsWith('.js')) {
      const dest = join(SMO_OUT, rel);
      mkdirSync(dirname(dest), { recursive: true });
      writeFileSync(dest, rewrite(file, readFileSync(file, 'utf8')));
      files++;
    }
  }
  // An ES module folder inside a repository whose package.json says "module"
  // already; state it anyway so the folder stands on its own.
  writeFileSync(join(SMO_OUT, 'package.json'), JSON.stringify({ type: 'module' }) + '\n');
  writeFileSync(STAMP, version);
  return { built: true, files, version, out: SMO_OUT };
}

if (isEntry(import.meta.url)) {
  const r = buildSharedMemoryObjects(process.argv.includes('--force'));
  console.log(
    r.built
      ? `${SMO_PACKAGE}@${r.version}: compiled ${r.files} files into ${relative(process.cwd(), r.out)}`
      : `${SMO_PACKAGE}@${r.version}: up to date in ${relative(process.cwd(), r.out)}`,
  );
}
