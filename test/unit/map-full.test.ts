/**
 * FULL exactly at maxEntries, from every agent: several attachments in
 * this thread act as agents, each holding its own entry quota. Random
 * interleavings of their inserts, deletes, detaches and re-attaches must
 * never let count() pass maxEntries, and an insert of an absent key must
 * return FULL exactly when count() is maxEntries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap, MapFlag, MapStatus } from '../../src/index.js';
import { Prng, deriveSeed, seedNote, testSeed } from '../util/prng.js';

const SEED = testSeed();

for (const mode of ['prealloc', 'dynamic'] as const) {
  for (const [maxEntries, maxWorkers] of [
    [1024, 4],
    [300, 3],
    [64, 8],
    [5000, 2],
  ] as const) {
    test(`${mode}, maxEntries ${maxEntries}, ${maxWorkers} agents: no interleaving passes maxEntries or returns FULL below it`, () => {
      const rng = new Prng(deriveSeed(SEED, maxEntries, maxWorkers, mode === 'prealloc' ? 1 : 2));
      const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers });
      const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries, mode });
      const agents: { heap: Heap; map: HashMap }[] = [{ heap, map }];
      for (let i = 1; i < maxWorkers; i++) {
        const h = Heap.attach(heap.handle);
        agents.push({ heap: h, map: HashMap.attach(h, map.handle) });
      }
      const present = new Set<number>();
      const v = new Uint8Array(8);
      const note = (what: string): string => `${what} (${seedNote(SEED)})`;
      for (let step = 0; step < 20_000; step++) {
        const a = rng.below(agents.length);
        const agent = agents[a]!;
        const r = rng.below(100);
        if (r < 1 && a > 0) {
          // An agent leaves (its quota goes back) and another comes.
          agent.map.detach();
          agent.heap.detach();
          const h = Heap.attach(heap.handle);
          agents[a] = { heap: h, map: HashMap.attach(h, map.handle) };
        } else if (r < (present.size > maxEntries * 0.9 ? 40 : 25)) {
          if (present.size === 0) continue;
          const keys = [...present];
          const k = keys[rng.below(keys.length)]!;
          assert.equal(agent.map.deleteNumber(k), MapStatus.OK, note(`delete ${k}`));
          present.delete(k);
        } else {
          let k = rng.below(maxEntries * 4);
          while (present.has(k)) k = rng.below(maxEntries * 4);
          const st = agent.map.updateNumber(k, v, MapFlag.NOEXIST);
          if (present.size < maxEntries) {
            assert.equal(st, MapStatus.OK, note(`step ${step}: agent ${a} inserts with ${present.size} of ${maxEntries}`));
            present.add(k);
          } else {
            assert.equal(st, MapStatus.FULL, note(`step ${step}: agent ${a} inserts into a full map`));
          }
        }
        assert.equal(map.count(), present.size, note(`step ${step}`));
      }
      assert.deepEqual(map.validate(), []);
      for (let i = 1; i < agents.length; i++) {
        agents[i]!.map.detach();
        agents[i]!.heap.detach();
      }
      map.destroy();
      assert.deepEqual(heap.validate(), []);
    });
  }
}

test('an idle agent holding a batch of quota near the limit: every other agent still fills the map exactly', () => {
  const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 4 });
  const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 1024 });
  const v = new Uint8Array(8);
  assert.equal(map.updateNumber(0, v), MapStatus.OK);
  const others = [1, 2, 3].map(() => {
    const h = Heap.attach(heap.handle);
    return { heap: h, map: HashMap.attach(h, map.handle) };
  });
  // Each of them inserts a few (taking a batch each), then one fills the map.
  let k = 1;
  for (const o of others) for (let i = 0; i < 3; i++) assert.equal(o.map.updateNumber(k++, v), MapStatus.OK);
  while (k < 1024) assert.equal(others[2]!.map.updateNumber(k++, v), MapStatus.OK, `insert ${k - 1}`);
  assert.equal(others[0]!.map.updateNumber(k, v), MapStatus.FULL);
  assert.equal(map.updateNumber(k, v), MapStatus.FULL);
  assert.equal(map.count(), 1024);
  assert.deepEqual(map.validate(), []);
  for (const o of others) {
    o.map.detach();
    o.heap.detach();
  }
  map.destroy();
});

test("another slot's quota in flight is waited for; a mark a taker left is settled by the owner or a later taker", async () => {
  const { MapSlotRow, MAP_HEADER_WORDS, MAP_SLOT_WORDS } = await import('../../src/map/layout.js');
  for (const settler of ['owner', 'taker'] as const) {
    const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 2 });
    const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 512 });
    const other = Heap.attach(heap.handle);
    const m2 = HashMap.attach(other, map.handle);
    const v = new Uint8Array(8);
    assert.equal(m2.updateNumber(100_000, v), MapStatus.OK);
    const row = map.W + MAP_HEADER_WORDS + other.slot * MAP_SLOT_WORDS;
    const quota = heap.i32[row + MapSlotRow.QUOTA]!;
    assert.ok(quota > 0, 'the other agent holds quota');
    let k = 0;
    while (map.count() < 512 - quota) assert.equal(map.updateNumber(k++, v), MapStatus.OK);
    // The other agent looks as if inside a bucket lock: its quota is in
    // flight, waited for (20 ms), then FULL.
    heap.i32[row + MapSlotRow.INTENT] = 1;
    assert.equal(map.updateNumber(k, v), MapStatus.FULL, 'quota of a writer in flight: FULL');
    heap.i32[row + MapSlotRow.INTENT] = 0;
    // A mark a taker left when it could not settle it.
    heap.i32[row + MapSlotRow.QUOTA] = -(quota + 256 * 12345);
    assert.deepEqual(map.validate(), [], 'a mark still counts its entries');
    if (settler === 'owner') {
      assert.equal(m2.updateNumber(100_001, v), MapStatus.OK, "the owner's next insert settles the mark and refills");
      assert.equal(heap.i32[row + MapSlotRow.QUOTA]! >= 0, true);
    }
    while (map.updateNumber(k, v) === MapStatus.OK) k++;
    assert.equal(map.count(), 512, `${settler}: the marked entries came back`);
    assert.deepEqual(map.validate(), [], settler);
    m2.detach();
    other.detach();
    map.destroy();
  }
});
