// The page of the browser test: one heap, one allocator and one map shared
// by this page, two module workers and an AudioWorklet. window.runChecks()
// runs every step and resolves to a plain object the Node side asserts on;
// each step records its own error, so one failure does not hide the rest.
import { Heap, HashMap } from '/dist/src/index.js';
import { fill, matches, valueOf } from './payload.js';

const SAMPLE_RATE = 48000;
const SECONDS = 10;
const QUANTUM = 128;
const QUANTA = (SAMPLE_RATE * SECONDS) / QUANTUM; // 3750
const REPLY_MS = 10_000;

function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A module worker with request/response messages. */
function startWorker(name) {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name });
  const waiting = new Map();
  let nextId = 1;
  let failed = null;
  const ready = new Promise((ok, fail) => {
    worker.onmessage = ({ data }) => {
      if (data.ready) return ok();
      const w = waiting.get(data.id);
      waiting.delete(data.id);
      if (data.ok) w.ok(data.result);
      else w.fail(new Error(`worker ${name}: ${data.error}`));
    };
    worker.onerror = (e) => {
      failed = new Error(`worker ${name}: ${e.message} (${e.filename}:${e.lineno})`);
      fail(failed);
      for (const w of waiting.values()) w.fail(failed);
      waiting.clear();
    };
  });
  const call = (op, args = {}) => {
    if (failed) return Promise.reject(failed);
    const id = nextId++;
    const reply = new Promise((ok, fail) => waiting.set(id, { ok, fail }));
    worker.postMessage({ id, op, ...args });
    return within(reply, REPLY_MS, `worker ${name} to answer ${op}`);
  };
  return { worker, call, ready: within(ready, REPLY_MS, `worker ${name} to start`) };
}

function lookupAll(map, keys) {
  const out = new Uint8Array(8);
  const dv = new DataView(out.buffer);
  let found = 0;
  let wrong = 0;
  for (const k of keys) {
    if (!map.lookupNumber(k, out)) continue;
    if (dv.getUint32(0, true) === k * 3 + 1 && dv.getUint32(4, true) === (k ^ 0x5a5a)) found++;
    else wrong++;
  }
  return { found, wrong };
}

const range = (from, n) => Array.from({ length: n }, (_, i) => from + i);

/**
 * Renders SECONDS of audio offline through the worklet, which allocates on
 * every quantum; resolves to the worklet's report plus what the page saw.
 */
async function renderWithWorklet(heap, allocator, map, { nowait, lookupKeys, insertKey }) {
  const ctx = new OfflineAudioContext({ numberOfChannels: 1, length: SAMPLE_RATE * SECONDS, sampleRate: SAMPLE_RATE });
  await ctx.audioWorklet.addModule(new URL('./worklet.js', import.meta.url));
  const slot = heap.reserveSlot();
  const node = new AudioWorkletNode(ctx, 'anyalloc-heap', {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    processorOptions: {
      heapHandle: slot,
      allocHandle: allocator.handle,
      mapHandle: map.handle,
      nowait,
      quanta: QUANTA,
      lookupKeys,
      insertKey,
    },
  });
  const processorErrors = [];
  node.onprocessorerror = (e) => processorErrors.push(String(e.message ?? e.type));
  const report = new Promise((ok) => {
    node.port.onmessage = ({ data }) => ok(data);
  });
  node.connect(ctx.destination);
  const t0 = performance.now();
  const rendered = await ctx.startRendering();
  const renderMs = performance.now() - t0;
  const r = await within(report, REPLY_MS, 'the worklet report');
  // What each quantum wrote: 0.5 all allocations succeeded, 0.25 some
  // returned 0, 0 an exception (or the quantum never ran).
  const samples = rendered.getChannelData(0);
  const levels = { full: 0, partial: 0, zero: 0, other: 0 };
  for (let q = 0; q < QUANTA; q++) {
    const v = samples[q * QUANTUM];
    if (v === 0.5) levels.full++;
    else if (v === 0.25) levels.partial++;
    else if (v === 0) levels.zero++;
    else levels.other++;
  }
  const stillHeld = heap.slots().some((s) => s.slot === slot.slot && s.gen === slot.gen);
  let released = false;
  if (stillHeld) {
    // The worklet did not detach (it failed): release its slot so the
    // later steps still see a consistent heap.
    released = heap.releaseSlot(slot.slot, slot.gen);
  }
  return {
    ...r,
    processorErrors,
    renderMs: Math.round(renderMs),
    levels,
    slotFreeAfter: !stillHeld,
    releasedByPage: released,
    bytesInUseSeenByPage: allocator.stats().bytesInUse,
  };
}

async function step(results, name, fn) {
  const t0 = performance.now();
  try {
    results[name] = await fn();
  } catch (e) {
    results[name] = { error: String(e && e.stack ? e.stack : e) };
  }
  results[name].ms = Math.round(performance.now() - t0);
}

window.runChecks = async () => {
  const results = {
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    sharedArrayBuffer: typeof SharedArrayBuffer === 'function',
    growableSharedArrayBuffer: typeof SharedArrayBuffer === 'function' && 'grow' in SharedArrayBuffer.prototype,
  };
  const heap = Heap.create({ maxBytes: 64 << 20, maxWorkers: 8 });
  const a = heap.createAllocator();
  // The worklet's allocator: its bytesInUse counts only what the worklet holds.
  const wa = heap.createAllocator();
  const map = HashMap.create(heap, { keySize: 4, valueSize: 8, maxEntries: 4096, mode: 'dynamic' });
  const A = startWorker('A');
  const B = startWorker('B');
  const slotA = heap.reserveSlot();
  const slotB = heap.reserveSlot();

  await step(results, 'attach', async () => {
    await Promise.all([A.ready, B.ready]);
    const ra = await A.call('attach', { heapHandle: slotA, allocHandle: a.handle, mapHandle: map.handle });
    const rb = await B.call('attach', { heapHandle: slotB, allocHandle: a.handle, mapHandle: map.handle });
    return {
      slots: [ra.slot, rb.slot],
      reserved: [slotA.slot, slotB.slot],
      attachedSeenByPage: heap.stats().slotsAttached,
    };
  });

  // Allocated in one agent, freed in another, both ways.
  await step(results, 'crossFree', async () => {
    const sizes = [16, 40, 64, 128, 300, 1024, 4096, 5000, 70000];
    const mine = sizes.map((len, i) => {
      const p = a.alloc(len);
      fill(heap, p, len, 11 + i);
      return { p, len, seed: 11 + i };
    });
    const freedByA = await A.call('checkAndFree', { objects: mine });
    const theirs = await A.call('allocAndFill', { sizes, seed: 77 });
    heap.refresh();
    let good = 0;
    for (const o of theirs) {
      if (matches(heap, o.p, o.len, o.seed)) good++;
      a.free(o.p);
    }
    return { objects: sizes.length, goodInA: freedByA.good, goodInPage: good, bytesInUse: a.stats().bytesInUse };
  });

  // A worker grows the buffer; the page sees it after heap.refresh().
  await step(results, 'grow', async () => {
    const bytes = 24 << 20;
    const viewBefore = heap.viewBytes;
    const g = await B.call('grow', { bytes, seed: 5 });
    const coveredBefore = g.p + bytes <= heap.viewBytes;
    const refreshed = heap.refresh();
    const readable = matches(heap, g.p, 256, 5) && matches(heap, g.p + bytes - 256, 256, 6);
    a.free(g.p);
    return {
      bufferBefore: g.before,
      bufferAfter: g.after,
      viewBefore,
      coveredBefore,
      refreshed,
      viewAfter: heap.viewBytes,
      readable,
      bytesInUse: a.stats().bytesInUse,
    };
  });

  // Inserted in one agent, looked up in the others; deleted in another.
  await step(results, 'map', async () => {
    const keys = range(1, 200);
    const ins = await A.call('mapInsert', { keys });
    const inPage = lookupAll(map, keys);
    const inB = await B.call('mapLookup', { keys });
    const del = await B.call('mapDelete', { keys: range(1, 50) });
    const afterDelPage = lookupAll(map, keys);
    const afterDelA = await A.call('mapLookup', { keys });
    return { inserted: ins.inserted, statuses: ins.statuses, inPage, inB, deleted: del.deleted, afterDelPage, afterDelA, count: map.count() };
  });

  // A worker is terminated while holding objects, cached objects and map
  // elements; the page releases its slot and frees what it left live.
  await step(results, 'terminate', async () => {
    const held = await B.call('hold', { live: 200, size: 64, seed: 3 });
    const ins = await B.call('mapInsert', { keys: range(5001, 100) });
    const bytesHeld = a.stats().bytesInUse;
    B.worker.terminate();
    const released = heap.releaseSlot(slotB.slot, slotB.gen);
    const releasedAgain = heap.releaseSlot(slotB.slot, slotB.gen);
    const stillListed = heap.slots().some((s) => s.slot === slotB.slot);
    const validateAfterRelease = heap.validate();
    let good = 0;
    for (const o of held) {
      if (matches(heap, o.p, o.len, o.seed)) good++;
      a.free(o.p);
    }
    return {
      held: held.length,
      bytesHeld,
      released,
      releasedAgain,
      stillListed,
      slotsReleased: heap.stats().slotsReleased,
      validateAfterRelease,
      goodFreedByPage: good,
      bytesInUse: a.stats().bytesInUse,
      mapInserted: ins.inserted,
      mapAfter: lookupAll(map, range(5001, 100)),
    };
  });

  const lookupKeys = [...range(51, 150), ...range(5001, 100)];
  for (const [name, nowait, insertKey] of [
    ['workletNowait', true, 7001],
    ['workletSync', false, 7002],
  ]) {
    await step(results, name, async () => {
      const r = await renderWithWorklet(heap, wa, map, { nowait, lookupKeys, insertKey });
      const fromA = await A.call('mapLookup', { keys: [insertKey] });
      return { ...r, insertedKeySeenByA: fromA.found, insertedKeySeenByPage: lookupAll(map, [insertKey]).found, lookupKeys: lookupKeys.length };
    });
  }

  await step(results, 'end', async () => {
    const detachA = await A.call('detach');
    A.worker.terminate();
    return {
      detachA,
      slots: heap.slots().map((s) => ({ slot: s.slot, state: s.state, self: s.self })),
      bytesInUse: a.stats().bytesInUse,
      workletBytesInUse: wa.stats().bytesInUse,
      mapValidate: map.validate(),
      validate: heap.validate(),
      stats: heap.stats(),
    };
  });
  return results;
};

window.pageReady = true;
