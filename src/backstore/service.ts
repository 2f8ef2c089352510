// Serving a LUN's submission queue: take request contexts, hand them to the backstore in
// batches, post each completion on its request queue's completion queue and ring the serving
// worker's doorbell. Where: in dedicated I/O threads (io-thread.ts), or in the vhost workers
// between their passes (worker-core.ts), when the backstore can be opened in other threads;
// otherwise on the thread that opened the backstore, between its other events.
import { platform } from "#platform";
import type { PlatformThread } from "../sys/platform.js";
import { compiledModule } from "../sys/compiled-module.js";
import type { QueuedBackstore } from "./backstore.js";
import {
  BS_MISCOMPARE,
  BS_OP_COMPARE_AND_WRITE,
  BS_OP_DISCARD,
  BS_OP_FLUSH,
  BS_OP_READ,
  BS_OP_WRITE,
  BS_OP_WRITE_ZEROES,
  RingPort,
  type BackstoreIo,
  rest,
  type QueueGate,
  type TakenRequest,
} from "./ring.js";
import { log } from "../sys/log.js";
import { PollTable } from "../sys/eventfd.js";

/**
 * Contexts taken from the submission queue per batch: small enough that completions go back
 * (and the guest refills the ring) while the rest of a deep queue is still being served.
 */
export const BATCH = 8;
/**
 * Contexts taken per turn from the queue of a backstore whose submit() only starts the
 * operations (a network backstore, served on an event loop): larger, so that one turn sends many
 * in one write. With 8, NBD 4 KiB random reads at iodepth 32 ran 13% slower (docs/performance.md).
 */
export const EVENT_LOOP_BATCH = 64;
const ECANCELED = 125;
const EBUSY = 16;
const EIO = 5;
const EOPNOTSUPP = 95;
const EROFS = 30;
const ZEROES = new Uint8Array(1 << 20);

/** Views of zeroes covering `length` bytes (WRITE_ZEROES on a backstore without it). */
function zeroBuffers(length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < length; at += ZEROES.length) out.push(ZEROES.subarray(0, Math.min(ZEROES.length, length - at)));
  return out;
}

/**
 * Runs requests other than COMPARE_AND_WRITE on backstore b and calls finish(ctx, result) once
 * for each: aborted ones at once with -ECANCELED, the rest when b is done. What b lacks is
 * emulated: no FLUSH means nothing to flush; WRITE_ZEROES becomes a WRITE of zeroes; a FUA write
 * on a backstore without FUA is a WRITE then a FLUSH. A request b runs as asked is handed over
 * as it is and finished by its context; only the emulations carry a continuation.
 */
function runOps(b: QueuedBackstore, batch: readonly TakenRequest[], finish: (ctx: number, result: number) => void): void {
  let next: Map<BackstoreIo, (result: number) => void> | undefined;
  const ios: BackstoreIo[] = [];
  const issue = (io: BackstoreIo, then: (result: number) => void) => {
    (next ??= new Map()).set(io, then);
    ios.push(io);
  };
  for (const r of batch) {
    if (r.aborted) {
      settle(r, -ECANCELED);
      continue;
    }
    if (b.readOnly && r.op !== BS_OP_FLUSH && r.op !== BS_OP_READ) {
      settle(r, -EROFS);
      continue;
    }
    const f = b.features;
    if (r.op === BS_OP_FLUSH && !f.flush) settle(r, 0);
    else if (r.op === BS_OP_DISCARD && !f.discard) settle(r, -EOPNOTSUPP);
    else if (r.op === BS_OP_WRITE_ZEROES && !f.writeZeroes)
      issue({ op: BS_OP_WRITE, offset: r.offset, length: r.length, buffers: zeroBuffers(r.length), fua: false }, (res) => settle(r, res));
    else if (r.op === BS_OP_WRITE && r.fua && !f.fua && f.flush) {
      issue({ ...(r as BackstoreIo), fua: false }, (res) => {
        if (res < 0) return settle(r, res);
        const flush: BackstoreIo = { op: BS_OP_FLUSH, offset: 0, length: 0, buffers: [], fua: false };
        next?.set(flush, (fr) => settle(r, fr < 0 ? fr : res));
        b.submit([flush], done);
      });
    } else ios.push(r as BackstoreIo);
  }
  function settle(r: TakenRequest, result: number): void {
    if (r.settled) return log("backstore %s completed an operation twice", b.name);
    r.settled = true;
    finish(r.ctx, result);
  }
  function done(io: BackstoreIo, result: number): void {
    const then = next?.get(io);
    if (then) {
      next?.delete(io);
      return then(result);
    }
    if (typeof (io as TakenRequest).settled !== "boolean") return log("backstore %s completed an operation it was not given", b.name);
    settle(io as TakenRequest, result);
  }
  if (ios.length) b.submit(ios, done);
}

/** Runs one operation on a synchronous backstore and returns its result (-EIO if it did not complete at once). */
function runNow(b: QueuedBackstore, io: BackstoreIo): number {
  let result = -EIO;
  runOps(b, [{ ...io, ctx: 0, aborted: false, settled: false }], (_, r) => (result = r));
  return result;
}

/**
 * COMPARE_AND_WRITE on a synchronous backstore, alone on its queue (the caller holds the gate):
 * the medium read, compared with the first half of the buffers (which hold twice the length),
 * and only if equal the second half written. Its result: the length, -(BS_MISCOMPARE + offset)
 * of the first difference, or the read's or write's -errno.
 */
function compareAndWrite(b: QueuedBackstore, r: TakenRequest): number {
  const medium = new Uint8Array(r.length);
  const read = runNow(b, { op: BS_OP_READ, offset: r.offset, length: r.length, buffers: [medium], fua: false });
  if (read < 0) return read;
  let at = 0;
  for (const piece of r.buffers) {
    for (let k = 0; k < piece.length && at < r.length; k++, at++) if (piece[k] !== medium[at]) return -(BS_MISCOMPARE + at);
    if (at === r.length) break;
  }
  const written = runNow(b, { op: BS_OP_WRITE, offset: r.offset, length: r.length, buffers: rest(r.buffers, r.length), fua: r.fua });
  return written < 0 ? written : r.length;
}

/**
 * Runs a batch of taken requests on backstore b: finish(ctx, result) once for each. With a gate
 * (a backstore that completes synchronously, whose LUNs offer COMPARE AND WRITE), the other
 * requests run inside the gate's shared side and each COMPARE_AND_WRITE after them on its
 * exclusive side, so that no operation of any consumer of the queue overlaps it.
 */
export function runBatch(b: QueuedBackstore, batch: readonly TakenRequest[], finish: (ctx: number, result: number) => void, gate?: QueueGate): void {
  const caws = batch.filter((r) => r.op === BS_OP_COMPARE_AND_WRITE);
  const others = caws.length ? batch.filter((r) => r.op !== BS_OP_COMPARE_AND_WRITE) : batch;
  if (!gate || !b.features.synchronous) {
    for (const r of caws) finish(r.ctx, -EOPNOTSUPP); // not offered: only a hostile guest's context
    return runOps(b, others, finish);
  }
  if (others.length) {
    if (!gate.enterShared()) for (const r of others) finish(r.ctx, -EBUSY);
    else {
      try {
        runOps(b, others, finish);
      } finally {
        gate.leaveShared();
      }
    }
  }
  for (const r of caws) {
    if (r.aborted) finish(r.ctx, -ECANCELED);
    else if (b.readOnly) finish(r.ctx, -EROFS);
    else if (!gate.enterExclusive()) finish(r.ctx, -EBUSY);
    else {
      try {
        finish(r.ctx, compareAndWrite(b, r));
      } finally {
        gate.leaveExclusive();
      }
    }
  }
}

/** Stands in for a backstore whose I/O threads are gone: every operation fails with EIO. */
function failing(b: QueuedBackstore): QueuedBackstore {
  log("backstore %s: no I/O thread left; its requests fail with EIO", b.name);
  return { ...b, threaded: undefined, submit: (batch, done) => batch.forEach((io) => done(io, -5)) };
}

/** A submission queue the vhost workers serve, and how to open its backstore in their threads. */
export interface WorkerServedBackstore {
  sq: number;
  module: string;
  init: unknown;
}

/** What a service needs of the process: the memory and the workers' poll table. */
export interface ServiceContext {
  memory: WebAssembly.Memory;
  pollTable: SharedArrayBuffer;
}

/** Where the I/O threads' CPU times start in their control buffer, and the bytes of each (see IoThreadInit.control). */
export const IO_CPU_AT = 16;
export const IO_CPU_SLOT = 24;

/** What an I/O thread starts with. */
export interface IoThreadInit {
  memory: WebAssembly.Memory;
  pollTable: SharedArrayBuffer;
  sq: number;
  module: string;
  init: unknown;
  /**
   * Int32 [0]: set to 1 to stop; [1]: set to 1 by the thread once its backstore is open; [2]: a
   * count of CPU-time requests. At IO_CPU_AT + IO_CPU_SLOT * `index`, the thread's answer: its
   * user and system CPU time, ms (Float64, NaN where the platform cannot tell), and the request
   * count it answers (Int32).
   */
  control: SharedArrayBuffer;
  /** This thread's place among its backstore's I/O threads. */
  index: number;
}

/**
 * Serves a queued backstore's submission queue at `sq` until stop(): in its dedicated I/O
 * threads, or not at all when the vhost workers serve it (`workerServed`), or on this thread.
 */
export class BackstoreService {
  private running = true;
  private readonly port: RingPort;
  private loop: Promise<void> | undefined;
  /** The I/O threads still running, each with the promise of its end (it closed its backstore, or died). */
  private readonly threads = new Map<PlatformThread, Promise<void>>();
  /** Set when the vhost workers are to serve the queue: what they need to open the backstore. */
  readonly workerServed: WorkerServedBackstore | undefined;
  private readonly control: SharedArrayBuffer;

  constructor(
    private readonly backstore: QueuedBackstore,
    private readonly sq: number,
    ctx: ServiceContext,
  ) {
    this.port = new RingPort(ctx.memory.buffer as unknown as SharedArrayBuffer, new PollTable(ctx.pollTable));
    const t = backstore.threaded;
    this.control = new SharedArrayBuffer(IO_CPU_AT + IO_CPU_SLOT * (t?.ioThreads ?? 0));
    if (t && t.ioThreads === 0) {
      this.workerServed = { sq, module: t.module, init: t.init };
    } else if (t) {
      for (let i = 0; i < t.ioThreads; i++) {
        const init: IoThreadInit = { memory: ctx.memory, pollTable: ctx.pollTable, sq, module: t.module, init: t.init, control: this.control, index: i };
        const w = platform.startThread(compiledModule(new URL("./io-thread.ts", import.meta.url)), init);
        const ended = new Promise<void>((resolve) => {
          const gone = () => {
            if (!this.threads.delete(w)) return;
            resolve();
            // Should the last I/O thread die, requests fail (EIO) rather than wait for ever.
            if (this.threads.size === 0 && this.running) this.loop = this.run(failing(backstore));
          };
          w.onMessage((m) => m === "closed" && gone());
          w.onExit(gone);
          w.onError((e) => {
            log("backstore %s: I/O thread failed: %s", backstore.name, e.message);
            gone();
          });
        });
        w.unref();
        this.threads.set(w, ended);
      }
    } else {
      this.loop = this.run(backstore);
    }
  }

  /**
   * The loop on this thread: take a batch and run it; sleep on the queue when empty. Completions
   * (now or later) ring the workers' doorbells once per turn of the event loop.
   */
  private async run(backstore: QueuedBackstore): Promise<void> {
    const { port, sq } = this;
    const gate = port.gate(sq);
    const finish = (ctx: number, result: number) => {
      port.complete(ctx, result);
      port.ringSoon();
    };
    while (this.running) {
      const batch: TakenRequest[] = [];
      for (let ctx = port.take(sq); ctx !== 0; ctx = batch.length < EVENT_LOOP_BATCH ? port.take(sq) : 0) batch.push(port.request(ctx));
      if (batch.length) {
        runBatch(backstore, batch, finish, gate);
        // Let completions that arrive asynchronously run before looking again.
        await platform.yieldToEventLoop();
        continue;
      }
      await port.sleepAsync(sq, 100);
    }
  }

  /**
   * The CPU time the dedicated I/O threads used so far, together, ms; undefined without I/O
   * threads or where the platform cannot tell. Each thread answers between its batches (a
   * sleeping one is woken to answer).
   */
  async ioThreadCpu(): Promise<{ user: number; system: number } | undefined> {
    if (this.threads.size === 0) return undefined;
    const ctl = new Int32Array(this.control);
    const asked = Atomics.add(ctl, 2, 1) + 1;
    const n = (this.control.byteLength - IO_CPU_AT) / IO_CPU_SLOT;
    const answered = (i: number) => Atomics.load(ctl, (IO_CPU_AT + IO_CPU_SLOT * i + 16) / 4) === asked;
    // Threads that died do not answer: a second at most.
    for (let waited = 0; waited < 1000 && !Array.from({ length: n }, (_, i) => answered(i)).every(Boolean); waited++) {
      this.port.wake(this.sq);
      await new Promise((r) => setTimeout(r, 1));
    }
    let user = 0;
    let system = 0;
    for (let i = 0; i < n; i++) {
      const t = new Float64Array(this.control, IO_CPU_AT + IO_CPU_SLOT * i, 2);
      user += t[0];
      system += t[1];
    }
    return Number.isFinite(user) ? { user, system } : undefined;
  }

  /** Stops taking requests (the LUN is gone: nothing is queued or in flight any more) and closes the backstore. */
  async stop(): Promise<void> {
    this.running = false;
    Atomics.store(new Int32Array(this.control), 0, 1);
    this.port.wake(this.sq);
    // Held until they are gone (an idle I/O thread does not keep the process alive otherwise).
    await Promise.all(
      [...this.threads].map(async ([w, ended]) => {
        w.ref();
        this.port.wake(this.sq);
        await ended;
        await w.terminate();
      }),
    );
    await this.loop;
    await this.backstore.close();
  }
}
