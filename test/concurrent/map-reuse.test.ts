/**
 * The kernel's htab_reuse test, ported: one writer inserts and deletes two
 * keys in a loop while three readers look them up, for a fixed time.
 *
 * The writer's round r writes generations 4r+1 .. 4r+4: insert key 1 and
 * key 2 with NOEXIST, update both with EXIST (in place: the spare copy of
 * a fresh element), then delete both. A value is 64 bytes: key,
 * generation, words derived from both, and a checksum. Variants: maps
 * with inPlace: false (each update a new element, the old one retired),
 * and a writer that updates each key 16 times per round, so that in-place
 * writes meet copies that readers may still be reading (they must wait
 * for a grace period, or the update replaces the element).
 *
 * What a reader may see: absent, or a complete value written for that key.
 * Since the map is linearizable and the writer's program order is fixed,
 * also: per key, generations never go backwards within one reader; and
 * once a reader has seen a value of round r, it never sees a value of an
 * earlier round (every key of round r - 1 was deleted before round r's
 * first insert). What it must never see (each a sign that an element was
 * freed and reused while a reader still used it):
 *   - a torn value (a word or the checksum does not match the key and
 *     generation),
 *   - a value of the other key, or a generation the writer wrote to the
 *     other key,
 *   - a generation or round older than one it saw before,
 *   - through read() + lookupOffset, an element that changes while read()
 *     runs (it may be deleted or replaced, but not reused, until then),
 *   - from getNextKey, a key that was never inserted.
 * Readers alternate lookup() and the in-place read, and walk the keys now
 * and then. The writer checks every status and reads its own writes back.
 *
 * Both element modes, and with one bucket (both keys in one chain, so a
 * reader walks past the other key's element while it is replaced) and
 * with several.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashMap, Heap } from '../../src/index.js';
import { assertMapValid, liveElements, runWorkers } from '../util/map-checks.js';
import { REUSE, REUSE_KEY_SIZE, REUSE_VALUE_SIZE, type ReuseJob, type ReuseReaderResult, type ReuseWriterResult } from '../util/map-jobs.js';
import { seedNote, testSeed } from '../util/prng.js';

const WORKER = new URL('./workers/map-reuse-worker.js', import.meta.url);
const READERS = 3;
const DURATION_MS = 300;
const DEADLINE_MS = 20_000;
const SEED = testSeed();

interface ReuseCase {
  mode: 'prealloc' | 'dynamic';
  buckets: number;
  inPlace: boolean;
  rewrites: number;
}

const CASES: ReuseCase[] = [
  ...(['prealloc', 'dynamic'] as const).flatMap((mode) => [1, 8].map((buckets) => ({ mode, buckets, inPlace: true, rewrites: 1 }))),
  { mode: 'dynamic', buckets: 8, inPlace: false, rewrites: 1 },
  { mode: 'prealloc', buckets: 1, inPlace: true, rewrites: 16 },
  { mode: 'dynamic', buckets: 8, inPlace: true, rewrites: 16 },
];

for (const { mode, buckets, inPlace, rewrites } of CASES) {
  const what = `${mode}, ${buckets} bucket${buckets > 1 ? 's' : ''}${inPlace ? '' : ', inPlace: false'}${rewrites > 1 ? `, ${rewrites} updates per key and round` : ''}`;
  test(`htab_reuse (${what}): readers never see a torn, foreign or reused value`, async (t) => {
    const note = `${what}, ${seedNote(SEED)}`;
    const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 8 });
    const used0 = heap.stats().usedPages;
    const map = HashMap.create(heap, { keySize: REUSE_KEY_SIZE, valueSize: REUSE_VALUE_SIZE, maxEntries: 16, mode, buckets, seed: SEED, inPlace });
    const control = new SharedArrayBuffer(REUSE.WORDS * 4);
    const base = { heap: heap.handle, map: map.handle, seed: SEED, control, readers: READERS, durationMs: DURATION_MS, deadlineMs: DEADLINE_MS, rewrites };
    const specs = [
      { script: WORKER, name: 'writer', data: { ...base, role: 'writer' } satisfies ReuseJob },
      ...Array.from({ length: READERS }, (_, i) => ({ script: WORKER, name: `reader ${i}`, data: { ...base, role: 'reader' } satisfies ReuseJob })),
    ];
    const [w, ...readers] = await runWorkers<ReuseWriterResult | ReuseReaderResult>(specs, DEADLINE_MS + 5_000, note);
    const writer = w as ReuseWriterResult;
    assert.deepEqual(writer.bad, [], `${note}: writer`);
    assert.equal(writer.undrained, 0, `${note}: the writer could not run its deferred frees before detaching`);
    assert.ok(writer.rounds >= 200 / rewrites, `${note}: the writer ran only ${writer.rounds} rounds`);
    const updates = writer.rounds * 2 * rewrites;
    if (!inPlace) {
      assert.equal(writer.inPlace + writer.replaced, 0, `${note}: no in-place path`);
    } else {
      // Each round's first update of a key writes the fresh element's
      // spare copy; later ones go in place once grace periods allow.
      assert.ok(writer.inPlace >= writer.rounds * 2, `${note}: only ${writer.inPlace} of ${updates} updates in place`);
      if (rewrites > 1) {
        assert.ok(writer.inPlace > writer.rounds * 2, `${note}: no update went in place into a copy that was current before`);
        assert.ok(writer.replaced > 0, `${note}: no update met a copy still in its grace period`);
      }
    }
    for (const [i, r] of (readers as ReuseReaderResult[]).entries()) {
      assert.deepEqual(r.violations, [], `${note}: reader ${i}`);
      assert.ok(r.lookups >= 2_000, `${note}: reader ${i} did only ${r.lookups} lookups`);
      // How often the keys are there depends on when the OS runs the
      // writer; a few hundred hits in the run are plenty to check.
      assert.ok(r.hits >= 300, `${note}: reader ${i} found the keys only ${r.hits} times in ${r.lookups} lookups`);
      assert.ok(r.walks > 0, `${note}: reader ${i} never walked the keys`);
      t.diagnostic(`reader ${i}: ${r.lookups} lookups, ${r.hits} hits, ${r.walks} walks (${r.walkedKeys} keys)`);
    }
    t.diagnostic(`writer: ${writer.rounds} rounds, ${writer.writes} writes, updates ${writer.inPlace} in place, ${writer.replaced} replaced`);

    assert.equal(map.count(), 0, `${note}: the writer deleted everything`);
    assert.equal(map.collect(), 0, note);
    assertMapValid(map, heap, note);
    assert.equal(liveElements(map), 0, `${note}: every replaced or deleted element came back (all agents detached)`);
    assert.equal(map.destroy(), 0);
    assert.equal(heap.stats().usedPages, used0, `${note}: destroy gives every page back`);
  });
}
