/**
 * Grace periods of the hash map in one thread (the worker cases are in
 * test/concurrent/map-grace.test.ts): a second attachment pinned through
 * epoch.ts pin() and never unpinned holds reclamation back until its slot
 * is released; an agent that detaches while a reader is pinned does not
 * lose the frees it had waiting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap } from '../../src/index.js';
import { pin, unpin } from '../../src/reclaim/epoch.js';
import { assertMapValid, graceMapHeap, liveElements, retire } from '../util/map-checks.js';
import { testSeed } from '../util/prng.js';

const SEED = testSeed();

test('an attachment pinned through epoch.ts pin() and never unpinned is released with its slot; deferred frees then complete', () => {
  const { heap, map, used0 } = graceMapHeap(16, 256, SEED);
  const slot = heap.reserveSlot();
  const other = Heap.attach(slot);
  const otherMap = HashMap.attach(other, map.handle);
  pin(other);
  retire(map, 1, 200);
  const held = map.collect();
  assert.equal(held, 200, "nothing retired after the pin is freed while it stands");
  assert.equal(heap.releaseSlot(slot.slot, slot.gen), true);
  assert.equal(map.collect(), 0, 'reclamation goes on once the slot is released');
  assert.equal(liveElements(map), map.count());
  assertMapValid(map, heap, 'after release');
  void otherMap; // the "dead" agent's objects are never used again
  assert.equal(map.destroy(), 0);
  assert.equal(heap.stats().usedPages, used0);
});

test(
  'an agent that detaches while a reader is pinned does not lose its pending frees',
  () => {
    const { heap, map, used0 } = graceMapHeap(16, 256, SEED);
    const reader = Heap.attach(heap.handle);
    const leaver = Heap.attach(heap.handle);
    const leaverMap = HashMap.attach(leaver, map.handle);
    pin(reader);
    retire(leaverMap, 1, 100);
    leaverMap.detach();
    leaver.detach();
    unpin(reader);
    reader.detach();
    assert.equal(map.collect(), 0);
    assert.equal(liveElements(map), map.count(), 'the elements the leaving agent retired come back once the reader unpins');
    map.destroy();
    assert.equal(heap.stats().usedPages, used0, 'and destroy gives every page back');
  },
);
