/**
 * The JS Map peer: one worker owns a plain Map and serves update / lookup /
 * delete requests that other workers send through MessagePorts.
 */
import { parentPort } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';

const map = new Map<number, number>();
parentPort!.on('message', (ports: MessagePort[]) => {
  for (const port of ports) {
    port.on('message', ([op, k, v]: [number, number, number]) => {
      let ok: boolean;
      if (op === 0) {
        map.set(k, v);
        ok = true;
      } else if (op === 1) ok = map.has(k);
      else ok = map.delete(k);
      port.postMessage(ok);
    });
  }
  parentPort!.postMessage('ready');
});
