/**
 * What the browser tests share: finding a Chromium to drive, launching it
 * headless through playwright-core, and a static file server that makes
 * its pages cross-origin isolated (so SharedArrayBuffer exists there).
 *
 * The server listens on 127.0.0.1 only, on a port the OS picks, serves
 * only the folders it is given (no path may leave them) and is closed by
 * the test that started it.
 */
import { createServer, type Server } from 'node:http';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { delimiter, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';

/** The repository root (this file runs from dist/test/browser/). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Headers that make a page cross-origin isolated, sent with every file. */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
};

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** How to get a browser, for the message of a skipped test. */
export const CHROMIUM_MISSING =
  'Chromium was not found, so the browser tests did not run. Install it ' +
  '(Debian/Ubuntu: apt-get install chromium; Fedora: dnf install chromium; ' +
  'macOS: brew install --cask chromium) or point CHROMIUM_PATH at a Chromium or Chrome executable.';

/**
 * The Chromium to drive: CHROMIUM_PATH if set (it must exist), else
 * /usr/bin/chromium, else chromium or chromium-browser on PATH.
 * Undefined when there is none.
 */
export function findChromium(): string | undefined {
  const wanted = process.env['CHROMIUM_PATH'];
  if (wanted !== undefined && wanted !== '') {
    if (!isExecutable(wanted)) throw new Error(`CHROMIUM_PATH=${wanted} is not an executable file`);
    return wanted;
  }
  if (isExecutable('/usr/bin/chromium')) return '/usr/bin/chromium';
  for (const name of ['chromium', 'chromium-browser']) {
    for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
      if (dir !== '' && isExecutable(join(dir, name))) return join(dir, name);
    }
  }
  return undefined;
}

/**
 * The `skip` option for a suite that needs Chromium: false when there is
 * one, else the message saying how to install it. With REQUIRE_CHROMIUM=1
 * a missing browser fails instead, so a CI job cannot pass by skipping.
 */
export function skipWithoutChromium(): false | string {
  if (findChromium() !== undefined) return false;
  if (process.env['REQUIRE_CHROMIUM'] === '1') throw new Error(`REQUIRE_CHROMIUM=1: ${CHROMIUM_MISSING}`);
  return CHROMIUM_MISSING;
}

/** Launches the system Chromium headless (without its sandbox when running as root, where it refuses to start). */
export async function launchChromium(): Promise<Browser> {
  const executablePath = findChromium();
  if (executablePath === undefined) throw new Error(CHROMIUM_MISSING);
  const { chromium } = await import('playwright-core');
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return chromium.launch({ executablePath, headless: true, args: asRoot ? ['--no-sandbox'] : [] });
}

/** A running static server: its origin and how to close it. */
export interface StaticServer {
  readonly origin: string;
  close(): Promise<void>;
}

/**
 * Serves the files under `mounts` (URL prefix -> folder) with the
 * isolation headers. Anything else, or a path that would leave its
 * folder, is a 404.
 */
export async function serveStatic(mounts: Readonly<Record<string, string>>): Promise<StaticServer> {
  const table = Object.entries(mounts).map(([prefix, dir]) => [prefix, resolve(dir)] as const);
  const server: Server = createServer((req, res) => {
    const notFound = (): void => {
      res.writeHead(404, { ...ISOLATION_HEADERS, 'Content-Type': 'text/plain' });
      res.end('not found');
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return notFound();
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    } catch {
      return notFound();
    }
    for (const [prefix, dir] of table) {
      if (!path.startsWith(prefix)) continue;
      const file = resolve(dir, '.' + path.slice(prefix.length - 1));
      if (file !== dir && !file.startsWith(dir + sep)) return notFound();
      let body: Buffer;
      try {
        body = readFileSync(statSync(file).isDirectory() ? join(file, 'index.html') : file);
      } catch {
        return notFound();
      }
      res.writeHead(200, {
        ...ISOLATION_HEADERS,
        'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
        'Cache-Control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    notFound();
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

/** Collects a page's console output and uncaught errors, to show when a check fails. */
export function recordConsole(page: Page): string[] {
  const lines: string[] = [];
  page.on('console', (m) => lines.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`[pageerror] ${e.stack ?? e.message}`));
  page.on('crash', () => lines.push('[crash] the page crashed'));
  return lines;
}

