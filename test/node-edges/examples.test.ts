/**
 * The examples run as a user would run them: `node examples/<name>/main.mjs`
 * from the package root, importing 'anyalloc' and 'anyalloc/node' by name
 * (Node resolves the package's own name through its "exports" to the
 * compiled dist/).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

test('examples/worker-pool: pool threads come and go, every slot is given back', { timeout: 60_000 }, async () => {
  const { stdout, stderr } = await run(process.execPath, ['examples/worker-pool/main.mjs'], { cwd: ROOT });
  assert.equal(stderr, '');
  assert.match(stdout, /^hello from thread \d+ \(slot \d\): burst 0, task 0$/m);
  const m = /^(\d+) pool threads came and went; (\d+) slots released after their exit$/m.exec(stdout);
  assert.ok(m, stdout);
  assert.ok(Number(m[1]) >= 5 && m[2] === m[1], stdout);
  assert.match(stdout, /^slots still taken: 1 \(this thread's\)$/m);
  assert.match(stdout, /^heap\.validate\(\): consistent$/m);
});

test('examples/node-worker: the worker reads and frees what the main thread allocated', { timeout: 30_000 }, async () => {
  const { stdout, stderr } = await run(process.execPath, ['examples/node-worker/main.mjs'], { cwd: ROOT });
  assert.equal(stderr, '');
  assert.match(stdout, /^worker read: hello from main$/m);
  assert.match(stdout, /^bytes in use after the worker: 0$/m);
  assert.match(stdout, /^heap\.validate\(\): consistent$/m);
});
