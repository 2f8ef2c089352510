import type { DataplaneExports } from "../wasm/dataplane.js";
import { CTL_TMF_PENDING, DRAIN_ERROR, DRAIN_MORE, DRAIN_SIGNAL, DRAIN_STALLED, DRAIN_USED, readIovecs } from "../wasm/dataplane.js";
import { nodeFileOps, runFileIo, type FileOps } from "./file-io.js";

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
  /** Request queues: the in-flight table (also the VirtQueue's private_data). */
  table: number;
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
export const VHOST_SCSI_WEIGHT = 256;

/**
 * The body of a vhost-scsi worker: drains the vrings attached to it through its own data plane
 * instance (one call per queue per pass), runs the file backstore's I/O for the requests the
 * data plane handed over, and completes them in batches. Used inside worker threads and, for
 * embedding and tests, synchronously in the calling thread.
 */
export class ScsiVringServer {
  private readonly bindings = new Map<number, VringBinding>();
  private readonly errored = new Set<number>();
  private readonly toFlush = new Set<VringBinding>();
  private flushQueued = false;
  /** File-backstore operations in flight. */
  ioInflight = 0;
  /** Grows whenever a pass published used entries (busy-polling tells idle from busy by it). */
  progress = 0;
  private ioIdle: (() => void)[] = [];
  private readonly view: DataView;

  constructor(
    private readonly dp: DataplaneExports,
    private readonly buffer: SharedArrayBuffer,
    private readonly events: VringEvents,
    private readonly fdOf: (lunPtr: number) => number,
    private readonly ops: FileOps = nodeFileOps,
  ) {
    this.view = new DataView(buffer);
  }

  attach(b: VringBinding): void {
    this.bindings.set(b.index, b);
    this.errored.delete(b.index);
  }

  detach(index: number): void {
    this.bindings.delete(index);
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
      if (this.errored.has(b.index)) continue;
      let f: number;
      if (b.kind === "req") {
        f = this.dp.scsi_req_drain(b.vq, b.dev, VHOST_SCSI_WEIGHT, polling);
        if (this.dp.scsi_inflight_nsubmit(b.table)) this.submit(b);
      } else if (b.kind === "ctl") {
        f = this.dp.scsi_ctl_drain(b.vq, b.dev, VHOST_SCSI_WEIGHT) | this.dp.scsi_ctl_poll(b.vq, b.dev);
        if (f & CTL_TMF_PENDING) waiting = true;
      } else {
        f = this.dp.scsi_evt_drain(b.vq, b.dev);
      }
      if (f & DRAIN_USED) this.progress++;
      if (f & DRAIN_SIGNAL) this.events.signal(b.index);
      if (f & DRAIN_MORE) more = true;
      // Every recorded queue error reaches the err eventfd (vq_err); a malformed entry at the
      // head of the ring also stops the queue until the driver kicks again.
      if (f & DRAIN_ERROR) this.events.error(b.index);
      if (f & DRAIN_STALLED) this.errored.add(b.index);
    }
    return more ? POLL_MORE : waiting ? POLL_WAITING : POLL_IDLE;
  }

  /** Starts the file I/O of the requests the last drain of b submitted. */
  private submit(b: VringBinding): void {
    const { dp, buffer, view: dv } = this;
    const n = dp.scsi_inflight_nsubmit(b.table);
    for (let k = 0; k < n; k++) {
      const slot = dp.scsi_inflight_submitted(b.table, k);
      const op = dp.scsi_slot_op(b.table, slot);
      const fd = this.fdOf(dp.scsi_slot_lun(b.table, slot));
      const views = readIovecs(dv, dp.scsi_slot_data(b.table, slot)).entries.map(([at, len]) => new Uint8Array(buffer, at, len));
      this.ioInflight++;
      void runFileIo(this.ops, fd, op, dp.scsi_slot_offset(b.table, slot), dp.scsi_slot_length(b.table, slot), views).then((r) => {
        this.ioInflight--;
        // The binding may have been detached meanwhile; the queue struct outlives it until flushed.
        dp.scsi_complete_request(b.vq, slot, r.result, r.info);
        this.toFlush.add(b);
        this.scheduleFlush();
      });
    }
    dp.scsi_inflight_clear_submitted(b.table);
  }

  /** Publishes completions once per batch (one used->idx store and at most one signal per queue). */
  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      for (const b of this.toFlush) {
        if (this.dp.vq_flush(b.vq) & DRAIN_SIGNAL) this.events.signal(b.index);
      }
      this.toFlush.clear();
      if (this.ioInflight === 0) for (const fn of this.ioIdle.splice(0)) fn();
    });
  }

  /** Resolves when no file I/O is in flight (all completions published). */
  idle(): Promise<void> {
    if (this.ioInflight === 0 && !this.flushQueued) return Promise.resolve();
    return new Promise((r) => this.ioIdle.push(r));
  }
}
