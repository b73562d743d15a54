/**
 * Running a function soon, after the current task, in every scope a user
 * has. queueMicrotask where the scope has it; where it does not (an
 * AudioWorkletGlobalScope has neither queueMicrotask nor setTimeout), the
 * reaction of a resolved promise, which is a microtask too. Looked up at
 * each call (only slow paths schedule), so a scope that gains or loses the
 * global later is still served.
 *
 * `later` never throws: when nothing could be scheduled it returns false
 * and the caller keeps its work pending, to run at its next chance. A
 * failed schedule must never leave a "scheduled" flag set with nothing
 * behind it (a cache would never be refilled again) or lose what the
 * caller holds.
 */
export function later(fn: () => void): boolean {
  try {
    const queue = (globalThis as { queueMicrotask?: (f: () => void) => void }).queueMicrotask;
    if (typeof queue === 'function') queue(fn);
    else void Promise.resolve().then(fn);
    return true;
  } catch {
    return false;
  }
}
