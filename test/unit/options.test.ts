/**
 * Options are checked: Heap.create, createAllocator, attachAllocator and
 * HashMap.create take undefined (HashMap.create: not even that) or a
 * plain object with known keys of the right types. Anything else is a
 * TypeError with code 'bad-option' that names the option (and, for a
 * near miss, the option it probably meant); nothing is created.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap } from '../../src/index.js';

function expectOption(f: () => unknown, cls: typeof TypeError | typeof RangeError, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.equal((e as { code?: string }).code, 'bad-option', (e as Error).message);
    assert.match((e as Error).message, message);
    return true;
  });
}

class Opts {
  maxBytes = 4 << 20;
}

test('Heap.create takes undefined or a plain object of known options', () => {
  const cases: [unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    [null, TypeError, /^Heap.create: options must be a plain object or undefined, got null$/],
    ['64MiB', TypeError, /options must be a plain object or undefined, got "64MiB"/],
    [64 << 20, TypeError, /options must be a plain object or undefined, got 67108864/],
    [[], TypeError, /got an array/],
    [new Opts(), TypeError, /got an instance of Opts/],
    [{ maxByte: 4 << 20 }, TypeError, /^Heap.create: unknown option "maxByte" \(did you mean maxBytes\?\); the options are maxBytes, initialBytes, pageSize, maxWorkers, maxAllocators, memory, reserveBytes$/],
    [{ pagesize: 8192 }, TypeError, /unknown option "pagesize" \(did you mean pageSize\?\)/],
    [{ maxworkers: 2 }, TypeError, /did you mean maxWorkers\?/],
    [{ unitSize: 64 }, TypeError, /unknown option "unitSize"; the options are/],
    [{ maxBytes: '64' }, TypeError, /^maxBytes must be a safe integer, got "64"$/],
    [{ maxWorkers: 2.5 }, TypeError, /maxWorkers must be a safe integer, got 2\.5/],
    [{ memory: 7 }, TypeError, /memory must be an object, got 7/],
    [{ pageSize: 10000 }, RangeError, /pageSize must be a power of two, got 10000/],
    [{ maxWorkers: 0 }, RangeError, /maxWorkers must be in \[1, 1024\], got 0/],
    [{ maxBytes: 2 ** 33 }, RangeError, /maxBytes must be in \[1, 4294967296\], got 8589934592/],
    [{ reserveBytes: 0 }, TypeError, /reserveBytes needs memory/],
    [{ maxBytes: 8192 }, RangeError, /maxBytes 8192 leaves no room for data pages/],
  ];
  for (const [options, cls, message] of cases) expectOption(() => Heap.create(options as never), cls, message);
  // Absent, undefined values and objects without a prototype are fine.
  for (const ok of [undefined, {}, { maxBytes: undefined }, Object.assign(Object.create(null) as object, { maxBytes: 4 << 20 })]) {
    Heap.create(ok as never).detach();
  }
});

test('createAllocator checks its options before it claims an id or a page', () => {
  const heap = Heap.create({ maxBytes: 8 << 20 });
  const before = heap.stats();
  const cases: [unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    [null, TypeError, /^createAllocator: options must be a plain object or undefined, got null$/],
    [64, TypeError, /createAllocator: options must be a plain object or undefined, got 64/],
    [{ unitsize: 64 }, TypeError, /^createAllocator: unknown option "unitsize" \(did you mean unitSize\?\); the options are unitSize, limitBytes, lowWatermark, highWatermark, batch, prefill, nowait, debug$/],
    [{ limitByte: 1 << 20 }, TypeError, /did you mean limitBytes\?/],
    [{ lowWaterMark: 4 }, TypeError, /did you mean lowWatermark\?/],
    [{ maxBytes: 1 << 20 }, TypeError, /unknown option "maxBytes"; the options are/],
    [{ unitSize: '64' }, TypeError, /^unitSize must be a safe integer, got "64"$/],
    [{ nowait: 'yes' }, TypeError, /^nowait must be a boolean, got "yes"$/],
    [{ debug: 1 }, TypeError, /^debug must be a boolean, got 1$/],
    [{ unitSize: 0 }, RangeError, /unitSize must be in \[1, 1048576\], got 0/],
    [{ lowWatermark: 10, highWatermark: 5 }, RangeError, /highWatermark must be above lowWatermark, got low 10 and high 5/],
    [{ batch: 65537 }, RangeError, /batch must be in \[1, 65536\], got 65537/],
  ];
  for (const [options, cls, message] of cases) expectOption(() => heap.createAllocator(options as never), cls, message);
  assert.deepEqual(heap.stats(), before, 'no allocator created, no page taken');
  heap.createAllocator(undefined).destroy();
  heap.createAllocator({ nowait: undefined, unitSize: 64 }).destroy();
});

test('attachAllocator checks its options before it attaches', () => {
  const heap = Heap.create({ maxBytes: 8 << 20 });
  const a = heap.createAllocator();
  const worker = Heap.attach(heap.handle);
  const before = heap.stats();
  const cases: [unknown, RegExp][] = [
    [null, /^attachAllocator: options must be a plain object or undefined, got null$/],
    [true, /got true/],
    [{ nowiat: true }, /^attachAllocator: unknown option "nowiat" \(did you mean nowait\?\); the options are nowait$/],
    [{ unitSize: 64 }, /unknown option "unitSize"; the options are nowait/],
    [{ nowait: 1 }, /^nowait must be a boolean, got 1$/],
  ];
  for (const [options, message] of cases) expectOption(() => worker.attachAllocator(a.handle, options as never), TypeError, message);
  assert.equal(a.attachedAgents, 1, 'not attached');
  assert.deepEqual(heap.stats(), before);
  worker.attachAllocator(a.handle, { nowait: true }).detach();
  worker.detach();
});

test('HashMap.create checks its options before it takes memory', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const before = heap.stats();
  const ok = { keySize: 4, valueSize: 8, maxEntries: 16 };
  const cases: [unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    [undefined, TypeError, /^HashMap.create: options must be an object, got undefined$/],
    [null, TypeError, /options must be an object, got null/],
    ['big', TypeError, /options must be an object, got "big"/],
    [{ ...ok, keysize: 4 }, TypeError, /^HashMap.create: unknown option "keysize" \(did you mean keySize\?\); the options are keySize, valueSize, maxEntries, mode, perWorker, seed, buckets, inPlace$/],
    [{ ...ok, maxEntry: 4 }, TypeError, /did you mean maxEntries\?/],
    [{ ...ok, perworker: true }, TypeError, /did you mean perWorker\?/],
    [{ ...ok, unitSize: 64 }, TypeError, /unknown option "unitSize"; the options are/],
    [{ ...ok, perWorker: 'yes' }, TypeError, /^perWorker must be a boolean, got "yes"$/],
    [{ ...ok, inPlace: 0 }, TypeError, /^inPlace must be a boolean, got 0$/],
    [{ ...ok, mode: 1 }, TypeError, /^mode must be a string, got 1$/],
    [{ ...ok, mode: 'static' }, TypeError, /mode must be 'prealloc' or 'dynamic', got "static"/],
    [{ ...ok, keySize: 513 }, RangeError, /keySize must be in \[1, 512\], got 513/],
    [{ ...ok, valueSize: 65536, perWorker: true }, RangeError, /elements of \d+ bytes do not fit the largest slab \(1048576 bytes\)/],
  ];
  for (const [options, cls, message] of cases) expectOption(() => HashMap.create(heap, options as never), cls, message);
  assert.deepEqual(heap.stats(), before, 'no map, no allocator, no page');
  HashMap.create(heap, { ...ok, seed: undefined }).destroy();
});
