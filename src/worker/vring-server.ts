import type { DataplaneExports } from "../wasm/dataplane.js";
import { CTL_TMF_PENDING, DRAIN_ERROR, DRAIN_LOGGED, DRAIN_MORE, DRAIN_SIGNAL, DRAIN_STALLED, DRAIN_USED } from "../wasm/dataplane.js";

/**
 * What a vring is to its device, which decides the handler a worker runs on it: a virtio-scsi
 * device's request, control and event queues (VIRTIO 1.2, 5.6.2), a virtio-blk request queue
 * (5.2.2).
 */
export type VringKind = "scsi-req" | "scsi-ctl" | "scsi-evt" | "blk-req";

/** One vring a worker serves. */
export interface VringBinding {
  /** The vring's index on its device. */
  index: number;
  kind: VringKind;
  /** VirtQueue struct and the device type's struct in the shared memory. */
  vq: number;
  dev: number;
  /** Request queues: the completion queue backstores served elsewhere answer on (0 for the others). */
  cq: number;
}

/** How a vring server reports back: signal the guest, report a queue error, tell the log reader. */
export interface VringEvents {
  signal(index: number): void;
  error(index: number): void;
  /** The used ring was published and logged (the log eventfd, VHOST_SET_LOG_FD). */
  logged(index: number): void;
}

/** poll() results: nothing to do, more work right away, a TMF waiting for aborted requests. */
export const POLL_IDLE = 0;
export const POLL_MORE = 1;
export const POLL_WAITING = 2;
export type PollResult = typeof POLL_IDLE | typeof POLL_MORE | typeof POLL_WAITING;

/** The kernel's VHOST_SCSI_WEIGHT: requests per queue before others get a turn. */
const VHOST_WEIGHT = 256;

/** How a worker serves a vring of one kind; every DRAIN_* answer is reported the same way. */
interface VringRole {
  /**
   * Drained on every pass (a busy-polling worker serves request queues without kicks); the
   * others are served when there is a reason, as the kernel runs their handlers only from a
   * kick or queued work: a kick (a posted event kicks too), work left waiting, the attach.
   */
  readonly always: boolean;
  /** One pass: requests taken and answered, completions reaped. */
  drain(dp: DataplaneExports, b: VringBinding, polling: boolean): number;
  /** Answers what completed without taking anything new (a stopped or detaching queue). */
  reap(dp: DataplaneExports, b: VringBinding): number;
}

const ROLES: Record<VringKind, VringRole> = {
  "scsi-req": {
    always: true,
    drain: (dp, b, polling) => dp.scsi_req_drain(b.vq, b.dev, b.index, VHOST_WEIGHT, polling),
    reap: (dp, b) => dp.scsi_req_reap(b.vq),
  },
  "scsi-ctl": {
    always: false,
    drain: (dp, b) => dp.scsi_ctl_drain(b.vq, b.dev, VHOST_WEIGHT) | dp.scsi_ctl_poll(b.vq, b.dev),
    reap: (dp, b) => dp.scsi_ctl_poll(b.vq, b.dev),
  },
  "scsi-evt": {
    always: false,
    drain: (dp, b) => dp.scsi_evt_drain(b.vq, b.dev),
    reap: () => 0,
  },
  "blk-req": {
    always: true,
    drain: (dp, b, polling) => dp.blk_req_drain(b.vq, b.dev, VHOST_WEIGHT, polling),
    reap: (dp, b) => dp.blk_req_reap(b.vq),
  },
};

/** A vring being served, and what the server knows of it between passes. */
interface Vring {
  readonly b: VringBinding;
  /** ROLES[b.kind], looked up once (a kind that came from another thread is a string V8 compares by content). */
  readonly role: VringRole;
  /** Stopped by a malformed entry at the head of its ring until the driver kicks again. */
  stalled: boolean;
  /** A vring not drained on every pass has a reason to be served (VringRole.always). */
  due: boolean;
}

/**
 * The body of a vhost worker: drains the vrings attached to it through its own data plane
 * instance, one call per queue per pass, with the handler of the vring's kind; a request
 * queue's call also answers the requests its backstores completed meanwhile. Used inside worker
 * threads and, for embedding and tests, synchronously in the calling thread.
 */
export class VringServer {
  private readonly vrings = new Map<number, Vring>();
  /** Vrings being detached: no new requests, answers for those in flight, then done(). */
  private readonly detaching = new Map<number, { v: Vring; done: () => void }>();
  /** Grows whenever a pass published used entries (busy-polling tells idle from busy by it). */
  progress = 0;

  constructor(
    private readonly dp: DataplaneExports,
    private readonly events: VringEvents,
  ) {}

  attach(b: VringBinding): void {
    const role = ROLES[b.kind];
    if (!role) throw new TypeError(`no handler for vrings of kind ${b.kind}`);
    this.vrings.set(b.index, { b, role, stalled: false, due: true });
  }

  /**
   * Stops serving a vring: no more requests are taken, those in flight are still answered and
   * signalled; done() is called once none is left.
   */
  detach(index: number, done: () => void): void {
    const v = this.vrings.get(index);
    this.vrings.delete(index);
    if (!v) return done();
    this.detaching.get(index)?.done();
    this.detaching.set(index, { v, done });
    this.finishDetaching();
  }

  get attached(): VringBinding[] {
    return [...this.vrings.values()].map((v) => v.b);
  }

  /** A kick on vring index: it is served on the next pass; a queue stopped by an error is tried again (as the kernel does). */
  kicked(index: number): void {
    const v = this.vrings.get(index);
    if (!v) return;
    v.stalled = false;
    v.due = true;
  }

  /**
   * One pass over the attached vrings; see POLL_*. `polling` (a busy-polling worker) leaves the
   * request queues' notifications off when they run empty; a pass without it turns them on.
   */
  poll(polling = false): PollResult {
    const { dp } = this;
    let more = false;
    let waiting = false;
    for (const v of this.vrings.values()) {
      const role = v.role;
      if (v.stalled) {
        // A stopped request queue still answers what its backstores completed.
        if (role.always) this.report(v, role.reap(dp, v.b));
        continue;
      }
      if (!role.always && !v.due) continue;
      const f = role.drain(dp, v.b, polling);
      if (f & CTL_TMF_PENDING) waiting = true;
      if (!role.always) v.due = (f & (DRAIN_MORE | CTL_TMF_PENDING)) !== 0;
      this.report(v, f);
      if (f & DRAIN_MORE) more = true;
    }
    if (this.detaching.size) waiting = this.finishDetaching() || waiting;
    return more ? POLL_MORE : waiting ? POLL_WAITING : POLL_IDLE;
  }

  private report(v: Vring, f: number): void {
    if (f & DRAIN_USED) this.progress++;
    if (f & DRAIN_SIGNAL) this.events.signal(v.b.index);
    if (f & DRAIN_LOGGED) this.events.logged(v.b.index);
    // Every recorded queue error reaches the err eventfd (vq_err); a malformed entry at the
    // head of the ring also stops the queue until the driver kicks again.
    if (f & DRAIN_ERROR) this.events.error(v.b.index);
    if (f & DRAIN_STALLED) v.stalled = true;
  }

  /** Answers what completed on the vrings being detached; true while some still wait. */
  private finishDetaching(): boolean {
    for (const [index, { v, done }] of this.detaching) {
      this.report(v, v.role.reap(this.dp, v.b));
      if (this.dp.vq_inflight(v.b.vq) !== 0) continue;
      this.detaching.delete(index);
      done();
    }
    return this.detaching.size > 0;
  }
}
