// The seam between a device and backstores served outside the data plane (a file, a network
// block server): io_uring-shaped, and the same for every device type. A request for such a
// backstore lives in a request context (IoCtx) of its request queue's context table: a generic
// header (what the backstore does: op, flags, offset, length, the extents; and what every device
// needs to answer: the chain, its head, the buffer bytes) and a trailer the device type keeps its
// own state in (IoCtx.device()). The data plane puts the context on the backstore's submission
// queue, whoever serves the backstore (an I/O thread, a socket owner) takes it from there, does the
// I/O straight on the guest buffers the context lists, and answers on the request queue's
// completion queue, which the queue's worker reaps in its next drain.
//
// Submission queue: bounded multi-producer multi-consumer (every worker posts, every I/O thread
// takes), one sequence word per cell. Completion queue: multi-producer, single consumer (the
// queue's worker). Both live in shared memory; the TypeScript side (src/backstore/) reads and
// writes them with Atomics on the layout exported below.
import { IoVecArray, IovIter, iovec_array_size } from "./iovec";

/** Where a device's blocks live (a SCSI LUN's, a virtio-blk backend's). */
export const BS_RAM: u32 = 0; // in the device heap, copied in place
export const BS_NULL: u32 = 1; // nowhere: reads return zeroes, writes are dropped
export const BS_QUEUED: u32 = 2; // behind a backstore's submission queue (below)

/** Operations a backstore serves (IoCtx.op). */
export const BS_OP_READ: u32 = 1; // read length bytes at offset into the extents
export const BS_OP_WRITE: u32 = 2; // write the extents at offset
export const BS_OP_FLUSH: u32 = 3; // make written data durable
export const BS_OP_WRITE_ZEROES: u32 = 4; // zero length bytes at offset
export const BS_OP_DISCARD: u32 = 5; // deallocate length bytes at offset
/**
 * Compare the first length bytes of the extents with the medium at offset and, only if they are
 * equal, write the next length bytes there: one operation, which no other operation of the queue
 * overlaps (the service's gate, SQ exclusive/active). Offered by backstores that complete
 * synchronously (BackstoreFeatures.synchronous).
 */
export const BS_OP_COMPARE_AND_WRITE: u32 = 6;
/** A COMPARE_AND_WRITE that found a difference completes with -(BS_MISCOMPARE + its first differing byte's offset). */
export const BS_MISCOMPARE: u32 = 1 << 20;

/** IoCtx.flags: the write must be durable when it completes (SBC-4 FUA, VIRTIO_BLK_T_OUT with FLUSH semantics none). */
export const BS_F_FUA: u32 = 1;
/** IoCtx.flags: WRITE_ZEROES may deallocate the range (WRITE SAME with UNMAP, SBC-4 5.48). */
export const BS_F_UNMAP: u32 = 2;

/** Context states (atomic: a TMF on another worker may abort a submitted context). */
export const CTX_FREE: u32 = 0;
export const CTX_SUBMITTED: u32 = 1;
export const CTX_ABORTED: u32 = 2;

/** Extents (guest buffer pieces) and chain iovecs one context holds: seg_max plus headers and PI. */
export const CTX_IOV: u32 = 136;

/** Bytes of a context's device trailer: the state a device type's steps keep between completions. */
export const CTX_DEVICE_BYTES: usize = 48;

/**
 * One request served elsewhere: what the backstore must do (op, flags, offset, length, the
 * extents) and what the device needs to answer it (the chain and its head, the buffer bytes,
 * its own trailer).
 */
@unmanaged export class IoCtx {
  state: u32;
  /** This context's index in its table (the completion names it). */
  index: u32;
  /** The completion queue the backstore answers on. */
  cq: u32;
  op: u32;
  flags: u32;
  /** What the device addresses (a SCSI LUN, a virtio-blk backend) and the chain's head index. */
  owner: u32;
  head: u32;
  _pad0: u32;
  offset: u64;
  length: u64;
  /** The guest's data buffer bytes (for the residual) and the data bytes moved so far. */
  buf_len: u64;
  done: u64;

  /** The device type's trailer (CTX_DEVICE_BYTES), which it overlays with a struct of its own. */
  @inline device(): usize {
    return changetype<usize>(this) + offsetof<IoCtx>();
  }
  /** The chain's iovecs as popped (the answer goes to the start of its writable part). */
  @inline chain(): IoVecArray {
    return changetype<IoVecArray>(changetype<usize>(this) + offsetof<IoCtx>() + CTX_DEVICE_BYTES);
  }
  /** The extents the backstore moves data through (exactly `length` bytes for READ and WRITE). */
  @inline extents(): IoVecArray {
    return changetype<IoVecArray>(changetype<usize>(this) + offsetof<IoCtx>() + CTX_DEVICE_BYTES + iovec_array_size(CTX_IOV));
  }
}

export const CTX_SIZE: usize = (offsetof<IoCtx>() + CTX_DEVICE_BYTES + 2 * iovec_array_size(CTX_IOV) + 15) & ~15;

/** Bytes of bounce memory a table keeps for commands that compare with the medium (VERIFY). */
export const BOUNCE_SIZE: u32 = 65536;

/** A request queue's contexts, its completion queue and a bounce buffer; contexts follow. */
@unmanaged export class IoCtxTable {
  capacity: u32;
  /** Contexts not free (owner only). */
  count: u32;
  /** Hint: where to look for a free context. */
  next: u32;
  cq: u32;
  /** BOUNCE_SIZE bytes, and the context using them (index + 1, 0 when free). */
  bounce: u32;
  bounce_user: u32;
  _pad0: u32;
  _pad1: u32;
}

@inline export function ctx_at(t: IoCtxTable, i: u32): IoCtx {
  return changetype<IoCtx>(changetype<usize>(t) + offsetof<IoCtxTable>() + <usize>i * CTX_SIZE);
}

/** Bytes a table of `capacity` contexts occupies (the completion queue and bounce are separate). */
export function ctx_table_size(capacity: u32): usize {
  return offsetof<IoCtxTable>() + <usize>capacity * CTX_SIZE;
}

/** Initializes a zeroed table: contexts numbered, all free, answering on cq, with a bounce buffer. */
export function ctx_table_init(t: IoCtxTable, capacity: u32, cq: u32, bounce: u32): void {
  t.capacity = capacity;
  t.cq = cq;
  t.bounce = bounce;
  for (let i: u32 = 0; i < capacity; i++) ctx_at(t, i).index = i;
}

/** Takes a free context; returns it, or null when all are busy. */
export function ctx_alloc(t: IoCtxTable): IoCtx | null {
  const cap = t.capacity;
  if (t.count >= cap) return null;
  let i = t.next;
  for (let k: u32 = 0; k < cap; k++) {
    if (i >= cap) i = 0;
    const c = ctx_at(t, i);
    if (atomic.load<u32>(changetype<usize>(c)) == CTX_FREE) {
      t.count++;
      t.next = i + 1;
      return c;
    }
    i++;
  }
  return null;
}

/** Frees a context; returns the state it had (CTX_ABORTED if a TMF aborted it meanwhile). */
export function ctx_release(t: IoCtxTable, c: IoCtx): u32 {
  t.count--;
  if (t.bounce_user == c.index + 1) t.bounce_user = 0;
  return atomic.xchg<u32>(changetype<usize>(c), CTX_FREE);
}

/** Marks a submitted context aborted (a TMF); false if it was not submitted. */
export function ctx_abort(c: IoCtx): bool {
  return atomic.cmpxchg<u32>(changetype<usize>(c), CTX_SUBMITTED, CTX_ABORTED) == CTX_SUBMITTED;
}

/** Copies `len` bytes of extents from cursor `it` into dst (false: more pieces than dst holds). */
export function ctx_take_extents(dst: IoVecArray, it: IovIter, len: u64): bool {
  const src = it.iov;
  let n = dst.count;
  let i = it.idx;
  let o = it.off;
  while (len > 0 && i < it.end) {
    if (n >= CTX_IOV) return false;
    const seg = <u64>(src.len(i) - o);
    const take = seg < len ? seg : len;
    dst.set(n++, src.base(i) + o, <u32>take);
    len -= take;
    i++;
    o = 0;
  }
  dst.count = n;
  return true;
}

/**
 * Puts context x of table t on submission queue sq. The first post of a request marks it
 * submitted; a later step of the same request is already. Counts it handed over (the fence).
 * False when the queue is full.
 */
export function ctx_submit(t: IoCtxTable, x: IoCtx, sq: IoSubmitQueue, first: bool): bool {
  if (first) atomic.store<u32>(changetype<usize>(x), CTX_SUBMITTED);
  if (!sq_push(sq, changetype<usize>(x))) return false;
  // Counted once handed over (the backstore may finish it first: `finished` may run ahead).
  atomic.add<u32>(<usize>t.cq + offsetof<IoCompletionQueue>("submitted"), 1);
  return true;
}

// ---- submission queue ----

/** A backstore's submission queue: cells of { seq, ctx } follow the header. */
@unmanaged export class IoSubmitQueue {
  mask: u32;
  enqueue: u32;
  dequeue: u32;
  /** Futex word the backstore's threads sleep on, and how many sleep. */
  wake: u32;
  sleepers: u32;
  /**
   * The queue's gate, kept by its consumers (src/backstore/service.ts): 1 while one runs a
   * COMPARE_AND_WRITE, and how many are running other operations meanwhile.
   */
  exclusive: u32;
  active: u32;
  _pad: u32;
}

@inline function sq_cell(q: IoSubmitQueue, pos: u32): usize {
  return changetype<usize>(q) + offsetof<IoSubmitQueue>() + (<usize>(pos & q.mask) << 3);
}

export function sq_size(entries: u32): usize {
  return offsetof<IoSubmitQueue>() + (<usize>entries << 3);
}

/** Initializes a queue of `entries` cells (a power of two). */
export function sq_init(q: IoSubmitQueue, entries: u32): void {
  memory.fill(changetype<usize>(q), 0, sq_size(entries));
  q.mask = entries - 1;
  for (let i: u32 = 0; i < entries; i++) store<u32>(sq_cell(q, i), i);
}

/** Posts ctx; false when the queue is full. Wakes a sleeping consumer. */
export function sq_push(q: IoSubmitQueue, ctx: usize): bool {
  const enq = changetype<usize>(q) + offsetof<IoSubmitQueue>("enqueue");
  let pos = atomic.load<u32>(enq);
  while (true) {
    const cell = sq_cell(q, pos);
    const dif = <i32>(atomic.load<u32>(cell) - pos);
    if (dif == 0) {
      if (atomic.cmpxchg<u32>(enq, pos, pos + 1) == pos) {
        store<u32>(cell, <u32>ctx, 4);
        atomic.store<u32>(cell, pos + 1);
        break;
      }
      pos = atomic.load<u32>(enq);
    } else if (dif < 0) {
      return false;
    } else {
      pos = atomic.load<u32>(enq);
    }
  }
  if (atomic.load<u32>(changetype<usize>(q) + offsetof<IoSubmitQueue>("sleepers")) != 0) {
    const w = changetype<usize>(q) + offsetof<IoSubmitQueue>("wake");
    atomic.add<u32>(w, 1);
    atomic.notify(w, 1);
  }
  return true;
}

// ---- completion queue ----

/** A request queue's completion queue: cells of { seq, ctx index, result, _ } follow the header. */
@unmanaged export class IoCompletionQueue {
  mask: u32;
  /** Next cell a producer reserves (atomic). */
  tail: u32;
  /** Next cell the consumer reads. */
  head: u32;
  /** The poll-table doorbell of the worker serving the queue (the control plane keeps it current). */
  doorbell: u32;
  /**
   * Requests handed to backstores so far (the data plane counts), and completions posted so far
   * (the backstore's side counts, after posting). Once `finished` has caught up with a value
   * `submitted` had, every request handed over until then has ended: no backstore touches its
   * guest buffers any more (the fence before memory or the queue is reused).
   */
  submitted: u32;
  finished: u32;
  _pad0: u32;
  _pad1: u32;
}

export const CQE_SIZE: usize = 16;

@inline export function cq_cell(q: IoCompletionQueue, pos: u32): usize {
  return changetype<usize>(q) + offsetof<IoCompletionQueue>() + <usize>(pos & q.mask) * CQE_SIZE;
}

export function cq_size(entries: u32): usize {
  return offsetof<IoCompletionQueue>() + <usize>entries * CQE_SIZE;
}

export function cq_init(q: IoCompletionQueue, entries: u32): void {
  memory.fill(changetype<usize>(q), 0, cq_size(entries));
  q.mask = entries - 1;
}

/**
 * The next completion, as a cell address, or 0 when none is posted; cq_consume() moves on.
 * The cell's seq is stored last by the producer (release), so its fields are complete here.
 */
export function cq_peek(q: IoCompletionQueue): usize {
  const pos = q.head;
  const cell = cq_cell(q, pos);
  return atomic.load<u32>(cell) == pos + 1 ? cell : 0;
}

@inline export function cq_consume(q: IoCompletionQueue): void {
  q.head++;
}
