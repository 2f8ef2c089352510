// A backstore that records what reaches the one beneath it (the idea of Linux's dm-log-writes):
// every WRITE, WRITE_ZEROES and DISCARD that completed, with its data and FUA, and every FLUSH,
// in completion order, plus marks the caller sets. A crash checker replays a prefix of the log,
// or a prefix with some of the last writes left out, to build the images a power cut could leave.
import type { BackstoreFeatures, IoDone, QueuedBackstore } from "../backstore/backstore.js";
import { BS_OP_DISCARD, BS_OP_FLUSH, BS_OP_WRITE, BS_OP_WRITE_ZEROES, type BackstoreIo } from "../backstore/ring.js";

/** One completed operation that changed (or made durable) the medium, or a caller's mark. */
export type RecordedOp =
  | { op: "write"; offset: number; data: Uint8Array; fua: boolean }
  | { op: "zero"; offset: number; length: number }
  | { op: "discard"; offset: number; length: number }
  | { op: "flush" }
  | { op: "mark"; label: string };

export class RecordingBackstore implements QueuedBackstore {
  readonly kind = "queued";
  readonly name: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly features: BackstoreFeatures;
  readonly blockSize?: number;
  readonly maxTransfer?: number;
  /** The log, in completion order. */
  readonly log: RecordedOp[] = [];

  /**
   * With `shuffle` (a random source in [0, 1)), the operations of each batch are answered in a
   * random order on a later turn of the event loop, as I/O threads answer out of order.
   */
  constructor(
    private readonly inner: QueuedBackstore,
    private readonly shuffle?: () => number,
  ) {
    this.name = inner.name;
    this.size = inner.size;
    this.readOnly = inner.readOnly;
    // Answers held back and shuffled come after submit() returns.
    this.features = shuffle ? { ...inner.features, synchronous: false } : inner.features;
    this.blockSize = inner.blockSize;
    this.maxTransfer = inner.maxTransfer;
  }

  /** Adds a mark at the current end of the log (e.g. "the guest said f3 is durable"). */
  mark(label: string): void {
    this.log.push({ op: "mark", label });
  }

  /** Served on the thread that opened it, so that the log is complete here. */
  submit(batch: readonly BackstoreIo[], done: IoDone): void {
    // A write's data is copied now: its buffers are the guest's, valid until done().
    const data = new Map(batch.filter((io) => io.op === BS_OP_WRITE).map((io) => [io, concat(io.buffers, io.length)]));
    const answer = (io: BackstoreIo, result: number) => {
      if (result >= 0) {
        if (io.op === BS_OP_WRITE) this.log.push({ op: "write", offset: io.offset, data: data.get(io)!, fua: io.fua });
        else if (io.op === BS_OP_WRITE_ZEROES) this.log.push({ op: "zero", offset: io.offset, length: io.length });
        else if (io.op === BS_OP_DISCARD) this.log.push({ op: "discard", offset: io.offset, length: io.length });
        else if (io.op === BS_OP_FLUSH) this.log.push({ op: "flush" });
      }
      done(io, result);
    };
    const random = this.shuffle;
    if (!random) return this.inner.submit(batch, answer);
    const held: [BackstoreIo, number][] = [];
    this.inner.submit(batch, (io, result) => {
      held.push([io, result]);
      if (held.length < batch.length) return;
      setTimeout(() => {
        for (let i = held.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [held[i], held[j]] = [held[j], held[i]];
        }
        for (const [io, r] of held) answer(io, r);
      }, 0);
    });
  }

  close(): void | Promise<void> {
    return this.inner.close();
  }
}

function concat(buffers: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const b of buffers) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
