// The backstore side of the seam (assembly/ioring.ts): taking request contexts from a
// LUN's submission queue, reading what to do, and posting completions on the request queues'
// completion queues, all with Atomics over the shared memory. Used by every thread that serves
// a backstore: an I/O thread, or the thread that opened the backstore.
import type { PollTable } from "../sys/eventfd.js";
import {
  BS_OP_READ,
  BS_OP_WRITE,
  BS_OP_COMPARE_AND_WRITE,
  type BS_OP_FLUSH,
  type BS_OP_WRITE_ZEROES,
  type BS_OP_DISCARD,
  CTX_ABORTED,
  BS_F_FUA,
  BS_F_UNMAP,
  IOCTX_STATE,
  IOCTX_INDEX,
  IOCTX_CQ,
  IOCTX_OP,
  IOCTX_FLAGS,
  IOCTX_OFFSET,
  IOCTX_LENGTH,
  IOCTX_EXTENTS,
  SQ_MASK,
  SQ_DEQUEUE,
  SQ_WAKE,
  SQ_SLEEPERS,
  SQ_EXCLUSIVE,
  SQ_ACTIVE,
  SQ_CELLS,
  CQ_MASK,
  CQ_TAIL,
  CQ_DOORBELL,
  CQ_FINISHED,
  CQ_CELLS,
  CQ_CELL_SIZE,
  IOVEC_ARRAY_ENTRIES,
  IOVEC_SIZE,
} from "../wasm/abi.generated.js";
export { BS_OP_READ, BS_OP_WRITE, BS_OP_FLUSH, BS_OP_WRITE_ZEROES, BS_OP_DISCARD, BS_OP_COMPARE_AND_WRITE, BS_MISCOMPARE } from "../wasm/abi.generated.js";

/** What a backstore's submit() is asked (the service carries COMPARE_AND_WRITE out itself: backstores never see it). */
export type BackstoreOp = typeof BS_OP_READ | typeof BS_OP_WRITE | typeof BS_OP_FLUSH | typeof BS_OP_WRITE_ZEROES | typeof BS_OP_DISCARD;
/** What a request context asks. */
type RequestOp = BackstoreOp | typeof BS_OP_COMPARE_AND_WRITE;

/** One operation as a backstore sees it: its buffers are views of guest memory, used in place. */
export interface BackstoreIo {
  readonly op: BackstoreOp;
  /** Byte offset and length on the backstore. */
  readonly offset: number;
  readonly length: number;
  /** READ: where the data goes; WRITE: where it comes from; exactly `length` bytes. Others: none. */
  readonly buffers: readonly Uint8Array[];
  /** WRITE: durable once it completes. */
  readonly fua: boolean;
  /** WRITE_ZEROES: the range may be deallocated rather than written (WRITE SAME with UNMAP). */
  readonly unmap?: boolean;
}

/** The views still to move after `done` bytes of `buffers` went through. */
export function rest(buffers: readonly Uint8Array[], done: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const v of buffers) {
    if (done >= v.length) {
      done -= v.length;
      continue;
    }
    out.push(done > 0 ? v.subarray(done) : v);
    done = 0;
  }
  return out;
}

/** A request context taken from a submission queue. */
export interface TakenRequest extends Omit<BackstoreIo, "op"> {
  readonly op: RequestOp;
  /** The context's address (the completion names it). */
  readonly ctx: number;
  /** A TMF aborted it before any I/O started: complete it without doing anything. */
  readonly aborted: boolean;
  /** Its completion was posted (the service's guard against a backstore completing it twice). */
  settled: boolean;
}

/**
 * The backstore end of the seam over one shared memory: take() from a submission queue,
 * complete() onto the context's completion queue, ring the workers' doorbells once per batch.
 */
export class RingPort {
  private readonly i32: Int32Array;
  private readonly view: DataView;
  private readonly bells = new Set<number>();
  /** The doorbell complete() added last: a batch's completions mostly go to one worker. */
  private lastBell = 0;
  private ringQueued = false;

  constructor(
    private readonly buffer: SharedArrayBuffer,
    /** The poll table the vhost workers sleep on. */
    private readonly doorbells: PollTable,
  ) {
    this.i32 = new Int32Array(buffer);
    this.view = new DataView(buffer);
  }

  /** Takes the next context from the submission queue at `sq`; 0 when it is empty. */
  take(sq: number): number {
    const { i32 } = this;
    const mask = i32[(sq + SQ_MASK) >> 2];
    const deq = (sq + SQ_DEQUEUE) >> 2;
    let pos = Atomics.load(i32, deq);
    for (;;) {
      const cell = (sq + SQ_CELLS + ((pos & mask) << 3)) >> 2;
      const dif = (Atomics.load(i32, cell) - (pos + 1)) | 0;
      if (dif === 0) {
        if (Atomics.compareExchange(i32, deq, pos, (pos + 1) | 0) === pos) {
          const ctx = i32[cell + 1] >>> 0;
          Atomics.store(i32, cell, (pos + mask + 1) | 0);
          return ctx;
        }
        pos = Atomics.load(i32, deq);
      } else if (dif < 0) {
        return 0;
      } else {
        pos = Atomics.load(i32, deq);
      }
    }
  }

  /** What context `ctx` asks for, with views of its guest buffers. */
  request(ctx: number): TakenRequest {
    const { view: v, buffer } = this;
    const op = v.getUint32(ctx + IOCTX_OP, true) as RequestOp;
    const ext = ctx + IOCTX_EXTENTS;
    const n = op === BS_OP_READ || op === BS_OP_WRITE || op === BS_OP_COMPARE_AND_WRITE ? v.getUint32(ext, true) : 0;
    const buffers: Uint8Array[] = new Array(n);
    for (let i = 0, at = ext + IOVEC_ARRAY_ENTRIES; i < n; i++, at += IOVEC_SIZE)
      buffers[i] = new Uint8Array(buffer, v.getUint32(at, true), v.getUint32(at + 4, true));
    const flags = v.getUint32(ctx + IOCTX_FLAGS, true);
    return {
      ctx,
      op,
      offset: this.u64(ctx + IOCTX_OFFSET),
      length: this.u64(ctx + IOCTX_LENGTH),
      buffers,
      fua: (flags & BS_F_FUA) !== 0,
      unmap: (flags & BS_F_UNMAP) !== 0,
      aborted: Atomics.load(this.i32, (ctx + IOCTX_STATE) >> 2) === CTX_ABORTED,
      settled: false,
    };
  }

  /** A little-endian u64 field as a number (offsets and lengths stay below 2^53), without a BigInt. */
  private u64(at: number): number {
    return this.view.getUint32(at, true) + this.view.getUint32(at + 4, true) * 2 ** 32;
  }

  /**
   * Posts the completion of context `ctx`: `result` is the bytes done, or -errno. The posting is
   * complete (the cell's sequence stored last) before the finished count moves, so the count
   * tells how many requests are done with their guest buffers. The worker's doorbell rings at
   * ringDoorbells().
   */
  complete(ctx: number, result: number): void {
    const { i32, view: v } = this;
    const cq = v.getUint32(ctx + IOCTX_CQ, true);
    const mask = i32[(cq + CQ_MASK) >> 2];
    const t = Atomics.add(i32, (cq + CQ_TAIL) >> 2, 1);
    const cell = (cq + CQ_CELLS + (t & mask) * CQ_CELL_SIZE) >> 2;
    i32[cell + 1] = v.getUint32(ctx + IOCTX_INDEX, true);
    i32[cell + 2] = result;
    Atomics.store(i32, cell, (t + 1) | 0);
    Atomics.add(i32, (cq + CQ_FINISHED) >> 2, 1);
    const bell = Atomics.load(i32, (cq + CQ_DOORBELL) >> 2);
    if (bell !== this.lastBell || this.bells.size === 0) {
      this.bells.add(bell);
      this.lastBell = bell;
    }
  }

  /** The gate of the submission queue at `sq` (its consumers' COMPARE_AND_WRITE exclusion). */
  gate(sq: number): QueueGate {
    return new QueueGate(this.i32, sq);
  }

  /**
   * Rings the doorbells at the end of this turn of the event loop, once for every completion
   * posted until then (for completions a backstore brings from its event loop).
   */
  ringSoon(): void {
    if (this.ringQueued) return;
    this.ringQueued = true;
    queueMicrotask(() => {
      this.ringQueued = false;
      this.ringDoorbells();
    });
  }

  /** Wakes the workers whose queues got completions since the last call. */
  ringDoorbells(): void {
    for (const b of this.bells) {
      if (b > 0) this.doorbells.ring(b);
    }
    this.bells.clear();
  }

  /** The submission queue's wake word: its value now, to sleep on while the queue is empty. */
  private wakeIndex(sq: number): number {
    return (sq + SQ_WAKE) >> 2;
  }

  /**
   * Sleeps until the submission queue at `sq` may have work (or timeout ms): announces a sleeper
   * so that producers notify, looks once more, then waits. Blocking: for I/O threads.
   */
  sleep(sq: number, timeout: number): void {
    const w = this.wakeIndex(sq);
    const seen = Atomics.load(this.i32, w);
    const sleepers = (sq + SQ_SLEEPERS) >> 2;
    Atomics.add(this.i32, sleepers, 1);
    if (!this.hasWork(sq)) Atomics.wait(this.i32, w, seen, timeout);
    Atomics.sub(this.i32, sleepers, 1);
  }

  /** As sleep(), without blocking the thread (for a backstore served on an event-loop thread). */
  async sleepAsync(sq: number, timeout: number): Promise<void> {
    const w = this.wakeIndex(sq);
    const seen = Atomics.load(this.i32, w);
    const sleepers = (sq + SQ_SLEEPERS) >> 2;
    Atomics.add(this.i32, sleepers, 1);
    try {
      if (this.hasWork(sq)) return;
      const r = Atomics.waitAsync(this.i32, w, seen, timeout);
      if (r.async) await r.value;
    } finally {
      Atomics.sub(this.i32, sleepers, 1);
    }
  }

  /** Wakes whoever sleeps on the submission queue (to stop, or to look again). */
  wake(sq: number): void {
    const w = this.wakeIndex(sq);
    Atomics.add(this.i32, w, 1);
    Atomics.notify(this.i32, w);
  }

  /** Whether a context is waiting in the submission queue at `sq`. */
  private hasWork(sq: number): boolean {
    const { i32 } = this;
    const mask = i32[(sq + SQ_MASK) >> 2];
    const pos = Atomics.load(i32, (sq + SQ_DEQUEUE) >> 2);
    return Atomics.load(i32, (sq + SQ_CELLS + ((pos & mask) << 3)) >> 2) === ((pos + 1) | 0);
  }
}

/** How long a consumer waits at a gate before it answers EBUSY (another consumer stuck mid-batch), ms. */
const GATE_MS = 1000;

/**
 * A submission queue's gate (IoSubmitQueue.exclusive and .active), shared by every thread that
 * serves the queue: a COMPARE_AND_WRITE runs while no other operation of the queue does. Only
 * for backstores that complete synchronously, so that an operation's whole life is inside its
 * consumer's enter/leave and no one waits while holding the gate.
 */
export class QueueGate {
  private readonly exclusive: number;
  private readonly active: number;

  constructor(
    private readonly i32: Int32Array,
    sq: number,
  ) {
    this.exclusive = (sq + SQ_EXCLUSIVE) >> 2;
    this.active = (sq + SQ_ACTIVE) >> 2;
  }

  /** Waits until `ready` holds; false after GATE_MS. */
  private until(ready: () => boolean): boolean {
    const deadline = performance.now() + GATE_MS;
    while (!ready()) if (performance.now() > deadline) return false;
    return true;
  }

  /** Enters to run other operations (counted; a COMPARE_AND_WRITE running is waited out). False if it never ends. */
  enterShared(): boolean {
    const { i32 } = this;
    for (;;) {
      Atomics.add(i32, this.active, 1);
      if (Atomics.load(i32, this.exclusive) === 0) return true;
      Atomics.sub(i32, this.active, 1);
      if (!this.until(() => Atomics.load(i32, this.exclusive) === 0)) return false;
    }
  }

  leaveShared(): void {
    Atomics.sub(this.i32, this.active, 1);
  }

  /** Enters alone: the gate taken, then every other consumer's operations done. False if that does not happen. */
  enterExclusive(): boolean {
    const { i32 } = this;
    if (!this.until(() => Atomics.compareExchange(i32, this.exclusive, 0, 1) === 0)) return false;
    if (this.until(() => Atomics.load(i32, this.active) === 0)) return true;
    Atomics.store(i32, this.exclusive, 0);
    return false;
  }

  leaveExclusive(): void {
    Atomics.store(this.i32, this.exclusive, 0);
  }
}
