// The example's page script: one heap shared by this page, a worker and an
// AudioWorklet. The page creates the heap and an allocator, the worker
// fills an object with a waveform, the worklet plays it while allocating
// per render quantum, and the page checks the audio and frees the object.
//
// 'anyalloc' resolves through the import map in index.html.
import { Heap } from 'anyalloc';

const SAMPLE_RATE = 48000;
const SECONDS = 1;
const SAMPLES = 480; // one cycle of 100 Hz at 48 kHz

const logElement = document.getElementById('log');
function log(line) {
  logElement.textContent += line + '\n';
  console.log(line);
}

async function main() {
  if (!crossOriginIsolated) {
    throw new Error('the page is not cross-origin isolated: serve it with COOP/COEP headers (node examples/browser/serve.mjs)');
  }
  const heap = Heap.create({ maxBytes: 16 << 20 });
  const a = heap.createAllocator();
  log(`heap: ${heap.stats().committedBytes} bytes committed, growable to ${16 << 20}`);

  // A reserved slot: if the worker died, the page could release it with
  // heap.releaseSlot(slot.slot, slot.gen).
  const slot = heap.reserveSlot();
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  const fromWorker = (type) =>
    new Promise((ok, fail) => {
      worker.onmessage = ({ data }) => data.type === type && ok(data);
      worker.onerror = (e) => fail(new Error(`worker: ${e.message}`));
    });
  const tableReady = fromWorker('table');
  worker.postMessage({ type: 'start', heap: slot, alloc: a.handle, samples: SAMPLES });
  const { table } = await tableReady;
  log(`the worker wrote ${SAMPLES} samples at byte ${table}`);

  // The worklet gets its own slot and the same allocator.
  const ctx = new OfflineAudioContext({ numberOfChannels: 1, length: SAMPLE_RATE * SECONDS, sampleRate: SAMPLE_RATE });
  await ctx.audioWorklet.addModule(new URL('./worklet.js', import.meta.url));
  const node = new AudioWorkletNode(ctx, 'wavetable', {
    numberOfInputs: 0,
    outputChannelCount: [1],
    processorOptions: {
      heap: heap.reserveSlot(),
      alloc: a.handle,
      table,
      samples: SAMPLES,
      quanta: (SAMPLE_RATE * SECONDS) / 128,
    },
  });
  const workletError = new Promise((_, fail) => {
    node.onprocessorerror = () => fail(new Error('the worklet processor failed (see the console)'));
  });
  const report = new Promise((ok) => {
    node.port.onmessage = ({ data }) => ok(data);
  });
  node.connect(ctx.destination);
  const audio = await Promise.race([ctx.startRendering(), workletError]);
  const r = await Promise.race([report, workletError]);
  log(`the worklet rendered ${r.quanta} quanta with ${r.dropouts} dropouts and ${r.errors.length} errors`);
  for (const e of r.errors) log(`  worklet error: ${e}`);

  // The audio must be the worker's waveform, sample for sample, but for
  // the silence of a dropout.
  const samples = audio.getChannelData(0);
  const wave = new Float32Array(heap.u8.buffer, table, SAMPLES);
  let matching = 0;
  let wrong = 0;
  for (let i = 0; i < samples.length; i++) {
    if (samples[i] === wave[i % SAMPLES]) matching++;
    else if (samples[i] !== 0) wrong++;
  }
  log(`${matching} of ${samples.length} samples match the waveform, ${wrong} differ`);

  // Allocated by the worker, freed here.
  a.free(table);
  const stopped = fromWorker('stopped');
  worker.postMessage({ type: 'stop' });
  await stopped;
  worker.terminate();

  const bytesInUse = a.stats().bytesInUse;
  const problems = heap.validate();
  log(`bytes in use: ${bytesInUse}; heap.validate(): ${problems.length === 0 ? 'ok' : problems.join('; ')}`);
  const ok =
    r.errors.length === 0 &&
    r.quanta === (SAMPLE_RATE * SECONDS) / 128 &&
    r.bytesInUseAfter === r.bytesInUseBefore &&
    wrong === 0 &&
    matching >= samples.length - r.dropouts * 128 &&
    r.dropouts <= r.quanta / 100 &&
    bytesInUse === 0 &&
    problems.length === 0;
  return ok;
}

main().then(
  (ok) => {
    document.body.dataset.status = ok ? 'pass' : 'fail';
    document.getElementById('status').textContent = ok ? 'ok' : 'failed';
  },
  (e) => {
    log(`error: ${e && e.stack ? e.stack : e}`);
    document.body.dataset.status = 'fail';
    document.getElementById('status').textContent = 'failed';
  },
);
