import type { DataplaneExports } from "../wasm/dataplane.js";
import { CTL_TMF_PENDING, DRAIN_ERROR, DRAIN_MORE, DRAIN_SIGNAL, DRAIN_STALLED, DRAIN_USED } from "../wasm/dataplane.js";

/** The kinds of vring a vhost-scsi device has (VIRTIO 1.2, 5.6.2: controlq, eventq, requestq...). */
export type VringKind = "ctl" | "evt" | "req";

/** One vring a worker serves. */
export interface VringBinding {
  /** The vring's index on the device (0 control, 1 event, 2.. request). */
  index: number;
  kind: VringKind;
  /** VirtQueue struct and ScsiDevice struct in the shared memory. */
  vq: number;
  dev: number;
  /** Request queues: the completion queue backstores served elsewhere answer on (0 for the others). */
  cq: number;
}

/** How a vring server reports back: signal the guest, report a queue error. */
export interface VringEvents {
  signal(index: number): void;
  error(index: number): void;
}

/** poll() results: nothing to do, more work right away, a TMF waiting for aborted requests. */
export const POLL_IDLE = 0;
export const POLL_MORE = 1;
export const POLL_WAITING = 2;
export type PollResult = typeof POLL_IDLE | typeof POLL_MORE | typeof POLL_WAITING;

/** The kernel's VHOST_SCSI_WEIGHT: requests per queue before others get a turn. */
const VHOST_SCSI_WEIGHT = 256;

/**
 * The body of a vhost-scsi worker: drains the vrings attached to it through its own data plane
 * instance, one call per queue per pass; a request queue's call also answers the requests its
 * backstores completed meanwhile. Used inside worker threads and, for embedding and tests,
 * synchronously in the calling thread.
 */
export class ScsiVringServer {
  private readonly bindings = new Map<number, VringBinding>();
  private readonly errored = new Set<number>();
  /** Vrings being detached: no new requests, answers for those in flight, then done(). */
  private readonly detaching = new Map<number, { b: VringBinding; done: () => void }>();
  /** Grows whenever a pass published used entries (busy-polling tells idle from busy by it). */
  progress = 0;

  constructor(
    private readonly dp: DataplaneExports,
    private readonly events: VringEvents,
  ) {}

  attach(b: VringBinding): void {
    this.bindings.set(b.index, b);
    this.errored.delete(b.index);
  }

  /**
   * Stops serving a vring: no more requests are taken, those in flight are still answered and
   * signalled; done() is called once none is left.
   */
  detach(index: number, done: () => void): void {
    const b = this.bindings.get(index);
    this.bindings.delete(index);
    if (!b) return done();
    this.detaching.get(index)?.done();
    this.detaching.set(index, { b, done });
    this.finishDetaching();
  }

  get attached(): VringBinding[] {
    return [...this.bindings.values()];
  }

  /** A kick on vring index: a queue stopped by an error is tried again (as the kernel does). */
  kicked(index: number): void {
    this.errored.delete(index);
  }

  /**
   * One pass over the attached vrings; see POLL_*. `polling` (a busy-polling worker) leaves the
   * request queues' notifications off when they run empty; a pass without it turns them on.
   */
  poll(polling = false): PollResult {
    let more = false;
    let waiting = false;
    for (const b of this.bindings.values()) {
      if (this.errored.has(b.index)) {
        // A stopped queue still answers what its backstores completed.
        if (b.kind === "req") this.report(b, this.dp.scsi_req_reap(b.vq));
        continue;
      }
      let f: number;
      if (b.kind === "req") {
        f = this.dp.scsi_req_drain(b.vq, b.dev, VHOST_SCSI_WEIGHT, polling);
      } else if (b.kind === "ctl") {
        f = this.dp.scsi_ctl_drain(b.vq, b.dev, VHOST_SCSI_WEIGHT) | this.dp.scsi_ctl_poll(b.vq, b.dev);
        if (f & CTL_TMF_PENDING) waiting = true;
      } else {
        f = this.dp.scsi_evt_drain(b.vq, b.dev);
      }
      this.report(b, f);
      if (f & DRAIN_MORE) more = true;
    }
    if (this.detaching.size) waiting = this.finishDetaching() || waiting;
    return more ? POLL_MORE : waiting ? POLL_WAITING : POLL_IDLE;
  }

  private report(b: VringBinding, f: number): void {
    if (f & DRAIN_USED) this.progress++;
    if (f & DRAIN_SIGNAL) this.events.signal(b.index);
    // Every recorded queue error reaches the err eventfd (vq_err); a malformed entry at the
    // head of the ring also stops the queue until the driver kicks again.
    if (f & DRAIN_ERROR) this.events.error(b.index);
    if (f & DRAIN_STALLED) this.errored.add(b.index);
  }

  /** Answers what completed on the vrings being detached; true while some still wait. */
  private finishDetaching(): boolean {
    for (const [index, { b, done }] of this.detaching) {
      if (b.kind === "req") this.report(b, this.dp.scsi_req_reap(b.vq));
      else if (b.kind === "ctl") this.report(b, this.dp.scsi_ctl_poll(b.vq, b.dev));
      if (this.dp.vq_inflight(b.vq) !== 0) continue;
      this.detaching.delete(index);
      done();
    }
    return this.detaching.size > 0;
  }
}
