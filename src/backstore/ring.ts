// The backstore side of the seam (assembly/scsi/ioring.ts): taking request contexts from a
// LUN's submission queue, reading what to do, and posting completions on the request queues'
// completion queues, all with Atomics over the shared memory. Used by every thread that serves
// a backstore: an I/O thread, or the thread that opened the backstore.
import type { DataplaneExports } from "../wasm/dataplane.js";
import type { PollTable } from "../eventfd.js";

/** Backstore operations (assembly/scsi/ioring.ts BS_OP_*). */
export const BS_OP_READ = 1;
export const BS_OP_WRITE = 2;
export const BS_OP_FLUSH = 3;
export const BS_OP_WRITE_ZEROES = 4;
export const BS_OP_DISCARD = 5;
export type BackstoreOp = typeof BS_OP_READ | typeof BS_OP_WRITE | typeof BS_OP_FLUSH | typeof BS_OP_WRITE_ZEROES | typeof BS_OP_DISCARD;

/** Context states the backstore side looks at (CTX_*). */
const CTX_ABORTED = 2;
/** IoCtx.flags: FUA; WRITE_ZEROES may deallocate (WRITE SAME with UNMAP). */
const BS_F_FUA = 1;
const BS_F_UNMAP = 2;

/** Byte offsets of the seam's fields, as the data plane exports them. */
export interface RingLayout {
  ctxState: number;
  ctxIndex: number;
  ctxCq: number;
  ctxOp: number;
  ctxFlags: number;
  ctxOffset: number;
  ctxLength: number;
  ctxExtents: number;
  sqMask: number;
  sqDequeue: number;
  sqWake: number;
  sqSleepers: number;
  sqCells: number;
  cqMask: number;
  cqTail: number;
  cqDoorbell: number;
  cqFinished: number;
  cqCells: number;
  cqCellSize: number;
}

/** The layout, read once from a data plane instance's exported constants. */
export function ringLayout(dp: DataplaneExports): RingLayout {
  const g = (x: WebAssembly.Global) => x.value as number;
  return {
    ctxState: g(dp.IOCTX_STATE),
    ctxIndex: g(dp.IOCTX_INDEX),
    ctxCq: g(dp.IOCTX_CQ),
    ctxOp: g(dp.IOCTX_OP),
    ctxFlags: g(dp.IOCTX_FLAGS),
    ctxOffset: g(dp.IOCTX_OFFSET),
    ctxLength: g(dp.IOCTX_LENGTH),
    ctxExtents: g(dp.IOCTX_EXTENTS),
    sqMask: g(dp.SQ_MASK),
    sqDequeue: g(dp.SQ_DEQUEUE),
    sqWake: g(dp.SQ_WAKE),
    sqSleepers: g(dp.SQ_SLEEPERS),
    sqCells: g(dp.SQ_CELLS),
    cqMask: g(dp.CQ_MASK),
    cqTail: g(dp.CQ_TAIL),
    cqDoorbell: g(dp.CQ_DOORBELL),
    cqFinished: g(dp.CQ_FINISHED),
    cqCells: g(dp.CQ_CELLS),
    cqCellSize: g(dp.CQ_CELL_SIZE),
  };
}

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

/** A request context taken from a submission queue. */
export interface TakenRequest extends BackstoreIo {
  /** The context's address (the completion names it). */
  readonly ctx: number;
  /** A TMF aborted it before any I/O started: complete it without doing anything. */
  readonly aborted: boolean;
}

/**
 * The backstore end of the seam over one shared memory: take() from a submission queue,
 * complete() onto the context's completion queue, ring the workers' doorbells once per batch.
 */
export class RingPort {
  private readonly i32: Int32Array;
  private readonly view: DataView;
  private readonly bells = new Set<number>();

  constructor(
    private readonly buffer: SharedArrayBuffer,
    private readonly layout: RingLayout,
    /** The poll table the vhost workers sleep on. */
    private readonly doorbells: PollTable,
  ) {
    this.i32 = new Int32Array(buffer);
    this.view = new DataView(buffer);
  }

  /** Takes the next context from the submission queue at `sq`; 0 when it is empty. */
  take(sq: number): number {
    const { i32, layout: L } = this;
    const mask = i32[(sq + L.sqMask) >> 2];
    const deq = (sq + L.sqDequeue) >> 2;
    let pos = Atomics.load(i32, deq);
    for (;;) {
      const cell = (sq + L.sqCells + ((pos & mask) << 3)) >> 2;
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
    const { view: v, layout: L, buffer } = this;
    const op = v.getUint32(ctx + L.ctxOp, true) as BackstoreOp;
    const ext = ctx + L.ctxExtents;
    const n = op === BS_OP_READ || op === BS_OP_WRITE ? v.getUint32(ext, true) : 0;
    const buffers: Uint8Array[] = [];
    for (let i = 0; i < n; i++) buffers.push(new Uint8Array(buffer, v.getUint32(ext + 8 + 8 * i, true), v.getUint32(ext + 12 + 8 * i, true)));
    return {
      ctx,
      op,
      offset: Number(v.getBigUint64(ctx + L.ctxOffset, true)),
      length: Number(v.getBigUint64(ctx + L.ctxLength, true)),
      buffers,
      fua: (v.getUint32(ctx + L.ctxFlags, true) & BS_F_FUA) !== 0,
      unmap: (v.getUint32(ctx + L.ctxFlags, true) & BS_F_UNMAP) !== 0,
      aborted: Atomics.load(this.i32, (ctx + L.ctxState) >> 2) === CTX_ABORTED,
    };
  }

  /**
   * Posts the completion of context `ctx`: `result` is the bytes done, or -errno. The posting is
   * complete (the cell's sequence stored last) before the finished count moves, so the count
   * tells how many requests are done with their guest buffers. The worker's doorbell rings at
   * ringDoorbells().
   */
  complete(ctx: number, result: number): void {
    const { i32, view: v, layout: L } = this;
    const cq = v.getUint32(ctx + L.ctxCq, true);
    const mask = i32[(cq + L.cqMask) >> 2];
    const t = Atomics.add(i32, (cq + L.cqTail) >> 2, 1);
    const cell = (cq + L.cqCells + (t & mask) * L.cqCellSize) >> 2;
    i32[cell + 1] = v.getUint32(ctx + L.ctxIndex, true);
    i32[cell + 2] = result;
    Atomics.store(i32, cell, (t + 1) | 0);
    Atomics.add(i32, (cq + L.cqFinished) >> 2, 1);
    this.bells.add(Atomics.load(i32, (cq + L.cqDoorbell) >> 2));
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
    return (sq + this.layout.sqWake) >> 2;
  }

  /**
   * Sleeps until the submission queue at `sq` may have work (or timeout ms): announces a sleeper
   * so that producers notify, looks once more, then waits. Blocking: for I/O threads.
   */
  sleep(sq: number, timeout: number): void {
    const w = this.wakeIndex(sq);
    const seen = Atomics.load(this.i32, w);
    const sleepers = (sq + this.layout.sqSleepers) >> 2;
    Atomics.add(this.i32, sleepers, 1);
    if (!this.hasWork(sq)) Atomics.wait(this.i32, w, seen, timeout);
    Atomics.sub(this.i32, sleepers, 1);
  }

  /** As sleep(), without blocking the thread (for a backstore served on an event-loop thread). */
  async sleepAsync(sq: number, timeout: number): Promise<void> {
    const w = this.wakeIndex(sq);
    const seen = Atomics.load(this.i32, w);
    const sleepers = (sq + this.layout.sqSleepers) >> 2;
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
    const { i32, layout: L } = this;
    const mask = i32[(sq + L.sqMask) >> 2];
    const pos = Atomics.load(i32, (sq + L.sqDequeue) >> 2);
    return Atomics.load(i32, (sq + L.sqCells + ((pos & mask) << 3)) >> 2) === ((pos + 1) | 0);
  }
}
