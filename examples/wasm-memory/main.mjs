// anyalloc in a shared WebAssembly.Memory: JavaScript allocates objects,
// a small wasm module reads and writes the very same bytes, and a worker
// thread runs the same module on the same memory at the same time.
//
//   npm run build && node examples/wasm-memory/main.mjs
//
// The wasm module is assembled by hand below (no toolchain needed): it
// imports the shared memory and exports load, store, atomic add, a byte
// sum and the memory's size in pages. Each step checks what it shows and
// throws if it does not hold; the last line printed is "ok".
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { Heap } from 'anyalloc';

const WASM_PAGE = 65536;
const MAX_PAGES = 1024; // the memory may grow to 64 MiB
const RESERVED = WASM_PAGE; // the first 64 KiB stay the module's own, outside the heap
const ADDS = 100_000;

/* ------------------------- the wasm module, by hand ------------------------ */

/** Unsigned LEB128, the wasm encoding of integers. */
function leb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
const vec = (items) => [...leb(items.length), ...items.flat()];
const name = (s) => vec([...new TextEncoder().encode(s)].map((b) => [b]));
const section = (id, body) => [id, ...leb(body.length), ...body];
const I32 = 0x7f;
const func = (params, results) => [0x60, ...vec(params.map((t) => [t])), ...vec(results.map((t) => [t]))];
const body = (locals, code) => {
  const b = [...vec(locals), ...code, 0x0b];
  return [...leb(b.length), ...b];
};
// Opcodes used below.
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, I32_CONST = 0x41, I32_ADD = 0x6a, I32_SUB = 0x6b, I32_EQZ = 0x45;
const I32_LOAD = [0x28, 2, 0], I32_STORE = [0x36, 2, 0], I32_LOAD8_U = [0x2d, 0, 0];
const I32_ATOMIC_RMW_ADD = [0xfe, 0x1e, 2, 0];
const BLOCK = [0x02, 0x40], LOOP = [0x03, 0x40], BR = 0x0c, BR_IF = 0x0d, END = 0x0b, MEMORY_SIZE = [0x3f, 0];

const wasmBytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  ...section(1, vec([func([I32], [I32]), func([I32, I32], []), func([I32, I32], [I32]), func([], [I32])])),
  // import env.memory: shared (flag 3), minimum 1 page, maximum MAX_PAGES
  ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x03, ...leb(1), ...leb(MAX_PAGES)]])),
  ...section(3, vec([[0], [1], [2], [2], [3]])),
  ...section(7, vec([
    [...name('load'), 0x00, 0],
    [...name('store'), 0x00, 1],
    [...name('atomicAdd'), 0x00, 2],
    [...name('sum'), 0x00, 3],
    [...name('pages'), 0x00, 4],
  ])),
  ...section(10, vec([
    // load(addr) -> i32
    body([], [LOCAL_GET, 0, ...I32_LOAD]),
    // store(addr, value)
    body([], [LOCAL_GET, 0, LOCAL_GET, 1, ...I32_STORE]),
    // atomicAdd(addr, delta) -> the old value
    body([], [LOCAL_GET, 0, LOCAL_GET, 1, ...I32_ATOMIC_RMW_ADD]),
    // sum(ptr, len) -> the sum of len bytes from ptr
    body([[1, I32]], [
      ...BLOCK, ...LOOP,
      LOCAL_GET, 1, I32_EQZ, BR_IF, 1,
      LOCAL_GET, 2, LOCAL_GET, 0, ...I32_LOAD8_U, I32_ADD, LOCAL_SET, 2,
      LOCAL_GET, 0, I32_CONST, 1, I32_ADD, LOCAL_SET, 0,
      LOCAL_GET, 1, I32_CONST, 1, I32_SUB, LOCAL_SET, 1,
      BR, 0,
      END, END,
      LOCAL_GET, 2,
    ]),
    // pages() -> the memory's size in 64 KiB pages
    body([], [...MEMORY_SIZE]),
  ])),
]);

async function instantiate(memory) {
  const { instance } = await WebAssembly.instantiate(wasmBytes, { env: { memory } });
  return instance.exports;
}

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

/* ----------------------------- the worker -------------------------------- */

if (!isMainThread) {
  // The same module over the same memory; the heap attaches from its handle.
  const heap = Heap.attach(workerData.heap);
  const wasm = await instantiate(heap.memory);
  for (let i = 0; i < ADDS; i++) wasm.atomicAdd(workerData.counter, 1);
  heap.detach();
} else {
  /* ----------------------------- the main thread ------------------------- */

  const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
  const heap = Heap.create({ memory, maxBytes: MAX_PAGES * WASM_PAGE, reserveBytes: RESERVED });
  const a = heap.createAllocator();
  const wasm = await instantiate(memory);
  console.log(`heap in a shared WebAssembly.Memory: ${memory.buffer.byteLength} bytes, the first ${RESERVED} left to the module`);

  // JS writes, wasm reads.
  const p = a.alloc(16);
  heap.u32[p >>> 2] = 0xc0ffee;
  check(wasm.load(p) === 0xc0ffee, 'wasm reads what JS wrote');
  console.log(`wasm reads what JS wrote at ${p}: 0x${wasm.load(p).toString(16)}`);

  // wasm writes, JS reads.
  wasm.store(p + 4, 1234);
  check(heap.u32[(p + 4) >>> 2] === 1234, 'JS reads what wasm wrote');
  console.log(`JS reads what wasm wrote at ${p + 4}: ${heap.u32[(p + 4) >>> 2]}`);

  // A string in a heap object, summed by both.
  const text = new TextEncoder().encode('hello from a shared heap');
  const s = a.alloc(text.length);
  heap.u8.set(text, s);
  const jsSum = text.reduce((x, b) => x + b, 0);
  check(wasm.sum(s, text.length) === jsSum, 'wasm sums the bytes JS wrote');
  console.log(`sum of ${text.length} bytes: JS ${jsSum}, wasm ${wasm.sum(s, text.length)}`);

  // A large object makes the heap grow the memory; wasm sees the new pages.
  const pagesBefore = wasm.pages();
  const bigBytes = 8 << 20;
  const big = a.alloc(bigBytes);
  check(big !== 0, 'the large allocation succeeds');
  const last = big + bigBytes - 4;
  wasm.store(last, 42);
  check(heap.u32[last >>> 2] === 42, 'JS reads what wasm wrote in the grown memory');
  check(wasm.pages() * WASM_PAGE === memory.buffer.byteLength, 'wasm and JS agree on the size');
  console.log(`an ${bigBytes}-byte object grew the memory from ${pagesBefore} to ${wasm.pages()} pages; wasm wrote its last word, JS read ${heap.u32[last >>> 2]}`);

  // Two agents, each with its own instance of the module, add to one
  // counter in a heap object; JS Atomics and wasm atomics meet in the middle.
  const counter = a.alloc(4);
  heap.u32[counter >>> 2] = 0;
  const worker = new Worker(new URL(import.meta.url), { workerData: { heap: heap.reserveSlot(), counter } });
  // Listen before anything else runs: a worker that is done may exit at any moment.
  const exited = new Promise((ok, fail) => {
    worker.once('error', fail);
    worker.once('exit', ok);
  });
  for (let i = 0; i < ADDS; i++) {
    if (i & 1) wasm.atomicAdd(counter, 1);
    else Atomics.add(heap.u32, counter >>> 2, 1);
  }
  const exitCode = await exited;
  check(exitCode === 0, `the worker exits cleanly (exit code ${exitCode})`);
  const total = Atomics.load(heap.u32, counter >>> 2);
  check(total === 2 * ADDS, `the counter is ${2 * ADDS}`);
  console.log(`counter after ${ADDS} adds here (JS and wasm) and ${ADDS} in a worker (wasm): ${total}`);

  for (const q of [p, s, big, counter]) a.free(q);
  const bytesInUse = a.stats().bytesInUse;
  const problems = heap.validate();
  check(bytesInUse === 0, 'every object is freed');
  check(problems.length === 0, `the heap validates: ${problems.join('; ')}`);
  console.log(`bytes in use: ${bytesInUse}; heap.validate(): ${problems.length} problems`);
  console.log('ok');
}
