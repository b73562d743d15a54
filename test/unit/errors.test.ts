/**
 * One error model: every error the library throws has a stable `code`
 * (release and debug mode alike), listed in ERROR_CODES and in the table
 * of docs/errors.md. Running out of memory and map outcomes are return
 * values; a call the caller could have avoided throws.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AllocatorMisuseError, ERROR_CODES, HashMap, Heap, MISUSE_CODES, MapFlag, MapStatus } from '../../src/index.js';

const seen = new Set<string>();

function expectCode(f: () => unknown, cls: typeof Error, code: string, message?: RegExp): Error {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof cls, `expected a ${cls.name} with code ${code}, got ${String(caught)}`);
  const err = caught as Error & { code?: string };
  assert.equal(err.code, code, err.message);
  if (message !== undefined) assert.match(err.message, message);
  seen.add(code);
  return err;
}

test('codes are one style, listed once, and the misuse codes are among them', () => {
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length, 'no code twice');
  for (const c of ERROR_CODES) assert.match(c, /^[a-z]+(-[a-z]+)*$/, c);
  for (const c of MISUSE_CODES) assert.ok((ERROR_CODES as readonly string[]).includes(c), c);
});

test('docs/errors.md has a row for every code, and no other', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Set([...doc.matchAll(/^\| `([a-z-]+)` \| (TypeError|RangeError|Error|AllocatorMisuseError)/gm)].map((m) => m[1]!));
  for (const c of ERROR_CODES) assert.ok(rows.has(c), `docs/errors.md lacks ${c}`);
  for (const c of rows) assert.ok((ERROR_CODES as readonly string[]).includes(c), `docs/errors.md lists unknown code ${c}`);
});

for (const mode of ['release', 'debug'] as const) {
  test(`pointer and size misuse carries the same codes in ${mode} mode`, () => {
    const heap = Heap.create({ maxBytes: 16 << 20 });
    const debug = mode === 'debug';
    const a = heap.createAllocator({ debug });
    const b = heap.createAllocator({ debug });
    const p = a.alloc(64);
    const q = b.alloc(64);
    const big = a.alloc(100_000);
    const range = (e: Error): void => assert.equal(e instanceof AllocatorMisuseError, debug, `${mode}: ${e.name}`);
    range(expectCode(() => a.free(p + 8), RangeError, 'unaligned', /invalid unaligned/));
    range(expectCode(() => a.free(q), RangeError, 'wrong-allocator', /wrong allocator/));
    range(expectCode(() => a.free(heap.maxPages * heap.pageSize + 16), RangeError, 'out-of-range', /outside the heap/));
    range(expectCode(() => a.free(big + 4096), RangeError, 'not-allocated', /not the start of an object/));
    range(expectCode(() => a.freeDeferred(big), RangeError, 'large-deferred', /large allocations cannot be freed deferred/));
    range(expectCode(() => a.alloc(0), RangeError, 'bad-size', /alloc size must be in \[1, /));
    expectCode(() => a.alloc('8' as never), TypeError, 'bad-size', /alloc size must be a positive safe integer, got "8"/);
    expectCode(() => a.free(1.5), TypeError, 'bad-argument', /pointer must be an integer byte offset/);
    a.free(p);
    range(expectCode(() => a.free(p), RangeError, 'double-free', /double free/));
    a.free(big);
    b.free(q);
    heap.assertValid();
    a.detach();
    range(expectCode(() => a.alloc(64), RangeError, 'detached', /is detached in this agent/));
  });
}

test('a stale agent, a detached heap and allocators in the wrong state throw with codes', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  const agent = Heap.attach(heap.handle);
  const a2 = agent.attachAllocator(a.handle);
  const p = a2.alloc(64);
  expectCode(() => agent.attachAllocator(a.handle), RangeError, 'already-attached', /already attached in this agent's slot/);
  expectCode(() => a.destroy(), RangeError, 'still-attached', /still attached in 1 other agent/);
  expectCode(() => a.reserve(4), RangeError, 'wrong-mode', /reserve needs a fixed-size allocator/);
  assert.equal(heap.releaseSlot(agent.slot), true);
  expectCode(() => a2.free(p), RangeError, 'stale', /stale handle/);
  a.free(p);
  expectCode(() => heap.releaseSlot('0' as never), TypeError, 'bad-argument', /slot must be a safe integer, got "0"/);
  expectCode(() => heap.releaseSlot(64), RangeError, 'out-of-range', /slot must be in \[0, 63\], got 64/);
  expectCode(() => heap.releaseSlot(heap.slot), RangeError, 'bad-argument', /this agent's own slot/);
  heap.detach();
  expectCode(() => heap.createAllocator(), RangeError, 'detached', /createAllocator: this agent has detached from the heap/);
  expectCode(() => heap.attachAllocator(a.handle), RangeError, 'detached', /attachAllocator: this agent has detached/);
});

test('creates that find no room throw; allocations that find none return 0', () => {
  const heap = Heap.create({ maxBytes: 4 << 20, maxWorkers: 1, maxAllocators: 2 });
  const before = heap.stats();
  expectCode(() => HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 1 << 20, mode: 'prealloc' }), RangeError, 'heap-full', /heap is full/);
  // The buffer may have grown on the way; nothing is left in use.
  const after = heap.stats();
  assert.deepEqual([after.allocatorsLive, after.usedPages, after.slotsAttached], [before.allocatorsLive, before.usedPages, before.slotsAttached], 'the failed create left nothing behind');
  const a = heap.createAllocator({ limitBytes: 1 << 20 });
  assert.equal(a.alloc(2 << 20), 0, 'no memory is a return value');
  heap.createAllocator();
  expectCode(() => heap.createAllocator(), RangeError, 'no-allocator-id', /all 2 are in use/);
  expectCode(() => Heap.attach(heap.handle), RangeError, 'no-slot', /all 1 are taken/);
});

test('map outcomes are statuses; a bad flag, key or state throws with a code', () => {
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const m = HashMap.create(heap, { keySize: 4, valueSize: 4, maxEntries: 1 });
  const v = new Uint8Array(4);
  assert.equal(m.updateNumber(1, v, MapFlag.EXIST), MapStatus.NOT_FOUND);
  assert.equal(m.updateNumber(1, v), MapStatus.OK);
  assert.equal(m.updateNumber(1, v, MapFlag.NOEXIST), MapStatus.EXISTS);
  assert.equal(m.updateNumber(2, v), MapStatus.FULL);
  assert.equal(m.deleteNumber(2), MapStatus.NOT_FOUND);
  expectCode(() => m.updateNumber(1, v, 3), RangeError, 'bad-argument', /updateNumber flag must be MapFlag.ANY \(0\), NOEXIST \(1\) or EXIST \(2\), got 3/);
  expectCode(() => m.updateNumber(1, v, -1), RangeError, 'bad-argument', /got -1/);
  expectCode(() => m.updateNumber(1, v, '1' as never), TypeError, 'bad-argument', /updateNumber flag must be .*got "1"/);
  expectCode(() => m.update(new Uint8Array(4), v, 1.5), TypeError, 'bad-argument', /update flag must be .*got 1\.5/);
  expectCode(() => m.update(new Uint8Array(4), v, null as never), TypeError, 'bad-argument', /got null/);
  expectCode(() => m.update(new Uint8Array(3), v), TypeError, 'bad-argument', /key must be a Uint8Array of at least keySize 4 bytes, got 3 bytes/);
  expectCode(() => m.lookup(new Uint8Array(4), new Uint8Array(2)), TypeError, 'bad-argument', /out must be a Uint8Array/);
  expectCode(() => m.lookupAll(new Uint8Array(4), new Uint8Array(4)), TypeError, 'wrong-mode', /lookupAll needs a per-worker map/);
  const agent = Heap.attach(heap.handle);
  const m2 = HashMap.attach(agent, m.handle);
  expectCode(() => m.destroy(), RangeError, 'still-attached', /still attached in 1 other agent/);
  m2.detach();
  expectCode(() => m2.lookupNumber(1, v), RangeError, 'detached', /this map is detached in this agent/);
  agent.detach();
  m.destroy();
});

test('assertValid and an unsupported layout version throw with codes', () => {
  const heap = Heap.create({ maxBytes: 4 << 20 });
  const last = heap.committedPages() - 1;
  const tag = heap.u32[heap.tagWord + last]!;
  heap.u32[heap.tagWord + last] = 3;
  expectCode(() => heap.assertValid(), Error, 'inconsistent', /heap is inconsistent/);
  heap.u32[heap.tagWord + last] = tag;
  heap.assertValid();
  const version = heap.u32[heap.hdr + 1]!;
  heap.u32[heap.hdr + 1] = version - 1;
  const before = heap.stats();
  expectCode(() => Heap.attach(heap.handle), TypeError, 'bad-version', new RegExp(`heap layout version ${version - 1} is not supported \\(want ${version}\\)`));
  heap.u32[heap.hdr + 1] = version;
  assert.deepEqual(heap.stats(), before);
});

test('every code these tests met is a listed code', () => {
  for (const c of seen) assert.ok((ERROR_CODES as readonly string[]).includes(c), c);
});
