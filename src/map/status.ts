/**
 * The numbers of the map's interface: update() flags and the statuses that
 * writes return, with the kernel's values (BPF_ANY / BPF_NOEXIST /
 * BPF_EXIST, and negated errno values).
 */

/** update() flags, as the kernel's BPF_ANY / BPF_NOEXIST / BPF_EXIST. */
export const MapFlag = {
  /** Create the key or replace its value. */
  ANY: 0,
  /** Create only: MapStatus.EXISTS if the key is there. */
  NOEXIST: 1,
  /** Replace only: MapStatus.NOT_FOUND if the key is absent. */
  EXIST: 2,
} as const;

/** Results of update/delete and the batch operations: 0 on success, else a negative status (the kernel's errno values). */
export const MapStatus = {
  /** Done. */
  OK: 0,
  /** The key is absent (ENOENT). */
  NOT_FOUND: -2,
  /** No memory for a new element: the heap is full (ENOMEM). */
  NO_MEMORY: -12,
  /** A bucket lock stayed taken past the spin limit (EBUSY): a writer stalled or died. */
  BUSY: -16,
  /** The key exists and NOEXIST was given (EEXIST). */
  EXISTS: -17,
  /** maxEntries elements exist already (E2BIG). */
  FULL: -7,
  /** A batch's buffers cannot hold the first bucket it would copy (ENOSPC): nothing was copied. */
  NO_SPACE: -28,
} as const;
