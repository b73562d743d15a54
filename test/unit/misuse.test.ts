/**
 * Misuse tests: every way a caller can get alloc/free wrong, in release and
 * debug mode, size-bucketed and fixed-size. Each misuse must throw the
 * exact error (class and the text from MISUSE), must leave the heap as it
 * was (the committed memory is compared byte for byte where the call is
 * documented to change nothing), and must be followed by a passing
 * heap.validate() (and the debug allocator's validate()) with nothing lost:
 * the allocator counts exactly the objects the test still holds as live,
 * and destroy() reports no leak once the test frees them.
 *
 * The cross-worker cases are in test/concurrent/misuse.test.ts.
 *
 * The last tests are fast-check properties of debug mode: random programs
 * of alloc/free/in-bounds writes never raise, and one injected overflow or
 * write after free is always reported at the next free or alloc of that
 * object, or else by validate().
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Heap } from '../../src/index.js';
import { AllocatorMisuseError, DebugAllocator, MISUSE, POISON_BYTE, type MisuseCode } from '../../src/alloc/debug.js';
import { KIND_FREE, tagKind } from '../../src/shm/layout.js';
import { liveObjects } from '../util/checks.js';
import { FIXED_UNIT, MAX_BYTES, VARIANTS, type Setup, alloc, expectError, finish, intact, setup } from '../util/misuse.js';

/** A copy of the committed part of the buffer, then of its state bytes. */
function snapshot(heap: Heap): Uint8Array {
  heap.refresh();
  const bytes = heap.committedPages() * heap.pageSize;
  const out = new Uint8Array(bytes + bytes / 16);
  out.set(heap.u8.subarray(0, bytes));
  out.set(heap.st.subarray(0, bytes / 16), bytes);
  return out;
}

function assertSame(heap: Heap, before: Uint8Array, note: string): void {
  const after = snapshot(heap);
  assert.equal(after.length, before.length, `${note}: the heap grew`);
  if (Buffer.compare(Buffer.from(before.buffer, before.byteOffset, before.length), Buffer.from(after.buffer, after.byteOffset, after.length)) === 0) return;
  let i = 0;
  while (before[i] === after[i]) i++;
  assert.fail(`${note}: the misuse changed byte ${i} of the heap (${before[i]} -> ${after[i]})`);
}

/**
 * A misuse that must change nothing: the exact error, the same bytes in
 * the whole committed heap before and after, then the consistency checks.
 */
function misuse(s: Setup, held: readonly number[], f: () => unknown, cls: typeof TypeError | typeof RangeError, text: string, code?: MisuseCode): Error {
  const before = snapshot(s.heap);
  const err = expectError(f, cls, text, code, s.mode === 'debug');
  assertSame(s.heap, before, `${s.mode} ${s.kind}: ${err.message}`);
  intact(s, held);
  return err;
}

/* ------------------------------------------------------------------------ */

for (const [mode, kind] of VARIANTS) {
  describe(`${mode} mode, ${kind}`, () => {
    const debug = mode === 'debug';

    test('local double free', () => {
      const s = setup(mode, kind);
      const keep = alloc(s);
      const p = alloc(s);
      s.a.free(p);
      misuse(s, [keep], () => s.a.free(p), RangeError, MISUSE.doubleFree, 'double-free');
      if (s.a instanceof DebugAllocator) {
        // Out of the quarantine, really free: still a double free.
        s.a.flushQuarantine();
        misuse(s, [keep], () => s.a.free(p), RangeError, MISUSE.doubleFree, 'double-free');
      }
      finish(s, [keep]);
    });

    test('never-allocated pointers: a free object in a slab, a page never carved, meta and control pages', () => {
      const s = setup(mode, kind);
      const p = alloc(s);
      // The next object of the slab was carved but never handed out.
      const q = p + s.unit;
      assert.equal(s.heap.st[(q - s.head) >>> 4], 1, 'precondition: the neighbour is FREE');
      misuse(s, [p], () => s.a.free(q), RangeError, MISUSE.doubleFree, 'double-free');
      // A committed page that was never taken.
      let page = s.heap.committedPages() - 1;
      while (tagKind(s.heap.pageTag(page)) !== KIND_FREE) page--;
      assert.ok(page >= s.heap.firstDataPage, 'precondition: a free page');
      misuse(s, [p], () => s.a.free(page * s.heap.pageSize + 64), RangeError, MISUSE.notAllocated, 'not-allocated');
      misuse(s, [p], () => s.a.free(4096), RangeError, MISUSE.notAllocated, 'not-allocated');
      const region = s.heap.allocatorRow(s.a.id).region;
      misuse(s, [p], () => s.a.free(region + 64), RangeError, MISUSE.notAllocated, 'not-allocated');
      finish(s, [p]);
    });

    test('unaligned pointers', () => {
      const s = setup(mode, kind);
      const p = alloc(s);
      for (const d of [1, 4, 8, 15]) misuse(s, [p], () => s.a.free(p + d), RangeError, MISUSE.unalignedFree, 'unaligned');
      finish(s, [p]);
    });

    test('pointers out of range: negative, beyond the heap, beyond the committed pages', () => {
      const s = setup(mode, kind);
      const p = alloc(s);
      for (const bad of [-16, -1, MAX_BYTES, MAX_BYTES + 16, 2 ** 32, 2 ** 32 + p, Number.MAX_SAFE_INTEGER]) {
        misuse(s, [p], () => s.a.free(bad), RangeError, MISUSE.outsideHeap, 'out-of-range');
        // 2^32 + p has p's page tag and state byte once taken modulo 2^32: refused all the same.
        misuse(s, [p], () => s.a.freeDeferred(bad), RangeError, MISUSE.outsideHeap, 'out-of-range');
      }
      const uncommitted = (s.heap.committedPages() + 2) * s.heap.pageSize;
      misuse(s, [p], () => s.a.free(uncommitted), RangeError, `${MISUSE.outsideHeap} (beyond its committed pages)`, 'out-of-range');
      finish(s, [p]);
    });

    test('wrong allocator, to and from both modes', () => {
      const s = setup(mode, kind);
      const p = alloc(s);
      for (const otherDebug of [false, true]) {
        const b = s.heap.createAllocator({ debug: otherDebug });
        const x = b.alloc(64);
        misuse(s, [p], () => s.a.free(x), RangeError, MISUSE.wrongAllocator, 'wrong-allocator');
        // The other way round: our object freed to the other allocator.
        const before = snapshot(s.heap);
        expectError(() => b.free(p), RangeError, MISUSE.wrongAllocator, 'wrong-allocator', otherDebug);
        assertSame(s.heap, before, 'wrong allocator, other way');
        b.free(x);
        assert.equal(b.destroy().leakedObjects, 0);
        intact(s, [p]);
      }
      finish(s, [p]);
    });

    test('interior pointers and pointers into a larger object', () => {
      const s = setup(mode, kind);
      const p = alloc(s);
      misuse(s, [p], () => s.a.free(p + 16), RangeError, MISUSE.notObjectStart, 'not-allocated');
      misuse(s, [p], () => s.a.free(p + 32), RangeError, MISUSE.notObjectStart, 'not-allocated');
      if (s.head !== 0) {
        // The raw start of a debug object is its header, not an object.
        misuse(s, [p], () => s.a.free(p - 16), RangeError, MISUSE.notObjectStart, 'not-allocated');
      }
      const held = [p];
      if (kind === 'bucketed') {
        const big = alloc(s, 2048);
        held.push(big);
        misuse(s, held, () => s.a.free(big + 1024), RangeError, MISUSE.notObjectStart, 'not-allocated');
        const large = alloc(s, 100_000);
        held.push(large);
        misuse(s, held, () => s.a.free(large + s.heap.pageSize), RangeError, `${MISUSE.notObjectStart} (inside a large allocation)`, 'not-allocated');
        misuse(s, held, () => s.a.free(large + 48), RangeError, MISUSE.notObjectStart, 'not-allocated');
        if (!debug) assert.equal(s.a.usableSize(large), Math.ceil(100_000 / s.heap.pageSize) * s.heap.pageSize);
        else assert.equal(s.a.usableSize(large), 100_000);
      }
      finish(s, held);
    });

    test('NaN, negative, fractional, huge and non-number sizes and pointers', () => {
      const s = setup(mode, kind);
      const p = alloc(s);
      for (const bad of [NaN, 1.5, Infinity, -Infinity, 2 ** 53, '64', null, {}]) {
        misuse(s, [p], () => s.a.alloc(bad as number), TypeError, 'alloc size must be a positive safe integer');
      }
      if (kind === 'bucketed') {
        misuse(s, [p], () => s.a.alloc(undefined), TypeError, 'alloc size must be a positive safe integer');
        for (const bad of [0, -1, -4096, 2 ** 40, MAX_BYTES]) misuse(s, [p], () => s.a.alloc(bad), RangeError, MISUSE.badSize, 'bad-size');
      } else {
        for (const bad of [-1, FIXED_UNIT + 1, 2 ** 40]) {
          misuse(s, [p], () => s.a.alloc(bad), RangeError, `${MISUSE.badSize} in [1, ${FIXED_UNIT}] for this fixed-size allocator`, 'bad-size');
        }
      }
      for (const bad of [NaN, 1.5, p + 0.5, Infinity, '64', null, undefined, {}, true]) {
        misuse(s, [p], () => s.a.free(bad as number), TypeError, MISUSE.notInteger);
      }
      // -0 is 0: free(0) does nothing.
      s.a.free(-0);
      s.a.free(0);
      intact(s, [p]);
      finish(s, [p]);
    });

    test(
      'values that coerce to a live pointer or a valid size: a string, an array, an object with valueOf, alloc(0)',
      () => {
        const s = setup(mode, kind);
        const p = alloc(s);
        for (const bad of [String(p), [p], { valueOf: () => p }]) misuse(s, [p], () => s.a.free(bad as unknown as number), TypeError, MISUSE.notInteger);
        if (kind === 'fixed') {
          for (const bad of [0, -0]) {
            misuse(s, [p], () => s.a.alloc(bad), RangeError, `${MISUSE.badSize} in [1, ${FIXED_UNIT}] for this fixed-size allocator`, 'bad-size');
          }
        }
        finish(s, [p]);
      },
    );

    test(
      'BigInt sizes and pointers',
      () => {
        const s = setup(mode, kind);
        const p = alloc(s);
        misuse(s, [p], () => s.a.alloc(64n as unknown as number), TypeError, 'alloc size must be a positive safe integer');
        misuse(s, [p], () => s.a.free(BigInt(p) as unknown as number), TypeError, MISUSE.notInteger);
        finish(s, [p]);
      },
    );

    test('deferred free: free or freeDeferred again while it waits, large runs', () => {
      const s = setup(mode, kind);
      const keep = alloc(s);
      const p = alloc(s);
      s.a.freeDeferred(p);
      const waiting = `${MISUSE.doubleFree}: already freed with freeDeferred, waiting for a grace period`;
      // While it waits the object counts as live (RETIRED); nothing else may change.
      const held = [keep, p];
      misuse(s, held, () => s.a.free(p), RangeError, waiting, 'double-free');
      misuse(s, held, () => s.a.freeDeferred(p), RangeError, waiting, 'double-free');
      if (kind === 'bucketed') {
        const large = alloc(s, 100_000);
        held.push(large);
        misuse(s, held, () => s.a.freeDeferred(large), RangeError, MISUSE.largeDeferred, 'large-deferred');
        s.a.free(large);
        held.pop();
      }
      for (let i = 0; i < 100 && s.a.collectDeferred() > 0; i++);
      assert.equal(s.a.deferredPending, 0);
      held.pop();
      intact(s, held);
      misuse(s, held, () => s.a.free(p), RangeError, MISUSE.doubleFree, 'double-free');
      finish(s, held);
    });

    test('a detached allocator refuses to work', () => {
      const s = setup(mode, kind);
      const p = alloc(s);
      const other = Heap.attach(s.heap.handle);
      const b = other.attachAllocator(s.a.handle);
      const q = b.alloc(s.size);
      b.detach();
      misuse(s, [p, q], () => b.alloc(s.size), RangeError, MISUSE.detached, 'detached');
      misuse(s, [p, q], () => b.free(q), RangeError, MISUSE.detached, 'detached');
      other.detach();
      finish(s, [p, q]);
    });

    test('stale handle: the agent\'s slot was released while it still ran', () => {
      const s = setup(mode, kind);
      const p = alloc(s);
      const other = Heap.attach(s.heap.handle);
      const b = other.attachAllocator(s.a.handle);
      const q = b.alloc(s.size);
      assert.ok(s.heap.releaseSlot(other.slot, other.slotGen));
      intact(s, [p, q], 'after releaseSlot');
      expectError(() => b.alloc(s.size), RangeError, MISUSE.stale, 'stale', debug);
      expectError(() => b.free(q), RangeError, MISUSE.stale, 'stale', debug);
      expectError(() => b.freeDeferred(q), RangeError, MISUSE.stale, 'stale', debug);
      intact(s, [p, q], 'after the stale calls');
      // The object is still live, and any agent may free it.
      finish(s, [p, q]);
    });

    test(
      'stale handle: a stale free leaves the object alone',
      () => {
        const s = setup(mode, kind);
        const other = Heap.attach(s.heap.handle);
        const b = other.attachAllocator(s.a.handle);
        const q = b.alloc(s.size);
        s.heap.refresh();
        s.heap.u8.fill(7, q, q + 16);
        assert.ok(s.heap.releaseSlot(other.slot, other.slotGen));
        const before = snapshot(s.heap);
        expectError(() => b.free(q), RangeError, MISUSE.stale, 'stale', debug);
        assertSame(s.heap, before, 'stale free');
        finish(s, [q]);
      },
    );

    test(
      'stale handle: the released slot was taken by a new agent',
      () => {
        const s = setup(mode, kind);
        const other = Heap.attach(s.heap.handle);
        const b = other.attachAllocator(s.a.handle);
        const q = b.alloc(s.size);
        assert.ok(s.heap.releaseSlot(other.slot, other.slotGen));
        const third = Heap.attach(s.heap.handle);
        assert.equal(third.slot, other.slot, 'precondition: the new agent took the released slot');
        const c = third.attachAllocator(s.a.handle);
        const before = snapshot(s.heap);
        expectError(() => b.free(q), RangeError, MISUSE.stale, 'stale', debug);
        expectError(() => b.alloc(s.size), RangeError, MISUSE.stale, 'stale', debug);
        expectError(() => b.freeDeferred(q), RangeError, MISUSE.stale, 'stale', debug);
        // A stale agent that detaches lets go of what it thought it had.
        other.detach();
        assertSame(s.heap, before, 'stale calls after the slot was taken again');
        assert.equal(s.heap.slotState(third.slot).state, 2, 'the new agent still owns its slot');
        assert.equal(s.a.attachedAgents, 2);
        intact(s, [q]);
        c.free(q);
        c.detach();
        third.detach();
        finish(s, []);
      },
    );
  });
}

/* ---------------------------- debug mode only ---------------------------- */

describe('debug mode: write after free, overflow, quarantine', () => {
  for (const kind of ['bucketed', 'fixed'] as const) {
    test(`${kind}: write after free while in quarantine, found when it leaves (free, flushQuarantine) and by validate()`, () => {
      const s = setup('debug', kind);
      const a = s.a as DebugAllocator;
      a.quarantineObjects = 4;
      const keep = alloc(s);
      const p = alloc(s);
      a.free(p);
      s.heap.u8[p + 5] ^= 0x5a;
      const found = a.validate();
      assert.equal(found.length, 1, found.join('\n'));
      assert.ok(found[0]!.includes(MISUSE.writeAfterFree) && found[0]!.includes(`object ${p} `), found[0]);
      assert.deepEqual(s.heap.validate(), [], 'the release structures are intact');
      // Four more frees push p out of the quarantine: the fourth reports it, and still happens.
      const more = [alloc(s), alloc(s), alloc(s), alloc(s)];
      for (const x of more.slice(0, 3)) a.free(x);
      const err = expectError(() => a.free(more[3]!), RangeError, MISUSE.writeAfterFree, 'write-after-free', true) as AllocatorMisuseError;
      assert.equal(err.pointer, p);
      assert.ok(err.message.includes('byte 5 of the freed object'), err.message);
      assert.equal(a.quarantined, 4, 'the free that reported it happened');
      intact(s, [keep]);
      // Same, found by flushQuarantine.
      const r = alloc(s);
      a.free(r);
      s.heap.u8[r + (kind === 'fixed' ? 40 : 63)] = 0;
      const e2 = expectError(() => a.flushQuarantine(), RangeError, MISUSE.writeAfterFree, 'write-after-free', true) as AllocatorMisuseError;
      assert.equal(e2.pointer, r);
      assert.equal(a.quarantined, 0);
      intact(s, [keep]);
      finish(s, [keep]);
    });

    test(`${kind}: write after free once really freed, found when it is handed out again`, () => {
      const s = setup('debug', kind);
      const a = s.a as DebugAllocator;
      a.quarantineObjects = 0;
      const keep = alloc(s);
      const p = alloc(s);
      a.free(p);
      assert.equal(a.quarantined, 0);
      s.heap.u8[p + 20] = 0x41; // beyond the free-list words in either kind
      assert.ok(a.validate().some((e) => e.includes(MISUSE.writeAfterFree) && e.includes(`object ${p} `)));
      // The cache is LIFO: the next alloc of this class would hand p out again.
      const before = a.stats();
      const err = expectError(() => a.alloc(s.size), RangeError, MISUSE.writeAfterFree, 'write-after-free', true) as AllocatorMisuseError;
      assert.equal(err.pointer, p);
      assert.ok(err.message.includes('byte 20 of the freed object'), err.message);
      intact(s, [keep], 'after the report');
      // It was poisoned again and given back: the next alloc gets it, intact.
      const q = alloc(s);
      assert.equal(q, p);
      assert.equal(a.stats().classes.reduce((n, c) => n + c.live, 0), before.classes.reduce((n, c) => n + c.live, 0) + 1);
      finish(s, [keep, q]);
    });

    test(`${kind}: double free of a quarantined object, from this agent and from another`, () => {
      const s = setup('debug', kind);
      const keep = alloc(s);
      const p = alloc(s);
      s.a.free(p);
      const err = misuse(s, [keep], () => s.a.free(p), RangeError, MISUSE.doubleFree, 'double-free');
      assert.ok(err.message.includes(`quarantine of agent slot ${s.heap.slot}`), err.message);
      const other = Heap.attach(s.heap.handle);
      const b = other.attachAllocator(s.a.handle) as DebugAllocator;
      misuse(s, [keep], () => b.free(p), RangeError, MISUSE.doubleFree, 'double-free');
      misuse(s, [keep], () => b.usableSize(p), RangeError, MISUSE.notAllocated, 'not-allocated');
      // Freed by the other agent, its quarantine: double free seen from here.
      const q = alloc(s);
      b.free(q);
      // (Objects in another agent's quarantine are allocated: they count as live here.)
      misuse(s, [keep, q], () => s.a.free(q), RangeError, `${MISUSE.doubleFree} (the object is in the quarantine of agent slot ${other.slot})`, 'double-free');
      other.detach(); // releases b's quarantine
      assert.equal(b.quarantined, 0);
      misuse(s, [keep], () => s.a.free(q), RangeError, MISUSE.doubleFree, 'double-free');
      finish(s, [keep]);
    });

    test(`${kind}: a free-list link overwritten after the real free is reported, not followed`, () => {
      const s = setup('debug', kind);
      const a = s.a as DebugAllocator;
      a.quarantineObjects = 0;
      const keep = alloc(s);
      const p = alloc(s);
      const q = alloc(s);
      a.free(q);
      a.free(p); // cache: p -> q -> ...
      const base = p - s.head;
      const link = s.heap.u32[base >>> 2]!;
      assert.equal(link, q - s.head, 'precondition: p links to q');
      s.heap.u32[base >>> 2] = 12345; // a wild write into p's first word
      const before = snapshot(s.heap);
      expectError(() => a.alloc(s.size), RangeError, `${MISUSE.writeAfterFree} in object ${p}`, 'write-after-free', true);
      assertSame(s.heap, before, 'the broken link was not followed');
      s.heap.u32[base >>> 2] = link;
      intact(s, [keep]);
      finish(s, [keep]);
    });
  }

  test('overflow into the canary is reported at free; the object stays live until the canary is restored', () => {
    const s = setup('debug', 'bucketed');
    const a = s.a as DebugAllocator;
    for (const size of [1, 13, 64, 100, 4000, 70_000]) {
      const p = alloc(s, size);
      assert.equal(a.usableSize(p), size);
      s.heap.u8.fill(0xee, p, p + size); // in bounds: fine
      for (const k of [0, 3, 7]) {
        const old = s.heap.u8[p + size + k]!;
        s.heap.u8[p + size + k] = old ^ 0x80;
        assert.ok(a.validate().some((e) => e.includes(MISUSE.canary) && e.includes(`(${p} `)), 'validate() sees it');
        const before = snapshot(s.heap);
        const err = expectError(() => a.free(p), RangeError, MISUSE.canary, 'canary', true) as AllocatorMisuseError;
        assertSame(s.heap, before, 'free with a broken canary');
        assert.deepEqual(s.heap.validate(), []);
        assert.equal(err.pointer, p);
        assert.ok(err.message.includes(`byte ${size + k} (${k} past the end of the ${size}-byte object)`), err.message);
        s.heap.u8[p + size + k] = old;
        intact(s, [p]);
      }
      a.free(p);
      intact(s, []);
    }
    finish(s, []);
  });

  test('an underflow into the header is reported at free as a corrupted canary', () => {
    const s = setup('debug', 'bucketed');
    const p = alloc(s, 40);
    const old = s.heap.u8[p - 12]!;
    s.heap.u8[p - 12] = old ^ 1;
    const before = snapshot(s.heap);
    expectError(() => s.a.free(p), RangeError, `${MISUSE.canary}: the 16-byte header`, 'canary', true);
    assertSame(s.heap, before, 'free with a broken header');
    assert.deepEqual(s.heap.validate(), []);
    assert.ok((s.a as DebugAllocator).validate().some((e) => e.includes(`${MISUSE.canary}: the 16-byte header`)));
    s.heap.u8[p - 12] = old;
    intact(s, [p]);
    finish(s, [p]);
  });

  test('freeDeferred then write after the grace period ended: poisoned and quarantined like a free', () => {
    const s = setup('debug', 'bucketed');
    const a = s.a as DebugAllocator;
    const p = alloc(s, 80);
    a.freeDeferred(p);
    for (let i = 0; i < 100 && a.collectDeferred() > 0; i++);
    assert.equal(a.quarantined, 1, 'collected into the quarantine');
    assert.equal(s.heap.u8[p + 10], POISON_BYTE);
    misuse(s, [], () => a.free(p), RangeError, MISUSE.doubleFree, 'double-free');
    s.heap.u8[p + 10] = 1;
    expectError(() => a.flushQuarantine(), RangeError, MISUSE.writeAfterFree, 'write-after-free', true);
    intact(s, []);
    finish(s, []);
  });

  test('destroy() and detach() release the quarantine; reclaimOrphans() frees a released agent\'s', () => {
    const s = setup('debug', 'bucketed');
    const other = Heap.attach(s.heap.handle);
    const b = other.attachAllocator(s.a.handle) as DebugAllocator;
    const xs = [alloc(s), alloc(s), alloc(s)];
    for (const x of xs) b.free(x);
    assert.equal(b.quarantined, 3);
    assert.equal(liveObjects(s.a), 3, 'quarantined objects are allocated');
    // The agent "dies" with its quarantine: releaseSlot cannot see JS memory.
    assert.ok(s.heap.releaseSlot(other.slot, other.slotGen));
    assert.equal(liveObjects(s.a), 3);
    assert.equal((s.a as DebugAllocator).reclaimOrphans(), 3);
    assert.equal(liveObjects(s.a), 0);
    intact(s, []);
    // destroy() releases this agent's quarantine, and one a released agent left.
    const third = Heap.attach(s.heap.handle);
    const c = third.attachAllocator(s.a.handle) as DebugAllocator;
    const ys = [alloc(s), alloc(s)];
    for (const y of ys) c.free(y);
    assert.ok(s.heap.releaseSlot(third.slot, third.slotGen));
    const z = alloc(s);
    s.a.free(z);
    assert.equal((s.a as DebugAllocator).quarantined, 1);
    assert.equal(liveObjects(s.a), 3);
    finish(s, []);
  });
});

/* --------------------------- property: debug ------------------------------ */

type Op =
  | { kind: 'alloc'; size: number }
  | { kind: 'free'; pick: number }
  | { kind: 'write'; pick: number; at: number; value: number }
  | { kind: 'fault'; what: 'overflow' | 'uaf'; pick: number; at: number; flip: number };

const opArb = (maxSize: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 10, arbitrary: fc.record({ kind: fc.constant('alloc' as const), size: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: maxSize }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 9000 }) }) }) },
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }) },
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), pick: fc.nat(), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('fault' as const),
        what: fc.constantFrom<'overflow' | 'uaf'>('overflow', 'uaf'),
        pick: fc.nat(),
        at: fc.nat(),
        flip: fc.integer({ min: 1, max: 255 }),
      }),
    },
  );

/**
 * Runs a program on a debug allocator. At most one fault is injected (the
 * first 'fault' op that finds a target). Without a fault nothing may
 * throw. With one, the first error must be exactly its report, where the
 * model says it may come:
 * - overflow of live object o: at free(o) ("canary corrupted");
 * - write after free of object v while quarantined: when v leaves the
 *   quarantine (the free that pushes it out, which still happens);
 * - write after free of v really freed: at an alloc (which would have
 *   returned v; it returns nothing).
 * If it has not come by the end, validate() must report it. Afterwards
 * the heap is consistent and nothing is lost.
 */
/** What the property runs exercised: injected faults by kind, and where they were reported. */
const exercised = new Map<string, number>();
function count(what: string): void {
  exercised.set(what, (exercised.get(what) ?? 0) + 1);
}

function runDebugProgram(ops: Op[], fixed: boolean, quarantine: number): void {
  const heap = Heap.create({ maxBytes: 32 << 20, initialBytes: 0 });
  const a = heap.createAllocator({ debug: true, lowWatermark: 1, highWatermark: 3, batch: 2, prefill: 1, ...(fixed ? { unitSize: 40 } : {}) }) as DebugAllocator;
  a.quarantineObjects = quarantine;
  a.quarantineBytes = 1 << 30;
  const unit = fixed ? 48 : 0;
  const live: { p: number; size: number }[] = [];
  /** Freed objects, oldest first, while in the quarantine (the model of the ring). */
  const quarantined: number[] = [];
  /** Really freed objects not handed out again. */
  const released = new Set<number>();
  /** Requested size of every object handed out (the last time). */
  const sizeOf = new Map<number, number>();
  let fault: { what: 'overflow' | 'uaf'; p: number; inQuarantine: boolean; at: number; old: number } | null = null;
  let reported = false;
  const onError = (e: unknown, op: string, allowed: (err: AllocatorMisuseError) => boolean): void => {
    if (!(e instanceof AllocatorMisuseError) || fault === null || reported || !allowed(e)) {
      throw new Error(`${op}: unexpected ${e instanceof Error ? e.message : String(e)} (fault: ${JSON.stringify(fault)})`);
    }
    reported = true;
    count(`reported ${fault.what} at ${op}`);
    assert.deepEqual(heap.validate(), [], 'heap consistent after the report');
  };
  const freeModel = (p: number): void => {
    quarantined.push(p);
    while (quarantined.length > quarantine) {
      const v = quarantined.shift()!;
      // A large run's pages go back to the page heap: no longer ours to write.
      if (fixed || sizeOf.get(v)! + 24 <= 4096) released.add(v);
      if (fault !== null && fault.p === v) fault.inQuarantine = false;
    }
  };
  for (const op of ops) {
    heap.refresh();
    if (op.kind === 'alloc') {
      const size = fixed ? undefined : op.size;
      let p = 0;
      try {
        p = a.alloc(size);
      } catch (e) {
        onError(e, 'alloc', (err) => err.code === 'write-after-free' && fault!.what === 'uaf' && !fault!.inQuarantine && err.pointer === fault!.p);
        // Reported and given back to the allocator: the fault is gone (re-poisoned).
        released.add(fault!.p);
        continue;
      }
      if (p === 0) continue;
      released.delete(p);
      if (fault !== null && fault.p === p && fault.what === 'uaf' && !reported) assert.fail(`alloc handed out ${p} without reporting its write after free`);
      live.push({ p, size: size ?? unit });
      sizeOf.set(p, size ?? unit);
    } else if (op.kind === 'free') {
      if (live.length === 0) continue;
      const k = op.pick % live.length;
      const o = live[k]!;
      const evicts = quarantined.length + 1 > quarantine ? quarantined[0] : undefined;
      try {
        a.free(o.p);
      } catch (e) {
        if (e instanceof AllocatorMisuseError && e.code === 'canary') {
          onError(e, 'free', (err) => fault!.what === 'overflow' && err.pointer === o.p && o.p === fault!.p);
          heap.u8[o.p + fault!.at] = fault!.old; // restore: now it frees
          a.free(o.p);
        } else {
          onError(e, 'free', (err) => err.code === 'write-after-free' && fault!.what === 'uaf' && evicts === fault!.p && err.pointer === fault!.p);
        }
      }
      live.splice(k, 1);
      freeModel(o.p);
    } else if (op.kind === 'write') {
      if (live.length === 0) continue;
      const o = live[op.pick % live.length]!;
      heap.u8[o.p + (op.at % o.size)] = op.value;
    } else if (fault === null) {
      if (op.what === 'overflow') {
        if (fixed || live.length === 0) continue; // fixed units have no canary
        const o = live[op.pick % live.length]!;
        const at = o.size + (op.at % 8);
        fault = { what: 'overflow', p: o.p, inQuarantine: false, at, old: heap.u8[o.p + at]! };
        count('injected overflow');
        heap.u8[o.p + at] ^= op.flip;
      } else {
        const inQ = quarantined.length > 0 && (released.size === 0 || op.flip % 2 === 0);
        const pool = inQ ? quarantined : [...released];
        if (pool.length === 0) continue;
        const v = pool[op.pick % pool.length]!;
        // Fixed units, once really freed: the first 16 bytes are the free-list
        // links and the last 8 the free marker (see debug.ts); writes there are
        // found only while the unit is in the quarantine.
        let at: number;
        if (fixed) at = inQ ? op.at % unit : 16 + (op.at % (unit - 24));
        else at = op.at % sizeOf.get(v)!;
        fault = { what: 'uaf', p: v, inQuarantine: inQ, at, old: heap.u8[v + at]! };
        count(inQ ? 'injected uaf in quarantine' : 'injected uaf after the real free');
        heap.u8[v + at] ^= op.flip;
      }
    }
  }
  if (fault !== null && !reported) {
    const f = fault;
    const found = a.validate();
    assert.ok(
      found.some((e) => e.includes(f.what === 'overflow' ? MISUSE.canary : MISUSE.writeAfterFree) && e.includes(`${f.p} (`)),
      `validate() did not report the ${f.what} of ${f.p}: ${JSON.stringify(found)}`,
    );
    count(`reported ${f.what} at validate`);
    heap.u8[f.p + f.at] = f.old; // undo, as if never written
  }
  assert.deepEqual(a.validate(), []);
  assert.equal(liveObjects(a) - a.quarantined, live.length, 'nothing lost');
  for (const o of live) a.free(o.p);
  const report = a.destroy();
  assert.equal(report.leakedObjects, 0, JSON.stringify(report));
  assert.deepEqual(heap.validate(), []);
}

describe('property: debug mode', () => {
  for (const fixed of [false, true]) {
    test(`${fixed ? 'fixed-size' : 'bucketed'}: in-bounds programs never raise; one injected fault is reported where it should be`, () => {
      exercised.clear();
      fc.assert(
        fc.property(fc.array(opArb(fixed ? 40 : 300), { minLength: 1, maxLength: 150, size: 'max' }), fc.integer({ min: 0, max: 6 }), (ops, q) =>
          runDebugProgram(ops, fixed, q),
        ),
        { numRuns: 120 },
      );
      // The runs must have exercised every kind of fault and every place of report.
      const want = [
        ...(fixed ? [] : ['injected overflow', 'reported overflow at free', 'reported overflow at validate']),
        'injected uaf in quarantine',
        'injected uaf after the real free',
        'reported uaf at free',
        'reported uaf at alloc',
        'reported uaf at validate',
      ];
      for (const w of want) assert.ok((exercised.get(w) ?? 0) > 0, `no run had "${w}": ${JSON.stringify([...exercised])}`);
    });
  }
});
