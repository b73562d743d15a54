// The example's AudioWorklet: plays the waveform the worker wrote into the
// heap. On every render quantum (128 frames) it allocates a scratch block,
// renders into it, copies it to the output and frees it: the pattern of an
// audio thread that needs memory per quantum without ever blocking.
//
// It attaches with `nowait: true`: when its cache is empty, alloc returns 0
// at once instead of refilling, and the refill follows after process()
// returns. A quantum that gets 0 outputs silence and counts a dropout.
//
// Worklets do not see the page's import map and cannot import()
// dynamically, so the library is imported statically by a URL relative
// to this file (the dist/src/index.js the page's import map names).
import { Heap } from '../../dist/src/index.js';

const FRAMES = 128;

class WavetableProcessor extends AudioWorkletProcessor {
  constructor(options) {
    const { heap, alloc, table, samples, quanta } = options.processorOptions;
    super();
    this.heap = Heap.attach(heap);
    this.a = this.heap.attachAllocator(alloc, { nowait: true });
    this.table = table;
    this.samples = samples;
    this.quanta = quanta;
    this.quantum = 0;
    this.phase = 0;
    this.f32 = null;
    this.report = { quanta: 0, dropouts: 0, errors: [], bytesInUseBefore: this.a.stats().bytesInUse };
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    try {
      // One float view over the whole heap, renewed only when the heap's
      // views cover more than it does (the buffer grew: another agent grew
      // it, or this one did in an earlier refill, which renews the heap's
      // own views at once): nothing is allocated on the JS heap per quantum.
      this.heap.refresh();
      if (this.f32 === null || this.f32.length !== this.heap.viewBytes >>> 2) {
        this.f32 = new Float32Array(this.heap.u8.buffer, 0, this.heap.viewBytes >>> 2);
      }
      const f32 = this.f32;
      const scratch = this.a.alloc(FRAMES * 4);
      if (scratch === 0) {
        this.report.dropouts++;
        out.fill(0);
        // Keep time: the waveform goes on under the silence.
        this.phase = (this.phase + FRAMES) % this.samples;
      } else {
        const s = scratch >>> 2;
        const t = this.table >>> 2;
        for (let i = 0; i < FRAMES; i++) {
          f32[s + i] = f32[t + this.phase];
          if (++this.phase === this.samples) this.phase = 0;
        }
        for (let i = 0; i < FRAMES; i++) out[i] = f32[s + i];
        this.a.free(scratch);
      }
    } catch (e) {
      if (this.report.errors.length < 3) this.report.errors.push(String(e && e.stack ? e.stack : e));
      out.fill(0);
    }
    this.report.quanta = ++this.quantum;
    if (this.quantum < this.quanta) return true;
    // The last quantum: leave the heap and say how it went.
    try {
      this.report.bytesInUseAfter = this.a.stats().bytesInUse;
      this.heap.detach();
    } catch (e) {
      this.report.errors.push(String(e && e.stack ? e.stack : e));
    }
    this.port.postMessage(this.report);
    return false;
  }
}

registerProcessor('wavetable', WavetableProcessor);
