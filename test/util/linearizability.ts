/**
 * A linearizability checker for histories of map operations, in the style
 * of Wing & Gong with memoization (as Porcupine does): the history is split
 * per key (operations on different keys commute), and for each key we
 * search for a total order that respects real time (an operation that
 * responded before another was invoked comes first) and in which every
 * operation returns what a sequential map would.
 */
import type { LinOp } from './map-protocol.js';

const OK = 0;
const NOT_FOUND = -2;
const EXISTS = -17;
const NOEXIST = 1;
const EXIST = 2;

interface State {
  present: boolean;
  value: number;
}

/** The sequential model: the new state when `op` returns what it returned in that state, else null. */
function step(s: State, op: LinOp): State | null {
  switch (op.kind) {
    case 'lookup':
      return op.found === s.present && (!s.present || op.value === s.value) ? s : null;
    case 'delete':
      if (s.present) return op.status === OK ? { present: false, value: 0 } : null;
      return op.status === NOT_FOUND ? s : null;
    case 'update':
      if (op.flag === NOEXIST && s.present) return op.status === EXISTS ? s : null;
      if (op.flag === EXIST && !s.present) return op.status === NOT_FOUND ? s : null;
      return op.status === OK ? { present: true, value: op.value } : null;
  }
}

/** True when the operations on one key are linearizable from an absent key. */
export function linearizableKey(ops: readonly LinOp[]): boolean {
  const n = ops.length;
  const done = new Uint8Array(n);
  const memo = new Set<string>();
  const search = (s: State, left: number): boolean => {
    if (left === 0) return true;
    const id = `${done.join('')}|${s.present ? s.value : '-'}`;
    if (memo.has(id)) return false;
    memo.add(id);
    let minRes = Infinity;
    for (let i = 0; i < n; i++) if (done[i] === 0 && ops[i]!.res < minRes) minRes = ops[i]!.res;
    for (let i = 0; i < n; i++) {
      if (done[i] !== 0 || ops[i]!.inv > minRes) continue;
      const next = step(s, ops[i]!);
      if (next === null) continue;
      done[i] = 1;
      if (search(next, left - 1)) return true;
      done[i] = 0;
    }
    return false;
  };
  return search({ present: false, value: 0 }, n);
}

/** Keys whose sub-history is not linearizable (empty when the history is). */
export function nonLinearizableKeys(ops: readonly LinOp[]): number[] {
  const byKey = new Map<number, LinOp[]>();
  for (const op of ops) {
    const list = byKey.get(op.key) ?? [];
    list.push(op);
    byKey.set(op.key, list);
  }
  const bad: number[] = [];
  for (const [k, list] of byKey) if (!linearizableKey(list)) bad.push(k);
  return bad.sort((a, b) => a - b);
}
