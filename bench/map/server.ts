/**
 * The `jsmap-postmessage` peer's server: one worker owns a plain JS Map and
 * answers update / lookup / delete requests that client workers send
 * through MessagePorts, one reply per request. Nothing is batched: a client
 * waits for each reply before it sends its next request (it sleeps in
 * Atomics.wait on its word of `replied`, which the server raises after
 * posting the reply, and takes the reply with receiveMessageOnPort).
 *
 * Requests are [op, key, value]; the reply is true when the operation did
 * what it was asked (set: always; get / delete: the key was there; add: the
 * key was absent and is now set).
 */
import { parentPort } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { OP_ADD, OP_DELETE, OP_GET, OP_SET } from './protocol.js';

const map = new Map<number, number>();

function serve(port: MessagePort, replied: Int32Array, i: number): void {
  port.on('message', ([op, k, v]: [number, number, number]) => {
    let ok: boolean;
    if (op === OP_SET) ok = map.set(k, v) !== undefined;
    else if (op === OP_GET) ok = map.get(k) !== undefined;
    else if (op === OP_DELETE) ok = map.delete(k);
    else if (op === OP_ADD) ok = !map.has(k) && map.set(k, v) !== undefined;
    else throw new RangeError(`unknown map server op ${op}`);
    port.postMessage(ok);
    Atomics.store(replied, i, 1);
    Atomics.notify(replied, i);
  });
}

parentPort?.once('message', ({ ports, replied }: { ports: MessagePort[]; replied: SharedArrayBuffer }) => {
  ports.forEach((p, i) => serve(p, new Int32Array(replied), i));
  parentPort!.postMessage('ready');
});
