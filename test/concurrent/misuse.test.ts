/**
 * Misuse across workers (see test/unit/misuse.test.ts for the rules every
 * misuse must follow): in worker_threads (./workers/misuse-worker.ts), a
 * double free split between a worker and this thread, and a list of
 * misuses committed in one worker, each with a bystander worker that keeps
 * allocating and freeing correctly while the misuse happens in another
 * agent.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MISUSE } from '../../src/alloc/debug.js';
import { VARIANTS, alloc, expectError, finish, intact, setup } from '../util/misuse.js';
import { runWorkerGroup } from '../util/workers.js';
import { CTL, type MisuseJob, type MisuseResult } from './workers/misuse-worker.js';

const WORKER = new URL('./workers/misuse-worker.js', import.meta.url);

async function waitUntil(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('across workers', () => {
  for (const [mode, kind] of VARIANTS) {
    test(`${mode} ${kind}: a worker frees an object and hands it back, this thread frees it again; a bystander carries on`, async () => {
      const s = setup(mode, kind);
      const p = alloc(s);
      const ctl = new Int32Array(new SharedArrayBuffer(CTL.WORDS * 4));
      const base = { alloc: s.a.handle, ctl: ctl.buffer as SharedArrayBuffer, size: s.size, p, deadlineMs: 8000 };
      const freer: MisuseJob = { ...base, role: 'freer', heap: s.heap.reserveSlot(), seed: 1 };
      const bystander: MisuseJob = { ...base, role: 'bystander', heap: s.heap.reserveSlot(), seed: 2 };
      const group = runWorkerGroup<MisuseResult>(
        [
          { script: WORKER, data: freer, name: 'freer' },
          { script: WORKER, data: bystander, name: 'bystander' },
        ],
        { timeoutMs: 15_000 },
      );
      await waitUntil('the worker\'s free', () => Atomics.load(ctl, CTL.FREED) === 1);
      s.heap.refresh();
      expectError(() => s.a.free(p), RangeError, MISUSE.doubleFree, 'double-free', mode === 'debug');
      Atomics.store(ctl, CTL.MISUSED, 1);
      await waitUntil('bystander pairs after the misuse', () => Atomics.load(ctl, CTL.AFTER) >= 256);
      Atomics.store(ctl, CTL.GO, 1);
      Atomics.notify(ctl, CTL.GO);
      Atomics.store(ctl, CTL.STOP, 1);
      const out = await group;
      assert.deepEqual(out.failures, []);
      const [f, b] = out.results as [MisuseResult, MisuseResult];
      assert.deepEqual(f.problems, []);
      assert.deepEqual(b.problems, []);
      assert.equal(f.debug, mode === 'debug');
      if (mode === 'debug') assert.equal(f.quarantined, 1, 'the object sat in the freer\'s quarantine');
      assert.ok(b.pairsAfter >= 256, `bystander made ${b.pairsAfter} pairs after the misuse`);
      intact(s, []);
      finish(s, []);
    });
  }

  for (const mode of ['release', 'debug'] as const) {
    test(`${mode}: misuse in one worker while another keeps allocating and freeing`, async () => {
      const s = setup(mode, 'bucketed');
      const p = alloc(s);
      const other = s.heap.createAllocator({ debug: mode !== 'debug' });
      const ctl = new Int32Array(new SharedArrayBuffer(CTL.WORDS * 4));
      const base = { alloc: s.a.handle, ctl: ctl.buffer as SharedArrayBuffer, size: s.size, p, deadlineMs: 8000 };
      const group = runWorkerGroup<MisuseResult>(
        [
          { script: WORKER, data: { ...base, role: 'bystander', heap: s.heap.reserveSlot(), seed: 3 } satisfies MisuseJob, name: 'bystander' },
          {
            script: WORKER,
            data: { ...base, role: 'misuser', heap: s.heap.reserveSlot(), seed: 4, otherAlloc: other.handle } satisfies MisuseJob,
            name: 'misuser',
          },
        ],
        { timeoutMs: 15_000 },
      );
      await waitUntil('bystander pairs after the misuse', () => Atomics.load(ctl, CTL.AFTER) >= 256);
      Atomics.store(ctl, CTL.STOP, 1);
      const out = await group;
      assert.deepEqual(out.failures, []);
      const [b, m] = out.results as [MisuseResult, MisuseResult];
      assert.deepEqual(b.problems, []);
      assert.deepEqual(m.problems, []);
      const want: [string, string][] = [
        ['RangeError', MISUSE.doubleFree],
        ['RangeError', MISUSE.unalignedFree],
        ['RangeError', MISUSE.notObjectStart],
        ['RangeError', MISUSE.outsideHeap],
        ['TypeError', MISUSE.notInteger],
        ['TypeError', 'alloc size must be a positive safe integer'],
        ['RangeError', MISUSE.wrongAllocator],
      ];
      assert.equal(m.caught.length, want.length);
      m.caught.forEach((c, i) => {
        const [name, text] = want[i]!;
        const wantName = mode === 'debug' && name === 'RangeError' ? 'AllocatorMisuseError' : name;
        assert.equal(c.name, wantName, `${c.what}: ${c.message}`);
        assert.ok(c.message.includes(text), `${c.what}: "${c.message}" lacks "${text}"`);
      });
      assert.ok(b.pairsAfter >= 256);
      assert.equal(other.destroy().leakedObjects, 0);
      intact(s, [p], 'after the workers');
      finish(s, [p]);
    });
  }
});
