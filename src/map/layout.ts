/**
 * Shared-memory layout of a HashMap (the BPF hash map, on the allocator).
 *
 * Map region (page-aligned, tag REGION), from heap.takeRegion:
 *
 *   +--------------+--------------------------+------------------------------+
 *   | map header   | slot rows                | buckets                      |
 *   | 32 words     | maxSlots x 16 words      | nBuckets x 1 word            |
 *   |              | (one 64 B line per slot) | head pointer | lock bit      |
 *   +--------------+--------------------------+------------------------------+
 *
 * Header words: all `once` (written by the creator before the handle is
 * published), except RESERVED and STATE.
 *
 * Slot row (owner-written with plain stores, read racily by count(); QUOTA
 * is the one word other agents write too):
 *   COUNT  elements this slot inserted minus those it deleted (int32; a
 *          slot's own count may go negative, the sum may not).
 *   QUOTA  entries reserved from RESERVED and not used yet. The owner
 *          writes it with plain stores, only while it holds a bucket lock
 *          (INTENT set); another agent near maxEntries takes it back with a
 *          cas to a negative mark (see markEntries at the end) and a cas of
 *          that mark to 0 once it saw the owner's INTENT clear; the owner
 *          (claimMark), the agent that detaches the slot (returnQuota) and
 *          a survivor settle a mark with a cas to 0 (../map/quota.ts). A
 *          survivor changes it only by that cas: an entry it gives back
 *          for a dead writer goes straight to RESERVED.
 *   INTENT bucket + 1 from just before this slot's cas on that bucket's
 *          lock until after the store that releases it (cleared at once
 *          when the cas fails): while a slot holds a lock its INTENT names
 *          the bucket, so a locked bucket that no live slot names is held
 *          by a dead one (../recovery/map-slot.ts).
 *   OP, OP_BUCKET, OP_ELEM, OP_OLD, OP_COUNT, OP_QUOTA: the write in
 *          flight (a redo/undo record, OP written last when it starts and
 *          cleared when it is done): OP_INSERT/OP_REPLACE of the new
 *          element OP_ELEM into bucket OP_BUCKET - 1 (replacing OP_OLD),
 *          OP_DELETE of OP_ELEM (delete, lookupAndDelete, and each
 *          element of a batch delete or a clear), OP_SLOT_WRITE of this
 *          slot's per-worker value in OP_ELEM; OP_COUNT is COUNT before
 *          it. OP_QUOTA is OP_QUOTA_NONE when the record is written; the
 *          step that takes or gives the write's entry (takeEntry,
 *          giveEntry, ../map/quota.ts) stores QUOTA into it just before
 *          it moves QUOTA by one, so QUOTA = OP_QUOTA - 1 says the entry
 *          was taken, QUOTA = OP_QUOTA + 1 (or MOVING set after that:
 *          the batch that follows went back) that it was given. (The
 *          record cannot hold QUOTA from its start: a mark settled, a
 *          refill, can move QUOTA by one in between.) A survivor that
 *          releases the slot of a writer that died mid-write completes
 *          or rolls it back from this record (../recovery/map-slot.ts).
 *   MOVING entries in flight between QUOTA (or a mark) and RESERVED: set
 *          before a move starts (refill's cas on RESERVED, giveEntry's
 *          batch back, the cas that settles a mark, detach's cas on QUOTA)
 *          and cleared once both sides are written, 0 else.
 *
 * Bucket word: the first element of the chain, with bit 0 set while a
 *   writer holds the bucket's lock (elements are 16-byte aligned, so the
 *   low bits of a pointer are free). A writer takes the lock with a cas
 *   that sets bit 0 and releases it with one Atomics.store of the new
 *   head, which also publishes an inserted first element. Readers
 *   Atomics.load it, mask bit 0 and never wait for the lock.
 *
 * Element (an object of the map's fixed-size allocator):
 *
 *   +------+------+-----------------+--------------------------------------+
 *   | next | ver  | key (keySize,   | value area, one of:                  |
 *   |      |      |  padded to 8)   |  in place (default): copy 0, copy 1  |
 *   |      |      |                 |   (each valueSize padded to 8)       |
 *   |      |      |                 |  inPlace: false: value               |
 *   |      |      |                 |  per-worker: maxSlots records of     |
 *   |      |      |                 |   [seq | pad | value padded to 8]    |
 *   +------+------+-----------------+--------------------------------------+
 *
 *   (No stored hash: a chain holds about four elements, and comparing a
 *   key's first word rejects a wrong element as fast as a hash would. So
 *   an in-place element of 8-byte keys and values is 32 bytes, two to a
 *   cache line; at 48 bytes elements straddled lines, and two agents'
 *   elements sharing a line made a preallocated and a dynamic map's
 *   speeds differ by up to 6% from one layout to the next.)
 *
 *   next   Atomics.store by the bucket's lock holder (insert, replace,
 *          delete); Atomics.load by readers. Unchanged once the element
 *          is unlinked, so a reader standing on it can go on walking.
 *   key    written once before the store that publishes the element;
 *          never changed while any reader may see it.
 *   ver    (in-place maps; unused else) bit 0: LOCK, held by the one
 *          writer of the spare copy; bit 1: which copy is current; bits
 *          2-31: STAMP, the epoch (mod 2^30) that its writer read (an
 *          atomic load after its pin) before it made the current copy
 *          current. Written with plain stores before the
 *          element is published, then only by cas (take LOCK) and
 *          Atomics.store (flip: new current copy, new STAMP, LOCK clear).
 *          Readers load it plainly and take the copy it names: the copy's
 *          address depends on the loaded word, so its loads are ordered
 *          after it, as with next.
 *   copies (in-place maps) the current copy is never written. A writer
 *          that holds LOCK writes the spare copy and flips. It may take
 *          LOCK only once the epoch it read after pinning is V_GRACE past
 *          the STAMP (and not behind it: counts of 2^29 or more mod 2^30
 *          are a stamp ahead). Why that is enough: the spare copy was
 *          current before the last flip. The flipping writer read the
 *          epoch STAMP after its pin was visible; while it stays pinned
 *          the epoch can pass STAMP + 1 only if its pin equals STAMP + 1,
 *          which no pin read before that load can. So a reader that
 *          loaded ver before the flip made its pin visible while the
 *          epoch was STAMP + 1 at most, and holds the epoch at or below
 *          STAMP + 2 until it leaves: at STAMP + 3 it has left. (V_GRACE is 4 because the 32-bit epoch
 *          skips 0 when it wraps, which a 30-bit count sees as one more
 *          epoch.) So a reader never sees a torn value. A writer that finds LOCK
 *          taken, or the grace not passed, replaces the element instead
 *          (as inPlace: false maps always do); a writer that dies holding
 *          LOCK leaves a spare copy nobody reads, and the next update of
 *          the key replaces the element.
 *   value  (inPlace: false) written once before publication; update
 *          replaces the element; the old one is freed after a grace
 *          period.
 *   per-worker records: written in place by the owning slot only, inside
 *          a seqlock: seq odd while the owner writes; readers copy and
 *          retry while seq is odd or changed. Seq and every value word
 *          are stored and loaded with Atomics: JS has no fences, and on a
 *          weakly ordered CPU plain value loads could be performed after
 *          the reader's second load of seq (plain stores before the
 *          writer's odd seq).
 *
 * Invariants (quiet map):
 *   sum(COUNT) = elements reachable from the buckets = count()
 *   sum(COUNT) + sum(QUOTA) <= RESERVED <= that + RESERVED_SLACK,
 *   RESERVED <= maxEntries
 *   every reachable element's key hashes to the bucket it is in, keys unique.
 */
export const MAP_MAGIC = 0x6d617041; // "Apam"

export const MapHeader = {
  MAGIC: 0,
  KEY_SIZE: 1,
  VALUE_SIZE: 2,
  MAX_ENTRIES: 3,
  BUCKETS: 4,
  SEED: 5,
  /** 0 preallocated, 1 dynamic. */
  MODE: 6,
  /** 1 for per-worker values. */
  PER_WORKER: 7,
  /** Id of the element allocator. */
  ELEM_ALLOC: 8,
  /** Byte offset of the key within an element. */
  KEY_OFF: 9,
  /** Byte offset of the value (or of slot 0's record) within an element. */
  VALUE_OFF: 10,
  /** Per-worker: bytes per slot record; in-place maps: bytes per value copy. */
  VALUE_STRIDE: 11,
  /** atomic by any: entries reserved by all slots (counted + quota). */
  RESERVED: 12,
  /** cas by any: LIVE, DESTROYED. */
  STATE: 13,
  /** Unused (attachments are counted by the element allocator). */
  ATTACHED: 14,
  /** once: bytes per element (the allocator's unit). */
  ELEM_SIZE: 15,
  /** once: elements the preallocated mode holds. */
  CAPACITY: 16,
  /**
   * atomic by releasers: how far RESERVED may exceed sum(COUNT) +
   * sum(QUOTA) because writers died between their atomic operation on
   * RESERVED and their store of QUOTA (it cannot be known which side of
   * it they died on; each such death adds at most one quota batch).
   */
  RESERVED_SLACK: 17,
  /** once: 2 when values are updated in place (two copies and a version word), 1 else. */
  VALUE_COPIES: 18,
} as const;
export const MAP_HEADER_WORDS = 32;
export const MAP_SLOT_WORDS = 16;
export const MapSlotRow = {
  COUNT: 0,
  QUOTA: 1,
  INTENT: 2,
  OP: 3,
  OP_BUCKET: 4,
  OP_ELEM: 5,
  OP_OLD: 6,
  OP_COUNT: 7,
  OP_QUOTA: 8,
  MOVING: 9,
} as const;
export const OP_INSERT = 1;
export const OP_REPLACE = 2;
export const OP_DELETE = 3;
export const OP_SLOT_WRITE = 4;
/** OP_QUOTA of a write record whose entry is neither taken nor given yet (no QUOTA is within one of it). */
export const OP_QUOTA_NONE = 0x7fffffff;
export const MAP_LIVE = 1;
export const MAP_DESTROYED = 2;

/** Version word of an in-place map's value (see the element diagram above). */
export const V_LOCK = 1;
export const V_COPY_SHIFT = 1;
export const V_STAMP_SHIFT = 2;
export const V_STAMP_MASK = 0x3fffffff;
/**
 * Epochs that must pass, counted from the stamp, before the copy that the
 * stamped flip retired may be written again (3 by the argument above, one
 * more because the 32-bit epoch skips 0 when it wraps).
 */
export const V_GRACE = 4;
/** Counts of epochs since a stamp at or above this are a stamp ahead of the reader's epoch (mod 2^30): not passed. */
export const V_STAMP_AHEAD = 1 << 29;

/** Element words. */
export const E_NEXT = 0;
/** In-place maps: the version word of the value copies. */
export const E_VER = 1;
export const E_KEY_OFF = 8;

/**
 * Entries a slot's QUOTA word stands for: the word itself, or for a
 * taker's mark (./quota.ts, reclaimQuotas) the q entries it marked: a
 * mark is negative, -(q + 256 x tag), q < 256 (a quota stays below 2 x
 * quotaBatch), with a tag unique to the taker and its attempt, so that a
 * mark settled and made again never looks like the one a taker saw
 * before (no ABA).
 */
export function markEntries(quota: number): number {
  return quota < 0 ? -quota & 255 : quota;
}

