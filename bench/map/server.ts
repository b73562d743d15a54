/**
 * The `jsmap-postmessage` peer's server: one worker owns a plain JS Map and
 * answers update / lookup / delete requests that client workers send
 * through MessagePorts, one reply per request. Nothing is batched: a client
 * waits for each reply before it sends its next request.
 *
 * Requests are [op, key, value]; the reply is true when the operation did
 * what it was asked (set: always; get / delete: the key was there; add: the
 * key was absent and is now set).
 */
import { parentPort } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';

const SET = 0;
const GET = 1;
const DELETE = 2;
const ADD = 3;

const map = new Map<number, number>();

function serve(port: MessagePort): void {
  port.on('message', ([op, k, v]: [number, number, number]) => {
    let ok: boolean;
    switch (op) {
      case SET:
        map.set(k, v);
        ok = true;
        break;
      case GET:
        ok = map.get(k) !== undefined;
        break;
      case DELETE:
        ok = map.delete(k);
        break;
      case ADD:
        ok = !map.has(k);
        if (ok) map.set(k, v);
        break;
      default:
        throw new RangeError(`unknown map server op ${op}`);
    }
    port.postMessage(ok);
  });
}

parentPort!.once('message', (ports: MessagePort[]) => {
  for (const p of ports) serve(p);
  parentPort!.postMessage('ready');
});
