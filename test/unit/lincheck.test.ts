/**
 * The linearizability checker (test/util/lincheck.ts), on its own: it
 * rejects hand-made map histories that are not linearizable, accepts ones
 * that are only by a non-obvious order, handles operations with unknown
 * outcome, and agrees with an exhaustive search on thousands of small
 * random histories. (test/concurrent/map-linearizability.test.ts runs it on
 * the map's histories under workers.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MapFlag, MapStatus } from '../../src/index.js';
import {
  type MapInput,
  type MapOp,
  type MapOutput,
  type Operation,
  checkByBruteForce,
  checkLinearizable,
  checkMapHistory,
  mapKeyModel,
  withUnknownOutcomes,
} from '../util/lincheck.js';
import { Prng, deriveSeed, testSeed } from '../util/prng.js';

const SEED = testSeed();

const { ANY, NOEXIST, EXIST } = MapFlag;
const { OK, NOT_FOUND, EXISTS } = MapStatus;

function upd(call: number, ret: number, flag: number, value: number, status: number, worker = 0): MapOp {
  return { call, ret, key: 1, worker, input: { kind: 'update', flag, value }, output: { status, found: false, value: 0 } };
}
function del(call: number, ret: number, status: number, worker = 0): MapOp {
  return { call, ret, key: 1, worker, input: { kind: 'delete', flag: 0, value: 0 }, output: { status, found: false, value: 0 } };
}
function get(call: number, ret: number, found: number | null, worker = 0): MapOp {
  return { call, ret, key: 1, worker, input: { kind: 'lookup', flag: 0, value: 0 }, output: { status: 0, found: found !== null, value: found ?? 0 } };
}
function linearizable(ops: MapOp[]): boolean {
  return checkMapHistory(ops).violations.length === 0;
}

test('checker: rejects histories that are not linearizable', () => {
  const bad: [string, MapOp[]][] = [
    ['a completed write is missed by a later lookup', [upd(0, 1, ANY, 7, OK), get(2, 3, null)]],
    ['a lookup returns a value nobody wrote', [upd(0, 5, ANY, 7, OK), get(1, 2, 8)]],
    ['two overlapping NOEXIST inserts both succeed', [upd(0, 3, NOEXIST, 1, OK), upd(1, 2, NOEXIST, 2, OK, 1)]],
    ['a stale read after a newer write completed', [upd(0, 1, ANY, 1, OK), upd(2, 3, ANY, 2, OK), get(4, 5, 1)]],
    ['a delete succeeds on a key never inserted', [del(0, 1, OK)]],
    ['EXIST succeeds on an absent key', [upd(0, 1, EXIST, 3, OK)]],
    ['an insert reports EXISTS on an absent key', [upd(0, 1, NOEXIST, 3, EXISTS)]],
    ['a key deleted twice', [upd(0, 1, ANY, 1, OK), del(2, 5, OK), del(3, 6, OK, 1)]],
    [
      // Both writes overlap every read, but the reads are sequential and
      // see 1, then 2, then 1 again: no order of two writes does that.
      'reads flip back to an overwritten value',
      [upd(0, 20, ANY, 1, OK), upd(0, 20, ANY, 2, OK, 1), get(1, 2, 1, 2), get(3, 4, 2, 2), get(5, 6, 1, 2)],
    ],
  ];
  for (const [what, ops] of bad) {
    const verdict = checkMapHistory(ops);
    assert.equal(verdict.violations.length, 1, what);
    assert.match(verdict.violations[0]!.report, /key 1: no order works/, what);
  }
});

test('checker: accepts linearizable histories, including ones that need a non-obvious order', () => {
  // Overlapping operations may take either order.
  assert.ok(linearizable([upd(0, 3, ANY, 7, OK), get(1, 2, null, 1)]));
  assert.ok(linearizable([upd(0, 3, ANY, 7, OK), get(1, 2, 7, 1)]));
  // The later-invoked insert wins the race, so the first reports EXISTS.
  assert.ok(linearizable([upd(0, 10, NOEXIST, 1, EXISTS), upd(1, 2, NOEXIST, 2, OK, 1), get(11, 12, 2)]));
  // Reads 1 then 2 with overlapping writes: write 1 first, then 2.
  assert.ok(linearizable([upd(0, 20, ANY, 1, OK), upd(0, 20, ANY, 2, OK, 1), get(1, 2, 1, 2), get(3, 4, 2, 2)]));
  // Delete overlapping an insert: either order, and NOT_FOUND is fine if it went first.
  assert.ok(linearizable([upd(0, 4, ANY, 1, OK), del(1, 3, NOT_FOUND, 1), get(5, 6, 1)]));
  assert.ok(linearizable([upd(0, 4, ANY, 1, OK), del(1, 3, OK, 1), get(5, 6, null)]));
  // FULL / NO_MEMORY / BUSY change nothing.
  assert.ok(linearizable([upd(0, 1, ANY, 1, MapStatus.FULL), get(2, 3, null)]));
  // Keys are independent: a violation on one key does not hide behind another.
  const two = [upd(0, 1, ANY, 1, OK), { ...get(2, 3, null), key: 2 }, { ...get(4, 5, null), key: 1 }];
  assert.deepEqual(checkMapHistory(two).violations.map((v) => v.key), [1]);
});

test('checker: an operation with unknown outcome may take effect any time after its call, or never', () => {
  const unknown = (o: MapOutput): boolean => o.status === 1;
  const model = withUnknownOutcomes(mapKeyModel, unknown);
  const pending = (call: number, value: number): MapOp => ({ ...upd(call, Infinity, ANY, value, 1), ret: Infinity });
  assert.ok(checkLinearizable(model, [pending(0, 5), get(1, 2, null), get(3, 4, 5)]).ok, 'took effect late');
  assert.ok(checkLinearizable(model, [pending(0, 5), get(1, 2, null)]).ok, 'never took effect');
  assert.ok(!checkLinearizable(model, [get(0, 1, 5), pending(2, 5)]).ok, 'but not before its call');
  assert.ok(!checkLinearizable(model, [pending(0, 5), get(1, 2, 5), get(3, 4, null)]).ok, 'and only once');
});

test('checker: agrees with an exhaustive search on 3000 small random histories', () => {
  const seed = deriveSeed(SEED, 0xc4ec);
  const rng = new Prng(seed);
  let rejected = 0;
  for (let h = 0; h < 3000; h++) {
    // A linearizable history by construction: each operation takes effect
    // at a random instant inside its interval, in instant order...
    const n = rng.between(1, 6);
    const ops: Operation<MapInput, MapOutput>[] = [];
    const points: number[] = [];
    for (let i = 0; i < n; i++) {
      const call = rng.below(20);
      const ret = call + 1 + rng.below(8);
      points.push(call + 0.5 + rng.below(ret - call) * 0.999);
      const r = rng.below(5);
      const input: MapInput =
        r < 3 ? { kind: 'update', flag: rng.below(3), value: i + 1 } : r === 3 ? { kind: 'delete', flag: 0, value: 0 } : { kind: 'lookup', flag: 0, value: 0 };
      ops.push({ call, ret, input, output: { status: 0, found: false, value: 0 } });
    }
    let state = 0;
    for (const i of [...ops.keys()].sort((a, b) => points[a]! - points[b]!)) {
      const { input } = ops[i]!;
      const out = ops[i]!.output;
      if (input.kind === 'lookup') {
        out.found = state !== 0;
        out.value = state;
      } else if (input.kind === 'delete') {
        out.status = state !== 0 ? OK : NOT_FOUND;
        state = 0;
      } else if (input.flag === NOEXIST && state !== 0) {
        out.status = EXISTS;
      } else if (input.flag === EXIST && state === 0) {
        out.status = NOT_FOUND;
      } else {
        out.status = OK;
        state = input.value;
      }
    }
    assert.ok(checkLinearizable(mapKeyModel, ops).ok, `history ${h} is linearizable by construction (seed ${seed})`);
    // ...then, half the time, one result is changed.
    if (rng.chance(0.5)) {
      const o = ops[rng.below(n)]!;
      if (o.input.kind === 'lookup') {
        o.output.found = !o.output.found || rng.chance(0.5);
        o.output.value = o.output.found ? rng.between(0, n) : 0;
      } else {
        o.output.status = [OK, NOT_FOUND, EXISTS][rng.below(3)]!;
      }
    }
    const fast = checkLinearizable(mapKeyModel, ops).ok;
    assert.equal(fast, checkByBruteForce(mapKeyModel, ops), `history ${h} (seed ${seed}): ${JSON.stringify(ops)}`);
    if (!fast) rejected++;
  }
  assert.ok(rejected > 300, `only ${rejected} of the changed histories were not linearizable: the test is too weak`);
});
