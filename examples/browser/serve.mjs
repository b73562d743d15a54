// A tiny static server for the browser example. SharedArrayBuffer exists
// only on cross-origin isolated pages, so every response carries
// Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy (and
// Cross-Origin-Resource-Policy, so the scripts may load under COEP).
//
//   npm run build                      # the library, into dist/src/
//   node examples/browser/serve.mjs    # then open the URL it prints
//
// It listens on 127.0.0.1 only and serves two folders of the package:
// dist/src/ (the library) and examples/browser/ (this example).
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FOLDERS = ['/dist/src/', '/examples/browser/'];
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};
const HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

async function respond(req, res) {
  let path;
  try {
    path = decodeURIComponent(new URL(req.url, 'http://127.0.0.1').pathname);
  } catch {
    path = '';
  }
  if (path === '/') {
    res.writeHead(302, { ...HEADERS, Location: '/examples/browser/' });
    return res.end();
  }
  const file = resolve(ROOT, '.' + path);
  const inside = FOLDERS.some((f) => (file + sep).startsWith(join(ROOT, f)));
  if (req.method === 'GET' && inside) {
    try {
      const isDir = (await stat(file)).isDirectory();
      if (isDir && !path.endsWith('/')) {
        // So that the page's relative URLs resolve inside its folder.
        res.writeHead(302, { ...HEADERS, Location: path + '/' });
        return res.end();
      }
      const target = isDir ? join(file, 'index.html') : file;
      const body = await readFile(target);
      res.writeHead(200, { ...HEADERS, 'Content-Type': TYPES[extname(target)] ?? 'application/octet-stream' });
      return res.end(body);
    } catch {
      // fall through to 404
    }
  }
  res.writeHead(404, { ...HEADERS, 'Content-Type': 'text/plain' });
  res.end('not found');
}

/** Starts the server on 127.0.0.1 (port 0: any free port); resolves to it and the example's URL. */
export function serve(port = 8080) {
  const server = createServer((req, res) => {
    respond(req, res).catch(() => res.destroy());
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}/examples/browser/`;
      ok({ server, url });
    });
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url } = await serve(Number(process.argv[2] ?? 8080));
  console.log(`serving the example at ${url} (Ctrl-C stops)`);
}
