// The AudioWorklet of the browser test. On every render quantum it
// allocates objects of mixed sizes from the shared heap, writes them, and
// frees those it allocated a few quanta before; now and then it asks for a
// burst that empties its cache; on the last quantum it frees the rest,
// detaches and posts a report through its port.
//
// Worklets see no import map and may not import() dynamically: the
// library is imported statically by URL (an absolute path on the server).
import { Heap, HashMap } from '/dist/src/index.js';

const SIZES = [16, 24, 64, 100, 200, 512, 1000, 4096, 48, 4000];
const PER_QUANTUM = 6;
// Objects kept live across quanta (freed HOLD allocations later), so the
// cache drains and refills rather than reusing one object.
const HOLD = 40;
// Every BURST_EVERY quanta (from BURST_EVERY / 2) one quantum asks for
// BURST objects of 4096 bytes at once, far more than a cache of that class
// holds (high watermark 6): with nowait, alloc must return 0 once the cache
// is empty, and the next quantum must find it refilled; without nowait,
// every one must succeed. The burst is freed on the next quantum.
const BURST_EVERY = 500;
const BURST = 32;
const BURST_SIZE = 4096;

class HeapProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.quanta = o.quanta;
    this.done = false;
    this.quantum = 0;
    this.live = [];
    this.burst = [];
    this.afterBurst = false;
    this.next = 0;
    this.report = {
      nowait: o.nowait,
      globals: {
        queueMicrotask: typeof globalThis.queueMicrotask,
        setTimeout: typeof globalThis.setTimeout,
        performance: typeof globalThis.performance,
      },
      quanta: 0,
      allocs: 0,
      nulls: 0,
      quantaWithNulls: 0,
      lastQuantumWithNull: 0,
      frees: 0,
      exceptions: 0,
      errors: [],
      corrupted: 0,
      bursts: 0,
      burstsHitZero: 0,
      burstGot: [],
      recoveredAfterBurst: 0,
      map: null,
      bytesInUseStart: -1,
      bytesInUseEnd: -1,
      detached: false,
    };
    this.keys = o.lookupKeys;
    this.insertKey = o.insertKey;
    try {
      this.heap = Heap.attach(o.heapHandle);
      this.a = this.heap.attachAllocator(o.allocHandle, { nowait: o.nowait });
      this.map = HashMap.attach(this.heap, o.mapHandle);
      this.report.slot = this.heap.slot;
      this.report.bytesInUseStart = this.a.stats().bytesInUse;
    } catch (e) {
      this.fail(e, 'attach');
      this.done = true;
      this.port.postMessage(this.report);
    }
  }

  fail(e, where) {
    this.report.exceptions++;
    if (this.report.errors.length < 5) this.report.errors.push(`${where}: ${e && e.stack ? e.stack : e}`);
  }

  freeOldest() {
    const { p, len, tag } = this.live.shift();
    const u8 = this.heap.u8;
    if (u8[p] !== tag || u8[p + len - 1] !== tag) this.report.corrupted++;
    try {
      this.a.free(p);
      this.report.frees++;
    } catch (e) {
      this.fail(e, `free(${p})`);
    }
  }

  mapChecks() {
    const out = new Uint8Array(8);
    const dv = new DataView(out.buffer);
    let found = 0;
    let wrong = 0;
    for (const k of this.keys) {
      if (!this.map.lookupNumber(k, out)) continue;
      if (dv.getUint32(0, true) === k * 3 + 1 && dv.getUint32(4, true) === (k ^ 0x5a5a)) found++;
      else wrong++;
    }
    const v = new Uint8Array(8);
    new DataView(v.buffer).setUint32(0, this.insertKey * 3 + 1, true);
    new DataView(v.buffer).setUint32(4, this.insertKey ^ 0x5a5a, true);
    let insertStatus;
    try {
      insertStatus = this.map.updateNumber(this.insertKey, v);
    } catch (e) {
      this.fail(e, 'map.updateNumber');
      insertStatus = 'threw';
    }
    this.report.map = { found, wrong, insertStatus };
  }

  startBurst() {
    const r = this.report;
    this.afterBurst = true;
    r.bursts++;
    for (let i = 0; i < BURST; i++) {
      let p;
      try {
        p = this.a.alloc(BURST_SIZE);
      } catch (e) {
        this.fail(e, `burst alloc(${BURST_SIZE})`);
        break;
      }
      if (p === 0) {
        r.burstsHitZero++;
        break;
      }
      this.burst.push(p);
    }
    r.burstGot.push(this.burst.length);
  }

  endBurst() {
    this.afterBurst = false;
    // First an allocation of the class the burst emptied: with nowait the
    // refill that followed the burst's last alloc must have come by now.
    try {
      const p = this.a.alloc(BURST_SIZE);
      if (p !== 0) {
        this.report.recoveredAfterBurst++;
        this.a.free(p);
      }
    } catch (e) {
      this.fail(e, `alloc(${BURST_SIZE}) after a burst`);
    }
    this.freeBurst();
  }

  freeBurst() {
    for (const p of this.burst) {
      try {
        this.a.free(p);
      } catch (e) {
        this.fail(e, `free(${p}) of a burst`);
      }
    }
    this.burst.length = 0;
  }

  finish() {
    this.done = true;
    while (this.live.length > 0) this.freeOldest();
    this.freeBurst();
    try {
      this.report.bytesInUseEnd = this.a.stats().bytesInUse;
      this.heap.detach();
      this.report.detached = !this.heap.attached;
    } catch (e) {
      this.fail(e, 'finish');
    }
    this.port.postMessage(this.report);
  }

  process(inputs, outputs) {
    if (this.done) return false;
    const r = this.report;
    this.quantum++;
    r.quanta++;
    if (this.quantum === 1) this.mapChecks();
    let nulls = 0;
    const before = r.exceptions;
    for (let i = 0; i < PER_QUANTUM; i++) {
      const len = SIZES[this.next++ % SIZES.length];
      let p = 0;
      try {
        p = this.a.alloc(len);
        r.allocs++;
      } catch (e) {
        this.fail(e, `alloc(${len})`);
        continue;
      }
      if (p === 0) {
        nulls++;
        continue;
      }
      const tag = (this.quantum + i) & 0xff;
      const u8 = this.heap.u8;
      u8[p] = tag;
      u8[p + len - 1] = tag;
      this.live.push({ p, len, tag });
    }
    while (this.live.length > HOLD) this.freeOldest();
    if (this.afterBurst) this.endBurst();
    else if (this.quantum % BURST_EVERY === BURST_EVERY / 2 && this.quantum < this.quanta) this.startBurst();
    if (nulls > 0) {
      r.nulls += nulls;
      r.quantaWithNulls++;
      r.lastQuantumWithNull = this.quantum;
    }
    // The output says how the quantum went, so the page can check that
    // every quantum ran: 0.5 all allocations succeeded, 0.25 some returned
    // 0, 0 an exception.
    const level = r.exceptions > before ? 0 : nulls > 0 ? 0.25 : 0.5;
    for (const channel of outputs[0]) channel.fill(level);
    if (this.quantum === this.quanta) this.finish();
    return true;
  }
}

registerProcessor('anyalloc-heap', HeapProcessor);
