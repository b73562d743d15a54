/**
 * Linearizability checking for concurrent histories (Wing & Gong's search
 * with Lowe's just-in-time linearization and a memo table, the way
 * Porcupine does it).
 *
 * A history is a set of completed operations, each with an invocation time
 * `call`, a response time `ret` and what it returned. It is linearizable
 * when some total order of the operations (1) keeps every operation that
 * returned before another was invoked ahead of it and (2) makes every
 * operation return, run one at a time against a sequential model from its
 * initial state, exactly what it returned in the history.
 *
 * The search walks the history's call and return events in time order,
 * holding the set of operations linearized so far. At a call event it may
 * linearize that operation now (if the model accepts its result in the
 * current state) and go on from the first event left; at a return event
 * whose operation is not yet linearized it must take back the latest
 * choice. Every (linearized set, model state) pair is tried at most once:
 * an order that reached it before and failed fails again.
 *
 * An operation whose outcome is unknown (its agent died, as Jepsen treats a
 * crashed client) gets ret = Infinity, and withUnknownOutcomes() lets it
 * take effect without checking its result: it may then take effect at any
 * point after its call, or never (ordered after everything else, where
 * nothing observes it).
 *
 * Histories of maps are checked per key: operations on different keys
 * commute, and a history is linearizable exactly when each key's
 * sub-history is (locality, Herlihy & Wing), which keeps each search small.
 */

/** One completed (or abandoned) operation of a history. */
export interface Operation<I, O> {
  /** Logical or real time of the invocation. */
  call: number;
  /** Time of the response (> call), Infinity when the outcome is unknown. */
  ret: number;
  input: I;
  output: O;
}

/** A sequential specification. States are immutable values. */
export interface Model<S, I, O> {
  init(): S;
  /** The state after `input` returns `output` in state s, or undefined when it cannot. */
  step(s: S, input: I, output: O): S | undefined;
  /** Two states with the same key behave alike from then on. */
  stateKey(s: S): string;
  /** The state after `input` takes effect when its result is unknown (for withUnknownOutcomes). */
  effect?(s: S, input: I): S;
}

export interface CheckResult {
  ok: boolean;
  /** Search steps taken (one per linearization tried). */
  steps: number;
  /** On failure: the most operations any order linearized, and their indices in order. */
  longestPrefix: number[];
  /** True when the step budget ran out (ok is then false and the result unknown). */
  gaveUp: boolean;
}

interface Entry {
  /** Operation index. */
  op: number;
  isCall: boolean;
  time: number;
  /** The matching return entry (calls only). */
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

/**
 * Checks one history against `model`. `maxSteps` bounds the search (the
 * problem is NP-complete in general; per-key map histories of a few
 * hundred operations take thousands of steps).
 */
export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  maxSteps = 5_000_000,
): CheckResult {
  const n = ops.length;
  for (let i = 0; i < n; i++) {
    const o = ops[i]!;
    if (!(o.ret > o.call)) throw new RangeError(`operation ${i}: response time ${o.ret} is not after its call time ${o.call}`);
  }
  // Events in time order; at equal times calls come first, so two
  // operations that touch at one instant count as concurrent.
  const events: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const ret: Entry = { op: i, isCall: false, time: ops[i]!.ret, match: null, prev: null, next: null };
    events.push({ op: i, isCall: true, time: ops[i]!.call, match: ret, prev: null, next: null }, ret);
  }
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Entry = { op: -1, isCall: false, time: -Infinity, match: null, prev: null, next: null };
  let last = head;
  for (const e of events) {
    e.prev = last;
    last.next = e;
    last = e;
  }

  // Dancing links: lifting an operation takes its call and return entries
  // out of the list; unlifting puts them back, in reverse order.
  const lift = (call: Entry): void => {
    call.prev!.next = call.next;
    if (call.next !== null) call.next.prev = call.prev;
    const ret = call.match!;
    ret.prev!.next = ret.next;
    if (ret.next !== null) ret.next.prev = ret.prev;
  };
  const unlift = (call: Entry): void => {
    const ret = call.match!;
    ret.prev!.next = ret;
    if (ret.next !== null) ret.next.prev = ret;
    call.prev!.next = call;
    if (call.next !== null) call.next.prev = call;
  };

  const done = new Uint32Array(Math.ceil(n / 32) || 1);
  const memo = new Set<string>();
  const stack: { call: Entry; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;
  let longest: number[] = [];

  while (head.next !== null) {
    if (steps > maxSteps) return { ok: false, steps, longestPrefix: longest, gaveUp: true };
    const e = entry!;
    if (e.isCall) {
      const o = ops[e.op]!;
      const next = model.step(state, o.input, o.output);
      if (next !== undefined) {
        steps++;
        done[e.op >>> 5]! |= 1 << (e.op & 31);
        const key = `${done.join(',')}|${model.stateKey(next)}`;
        if (!memo.has(key)) {
          memo.add(key);
          stack.push({ call: e, state });
          state = next;
          lift(e);
          if (stack.length > longest.length) longest = stack.map((s) => s.call.op);
          entry = head.next;
          continue;
        }
        done[e.op >>> 5]! &= ~(1 << (e.op & 31));
      }
      entry = e.next;
    } else {
      // The operation returning here was never linearized: undo the latest choice.
      const top = stack.pop();
      if (top === undefined) return { ok: false, steps, longestPrefix: longest, gaveUp: false };
      state = top.state;
      done[top.call.op >>> 5]! &= ~(1 << (top.call.op & 31));
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { ok: true, steps, longestPrefix: [], gaveUp: false };
}

/**
 * Reference checker for tests of the checker: tries every order of the
 * operations (so only for a handful of them). True when one order works.
 */
export function checkByBruteForce<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[]): boolean {
  const n = ops.length;
  const used = new Array<boolean>(n).fill(false);
  const search = (s: S, placed: number): boolean => {
    if (placed === n) return true;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      // i may go next only if no unplaced operation returned before i was called.
      let blocked = false;
      for (let j = 0; j < n && !blocked; j++) if (!used[j] && j !== i && ops[j]!.ret < ops[i]!.call) blocked = true;
      if (blocked) continue;
      const next = model.step(s, ops[i]!.input, ops[i]!.output);
      if (next === undefined) continue;
      used[i] = true;
      if (search(next, placed + 1)) return true;
      used[i] = false;
    }
    return false;
  };
  return search(model.init(), 0);
}

/* ------------------------------ map histories ------------------------------ */

/** The map operations the histories record. */
export type MapOpKind = 'update' | 'delete' | 'lookup';

export interface MapInput {
  kind: MapOpKind;
  /** update: MapFlag (0 ANY, 1 NOEXIST, 2 EXIST). */
  flag: number;
  /** update: the value written (unique per write, never 0). */
  value: number;
}

export interface MapOutput {
  /** update/delete: the MapStatus returned. */
  status: number;
  /** lookup: whether the key was found, and the value read. */
  found: boolean;
  value: number;
}

/** One map operation of a history, on one key, by one worker. */
export interface MapOp extends Operation<MapInput, MapOutput> {
  key: number;
  worker: number;
}

/** MapStatus values the model knows (the same numbers as src/map/hashmap.ts). */
const OK = 0;
const NOT_FOUND = -2;
const EXISTS = -17;
/** Statuses that say the operation did nothing for a reason outside one key (FULL, NO_MEMORY, BUSY). */
const NO_EFFECT = new Set([-7, -12, -16]);
const NOEXIST = 1;
const EXIST = 2;

/**
 * One key of a map, as a sequential object: its state is the value held
 * (values written are never 0) or 0 when absent. Statuses that depend on
 * the whole map (FULL, NO_MEMORY, BUSY) are accepted in any state as
 * no-ops; tests that expect none of them check that separately.
 */
export const mapKeyModel: Model<number, MapInput, MapOutput> = {
  init: () => 0,
  step(s, input, output) {
    switch (input.kind) {
      case 'lookup':
        if (!output.found) return s === 0 ? s : undefined;
        return s !== 0 && output.value === s ? s : undefined;
      case 'delete':
        if (NO_EFFECT.has(output.status)) return s;
        if (s !== 0) return output.status === OK ? 0 : undefined;
        return output.status === NOT_FOUND ? s : undefined;
      case 'update':
        if (NO_EFFECT.has(output.status)) return s;
        if (input.flag === NOEXIST && s !== 0) return output.status === EXISTS ? s : undefined;
        if (input.flag === EXIST && s === 0) return output.status === NOT_FOUND ? s : undefined;
        return output.status === OK ? input.value : undefined;
    }
  },
  stateKey: (s) => String(s),
  effect(s, input) {
    if (input.kind === 'lookup') return s;
    if (input.kind === 'delete') return 0;
    if (input.flag === NOEXIST && s !== 0) return s;
    if (input.flag === EXIST && s === 0) return s;
    return input.value;
  },
};

/**
 * The model, except that operations whose output `unknown` says is not
 * known take effect (model.effect) whatever they returned. Give such
 * operations ret = Infinity.
 */
export function withUnknownOutcomes<S, I, O>(model: Model<S, I, O>, unknown: (output: O) => boolean): Model<S, I, O> {
  const effect = model.effect;
  if (effect === undefined) throw new TypeError('withUnknownOutcomes needs a model with effect()');
  return {
    init: () => model.init(),
    stateKey: (s) => model.stateKey(s),
    step(s, input, output) {
      return unknown(output) ? effect(s, input) : model.step(s, input, output);
    },
  };
}

export interface MapHistoryVerdict {
  /** Keys whose sub-history is not linearizable, with a readable account of each. */
  violations: { key: number; report: string }[];
  /** Search steps over all keys. */
  steps: number;
}

/** Checks a map history key by key. */
export function checkMapHistory(ops: readonly MapOp[], maxStepsPerKey?: number): MapHistoryVerdict {
  const byKey = new Map<number, MapOp[]>();
  for (const op of ops) {
    let list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, (list = []));
    list.push(op);
  }
  const violations: MapHistoryVerdict['violations'] = [];
  let steps = 0;
  for (const [key, list] of [...byKey].sort((a, b) => a[0] - b[0])) {
    const r = checkLinearizable(mapKeyModel, list, maxStepsPerKey);
    steps += r.steps;
    if (!r.ok) violations.push({ key, report: describeFailure(key, list, r) });
  }
  return { violations, steps };
}

/** One line per operation: who, what, what it returned, when. */
export function formatMapOp(op: MapOp): string {
  const flag = ['ANY', 'NOEXIST', 'EXIST'][op.input.flag] ?? String(op.input.flag);
  const what =
    op.input.kind === 'update'
      ? `update(${flag}, ${op.input.value}) -> ${op.output.status}`
      : op.input.kind === 'delete'
        ? `delete -> ${op.output.status}`
        : `lookup -> ${op.output.found ? op.output.value : 'absent'}`;
  return `w${op.worker} [${op.call}, ${op.ret}] ${what}`;
}

function describeFailure(key: number, ops: readonly MapOp[], r: CheckResult): string {
  const order = [...ops.keys()].sort((a, b) => ops[a]!.call - ops[b]!.call);
  const lines = order.map((i) => `  #${i} ${formatMapOp(ops[i]!)}`);
  const prefix = r.longestPrefix.map((i) => `#${i}`).join(' ');
  const why = r.gaveUp ? `gave up after ${r.steps} steps` : `no order works (${r.steps} steps)`;
  return `key ${key}: ${why}; longest valid prefix: ${prefix || '(none)'}\n${lines.join('\n')}`;
}
