/**
 * Model-based property tests, single-threaded: random programs of allocs
 * and frees from two agents (two attachments in one thread, so objects
 * migrate between caches) run against a simple model (a map of live
 * objects). Watermarks are tiny so refill and trim run constantly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Heap } from '../../src/index.js';

type Op =
  | { kind: 'alloc'; agent: 0 | 1; size: number }
  | { kind: 'free'; agent: 0 | 1; pick: number }
  | { kind: 'badFree'; agent: 0 | 1; pick: number; delta: number }
  | { kind: 'flush'; agent: 0 | 1 };

const sizeArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 256 }) },
  { weight: 3, arbitrary: fc.integer({ min: 257, max: 4096 }) },
  { weight: 1, arbitrary: fc.integer({ min: 4097, max: 200_000 }) },
);
const agentArb = fc.constantFrom<0 | 1>(0, 1);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('alloc' as const), agent: agentArb, size: sizeArb }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('free' as const), agent: agentArb, pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('badFree' as const),
      agent: agentArb,
      pick: fc.nat(),
      delta: fc.constantFrom(1, 8, 16, -16, 4096),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const), agent: agentArb }) },
);

function cookie(p: number, i: number): number {
  return (Math.imul(p ^ (i * 0x9e3779b1), 0x85ebca6b) >>> 24) & 255;
}

function runProgram(ops: Op[], fixedUnit: number | undefined): void {
  const heap = Heap.create({ maxBytes: 16 << 20, initialBytes: 0 });
  const opts = { lowWatermark: 1, highWatermark: 3, batch: 2, prefill: 1 };
  const a0 = heap.createAllocator(fixedUnit === undefined ? opts : { ...opts, unitSize: fixedUnit });
  const other = Heap.attach(heap.handle);
  const a1 = other.attachAllocator(a0.handle);
  const agents = [a0, a1];
  const live: { p: number; size: number }[] = [];
  const owner = new Map<number, number>();
  for (const op of ops) {
    const a = agents[op.agent]!;
    if (op.kind === 'alloc') {
      const size = fixedUnit === undefined ? op.size : undefined;
      const bytes = size ?? a0.unitSize;
      const p = a.alloc(size);
      if (p === 0) continue; // heap full: allowed, nothing to check
      assert.ok(!owner.has(p), `pointer ${p} handed out twice`);
      assert.equal(p % 16, 0);
      assert.ok(a.usableSize(p) >= bytes);
      heap.refresh();
      const u8 = heap.u8;
      for (let i = 0; i < Math.min(bytes, 64); i++) u8[p + i] = cookie(p, i);
      owner.set(p, bytes);
      live.push({ p, size: bytes });
    } else if (op.kind === 'free') {
      if (live.length === 0) continue;
      const [obj] = live.splice(op.pick % live.length, 1);
      heap.refresh();
      const u8 = heap.u8;
      for (let i = 0; i < Math.min(obj!.size, 64); i++) {
        assert.equal(u8[obj!.p + i], cookie(obj!.p, i), `object ${obj!.p} was overwritten`);
      }
      a.free(obj!.p);
      owner.delete(obj!.p);
    } else if (op.kind === 'badFree') {
      if (live.length === 0) continue;
      const obj = live[op.pick % live.length]!;
      const bad = obj.p + op.delta;
      if (owner.has(bad)) continue;
      assert.throws(() => a.free(bad), RangeError);
    } else {
      a.flushDeferred();
    }
  }
  const errors = heap.validate();
  assert.deepEqual(errors, []);
  // Live objects never overlap.
  const sorted = [...live].sort((x, y) => x.p - y.p);
  for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i - 1]!.p + sorted[i - 1]!.size <= sorted[i]!.p);
  for (const { p } of live) a1.free(p);
  a1.detach();
  other.detach();
  assert.deepEqual(heap.validate(), []);
  const report = a0.destroy();
  assert.equal(report.leakedObjects, 0);
  assert.deepEqual(heap.validate(), []);
  const st = heap.stats();
  assert.equal(st.usedPages, 0, 'every page back in the page heap');
}

test('bucketed: random alloc/free programs match the model', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 400 }), (ops) => runProgram(ops, undefined)),
    { numRuns: 150 },
  );
});

test('fixed-size: random alloc/free programs match the model', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 3000 }), fc.array(opArb, { minLength: 1, maxLength: 400 }), (unit, ops) =>
      runProgram(ops, unit),
    ),
    { numRuns: 100 },
  );
});

test('page heap: random large runs never overlap and all come back', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ alloc: fc.boolean(), pages: fc.integer({ min: 1, max: 40 }), pick: fc.nat() }), { maxLength: 200 }),
      (ops) => {
        const heap = Heap.create({ maxBytes: 8 << 20, pageSize: 8192, initialBytes: 0 });
        const a = heap.createAllocator({ prefill: 0 });
        const live: { p: number; n: number }[] = [];
        for (const op of ops) {
          if (op.alloc || live.length === 0) {
            const p = a.alloc(op.pages * 8192 - 100);
            if (p === 0) continue;
            for (const o of live) assert.ok(p + op.pages * 8192 <= o.p || o.p + o.n * 8192 <= p, 'runs overlap');
            live.push({ p, n: op.pages });
          } else {
            const [o] = live.splice(op.pick % live.length, 1);
            a.free(o!.p);
          }
          assert.deepEqual(heap.validatePages(), []);
        }
        for (const o of live) a.free(o.p);
        a.destroy();
        assert.equal(heap.stats().usedPages, 0);
      },
    ),
    { numRuns: 100 },
  );
});
