/** Runs one benchmark script in a fresh Node process and reads the JSON line it prints last. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { BENCH_DIST } from './paths.js';

const TIMEOUT_MS = 180_000;

export function runChild<T>(script: string, arg: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(BENCH_DIST, script), JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line) as T);
      else reject(new Error(`${script} failed (${signal ?? `exit ${code}`}): ${(err.trim() || out.trim()).split('\n').slice(0, 3).join(' | ')}`));
    });
  });
}
