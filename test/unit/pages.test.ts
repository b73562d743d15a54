/**
 * The page heap on its own (src/heap/pages.ts, src/heap/runs.ts): aligned
 * runs from the bitmap and from the end of the committed pages, the gap an
 * aligned bump skips, the word-at-a-time search for long runs, and the
 * claim record a survivor recovers a dead taker's pages from.
 *
 * Runs are taken through HeapCore.takePages and tagged REGION (owner 0),
 * as a control region would be, so that heap.validate() checks them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Heap } from '../../src/index.js';
import { countFreePages, isPageFree, releaseBits } from '../../src/heap/pages.js';
import { HeapHeader, KIND_REGION, SLOT_ROW_WORDS, SlotRow, pageTag } from '../../src/shm/layout.js';

const PAGE = 8192;

/** A heap of `pages` pages of 8 KiB (meta pages included); all committed when `full`. */
function makeHeap(pages: number, full: boolean): Heap {
  const bytes = pages * PAGE;
  return Heap.create({ pageSize: PAGE, maxBytes: bytes, initialBytes: full ? bytes : 0, maxWorkers: 4 });
}

/** Takes k pages aligned to `align` and tags them as its caller would; 0 when none. */
function take(heap: Heap, k: number, align = 1): number {
  const first = heap.takePages(k, false, align);
  if (first === 0) return 0;
  const tag = pageTag(KIND_REGION, 0, 0);
  for (let p = first; p < first + k; p++) Atomics.store(heap.u32, heap.tagWord + p, tag);
  Atomics.store(heap.u32, heap.argWord + first, k);
  heap.claimDone();
  return first;
}

function usedCounter(heap: Heap): number {
  return Atomics.load(heap.u32, heap.hdr + HeapHeader.USED_PAGES);
}

function claimRecord(heap: Heap, slot: number): [number, number] {
  const row = heap.slotWord + slot * SLOT_ROW_WORDS;
  return [Atomics.load(heap.u32, row + SlotRow.CLAIM_FIRST), Atomics.load(heap.u32, row + SlotRow.CLAIM_K)];
}

/** validate() is clean, and committed = meta + free (bitmap) + used (counter and tags alike). */
function checkPages(heap: Heap, msg = ''): void {
  assert.deepEqual(heap.validate(), [], msg);
  const s = heap.stats();
  assert.equal(usedCounter(heap), s.usedPages, `${msg} USED_PAGES counts the tagged pages`);
  assert.equal(s.metaPages + countFreePages(heap) + s.usedPages, s.committedPages, `${msg} committed = meta + free + used`);
}

/**
 * A fully committed heap whose data pages are all taken, then those in
 * `free` given back: takes can only come from the bitmap search.
 */
function fragmented(pages: number, free: Iterable<number>): Heap {
  const heap = makeHeap(pages, true);
  while (take(heap, 1) !== 0);
  for (const p of free) {
    assert.ok(p >= heap.firstDataPage && p < pages, `page ${p} is a data page`);
    heap.givePages(p, 1);
  }
  checkPages(heap, 'fragmented');
  return heap;
}

function range(first: number, k: number): number[] {
  return Array.from({ length: k }, (_, i) => first + i);
}

function alignUp(p: number, align: number): number {
  return Math.ceil(p / align) * align;
}

/** The lowest multiple p of align with [p, p + k) free in the bitmap and below limit, page by page; 0 for none. */
function firstFit(heap: Heap, k: number, align: number, limit: number): number {
  let p = alignUp(heap.firstDataPage, align);
  while (p + k <= limit) {
    let q = p;
    while (q < p + k && isPageFree(heap, q)) q++;
    if (q === p + k) return p;
    p = alignUp(q + 1, align);
  }
  return 0;
}

test('an aligned take from the end of the committed pages starts at a multiple of align; the gap goes back free', () => {
  const heap = makeHeap(2048, false);
  for (const [k, align] of [
    [16, 16],
    [1, 8],
    [3, 64],
    [256, 256],
    [5, 1],
    [32, 32],
  ] as const) {
    // Nothing free in the bitmap, and the committed count just past a multiple of align.
    while (countFreePages(heap) > 0) take(heap, 1);
    while (align > 1 && heap.committedPages() % align !== 1) take(heap, 1);
    const n = heap.committedPages();
    const free = countFreePages(heap);
    const used = usedCounter(heap);
    const first = heap.takePages(k, false, align);
    assert.equal(first % align, 0, `k ${k} align ${align}: first page ${first}`);
    assert.equal(first, alignUp(n, align), 'taken right after the committed pages');
    assert.equal(heap.committedPages(), first + k);
    // Before the run is tagged the claim record names it, and it alone.
    assert.deepEqual(claimRecord(heap, heap.slot), [first, k]);
    for (let p = n; p < first; p++) assert.ok(isPageFree(heap, p), `gap page ${p} is free`);
    for (let p = first; p < first + k; p++) assert.ok(!isPageFree(heap, p), `page ${p} is claimed`);
    assert.equal(countFreePages(heap), free + (first - n), 'the gap, and only the gap, went to the bitmap');
    assert.equal(usedCounter(heap), used + k, 'the gap does not count as used');
    const tag = pageTag(KIND_REGION, 0, 0);
    for (let p = first; p < first + k; p++) Atomics.store(heap.u32, heap.tagWord + p, tag);
    heap.claimDone();
    assert.deepEqual(claimRecord(heap, heap.slot)[1], 0);
    checkPages(heap, `k ${k} align ${align}`);
  }
});

test('an aligned take from the bitmap starts at a multiple of align', () => {
  // Free stretches that start off alignment: [64+3, 64+43), [160+1, 160+9), [200, 216).
  const heap = fragmented(512, [...range(67, 40), ...range(161, 8), ...range(200, 16)]);
  assert.equal(take(heap, 16, 16), 80, 'the first multiple of 16 whose 16 pages are free');
  assert.equal(take(heap, 8, 8), 72, '[72, 80) is left below the run at 80');
  assert.equal(take(heap, 8, 8), 96);
  assert.equal(take(heap, 8, 8), 200, '[161, 169) holds 8 pages, but not from a multiple of 8');
  assert.equal(take(heap, 4, 4), 68);
  assert.equal(take(heap, 1, 32), 0, 'no free page at a multiple of 32, and the heap cannot grow');
  assert.equal(take(heap, 1, 16), 208);
  assert.equal(take(heap, 2, 2), 104);
  assert.equal(take(heap, 16, 16), 0);
  checkPages(heap);
});

test('long runs are found across word boundaries after fragmentation', () => {
  // Every other page free up to 1000, a stretch of 99 (one short), then
  // the stretch of 100 at an odd page spanning four bitmap words.
  const free = new Set<number>();
  for (let p = 8; p < 1000; p += 2) free.add(p);
  for (const p of range(1003, 99)) free.add(p);
  for (const p of range(1117, 100)) free.add(p);
  const heap = fragmented(2048, free);
  assert.equal(take(heap, 100), 1117);
  assert.equal(take(heap, 99), 1003);
  assert.equal(take(heap, 2), 0, 'no two free pages side by side are left');
  const one = take(heap, 1);
  assert.ok(one % 2 === 0 && one < 1000, `a single page (${one}) still comes from the bitmap`);
  checkPages(heap);

  // Taking and giving runs back fragments the bitmap; a run of 100 made
  // of freed neighbours is then found.
  const heap2 = makeHeap(4096, false);
  const runs: number[] = [];
  for (let i = 0; i < 60; i++) runs.push(take(heap2, 1 + (i % 7) * 5));
  const committed = heap2.committedPages();
  for (let i = 0; i < runs.length; i += 2) heap2.givePages(runs[i]!, 1 + (i % 7) * 5);
  // Runs 20..27 freed together make a free stretch of more than 100 pages.
  for (let i = 21; i < 28; i += 2) heap2.givePages(runs[i]!, 1 + (i % 7) * 5);
  assert.equal(firstFit(heap2, 100, 1, committed), runs[20]);
  assert.equal(take(heap2, 100), runs[20], 'where runs 20..28 were');
  assert.equal(heap2.committedPages(), committed, 'found in the bitmap: the heap did not grow');
  checkPages(heap2);
});

test('whole free words, stretches ending and starting at word edges, and short runs inside one word', () => {
  const cases: { free: number[]; k: number; align: number; want: number }[] = [
    { free: range(64, 32), k: 32, align: 1, want: 64 },
    { free: range(64, 32), k: 32, align: 32, want: 64 },
    { free: range(95, 33), k: 33, align: 1, want: 95 },
    { free: range(95, 34), k: 32, align: 32, want: 96 },
    { free: range(96, 64), k: 64, align: 64, want: 0 },
    { free: range(128, 64), k: 64, align: 64, want: 128 },
    { free: range(63, 2), k: 2, align: 1, want: 63 },
    { free: range(64, 31), k: 31, align: 1, want: 64 },
    { free: range(65, 31), k: 31, align: 1, want: 65 },
    { free: range(65, 31), k: 32, align: 1, want: 0 },
    { free: [...range(69, 3), ...range(84, 3)], k: 3, align: 1, want: 69 },
    { free: [...range(69, 3), ...range(84, 3)], k: 3, align: 4, want: 84 },
    { free: [...range(69, 3), ...range(84, 3)], k: 4, align: 1, want: 0 },
    { free: [...range(70, 2), ...range(90, 6)], k: 1, align: 16, want: 0 },
    { free: [...range(70, 2), ...range(90, 6)], k: 1, align: 8, want: 0 },
    { free: [...range(70, 2), ...range(90, 8)], k: 1, align: 8, want: 96 },
    { free: range(200, 300), k: 256, align: 128, want: 0 },
    { free: range(200, 320), k: 256, align: 128, want: 256 },
    { free: range(200, 320), k: 256, align: 1, want: 200 },
    { free: range(200, 320), k: 320, align: 1, want: 200 },
    { free: range(200, 320), k: 321, align: 1, want: 0 },
  ];
  for (const { free, k, align, want } of cases) {
    const heap = fragmented(1024, free);
    assert.equal(take(heap, k, align), want, `k ${k} align ${align} free [${free[0]}..${free[free.length - 1]}]`);
    checkPages(heap);
  }
});

test('first fit: the lowest run that fits is taken', () => {
  const heap = fragmented(1024, [...range(40, 5), ...range(100, 50), ...range(300, 200), ...range(600, 10)]);
  assert.equal(take(heap, 5), 40);
  assert.equal(take(heap, 30), 100);
  assert.equal(take(heap, 30), 300, '20 pages are left at 130: too few');
  assert.equal(take(heap, 20), 130);
  assert.equal(take(heap, 8, 8), 336);
  assert.equal(take(heap, 3), 330);
  assert.equal(take(heap, 3), 333);
  assert.equal(take(heap, 10), 344);
  checkPages(heap);
});

test('property: the bitmap search finds the first aligned run that fits', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat({ max: 700 }), fc.integer({ min: 1, max: 120 })), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 1, max: 150 }),
      fc.constantFrom(1, 1, 2, 4, 8, 16, 32, 64, 128),
      (stretches, k, align) => {
        const free = new Set<number>();
        for (const [at, n] of stretches) for (let p = Math.max(at, 8); p < Math.min(at + n, 768); p++) free.add(p);
        const heap = fragmented(768, free);
        const want = firstFit(heap, k, align, heap.maxPages);
        const got = take(heap, k, align);
        if (k === 1 && align === 1) {
          // Single pages come from where the last search left off, not first fit.
          assert.equal(got === 0, want === 0);
          if (got !== 0) assert.ok(free.has(got), `page ${got} was free`);
        } else {
          assert.equal(got, want);
        }
        checkPages(heap);
      },
    ),
    { numRuns: 150 },
  );
});

type Op = { kind: 'take'; k: number; align: number } | { kind: 'give'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('take' as const),
      k: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 9, max: 300 })),
      align: fc.constantFrom(1, 1, 1, 2, 4, 8, 16, 32, 64, 256),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('give' as const), pick: fc.nat() }) },
);

test('property: random takes and gives never overlap, stay aligned, and account for every committed page', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 80 }), (ops) => {
      const heap = makeHeap(2048, false);
      const live: { first: number; k: number }[] = [];
      const owner = new Map<number, number>();
      let usedPages = 0;
      for (const op of ops) {
        if (op.kind === 'give') {
          if (live.length === 0) continue;
          const [run] = live.splice(op.pick % live.length, 1);
          for (let p = run!.first; p < run!.first + run!.k; p++) owner.delete(p);
          heap.givePages(run!.first, run!.k);
          usedPages -= run!.k;
        } else {
          const committed = heap.committedPages();
          const fits = firstFit(heap, op.k, op.align, committed);
          const first = take(heap, op.k, op.align);
          if (first === 0) {
            // Full: no free aligned run in the bitmap and no room past the committed pages.
            assert.equal(fits, 0, `a free run at ${fits} was missed`);
            assert.ok(alignUp(committed, op.align) + op.k > heap.maxPages);
            continue;
          }
          assert.equal(first % op.align, 0, `page ${first} is not a multiple of ${op.align}`);
          if (fits !== 0 && op.k === 1 && op.align === 1) assert.ok(first < committed, 'a single page from the bitmap');
          else if (fits !== 0) assert.equal(first, fits, 'first fit in the bitmap');
          else assert.equal(first, alignUp(committed, op.align), 'from the end of the committed pages');
          for (let p = first; p < first + op.k; p++) {
            assert.ok(!owner.has(p), `page ${p} handed out twice`);
            owner.set(p, first);
          }
          live.push({ first, k: op.k });
          usedPages += op.k;
        }
        assert.equal(usedCounter(heap), usedPages, 'USED_PAGES');
        assert.equal(heap.firstDataPage + countFreePages(heap) + usedPages, heap.committedPages(), 'committed = meta + free + used');
      }
      checkPages(heap);
      for (const run of live) heap.givePages(run.first, run.k);
      checkPages(heap, 'all given back');
      assert.equal(countFreePages(heap), heap.committedPages() - heap.firstDataPage);
    }),
    { numRuns: 120 },
  );
});

/**
 * Stages an aligned take from the end of the committed pages that stopped
 * where a dying agent would: `dead` took k pages aligned to `align` from
 * committed count n; the record is written as takePages writes it.
 */
function stageBump(
  heap: Heap,
  dead: Heap,
  k: number,
  align: number,
  stage: 'named' | 'bumped' | 'gap free' | 'narrowed',
): { n: number; first: number } {
  const n = heap.committedPages();
  const first = alignUp(n, align);
  const row = heap.slotWord + dead.slot * SLOT_ROW_WORDS;
  Atomics.store(heap.u32, row + SlotRow.CLAIM_FIRST, n);
  Atomics.store(heap.u32, row + SlotRow.CLAIM_K, first + k - n);
  assert.ok(heap.growTo((first + k) * PAGE));
  if (stage === 'named') return { n, first };
  Atomics.store(heap.u32, heap.hdr + HeapHeader.COMMITTED_PAGES, first + k);
  if (stage === 'bumped') return { n, first };
  releaseBits(heap, n, first - n);
  if (stage === 'gap free') return { n, first };
  Atomics.store(heap.u32, row + SlotRow.CLAIM_FIRST, first);
  Atomics.store(heap.u32, row + SlotRow.CLAIM_K, k);
  return { n, first };
}

test('recoverClaim gives back what a death inside an aligned take from the end leaves claimed', () => {
  for (const stage of ['named', 'bumped', 'gap free', 'narrowed'] as const) {
    const heap = makeHeap(2048, false);
    while (heap.committedPages() % 32 !== 5) take(heap, 1);
    const dead = Heap.attach(heap.handle);
    const { n, first } = stageBump(heap, dead, 40, 32, stage);
    const committed = heap.committedPages();
    const free = countFreePages(heap);
    if (stage !== 'named') assert.ok(heap.validatePages().some((e) => /lost page/.test(e)), `${stage}: pages look lost`);
    assert.equal(heap.releaseSlot(dead.slot, dead.slotGen), true);
    assert.deepEqual(heap.validatePages(), [], `${stage}: nothing lost after the release`);
    assert.equal(heap.committedPages(), committed);
    // Every page the dead agent held is free again: the run, and the gap if still claimed.
    const given = stage === 'named' ? 0 : stage === 'bumped' ? first + 40 - n : 40;
    assert.equal(countFreePages(heap), free + given, `${stage}: pages given back`);
    for (let p = n; p < committed; p++) assert.ok(isPageFree(heap, p), `${stage}: page ${p} is free`);
    assert.equal(take(heap, 40, 32), first, `${stage}: the run can be taken again`);
    assert.deepEqual(heap.validate(), [], stage);
  }
});

test('recoverClaim leaves alone gap pages others took after the gap went free', () => {
  const heap = makeHeap(2048, false);
  while (heap.committedPages() % 64 !== 3) take(heap, 1);
  const dead = Heap.attach(heap.handle);
  const other = Heap.attach(heap.handle);
  const free = countFreePages(heap);
  const { n, first } = stageBump(heap, dead, 64, 64, 'gap free');
  // This agent tagged a gap page; the other is between claiming one and
  // tagging it (named in its record, bit clear, tag FREE).
  const mine = take(heap, 1);
  assert.ok(mine >= n && mine < first, `page ${mine} from the gap`);
  const theirs = mine === first - 1 ? mine - 1 : mine + 1;
  const orow = heap.slotWord + other.slot * SLOT_ROW_WORDS;
  Atomics.store(heap.u32, orow + SlotRow.CLAIM_FIRST, theirs);
  Atomics.store(heap.u32, orow + SlotRow.CLAIM_K, 1);
  Atomics.and(heap.u32, heap.bitmapWord + (theirs >>> 5), ~(1 << (theirs & 31)));

  assert.equal(heap.releaseSlot(dead.slot, dead.slotGen), true);
  assert.equal(heap.pageTag(mine), pageTag(KIND_REGION, 0, 0), 'the tagged gap page stays taken');
  assert.ok(!isPageFree(heap, mine));
  assert.ok(!isPageFree(heap, theirs), 'the page a live agent is claiming stays claimed');
  for (let p = first; p < first + 64; p++) assert.ok(isPageFree(heap, p), `run page ${p} given back`);
  // The other agent finishes its take.
  Atomics.store(heap.u32, heap.tagWord + theirs, pageTag(KIND_REGION, 0, 0));
  Atomics.store(heap.u32, orow + SlotRow.CLAIM_K, 0);
  assert.deepEqual(heap.validatePages(), []);
  assert.equal(countFreePages(heap), free + (first - n - 2) + 64, 'the gap but two pages, and the run');
  other.detach();
});
