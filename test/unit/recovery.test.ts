/**
 * Dead-agent recovery in one agent (the deaths of real workers are in
 * test/concurrent/recovery.test.ts): the liveness check (heap.slots() and
 * heartbeat()), and pages a second attachment was claiming or giving back
 * when it "died", found from its claim record by releaseSlot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heap } from '../../src/index.js';

test('liveness check: slots() shows how long each agent has been silent; heartbeat() resets it', async () => {
  const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
  const other = Heap.attach(heap.handle);
  const mine = heap.slots().find((s) => s.self)!;
  assert.equal(mine.state, 'attached');
  assert.ok(mine.silentMs < 1000);
  await new Promise((r) => setTimeout(r, 120));
  const silent = heap.slots().find((s) => s.slot === other.slot)!;
  assert.ok(silent.silentMs >= 100, `silent for ${silent.silentMs} ms`);
  assert.equal(silent.gen, other.slotGen);
  other.heartbeat();
  assert.ok(heap.slots().find((s) => s.slot === other.slot)!.silentMs < 100);
  const reserved = heap.reserveSlot();
  assert.equal(heap.slots().find((s) => s.slot === reserved.slot)!.state, 'reserved');
  assert.equal(heap.releaseSlot(reserved.slot, reserved.gen), true);
  other.detach();
  assert.deepEqual(heap.slots().map((s) => s.slot), [heap.slot]);
});

test('pages a dead agent was claiming or giving back, found from its claim record', async () => {
  const { SlotRow, SLOT_ROW_WORDS } = await import('../../src/shm/layout.js');
  for (const stage of ['claimed, never tagged', 'tagged FREE, bits not yet released'] as const) {
    const heap = Heap.create({ maxBytes: 16 << 20, maxWorkers: 4 });
    const dead = Heap.attach(heap.handle);
    const at = dead.takeRegion(3 * heap.pageSize, 0);
    const first = at / heap.pageSize;
    const row = heap.slotWord + dead.slot * SLOT_ROW_WORDS;
    if (stage === 'claimed, never tagged') {
      // Back to "claimed": tags FREE, bits clear, the run named.
      for (let p = first; p < first + 3; p++) Atomics.store(heap.u32, heap.tagWord + p, 0);
    } else {
      dead.givePages(first, 3);
      // ... as if it died before releasing the bits: claim them again.
      for (let p = first; p < first + 3; p++) heap.u32[heap.bitmapWord + (p >>> 5)] &= ~(1 << (p & 31));
    }
    Atomics.store(heap.u32, row + SlotRow.CLAIM_FIRST, first);
    Atomics.store(heap.u32, row + SlotRow.CLAIM_K, 3);
    assert.ok(heap.validatePages().some((e) => /lost page/.test(e)), `${stage}: the pages look lost before the release`);
    assert.equal(heap.releaseSlot(dead.slot, dead.slotGen), true);
    assert.deepEqual(heap.validate(), [], `${stage}: given back by the release`);
  }
});
