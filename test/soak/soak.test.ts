/**
 * A short soak (./soak.ts; npm run soak runs the long one): 30 s of four
 * workers running the stress mix, one killed every second at a random
 * moment and its slot released, quiet checks (misuse cases, validate(),
 * the maps against the records) every 5 s, a linearizability batch every
 * 10 s. The summary must report nothing lost and no check failed, and
 * each kind of check must have run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seedNote, testSeed } from '../util/prng.js';
import { runSoak } from './soak.js';

const SEED = testSeed();

test('short soak: 30 s, 4 workers, a kill every second, checks every 5 s, linearizability every 10 s; nothing lost', { timeout: 120_000 }, async (t) => {
  const note = seedNote(SEED);
  t.diagnostic(note);
  const s = await runSoak({ minutes: 0.5, workers: 4, seed: SEED, killEveryMs: 1000, checkEveryS: 5, linEveryS: 10 }, (line) => t.diagnostic(line));
  assert.equal(s.fatal, null, `${note}: the soak stopped: ${String(s.fatal)}`);
  assert.deepEqual(s.problems, [], note);
  assert.deepEqual(s.lost, { records: 0, objects: 0 }, `${note}: records or objects lost`);
  assert.equal(s.validateFailures, 0, note);
  assert.equal(s.misuseFailed, 0, `${note}: misuse cases not refused as they must be`);
  assert.equal(s.lin.failures, 0, `${note}: linearizability batches failed`);
  assert.equal(s.ok, true, note);
  assert.ok(s.kills >= 5, `${note}: only ${s.kills} workers were killed`);
  assert.equal(s.releasesByMain + s.releasesByWorker, s.kills, `${note}: every dead worker's slot was released`);
  assert.ok(s.releasesByWorker > 0, `${note}: no slot was released by a surviving worker`);
  assert.ok(s.quietChecks >= 2, `${note}: only ${s.quietChecks} quiet checks ran`);
  assert.ok(s.misuseTried > 0, `${note}: no misuse case was tried`);
  assert.ok(s.lin.batches >= 1 && s.lin.histories > 0, `${note}: no linearizability batch ran`);
  assert.ok(s.load.totalOps > 0, `${note}: the workers did nothing`);
});
