/**
 * The library in a real browser: a cross-origin isolated page in headless
 * Chromium, two module workers and an AudioWorklet share one heap, one
 * allocator and one hash map, all from the compiled dist/src/index.js.
 *
 * - objects allocated in one agent are checked and freed in another;
 * - a worker grows the buffer and the page sees it after heap.refresh();
 * - map entries inserted in one agent are found in the others;
 * - a worker terminated while holding objects has its slot released by
 *   the page (releaseSlot(slot, gen)), and the heap validates;
 * - the AudioWorklet allocates and frees on every render quantum of 10 s
 *   of audio (OfflineAudioContext, 48 kHz: 3750 quanta), once attached
 *   with nowait and once without: no exception, nothing leaked, and the
 *   heap validates at the end.
 *
 * The page, worker and worklet are plain JavaScript in ./assets/, served
 * from the source folder (tsc does not copy them); the library from
 * dist/src/. Skipped, with a message saying how to install it, when no
 * Chromium is found (REQUIRE_CHROMIUM=1 makes that a failure).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { ROOT, launchChromium, recordConsole, serveStatic, skipWithoutChromium, type StaticServer } from './harness.js';

const QUANTA = 3750;
const PER_QUANTUM = 6;
/** Bursts of BURST objects of 4096 bytes the worklet asks for (every 500 quanta, from quantum 250). */
const BURSTS = 7;
const BURST = 32;

// The page's results are plain data of many shapes; the checks below say what each holds.
type Results = Record<string, any>;

// Each test skips, with the message, when Chromium is missing: the runner's summary then counts them as skipped.
const skip = skipWithoutChromium();

describe('in Chromium: a page, two workers and an AudioWorklet share one heap', { timeout: 60_000 }, () => {
  let server: StaticServer | undefined;
  let browser: Browser | undefined;
  let results: Results = {};
  let consoleLines: string[] = [];
  let runError: string | undefined;

  before(async () => {
    if (skip !== false) return;
    server = await serveStatic({
      '/dist/src/': join(ROOT, 'dist/src'),
      '/test/browser/assets/': join(ROOT, 'test/browser/assets'),
    });
    browser = await launchChromium();
    const page = await browser.newPage();
    consoleLines = recordConsole(page);
    try {
      await page.goto(`${server.origin}/test/browser/assets/page.html`);
      await page.waitForFunction(() => (window as unknown as { pageReady?: boolean }).pageReady === true, null, { timeout: 15_000 });
      results = await page.evaluate(() => (window as unknown as { runChecks(): Promise<Results> }).runChecks());
    } catch (e) {
      runError = e instanceof Error ? (e.stack ?? e.message) : String(e);
    }
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /** The results of one step of the page, failing with its error and the page's console when it threw. */
  function stepOf(name: string): Results {
    const context = consoleLines.length > 0 ? `\npage console:\n${consoleLines.join('\n')}` : '';
    assert.equal(runError, undefined, `the page did not run: ${runError}${context}`);
    const s = results[name] as Results | undefined;
    assert.ok(s !== undefined, `no result for step ${name}${context}`);
    assert.equal(s['error'], undefined, `step ${name} threw: ${s['error']}${context}`);
    return s;
  }

  it('the page is cross-origin isolated and has a growable SharedArrayBuffer', { skip }, () => {
    assert.equal(runError, undefined, `the page did not run: ${runError}\n${consoleLines.join('\n')}`);
    assert.equal(results['crossOriginIsolated'], true, 'crossOriginIsolated (the server sends COOP/COEP)');
    assert.equal(results['sharedArrayBuffer'], true, 'SharedArrayBuffer exists');
    assert.equal(results['growableSharedArrayBuffer'], true, 'SharedArrayBuffer.prototype.grow exists');
  });

  it('two module workers attach to the slots the page reserved for them', { skip }, () => {
    const s = stepOf('attach');
    assert.deepEqual(s['slots'], s['reserved']);
    assert.equal(s['attachedSeenByPage'], 3, 'the page and two workers attached');
  });

  it('objects allocated in one agent are read and freed in another, both ways', { skip }, () => {
    const s = stepOf('crossFree');
    assert.equal(s['goodInA'], s['objects'], 'the worker read what the page wrote');
    assert.equal(s['goodInPage'], s['objects'], 'the page read what the worker wrote');
    assert.equal(s['bytesInUse'], 0, 'every object was freed');
  });

  it('a worker grows the buffer and the page sees the new memory after heap.refresh()', { skip }, () => {
    const s = stepOf('grow');
    assert.ok(s['bufferAfter'] > s['bufferBefore'], `the buffer grew (${s['bufferBefore']} -> ${s['bufferAfter']})`);
    assert.equal(s['coveredBefore'], false, "the page's views did not cover the object before refresh()");
    assert.equal(s['refreshed'], true, 'refresh() renewed the views');
    assert.ok(s['viewAfter'] >= s['bufferAfter'] - 7, `views cover the grown buffer (${s['viewAfter']} of ${s['bufferAfter']})`);
    assert.equal(s['readable'], true, 'the page read what the worker wrote at both ends');
    assert.equal(s['bytesInUse'], 0, 'the page freed the large object');
  });

  it('map entries inserted in one agent are found in the others, deletions seen by all', { skip }, () => {
    const s = stepOf('map');
    assert.equal(s['inserted'], 200, `worker A inserted every key (statuses ${JSON.stringify(s['statuses'])})`);
    assert.deepEqual(s['inPage'], { found: 200, wrong: 0 });
    assert.deepEqual({ found: s['inB'].found, wrong: s['inB'].wrong }, { found: 200, wrong: 0 });
    assert.equal(s['deleted'], 50);
    assert.deepEqual(s['afterDelPage'], { found: 150, wrong: 0 });
    assert.deepEqual({ found: s['afterDelA'].found, wrong: s['afterDelA'].wrong, count: s['afterDelA'].count }, { found: 150, wrong: 0, count: 150 });
  });

  it("a terminated worker's slot is released by the page and the heap validates", { skip }, () => {
    const s = stepOf('terminate');
    assert.equal(s['bytesHeld'], 200 * 64, 'the worker held 200 objects of 64 bytes live');
    assert.equal(s['released'], true, 'releaseSlot(slot, gen) released it');
    assert.equal(s['releasedAgain'], false, 'a second release finds nothing to do');
    assert.equal(s['stillListed'], false, 'heap.slots() no longer lists it');
    assert.equal(s['slotsReleased'], 1);
    assert.deepEqual(s['validateAfterRelease'], []);
    assert.equal(s['goodFreedByPage'], 200, "the page read and freed the dead worker's live objects");
    assert.equal(s['bytesInUse'], 0);
    assert.equal(s['mapInserted'], 100);
    assert.deepEqual(s['mapAfter'], { found: 100, wrong: 0 }, "the dead worker's map entries stay");
  });

  for (const [name, nowait] of [
    ['workletNowait', true],
    ['workletSync', false],
  ] as const) {
    it(`an AudioWorklet allocates and frees on every render quantum of 10 s of audio${nowait ? ' with nowait' : ' without nowait'}`, { skip }, (t) => {
      const s = stepOf(name);
      t.diagnostic(
        `render ${s['renderMs']} ms, ${s['allocs']} steady allocs, ${s['nulls']} returned 0 in ${s['quantaWithNulls']} quanta (last ${s['lastQuantumWithNull']}), ` +
          `bursts got ${JSON.stringify(s['burstGot'])}; worklet globals ${JSON.stringify(s['globals'])}`,
      );
      assert.deepEqual(s['processorErrors'], [], 'no processorerror event');
      assert.equal(s['exceptions'], 0, `no exception in the worklet; first: ${(s['errors'] as string[])[0]}`);
      assert.equal(s['quanta'], QUANTA, 'process() ran on every render quantum');
      assert.equal(s['levels'].zero + s['levels'].other, 0, `every quantum's output says it ran cleanly: ${JSON.stringify(s['levels'])}`);
      assert.equal(s['allocs'], QUANTA * PER_QUANTUM);
      assert.equal(s['frees'], s['allocs'] - s['nulls'], 'the worklet freed every object it got');
      assert.equal(s['corrupted'], 0, 'objects kept their contents while live');
      assert.equal(s['bursts'], BURSTS);
      assert.equal(s['recoveredAfterBurst'], BURSTS, 'the quantum after each burst allocates from the class the burst emptied');
      if (nowait) {
        // With nowait an empty cache makes alloc return 0 at once and the
        // refill follows in a microtask, after process() returns: the next
        // quantum finds the cache full again.
        assert.equal(s['burstsHitZero'], BURSTS, `a burst empties the cache and alloc returns 0 (objects got: ${JSON.stringify(s['burstGot'])})`);
        assert.ok(s['quantaWithNulls'] <= QUANTA / 100, `the steady allocations returned 0 in ${s['quantaWithNulls']} of ${QUANTA} quanta`);
      } else {
        assert.equal(s['burstsHitZero'], 0, 'without nowait a burst refills the cache as it goes');
        assert.deepEqual(s['burstGot'], new Array(BURSTS).fill(BURST), 'every allocation of a burst succeeds');
        assert.equal(s['nulls'], 0, 'without nowait every allocation succeeds');
      }
      assert.equal(s['bytesInUseStart'], 0);
      assert.equal(s['bytesInUseEnd'], s['bytesInUseStart'], 'no bytes leaked');
      assert.equal(s['bytesInUseSeenByPage'], 0, 'the page sees nothing left in use');
      assert.equal(s['detached'], true, 'the worklet detached');
      assert.equal(s['slotFreeAfter'], true, "the worklet's slot is free again");
      assert.deepEqual(s['map'], { found: s['lookupKeys'], wrong: 0, insertStatus: 0 }, 'the worklet found every map key and inserted its own');
      assert.equal(s['insertedKeySeenByA'], 1, "worker A finds the worklet's key");
      assert.equal(s['insertedKeySeenByPage'], 1, "the page finds the worklet's key");
    });
  }

  it('at the end everything is freed, only the page is attached and the heap validates', { skip }, () => {
    const s = stepOf('end');
    assert.deepEqual(s['detachA'], { attached: false });
    assert.deepEqual(s['slots'], [{ slot: 0, state: 'attached', self: true }]);
    assert.equal(s['bytesInUse'], 0, "the shared allocator's objects were all freed");
    assert.equal(s['workletBytesInUse'], 0, "the worklet's allocator's objects were all freed");
    assert.deepEqual(s['mapValidate'], []);
    assert.deepEqual(s['validate'], []);
  });
});
