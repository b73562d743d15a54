/**
 * The other side of test/concurrent/using.test.ts: on a go, a release
 * (useForRelease) or an attach (useAllocator, then the LIVE check) of
 * allocator 1 in slot 1 of a bare table, while the main thread's destroy
 * (closeAllocator) is deciding; reports what it found.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { allocatorLive, useAllocator, useForRelease, type UsingHost } from '../../../src/heap/using.js';

const { sab, kind } = workerData as { sab: SharedArrayBuffer; kind: 'release' | 'attach' };
const u32 = new Uint32Array(sab);
const i32 = new Int32Array(sab);
const h: UsingHost = { u32, slotWord: 64, allocWord: 16, maxSlots: 2, slot: 1 };
// Word 0: go (set by the main thread); word 1: this side started its attempt.
while (Atomics.load(i32, 0) === 0) Atomics.wait(i32, 0, 0, 100);
Atomics.store(i32, 1, 1);
Atomics.notify(i32, 1);
let ok: boolean;
if (kind === 'release') {
  ok = useForRelease(h, 1);
} else {
  useAllocator(h, 1);
  ok = allocatorLive(h, 1);
}
useAllocator(h, 0);
parentPort!.postMessage(ok);
