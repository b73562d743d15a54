/**
 * A single-producer / single-consumer ring of (pointer, size) pairs in its
 * own SharedArrayBuffer, for handing objects from one worker to another.
 *
 * Layout (Int32 words; the hot counters sit on separate 64-byte lines):
 *
 *   word 0   capacity (a power of two; once)
 *   word 16  head: entries pushed so far  (producer: Atomics.store)
 *   word 17  producer sleeping (1 while in Atomics.wait for space)
 *   word 32  tail: entries popped so far  (consumer: Atomics.store)
 *   word 33  consumer sleeping (1 while in Atomics.wait for data)
 *   word 48  closed: the producer pushes no more (producer: Atomics.store)
 *   word 64  entries: 2 words each, [pointer, size], index = count & mask
 *
 * An entry is written with plain stores before the Atomics.store of head
 * that publishes it, and read after the Atomics.load of head that sees it;
 * the same pairing on tail hands the entry's words back to the producer.
 *
 * Push never waits: tryPush() fails when the ring is full and the caller
 * decides how to back off (the remote-free producer spins, then sleeps
 * briefly, never inside alloc). Every wait here has a timeout, so a wake-up
 * lost to a race costs at most one timeout, and a stalled peer turns into
 * an error at the caller's deadline instead of a hang.
 */

const CAPACITY = 0;
const HEAD = 16;
const PRODUCER_SLEEPING = 17;
const TAIL = 32;
const CONSUMER_SLEEPING = 33;
const CLOSED = 48;
const ENTRIES = 64;

/** Longest single Atomics.wait, in milliseconds. */
const NAP_MS = 2;

export class SpscRing {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  private readonly i32: Int32Array;
  private readonly mask: number;

  /** Bytes of buffer a ring of `capacity` entries needs. */
  static bytes(capacity: number): number {
    return (ENTRIES + 2 * capacity) * 4;
  }

  /** A new ring in a new buffer. */
  static create(capacity: number): SpscRing {
    if (capacity < 1 || (capacity & (capacity - 1)) !== 0) throw new RangeError(`ring capacity must be a power of two, got ${capacity}`);
    const buffer = new SharedArrayBuffer(SpscRing.bytes(capacity));
    new Int32Array(buffer)[CAPACITY] = capacity;
    return new SpscRing(buffer);
  }

  /** Opens a ring made by create(), from its buffer (e.g. in a worker). */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.i32 = new Int32Array(buffer);
    this.capacity = this.i32[CAPACITY]!;
    this.mask = this.capacity - 1;
  }

  /** Entries pushed so far (any agent). */
  get pushed(): number {
    return Atomics.load(this.i32, HEAD);
  }

  /** Entries popped so far (any agent). */
  get popped(): number {
    return Atomics.load(this.i32, TAIL);
  }

  /* ------------------------------ producer ------------------------------ */

  /** Appends (p, size); false when the ring is full. Never waits, allocates nothing. */
  tryPush(p: number, size: number): boolean {
    const i32 = this.i32;
    const head = i32[HEAD]!; // only the producer writes head
    if (head - Atomics.load(i32, TAIL) >= this.capacity) return false;
    const e = ENTRIES + 2 * (head & this.mask);
    i32[e] = p;
    i32[e + 1] = size;
    Atomics.store(i32, HEAD, head + 1); // publishes the entry
    if (Atomics.load(i32, CONSUMER_SLEEPING) !== 0) Atomics.notify(i32, HEAD, 1);
    return true;
  }

  /** Sleeps up to NAP_MS until the consumer makes room (call after tryPush failed). */
  napUntilSpace(): void {
    const i32 = this.i32;
    const tail = Atomics.load(i32, TAIL);
    if (i32[HEAD]! - tail < this.capacity) return;
    Atomics.store(i32, PRODUCER_SLEEPING, 1);
    Atomics.wait(i32, TAIL, tail, NAP_MS);
    Atomics.store(i32, PRODUCER_SLEEPING, 0);
  }

  /** No more pushes; wakes the consumer. */
  close(): void {
    Atomics.store(this.i32, CLOSED, 1);
    Atomics.notify(this.i32, HEAD, 1);
  }

  /* ------------------------------ consumer ------------------------------ */

  /**
   * Entries available to pop right now (0 when empty). Read them with
   * pointerAt/sizeAt(popped + k) for k below the count, then release()
   * them.
   */
  available(): number {
    return Atomics.load(this.i32, HEAD) - this.i32[TAIL]!; // only the consumer writes tail
  }

  pointerAt(index: number): number {
    return this.i32[ENTRIES + 2 * (index & this.mask)]!;
  }

  sizeAt(index: number): number {
    return this.i32[ENTRIES + 2 * (index & this.mask) + 1]!;
  }

  /** Hands n popped entries' space back to the producer. */
  release(n: number): void {
    const i32 = this.i32;
    Atomics.store(i32, TAIL, i32[TAIL]! + n);
    if (Atomics.load(i32, PRODUCER_SLEEPING) !== 0) Atomics.notify(i32, TAIL, 1);
  }

  /** True once the producer has closed the ring and everything was popped. */
  drained(): boolean {
    return Atomics.load(this.i32, CLOSED) !== 0 && this.available() === 0;
  }

  /** Sleeps up to NAP_MS until there is something to pop or the ring closes. */
  napUntilData(): void {
    const i32 = this.i32;
    const head = Atomics.load(i32, HEAD);
    if (head !== i32[TAIL]! || Atomics.load(i32, CLOSED) !== 0) return;
    Atomics.store(i32, CONSUMER_SLEEPING, 1);
    Atomics.wait(i32, HEAD, head, NAP_MS);
    Atomics.store(i32, CONSUMER_SLEEPING, 0);
  }
}
