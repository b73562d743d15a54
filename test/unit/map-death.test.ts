/**
 * A map writer that dies at any step of any write, settled by a survivor:
 * the entry count must stay exact. A second attachment in this thread is
 * the writer; it "dies" when one of its internal steps throws (before or
 * after the step's body, at its n-th call), which leaves the shared
 * memory as a terminated worker would at that point (a terminated worker
 * is stopped at a call or a loop edge). Another attachment then releases
 * its slot (Heap.releaseSlot), and:
 *   - validate() finds nothing: every element counted once, RESERVED
 *     equal to the counts plus the quotas (above it only by what
 *     RESERVED_SLACK allows);
 *   - the other agents fill the map to FULL, which comes at maxEntries
 *     (below it only by the slack), never past it;
 *   - heap.validate() finds nothing once the survivors collect.
 * Every write is tried far from maxEntries (quota in batches) and at it
 * (one entry at a time, other agents' quota taken back with marks); some
 * also with a mark a dead taker left on the writer's quota, with the
 * written key deleted by another agent between the death and the
 * release, or with a taker that settles the writer's quota between its
 * write record and its bucket lock (see Twist).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap, MapFlag, MapStatus } from '../../src/index.js';
import { MapHeader, MAP_HEADER_WORDS, MAP_SLOT_WORDS, MapSlotRow } from '../../src/map/layout.js';

const MAX = 256;
const BUCKETS = 16;
/** Deaths at a step's first calls only (clear and batches repeat theirs per element): the first chain and into the next. */
const MAX_CALL = 7;

class Killed extends Error {}

/** Steps a writer may die at: methods of the map and of its element allocator. */
const MAP_STEPS = [
  'lock',
  'unlock',
  'findLocked',
  'logInsert',
  'unlinkLogged',
  'takeEntry',
  'giveEntry',
  'refill',
  'claimMark',
  'reclaimQuotas',
  'deleteChain',
  'newElement',
  'pin',
  'unpin',
  'lockValue',
  'reach',
] as const;
const ELEM_STEPS = ['alloc', 'free', 'freeDeferred'] as const;

type Level = 'far' | 'near';
type Op = 'insert' | 'insert-full' | 'replace' | 'delete-head' | 'delete-inner' | 'lookupAndDelete' | 'lookupAndDeleteBatch' | 'clear' | 'updateBatch' | 'deleteBatch';
/**
 * What else happens: nothing; a taker marked the writer's quota and died
 * before settling it (marked); another agent deletes the key written
 * after the writer died and before the release (deleted); a taker whose
 * checks came before the writer's write record takes the writer's quota
 * back just before the writer locks its bucket (raced).
 */
type Twist = 'none' | 'marked' | 'deleted' | 'raced';
const CASES: [Op, Twist][] = [
  ...(['insert', 'insert-full', 'replace', 'delete-head', 'delete-inner', 'lookupAndDelete', 'lookupAndDeleteBatch', 'clear', 'updateBatch', 'deleteBatch'] as const).map((op) => [op, 'none'] as [Op, Twist]),
  ...(['insert', 'delete-head', 'delete-inner', 'clear'] as const).map((op) => [op, 'marked'] as [Op, Twist]),
  ['insert', 'deleted'],
  ['replace', 'deleted'],
  ['insert', 'raced'],
];

interface World {
  heap: Heap;
  map: HashMap;
  other: { heap: Heap; map: HashMap };
  dead: { heap: Heap; map: HashMap; slot: number; gen: number };
  nextKey: number;
  /** The key the op writes (insert, replace), -1 else. */
  opKey: number;
}

const v8 = new Uint8Array(8);

function bucketOf(map: HashMap, k: number): number {
  map.takeNumber(k, 'bucketOf');
  return map.hashKey() & map.mask;
}

/** A key that heads its bucket's chain, or one that does not (the chains hold several keys here). */
function keyAt(map: HashMap, which: 'head' | 'inner'): number {
  const k = new Uint8Array(4);
  const n = new Uint8Array(4);
  const num = (b: Uint8Array): number => new DataView(b.buffer).getUint32(0, true);
  assert.ok(map.getNextKey(null, k));
  if (which === 'head') return num(k);
  for (;;) {
    assert.ok(map.getNextKey(k, n), 'a chain of two keys or more');
    if (bucketOf(map, num(n)) === bucketOf(map, num(k))) return num(n);
    k.set(n);
  }
}

function row(w: World, slot: number): number {
  return w.map.W + MAP_HEADER_WORDS + slot * MAP_SLOT_WORDS;
}

/** A map with three agents: this one, another that holds quota, and the writer that will die. */
function setup(level: Level, op: Op, twist: Twist): World {
  const heap = Heap.create({ maxBytes: 32 << 20, maxWorkers: 4 });
  const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: MAX, buckets: BUCKETS, inPlace: false, mode: 'dynamic', seed: 7 });
  const oh = Heap.attach(heap.handle);
  const other = { heap: oh, map: HashMap.attach(oh, map.handle) };
  const h = heap.reserveSlot();
  const dh = Heap.attach(h);
  const dead = { heap: dh, map: HashMap.attach(dh, map.handle), slot: h.slot, gen: h.gen };
  const w: World = { heap, map, other, dead, nextKey: 1, opKey: -1 };
  // Each agent takes quota: a batch each while far from the limit.
  for (let i = 0; i < 5; i++) assert.equal(other.map.updateNumber(w.nextKey++, v8, MapFlag.NOEXIST), MapStatus.OK);
  for (let i = 0; i < 5; i++) assert.equal(dead.map.updateNumber(w.nextKey++, v8, MapFlag.NOEXIST), MapStatus.OK);
  const target = level === 'far' ? 80 : op === 'insert-full' ? MAX : MAX - 1;
  while (map.count() < target) assert.equal(map.updateNumber(w.nextKey++, v8, MapFlag.NOEXIST), MapStatus.OK);
  if (level === 'near') {
    // The other agent frees one entry into its quota and this one takes
    // RESERVED back to the limit: the writer's insert must take the
    // other's quota back (a mark) to succeed.
    assert.equal(other.map.deleteNumber(1), MapStatus.OK);
    assert.equal(map.updateNumber(w.nextKey++, v8, MapFlag.NOEXIST), MapStatus.OK);
  }
  const q = row(w, dead.slot) + MapSlotRow.QUOTA;
  if ((twist === 'marked' || twist === 'raced') && heap.i32[q] === 0) {
    // The writer frees an entry into its quota (its last refill was a
    // batch, so it keeps it).
    assert.equal(dead.map.deleteNumber(6), MapStatus.OK);
  }
  assert.ok(twist === 'none' || twist === 'deleted' || heap.i32[q]! > 0, 'the writer holds quota');
  if (twist === 'marked') heap.i32[q] = -(heap.i32[q]! + 256 * 777);
  if (twist === 'raced') {
    const m = dead.map as unknown as Record<string, (...a: unknown[]) => unknown>;
    const lock = m.lock!;
    m.lock = function (this: unknown, ...args: unknown[]): unknown {
      // Checked the writer before its record, marks and settles now.
      const quota = heap.i32[q]!;
      const mark = -(quota + 256 * 778);
      if (quota > 0 && Atomics.compareExchange(heap.i32, q, quota, mark) === quota && Atomics.compareExchange(heap.i32, q, mark, 0) === mark) {
        Atomics.sub(heap.u32, map.W + MapHeader.RESERVED, quota);
      }
      return lock.apply(this, args);
    };
  }
  assert.deepEqual(map.validate(), [], `${level} ${op} ${twist}: before`);
  return w;
}

function runOp(w: World, op: Op): void {
  const m = w.dead.map;
  switch (op) {
    case 'insert':
    case 'insert-full':
      w.opKey = w.nextKey++;
      m.updateNumber(w.opKey, v8, MapFlag.NOEXIST);
      return;
    case 'replace':
      w.opKey = keyAt(w.map, 'inner');
      m.updateNumber(w.opKey, v8, MapFlag.EXIST);
      return;
    case 'delete-head':
      m.deleteNumber(keyAt(w.map, 'head'));
      return;
    case 'delete-inner':
      m.deleteNumber(keyAt(w.map, 'inner'));
      return;
    case 'lookupAndDelete': {
      const k = new Uint8Array(4);
      new DataView(k.buffer).setUint32(0, keyAt(w.map, 'head'), true);
      m.lookupAndDelete(k, new Uint8Array(8));
      return;
    }
    case 'lookupAndDeleteBatch':
      m.lookupAndDeleteBatch(new Uint32Array(2), new Uint8Array(4 * 40), new Uint8Array(8 * 40));
      return;
    case 'clear':
      m.clear();
      return;
    case 'updateBatch': {
      const keys = new Uint8Array(12);
      const dv = new DataView(keys.buffer);
      for (let i = 0; i < 3; i++) dv.setUint32(4 * i, w.nextKey++, true);
      m.updateBatch(keys, new Uint8Array(24), MapFlag.NOEXIST);
      return;
    }
    case 'deleteBatch': {
      const keys = new Uint8Array(12);
      const dv = new DataView(keys.buffer);
      const ks = [...w.map.keys()].slice(0, 3);
      ks.forEach((k, i) => dv.setUint32(4 * i, new DataView(k.buffer).getUint32(0, true), true));
      m.deleteBatch(keys);
      return;
    }
  }
}

/** Makes obj[method] throw Killed at its nth call, before or after running it. Returns whether it fired. */
function arm(obj: Record<string, unknown>, method: string, nth: number, after: boolean): () => boolean {
  const orig = obj[method] as (...a: unknown[]) => unknown;
  let calls = 0;
  let fired = false;
  obj[method] = function (this: unknown, ...args: unknown[]): unknown {
    if (++calls === nth) {
      fired = true;
      if (after) orig.apply(this, args);
      throw new Killed();
    }
    return orig.apply(this, args);
  };
  return () => fired;
}

/** After the release: the checks of the file comment. Returns the problems. */
function settleAndCheck(w: World, inHands: number): string[] {
  const problems: string[] = [];
  assert.equal(w.heap.releaseSlot(w.dead.slot, w.dead.gen), true);
  problems.push(...w.map.validate());
  const slack = Atomics.load(w.heap.u32, w.map.W + MapHeader.RESERVED_SLACK);
  // Fill to FULL from the two live agents.
  let st: number = MapStatus.OK;
  for (let i = 0; st === MapStatus.OK && i < 2 * MAX; i++) st = (i % 2 === 0 ? w.map : w.other.map).updateNumber(w.nextKey++, v8, MapFlag.NOEXIST);
  if (st !== MapStatus.FULL) problems.push(`filling ended with status ${st}`);
  const n = w.map.count();
  if (n > MAX || n < MAX - slack) problems.push(`FULL at ${n} entries, maxEntries ${MAX} (slack ${slack})`);
  problems.push(...w.map.validate().map((e) => `when full: ${e}`));
  w.map.clear();
  for (let i = 0; i < 8; i++) {
    w.map.collect();
    w.other.map.collect();
  }
  problems.push(...w.map.validate().map((e) => `after clear: ${e}`));
  // Lost: only an element the writer held without a write record.
  const live = w.map.elementStats().classes.reduce((n, c) => n + c.live, 0);
  if (live !== inHands) problems.push(`${live} elements still allocated after the clear, ${inHands} expected`);
  w.other.map.detach();
  w.other.heap.detach();
  w.map.destroy();
  problems.push(...w.heap.validate().map((e) => `heap: ${e}`));
  return problems;
}

for (const level of ['far', 'near'] as const) {
  test(`a writer that dies at any step of any write, ${level === 'far' ? 'far from maxEntries' : 'at maxEntries'}: the survivor's settlement keeps the count exact`, () => {
    // Failures grouped by write and step: the calls that failed, and the first one's problems.
    const failures = new Map<string, { calls: number[]; first: string }>();
    let cases = 0;
    for (const [op, twist] of CASES) {
      if (op === 'insert-full' && level === 'far') continue;
      for (const step of [...MAP_STEPS.map((s) => ['map', s] as const), ...ELEM_STEPS.map((s) => ['elems', s] as const)]) {
        for (const after of [false, true]) {
          for (let nth = 1; nth <= MAX_CALL; nth++) {
            const w = setup(level, op, twist);
            const target = (step[0] === 'map' ? w.dead.map : w.dead.map.elems) as unknown as Record<string, unknown>;
            const fired = arm(target, step[1], nth, after);
            try {
              runOp(w, op);
            } catch (err) {
              if (!(err instanceof Killed)) throw err;
            }
            if (!fired()) {
              // The op made fewer calls: the deaths of this step are done.
              w.dead.map.detach();
              w.dead.heap.detach();
              break;
            }
            cases++;
            if (twist === 'deleted' && w.opKey >= 0 && (Atomics.load(w.heap.u32, w.map.bucketWord + bucketOf(w.map, w.opKey)) & 1) === 0) {
              w.other.map.deleteNumber(w.opKey);
            }
            // An element the writer holds outside a write record (taken
            // and not yet logged, or done with and not yet freed) is lost.
            const s = `${step[0]}.${step[1]}`;
            const builds = op === 'insert' || op === 'insert-full' || op === 'replace' || op === 'updateBatch';
            const inHands =
              s === 'elems.free' || s === 'elems.freeDeferred' || s === 'map.logInsert'
                ? !after
                : s === 'elems.alloc' || s === 'map.newElement'
                  ? after
                  : s === 'map.reach' && builds; // newElement's, the only one here
            const problems = settleAndCheck(w, inHands ? 1 : 0);
            if (problems.length > 0) {
              const where = `${op}${twist === 'none' ? '' : ` (${twist})`}, dies ${after ? 'after' : 'at'} ${step[0]}.${step[1]}`;
              const f = failures.get(where) ?? { calls: [], first: problems.slice(0, 3).join('; ') };
              f.calls.push(nth);
              failures.set(where, f);
            }
          }
        }
      }
    }
    assert.ok(cases > 100, `${cases} deaths tried`);
    const report = [...failures].map(([where, f]) => `${where} (call ${f.calls.join(', ')}): ${f.first}`);
    assert.deepEqual(report, [], `deaths at ${report.length} steps broke the map (${cases} deaths tried)`);
  });
}
