/**
 * The state buffer (src/shm/layout.ts): one state byte per 16 bytes of the
 * heap, in a second shared buffer that grows before the heap's buffer does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heap } from '../../src/index.js';
import { MISUSE } from '../../src/alloc/misuse.js';
import { ST_FREE } from '../../src/shm/layout.js';

/** Every committed page's state bytes exist, and stats() counts them. */
function assertCovered(heap: Heap): void {
  heap.refresh();
  const bytes = heap.committedPages() * heap.pageSize;
  assert.ok(heap.st.length * 16 >= bytes, `state view covers ${heap.st.length * 16} of ${bytes} committed bytes`);
  const st = heap.stats();
  assert.equal(st.stateBytes, heap.states.byteLength);
  assert.equal(st.committedBytes, bytes + heap.states.byteLength);
  assert.equal(st.usedBytes, st.usedPages * heap.pageSize * (17 / 16));
}

test('the state buffer grows with the heap; an agent with old views frees objects in pages committed after them', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const other = Heap.attach(heap.handle);
  const a = heap.createAllocator();
  const b = other.attachAllocator(a.handle);
  const before = heap.states.byteLength;
  const objects: number[] = [];
  // 40 MiB of 4 KiB objects: the buffer grows many times.
  for (let i = 0; i < 10_000; i++) {
    const p = a.alloc(4096);
    assert.notEqual(p, 0);
    objects.push(p);
  }
  assertCovered(heap);
  assert.ok(heap.states.byteLength > before, 'the state buffer grew');
  // `other` made its views when the heap was small; its frees meet pointers past them.
  assert.ok(other.viewBytes < objects.at(-1)!, 'precondition: the other agent has old views');
  for (const p of objects) b.free(p);
  assertCovered(other);
  b.detach();
  other.detach();
  assert.deepEqual(heap.validate(), []);
});

test('the state view never reaches past the word views, even while the state buffer is ahead of the buffer', () => {
  const heap = Heap.create({ maxBytes: 64 << 20 });
  const other = Heap.attach(heap.handle);
  // The state buffer grows first; an agent may renew its views in between.
  heap.states.grow(heap.states.maxByteLength);
  other.refresh();
  assert.ok(other.st.length * 16 <= other.u8.length + 15, `states for ${other.st.length * 16} bytes, words for ${other.u8.length}`);
  assert.equal(other.viewBytes, other.u8.length);
  other.detach();
});

test('a slab carved where a slab of another class was leaves no stale state: a former object start is refused', () => {
  const heap = Heap.create({ maxBytes: 4 << 20 });
  const a = heap.createAllocator();
  const small: number[] = [];
  for (let p = a.alloc(48); p !== 0; p = a.alloc(48)) small.push(p);
  for (const p of small) a.free(p);
  const big: number[] = [];
  for (let p = a.alloc(64); p !== 0; p = a.alloc(64)) big.push(p);
  const starts = new Set(big);
  const inside = small.find((p) => !starts.has(p) && big.some((q) => p > q && p < q + 64));
  assert.ok(inside !== undefined, 'precondition: 64-byte objects cover pages where 48-byte objects were');
  assert.throws(
    () => a.free(inside),
    (e: unknown) => e instanceof RangeError && e.message.includes(MISUSE.notObjectStart),
    'a 48-byte object start inside a 64-byte object is not an object',
  );
  for (const p of big) a.free(p);
  assert.deepEqual(heap.validate(), []);
});

test('validate() reports a state byte set where no object starts', () => {
  const heap = Heap.create({ maxBytes: 4 << 20 });
  const a = heap.createAllocator();
  const p = a.alloc(64);
  assert.deepEqual(heap.validate(), []);
  heap.st[(p + 16) >>> 4] = ST_FREE;
  const errors = heap.validate();
  assert.ok(
    errors.some((e) => e.includes(`byte ${p + 16} is no object's start, but its state is ${ST_FREE}`)),
    errors.join('\n'),
  );
  heap.st[(p + 16) >>> 4] = 0;
  a.free(p);
  assert.deepEqual(heap.validate(), []);
});

test('a wasm memory grown by its module: the heap commits those bytes only once their states exist', () => {
  const memory = new WebAssembly.Memory({ initial: 8, maximum: 256, shared: true });
  const heap = Heap.create({ memory, maxBytes: 256 * 65536 });
  // The module grows the memory on its own; the heap's states do not follow by themselves.
  memory.grow(64);
  heap.refresh();
  assert.ok(heap.viewBytes <= heap.st.length * 16, 'the views stop where the states do');
  const a = heap.createAllocator();
  const objects: number[] = [];
  for (let p = a.alloc(1024); p !== 0; p = a.alloc(1024)) objects.push(p);
  assert.ok(objects.length > 10_000, `${objects.length} objects of 1 KiB in 16 MiB`);
  assertCovered(heap);
  for (const p of objects) a.free(p);
  assert.deepEqual(heap.validate(), []);
});

test('usableSize refuses a pointer past the heap whose low 32 bits name an object (2^32 + p)', () => {
  const heap = Heap.create({ maxBytes: 4 << 20 });
  const a = heap.createAllocator();
  const p = a.alloc(64);
  assert.equal(a.usableSize(p), 64);
  assert.throws(() => a.usableSize(2 ** 32 + p), RangeError);
  a.free(p);
});
