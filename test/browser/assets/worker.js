// A module worker of the browser test. It answers the page's requests
// ({ id, op, ...args }) with { id, ok, result } or { id, ok: false, error }.
// Workers do not see the page's import map: the library is imported by URL
// (an absolute path on the test server).
import { Heap, HashMap } from '/dist/src/index.js';
import { fill as fillIn, matches as matchesIn, valueOf } from './payload.js';

let heap;
let a;
let map;

const fill = (p, len, seed) => fillIn(heap, p, len, seed);
const matches = (p, len, seed) => matchesIn(heap, p, len, seed);

function sameBytes(x, y) {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

const ops = {
  attach({ heapHandle, allocHandle, mapHandle }) {
    heap = Heap.attach(heapHandle);
    a = heap.attachAllocator(allocHandle);
    map = HashMap.attach(heap, mapHandle);
    return { slot: heap.slot };
  },
  // Checks objects another agent allocated and filled, then frees them here.
  checkAndFree({ objects }) {
    heap.refresh();
    let good = 0;
    for (const { p, len, seed } of objects) {
      if (matches(p, len, seed)) good++;
      a.free(p);
    }
    return { good };
  },
  allocAndFill({ sizes, seed }) {
    return sizes.map((len, i) => {
      const p = a.alloc(len);
      if (p === 0) throw new Error(`alloc(${len}) returned 0`);
      fill(p, len, seed + i);
      return { p, len, seed: seed + i };
    });
  },
  // One allocation big enough to make the buffer grow; its first and last
  // bytes are written here, to be read by the page after heap.refresh().
  grow({ bytes, seed }) {
    const before = heap.sab.byteLength;
    const p = a.alloc(bytes);
    if (p === 0) throw new Error(`alloc(${bytes}) returned 0`);
    fill(p, 256, seed);
    fill(p + bytes - 256, 256, seed + 1);
    return { p, before, after: heap.sab.byteLength };
  },
  mapInsert({ keys }) {
    let inserted = 0;
    const statuses = [];
    for (const k of keys) {
      const s = map.updateNumber(k, valueOf(k));
      if (s === 0) inserted++;
      else statuses.push(s);
    }
    return { inserted, statuses: statuses.slice(0, 5) };
  },
  mapLookup({ keys }) {
    const out = new Uint8Array(8);
    let found = 0;
    let wrong = 0;
    for (const k of keys) {
      if (!map.lookupNumber(k, out)) continue;
      if (sameBytes(out, valueOf(k))) found++;
      else wrong++;
    }
    return { found, wrong, count: map.count() };
  },
  mapDelete({ keys }) {
    let deleted = 0;
    for (const k of keys) if (map.deleteNumber(k) === 0) deleted++;
    return { deleted };
  },
  // Leaves this agent holding objects: `live` stay allocated (their
  // pointers go to the page), and as many again were freed here, so they
  // sit in this agent's cache when it is terminated.
  hold({ live, size, seed }) {
    const ptrs = [];
    for (let i = 0; i < 2 * live; i++) {
      const p = a.alloc(size);
      if (p === 0) throw new Error(`alloc(${size}) returned 0`);
      fill(p, size, seed + i);
      ptrs.push(p);
    }
    for (let i = live; i < 2 * live; i++) a.free(ptrs[i]);
    return ptrs.slice(0, live).map((p, i) => ({ p, len: size, seed: seed + i }));
  },
  detach() {
    heap.detach();
    return { attached: heap.attached };
  },
};

onmessage = ({ data }) => {
  const { id, op } = data;
  try {
    postMessage({ id, ok: true, result: ops[op](data) });
  } catch (e) {
    postMessage({ id, ok: false, error: `${op}: ${e && e.stack ? e.stack : e}` });
  }
};
postMessage({ ready: true });
