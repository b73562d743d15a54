/**
 * What the core needs from its scope, tried by taking it away: an
 * AudioWorklet has no queueMicrotask and no setTimeout; a page that is not
 * cross-origin isolated has no SharedArrayBuffer; some engines cannot grow
 * one. And the published declarations compile for a user whose TypeScript
 * knows only ES2022 (no DOM, no WebAssembly namespace).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { Heap } from '../../src/index.js';

type Globals = { queueMicrotask?: unknown; setTimeout?: unknown };

/** Runs fn with the globals of an AudioWorkletGlobalScope missing (or replaced). */
async function withoutTimers<T>(replacement: Globals, fn: () => Promise<T>): Promise<T> {
  const g = globalThis as Globals;
  const saved = { queueMicrotask: g.queueMicrotask, setTimeout: g.setTimeout };
  g.queueMicrotask = replacement.queueMicrotask;
  g.setTimeout = replacement.setTimeout;
  try {
    return await fn();
  } finally {
    g.queueMicrotask = saved.queueMicrotask;
    g.setTimeout = saved.setTimeout;
  }
}

/** Lets pending promise reactions (microtasks) run. */
async function tick(): Promise<void> {
  for (let i = 0; i < 4; i++) await Promise.resolve();
}

for (const nowait of [true, false]) {
  test(`without queueMicrotask and setTimeout (an AudioWorklet's scope), ${nowait ? 'nowait' : 'plain'} allocs refill and trim through promise reactions: no exception, no leak`, async () => {
    const heap = Heap.create({ maxBytes: 32 << 20 });
    // nowait with the default watermarks (a cache holds well over a quantum's
    // 24 objects); the plain allocator with small ones, so that it refills and
    // trims all the time.
    const a = heap.createAllocator(nowait ? { nowait } : { lowWatermark: 4, highWatermark: 16, batch: 8 });
    await withoutTimers({}, async () => {
      let failures = 0;
      // 24 allocations per "render quantum", freed in the next one, 400 quanta.
      let held: number[] = [];
      for (let q = 0; q < 400; q++) {
        const now: number[] = [];
        for (let i = 0; i < 24; i++) {
          const p = a.alloc(64);
          if (p === 0) failures++;
          else now.push(p);
        }
        for (const p of held) a.free(p);
        held = now;
        await tick();
      }
      for (const p of held) a.free(p);
      await tick();
      // nowait: an empty cache returns 0 until its refill ran; with the
      // refills running, only the first quanta can miss (a wedged cache
      // fails nearly every alloc after its first batch).
      if (nowait) assert.ok(failures < 240, `${failures} of 9600 nowait allocs returned 0: the deferred refill does not run`);
      else assert.equal(failures, 0);
    });
    assert.equal(a.stats().bytesInUse, 0);
    const cache = a.stats().workers.find((w) => w.slot === heap.slot)!.classes.find((c) => c.unit === 64)!;
    assert.ok(cache.refills > 0, `refills ${cache.refills}: the deferred work ran`);
    if (!nowait) assert.ok(cache.trims > 0, `trims ${cache.trims}: the deferred work ran`);
    assert.deepEqual(heap.validate(), []);
  });
}

test('a scope where scheduling throws loses nothing and wedges nothing: allocs fail or succeed cleanly, and the first schedule that works refills the cache', async () => {
  const heap = Heap.create({ maxBytes: 32 << 20 });
  const a = heap.createAllocator({ lowWatermark: 4, highWatermark: 16, batch: 8, prefill: 0, nowait: true });
  const throwing = (): never => {
    throw new Error('no scheduling here');
  };
  const got: number[] = [];
  await withoutTimers({ queueMicrotask: throwing }, async () => {
    for (let i = 0; i < 100; i++) {
      const p = a.alloc(64);
      if (p !== 0) got.push(p);
    }
    await tick();
  });
  // Nothing could be scheduled: every object taken was handed out.
  const inUse = a.stats().bytesInUse;
  assert.equal(inUse, got.length * 64, 'bytes in use are exactly the objects the caller holds');
  for (const p of got) a.free(p);
  assert.equal(a.stats().bytesInUse, 0);
  // Scheduling works again: the next miss schedules a refill, which runs.
  const first = a.alloc(64);
  if (first !== 0) a.free(first);
  await tick();
  let ok = 0;
  for (let i = 0; i < 4; i++) {
    const p = a.alloc(64);
    if (p !== 0) {
      ok++;
      a.free(p);
    }
  }
  assert.ok(ok > 0, 'after a working schedule the cache is refilled');
  a.flushDeferred();
  await tick();
  assert.deepEqual(heap.validate(), []);
});

test('without SharedArrayBuffer, Heap.create says that the page must be cross-origin isolated (COOP/COEP)', () => {
  const g = globalThis as { SharedArrayBuffer?: unknown };
  const saved = g.SharedArrayBuffer;
  delete g.SharedArrayBuffer;
  try {
    assert.throws(
      () => Heap.create(),
      (e: unknown) =>
        e instanceof TypeError && /cross-origin isolated/.test(e.message) && /Cross-Origin-Opener-Policy: same-origin/.test(e.message) && /Cross-Origin-Embedder-Policy: require-corp/.test(e.message),
    );
  } finally {
    g.SharedArrayBuffer = saved;
  }
});

test('where SharedArrayBuffer cannot grow, the heap takes maxBytes up front and all of it can be allocated', () => {
  const g = globalThis as { SharedArrayBuffer: SharedArrayBufferConstructor };
  const Growable = g.SharedArrayBuffer;
  // An engine without growable shared buffers ignores maxByteLength.
  class FixedOnly extends Growable {
    constructor(length: number) {
      super(length);
    }
    override get growable(): boolean {
      return false;
    }
  }
  g.SharedArrayBuffer = FixedOnly as unknown as SharedArrayBufferConstructor;
  let heap: Heap;
  try {
    heap = Heap.create({ maxBytes: 16 << 20 });
  } finally {
    g.SharedArrayBuffer = Growable;
  }
  assert.equal(heap.stats().committedBytes, (16 << 20) + (1 << 20), 'all of maxBytes committed, and its state bytes');
  assert.equal(heap.stats().stateBytes, 1 << 20);
  const a = heap.createAllocator();
  let got = 0;
  while (a.alloc(1 << 20) !== 0) got++;
  assert.ok(got >= 14, `${got} MiB allocated of 16 MiB (the rest is the heap's tables)`);
  assert.equal(heap.stats().growFailures, 0);
  assert.deepEqual(heap.validate(), []);
});

test("the published declarations compile with lib ES2022 alone (no DOM, no WebAssembly) and skipLibCheck off", () => {
  const entry = fileURLToPath(new URL('../../src/index.d.ts', import.meta.url));
  const program = ts.createProgram([entry], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts'],
    types: [],
    strict: true,
    noEmit: true,
    skipLibCheck: false,
  });
  const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  assert.deepEqual(problems, []);
});
