/**
 * The public heap: HeapCore (buffer, views, slots, pages) plus what sits on
 * it: creating and attaching allocators, checking every invariant, and
 * releasing the slot of an agent that is gone.
 */
import { checkInt, checkOptions, rangeError, withCode } from './errors.js';
import { HeapCore, type HeapHandle } from './heap/core.js';
import { checkAllocatorHandle, checkHeapHandle } from './heap/handles.js';
import { formatHeap, type HeapOptions } from './heap/format.js';
import { Allocator } from './alloc/allocator.js';
import { validateHeap } from './alloc/validate.js';
import type { AllocatorHandle, AllocatorOptions, AttachOptions } from './alloc/types.js';
import { openAllocator } from './alloc/debug/open.js';
import { releaseSlot } from './recovery/release-slot.js';

/** The option names of createAllocator and their types (checkOptions; ranges in ./alloc/create.ts). */
const ALLOCATOR_OPTIONS = {
  unitSize: 'integer',
  limitBytes: 'integer',
  lowWatermark: 'integer',
  highWatermark: 'integer',
  batch: 'integer',
  prefill: 'integer',
  nowait: 'boolean',
  debug: 'boolean',
} as const;

/** The option names of attachAllocator. */
const ATTACH_OPTIONS = { nowait: 'boolean' } as const;

/** Options of Heap.attach. */
export interface HeapAttachOptions {
  /**
   * A tag for this agent's slot, 1..2^32-1, recorded with the slot as it is
   * taken (heap.slots() shows it): a host that learns an agent is gone
   * finds its slot by it, even if the agent died right after attaching.
   * anyalloc/node's attachInWorker gives its thread id + 1.
   */
  owner?: number;
}

export class Heap extends HeapCore {
  /** Creates a heap in a new growable SharedArrayBuffer (or in `memory`) and attaches this agent. */
  static create(options?: HeapOptions): Heap {
    const { sab, memory, base, states } = formatHeap(options);
    const heap = new Heap(sab, memory, base, states);
    heap.claimSlot(-1, 0);
    return heap;
  }

  /** Attaches this agent to a heap made elsewhere; takes a worker slot. */
  static attach(handle: HeapHandle, options?: HeapAttachOptions): Heap {
    // Every field checked before the buffer is read or a slot taken.
    checkHeapHandle(handle);
    const o = checkOptions<HeapAttachOptions>('Heap.attach', options, { owner: 'integer' });
    const owner = o.owner === undefined ? 0 : checkInt('owner', o.owner, 1, 0xffffffff, 'bad-option');
    const heap = new Heap(handle.buffer, handle.memory, handle.base, handle.states);
    heap.claimSlot(handle.slot ?? -1, handle.gen ?? 0, owner);
    return heap;
  }

  /**
   * Creates an allocator in this heap and attaches it in this agent.
   * Size-bucketed by default; fixed-size with `unitSize`.
   */
  createAllocator(options?: AllocatorOptions): Allocator {
    this.checkAttached('createAllocator');
    const given = checkOptions<AllocatorOptions>('createAllocator', options, ALLOCATOR_OPTIONS);
    const id = Allocator.create(this, given);
    return openAllocator(this, id, { nowait: given.nowait === true });
  }

  /** Attaches, in this agent, an allocator created elsewhere (from its handle). */
  attachAllocator(handle: AllocatorHandle, options?: AttachOptions): Allocator {
    this.checkAttached('attachAllocator');
    const given = checkOptions<AttachOptions>('attachAllocator', options, ATTACH_OPTIONS);
    // The handle's kind, heap and generation, checked before anything is written.
    checkAllocatorHandle(this, handle, 'attachAllocator');
    return openAllocator(this, handle.id, given, handle.gen);
  }

  private checkAttached(op: string): void {
    if (this.slot < 0) throw rangeError('detached', `${op}: this agent has detached from the heap`);
  }

  /**
   * Checks every invariant of the heap and its live allocators. Call it
   * when no agent is allocating or freeing (between rounds of work; an
   * agent that used freeDeferred is quiet once it returned to its event
   * loop or called collectDeferred()).
   * Returns the list of problems; empty means consistent.
   */
  validate(): string[] {
    return validateHeap(this);
  }

  /** validate(), throwing an Error that lists the problems. */
  assertValid(): void {
    const errors = this.validate();
    if (errors.length > 0) throw withCode(new Error(`heap is inconsistent:\n  ${errors.slice(0, 20).join('\n  ')}`), 'inconsistent');
  }

  /**
   * Releases the slot of an agent that is gone (worker.terminate() runs no
   * cleanup in the worker): its cached objects in every live allocator go
   * back to the global pool and the slot becomes free. The caller must be
   * sure the agent no longer runs. Pass the generation from the handle
   * (reserveSlot().gen) so a slot that was meanwhile detached and taken by
   * another agent is left alone. Returns false if there was nothing to
   * release. The steps, in order, are in ./recovery/release-slot.ts. A
   * slot whose agent attached is released from an attached agent (the
   * repair takes locks, and names in its own slot the allocator it works
   * on); a reserved slot whose agent never attached, from any.
   */
  releaseSlot(slot: number, gen?: number): boolean {
    checkInt('slot', slot, 0, this.maxSlots - 1);
    if (gen !== undefined) checkInt('gen', gen, 0, 0xffffffff);
    if (slot === this.slot) throw rangeError('bad-argument', `releaseSlot(${slot}): that is this agent's own slot; use detach()`);
    return releaseSlot(this, slot, gen);
  }
}
