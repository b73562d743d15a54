/**
 * The examples run as users would run them:
 * - examples/browser/: its own server (serve.mjs) serves the page, which
 *   headless Chromium loads; the page reports success in
 *   document.body.dataset.status ('pass' or 'fail') and logs what it did.
 *   Skipped, with a message saying how to install it, without Chromium.
 * - examples/wasm-memory/: run with node; it checks each step itself and
 *   exits non-zero if one fails; here its output is checked line by line.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Server } from 'node:http';
import type { Browser } from 'playwright-core';
import { ISOLATION_HEADERS, ROOT, launchChromium, recordConsole, skipWithoutChromium } from './harness.js';

// Each browser test skips, with the message, when Chromium is missing: the runner's summary then counts them as skipped.
const skip = skipWithoutChromium();

describe('examples/browser in Chromium', { timeout: 60_000 }, () => {
  let server: Server | undefined;
  let browser: Browser | undefined;
  let url = '';

  before(async () => {
    if (skip !== false) return;
    const { serve } = (await import(pathToFileURL(join(ROOT, 'examples/browser/serve.mjs')).href)) as {
      serve(port: number): Promise<{ server: Server; url: string }>;
    };
    const started = await serve(0);
    server = started.server;
    browser = await launchChromium();
    url = started.url;
  });

  after(async () => {
    await browser?.close();
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise((ok) => server!.close(ok));
    }
  });

  it('the page, its worker and its AudioWorklet share a heap, and the page reports success', { skip }, async (t) => {
    const page = await browser!.newPage();
    const lines = recordConsole(page);
    const response = await page.goto(url);
    assert.ok(response !== null && response.ok(), `GET ${url}: ${response?.status()}`);
    const headers = response.headers();
    for (const [name, value] of Object.entries(ISOLATION_HEADERS)) {
      assert.equal(headers[name.toLowerCase()], value, `serve.mjs sends ${name}`);
    }
    await page.waitForFunction(() => document.body.dataset['status'] !== undefined, null, { timeout: 30_000 });
    const status = await page.evaluate(() => document.body.dataset['status']);
    const log = await page.evaluate(() => document.getElementById('log')?.textContent ?? '');
    t.diagnostic(log.trim().replaceAll('\n', ' | '));
    assert.equal(status, 'pass', `the example failed; its log:\n${log}\nconsole:\n${lines.join('\n')}`);
  });

  it('serve.mjs serves only the library and the example', { skip }, async () => {
    const origin = new URL(url).origin;
    const codes = await Promise.all(
      ['/package.json', '/dist/src/..%2f..%2fpackage.json', '/test/browser/assets/page.js', '/examples/browser/main.js', '/dist/src/index.js'].map(
        async (path) => [path, (await fetch(origin + path, { redirect: 'manual' })).status] as const,
      ),
    );
    assert.deepEqual(Object.fromEntries(codes), {
      '/package.json': 404,
      '/dist/src/..%2f..%2fpackage.json': 404,
      '/test/browser/assets/page.js': 404,
      '/examples/browser/main.js': 200,
      '/dist/src/index.js': 200,
    });
  });
});

describe('examples/wasm-memory', () => {
  it('runs with node: JS, a hand-assembled wasm module and a worker share objects in a shared WebAssembly.Memory', async () => {
    const script = join(ROOT, 'examples/wasm-memory/main.mjs');
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((ok) => {
      execFile(process.execPath, [script], { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
        ok({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
      });
    });
    assert.equal(code, 0, `the example exited ${code}:\n${stdout}\n${stderr}`);
    const lines = stdout.trim().split('\n');
    const expected = [
      /^heap in a shared WebAssembly\.Memory: \d+ bytes, the first 65536 left to the module$/,
      /^wasm reads what JS wrote at \d+: 0xc0ffee$/,
      /^JS reads what wasm wrote at \d+: 1234$/,
      /^sum of 24 bytes: JS (\d+), wasm \1$/,
      /^an 8388608-byte object grew the memory from \d+ to \d+ pages; wasm wrote its last word, JS read 42$/,
      /^counter after 100000 adds here \(JS and wasm\) and 100000 in a worker \(wasm\): 200000$/,
      /^bytes in use: 0; heap\.validate\(\): 0 problems$/,
      /^ok$/,
    ];
    assert.equal(lines.length, expected.length, `output:\n${stdout}`);
    expected.forEach((re, i) => assert.match(lines[i]!, re));
    const grew = /from (\d+) to (\d+) pages/.exec(lines[4]!)!;
    assert.ok(Number(grew[2]) > Number(grew[1]), 'the memory grew');
  });
});
