// The example's worker: attaches to the page's heap, writes one cycle of
// a waveform into a new object and posts its pointer (a plain number, the
// same in every agent). Then it detaches when the page says so.
//
// Workers do not see the page's import map, so the library is imported by
// a URL relative to this file: the same dist/src/index.js the page's
// import map names. (Passing the URL in a message and import()ing it works
// in a worker too, but not in a worklet; one rule for both is simpler.)
import { Heap } from '../../dist/src/index.js';

onmessage = ({ data }) => {
  if (data.type === 'start') {
    const heap = Heap.attach(data.heap);
    const a = heap.attachAllocator(data.alloc);
    const n = data.samples;
    const table = a.alloc(n * 4);
    if (table === 0) throw new Error('the heap is full');
    // A Float32Array over the shared buffer at the object: the buffer may
    // grow later, but it never moves, so this view stays valid.
    const wave = new Float32Array(heap.u8.buffer, table, n);
    for (let i = 0; i < n; i++) {
      const x = (2 * Math.PI * i) / n;
      wave[i] = 0.5 * Math.sin(x) + 0.25 * Math.sin(3 * x);
    }
    self.heap = heap;
    postMessage({ type: 'table', table });
  } else if (data.type === 'stop') {
    // Give this worker's cached objects back and free its slot.
    self.heap.detach();
    postMessage({ type: 'stopped' });
  }
};
