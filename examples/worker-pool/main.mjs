// A piscina pool whose threads share one anyalloc heap. The pool starts
// threads on demand and terminates them when idle; each thread attaches
// when it loads and never detaches. releaseExitedWorkers gives each
// terminated thread's slot back, so the heap never runs out of slots.
//
//   node examples/worker-pool/main.mjs
import { Piscina } from 'piscina';
import { Heap } from 'anyalloc';
import { releaseExitedWorkers } from 'anyalloc/node';

const heap = Heap.create({ maxWorkers: 4 + 1 }); // 4 pool threads + this one
const strings = heap.createAllocator();
const watch = releaseExitedWorkers(heap); // before the pool creates threads

const pool = new Piscina({
  filename: new URL('./task.mjs', import.meta.url).href,
  maxThreads: 4,
  minThreads: 0,
  idleTimeout: 20,
  workerData: { heap: watch.handle, strings: strings.handle },
});

const decoder = new TextDecoder();
for (let burst = 0; burst < 5; burst++) {
  // Each task writes a greeting into the shared heap and returns where.
  const ptrs = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.run(`burst ${burst}, task ${i}`)));
  heap.refresh();
  for (const p of ptrs) {
    const len = heap.u32[p >>> 2];
    if (burst === 0 && p === ptrs[0]) console.log(decoder.decode(heap.u8.slice(p + 4, p + 4 + len)));
    strings.free(p); // freed here, allocated in a pool thread
  }
  await new Promise((r) => setTimeout(r, 100)); // idle: the pool terminates its threads
}
await pool.destroy();
await new Promise((r) => setTimeout(r, 50)); // the last 'exit' events

const s = watch.stats();
console.log(`${s.workersSeen} pool threads came and went; ${s.released} slots released after their exit`);
console.log(`slots still taken: ${heap.slots().length} (this thread's)`);
console.log(`heap.validate(): ${heap.validate().length === 0 ? 'consistent' : heap.validate().join('; ')}`);
