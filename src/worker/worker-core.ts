import { EventFd, type EventFdHandle, type PollTable } from "../sys/eventfd.js";
import type { DataplaneExports } from "../wasm/dataplane.js";
import type { VringAttachment } from "./worker.js";
import { POLL_IDLE, POLL_MORE, VringServer, type PollResult } from "./vring-server.js";
import { RingPort, type QueueGate, type TakenRequest } from "../backstore/ring.js";
import { BATCH, EVENT_LOOP_BATCH, runBatch, type WorkerServedBackstore } from "../backstore/service.js";
import type { QueuedBackstore } from "../backstore/backstore.js";
import { log } from "../sys/log.js";

interface Served {
  a: VringAttachment;
  kick: EventFd | null;
  call: EventFd | null;
  err: EventFd | null;
  log: EventFd | null;
}

/**
 * What every vhost worker does, wherever it runs: keeps its vrings and their eventfds, hooks
 * its doorbell onto the kick eventfds (the kernel's vhost_poll), consumes kicks, drains through
 * the vring server and signals call/err eventfds. LocalWorker runs it in the calling thread,
 * thread-main.ts in a worker thread.
 */
export class WorkerCore {
  readonly server: VringServer;
  private readonly served = new Map<number, Served>();
  /** The gates of the submission queues served here, by queue. */
  private readonly gates = new Map<number, QueueGate>();
  /** Submission queues of backstores this worker serves itself (io-threads 0), by address. */
  private backstores = new Map<number, QueuedBackstore>();
  private readonly port: RingPort;
  /** Inside serveBackstores (which rings the doorbells after its batches). */
  private serving = false;
  /**
   * Posts a completion. One that a backstore answers later (from its sockets, on this thread's
   * event loop) rings the doorbells at the end of that turn, once for all of the turn's.
   */
  private readonly finish = (ctx: number, result: number) => {
    this.port.complete(ctx, result);
    if (!this.serving) this.port.ringSoon();
  };
  /**
   * Some backstore served here answers after submit() returns (NBD): the thread's event loop
   * must run between passes, and the worker waits on it rather than blocking.
   */
  eventLoop = false;
  paused = false;

  constructor(
    private readonly dp: DataplaneExports,
    readonly pollTable: PollTable,
    readonly doorbell: number,
    buffer: SharedArrayBuffer,
  ) {
    this.server = new VringServer(dp, {
      signal: (i) => this.served.get(i)?.call?.write(1n),
      error: (i) => this.served.get(i)?.err?.write(1n),
      logged: (i) => this.served.get(i)?.log?.write(1n),
    });
    this.port = new RingPort(buffer, pollTable);
  }

  /**
   * Serves these submission queues itself from now on (and no others): each backstore opened
   * in this thread from its module. The caller keeps a queue listed until nothing is sent to it.
   */
  async setBackstores(list: readonly WorkerServedBackstore[]): Promise<void> {
    const next = new Map<number, QueuedBackstore>();
    for (const s of list) {
      const had = this.backstores.get(s.sq);
      next.set(
        s.sq,
        had ?? (await ((await import(s.module)) as { openInThread(init: unknown): QueuedBackstore | Promise<QueuedBackstore> }).openInThread(s.init)),
      );
    }
    for (const [sq, b] of this.backstores) {
      if (next.has(sq)) continue;
      // A client on the event loop (NBD) ends a reconnect attempt under way before it closes, up
      // to seconds when its server is gone: the passes over the rings do not wait for that.
      if (b.features.synchronous) await b.close();
      else void Promise.resolve(b.close()).catch((e: Error) => log("backstore %s: closing: %s", b.name, e.message));
    }
    this.backstores = next;
    this.eventLoop = [...next.values()].some((b) => !b.features.synchronous);
  }

  /** Serves one batch from each submission queue of backstores served here; how many requests. */
  private serveBackstores(): number {
    let n = 0;
    this.serving = true;
    try {
      for (const [sq, b] of this.backstores) {
        const batch: TakenRequest[] = [];
        const most = b.features.synchronous ? BATCH : EVENT_LOOP_BATCH;
        for (let ctx = this.port.take(sq); ctx !== 0; ctx = batch.length < most ? this.port.take(sq) : 0) batch.push(this.port.request(ctx));
        if (batch.length === 0) continue;
        let gate = this.gates.get(sq);
        if (!gate) this.gates.set(sq, (gate = this.port.gate(sq)));
        runBatch(b, batch, this.finish, gate);
        n += batch.length;
      }
    } finally {
      this.serving = false;
    }
    if (n) this.port.ringDoorbells();
    return n;
  }

  get vrings(): ReadonlySet<number> {
    return new Set(this.served.keys());
  }

  /** The longest busy-poll window asked for by an attached vring (VHOST_SET_VRING_BUSYLOOP_TIMEOUT); kept as vrings come and go. */
  busyloopUs = 0;

  private updateBusyloop(): void {
    let us = 0;
    for (const s of this.served.values()) us = Math.max(us, s.a.busyloopUs);
    this.busyloopUs = us;
  }

  attach(a: VringAttachment): void {
    this.served.get(a.binding.index)?.kick?.unwatch(this.doorbell);
    const kick = a.kick && EventFd.fromHandle(a.kick);
    kick?.watch(this.doorbell);
    const fd = (h: EventFdHandle | null) => h && EventFd.fromHandle(h);
    this.served.set(a.binding.index, { a, kick, call: fd(a.call), err: fd(a.err), log: fd(a.log) });
    // Backstores served elsewhere wake this worker when they complete the queue's requests.
    if (a.binding.cq) this.dp.io_cq_set_doorbell(a.binding.cq, this.doorbell);
    this.server.attach(a.binding);
    this.updateBusyloop();
    this.pollTable.ring(this.doorbell);
  }

  /**
   * Stops serving a vring: no more requests are taken, but those in flight still complete and
   * signal the guest; done() is called after that, when the vring is forgotten. The worker's
   * loop must keep polling meanwhile.
   */
  detach(index: number, done: () => void): void {
    const s = this.served.get(index);
    s?.kick?.unwatch(this.doorbell);
    this.server.detach(index, () => {
      if (this.served.get(index) === s) this.served.delete(index);
      this.updateBusyloop();
      done();
    });
    this.pollTable.ring(this.doorbell);
  }

  kick(index: number): void {
    this.server.kicked(index);
    this.pollTable.ring(this.doorbell);
  }

  /** Consumes the kicks that arrived: a vring stopped by a queue error is tried again. */
  consumeKicks(): void {
    for (const [index, s] of this.served) if (s.kick?.tryRead() !== undefined) this.server.kicked(index);
  }

  /** Time spent in drains that served something, ms (what the worker's core was busy with). */
  busyMs = 0;

  /** Drains every vring once (nothing while paused); see VringServer.poll. */
  drain(polling = false): PollResult {
    if (this.paused) return POLL_IDLE;
    const progress = this.server.progress;
    const t0 = performance.now();
    let r = this.server.poll(polling);
    // Requests for backstores served here: a batch at a time, then their answers go back at once.
    if (this.backstores.size && this.serveBackstores()) r = POLL_MORE;
    if (this.server.progress !== progress) this.busyMs += performance.now() - t0;
    return r;
  }

  /** Consumes kicks and drains every vring once. */
  poll(polling = false): PollResult {
    this.consumeKicks();
    return this.drain(polling);
  }

  /** Signals every attached vring's err eventfd (the worker is going away abnormally). */
  signalErrors(): void {
    for (const s of this.served.values()) s.err?.write(1n);
  }

  /** Unhooks from all kick eventfds. */
  close(): void {
    for (const s of this.served.values()) s.kick?.unwatch(this.doorbell);
    this.served.clear();
    this.busyloopUs = 0;
  }
}
