import type { GuestMemory, GuestRegion } from "../guest/guest-memory.js";
import { onSignal, type EventFdHandle } from "../sys/eventfd.js";
import { log } from "../sys/log.js";
import type { ErrnoCode } from "../sys/errors.js";
import type { QueueErrorName } from "../virtio/queue-error.js";
import type { VhostProcess } from "../vhost/process.js";
import { VhostScsi } from "../vhost/vhost-scsi.js";
import { VHOST_SCSI_MAX_IO_VQ } from "../vhost/vhost-scsi.js";
import { vhostRegionsOf } from "../vhost/mem-table.js";
import { VHOST_SCSI_ABI_VERSION } from "../vhost/uapi.js";
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  type QueueConfig,
  type VirtioTransport,
} from "../virtio/transport.js";
import { VIRTIO_F_VERSION_1 } from "../virtio/ring.js";
import {
  VIRTIO_ID_SCSI,
  VIRTIO_SCSI_CDB_SIZE,
  VIRTIO_SCSI_MAX_SECTORS,
  VIRTIO_SCSI_CONFIG_SIZE,
  VIRTIO_SCSI_EVENT_SIZE,
  VIRTIO_SCSI_SENSE_SIZE,
} from "../virtio/virtio-scsi.js";

/** QEMU's limits for virtio-scsi: max_channel 0, max_target 255, max_lun 16383. */
const VIRTIO_SCSI_MAX_CHANNEL = 0;
const VIRTIO_SCSI_MAX_TARGET = 255;
const VIRTIO_SCSI_MAX_LUN = 16383;

export interface VhostScsiDeviceOptions {
  /** The target's WWPN (vhost-scsi-pci,wwpn=...). */
  wwpn: string;
  /** Request queues (num_queues). Default 1. */
  numQueues?: number;
  /** Largest queue size offered (virtqueue_size). Default 128. */
  queueSize?: number;
  /** Target number passed to SET_ENDPOINT (boot_tpgt). Default 0. */
  bootTpgt?: number;
  /** Features masked from what the backend offers (e.g. to test a driver without event-idx). */
  maskFeatures?: bigint;
  /** Workers beyond the default: request queue i is served by worker i % (workers). Default 1 (all on the default). */
  workers?: number;
}

interface QueueState {
  config: QueueConfig | undefined;
  kick: number; // eventfd (the ioeventfd the driver's notify writes)
  call: number; // eventfd (the guest notifier, irqfd)
  err: number; // eventfd (the vring error notifier)
  lastAvail: number; // saved by stop (GET_VRING_BASE), restored by start (SET_VRING_BASE)
  errorsSeen: number; // the queue's error count when last reported
}

/** A queue error the backend reported on a vring's err eventfd (QEMU logs "vhost vring error"). */
export interface QueueErrorEvent {
  /** Virtqueue index: 0 control, 1 event, 2.. request queues. */
  queue: number;
  /** The error's name (QUEUE_ERRORS), or "WorkerFailed" when the vring's worker died. */
  name: QueueErrorName | "WorkerFailed";
  errno: ErrnoCode;
  text: string;
  /** The index the error names (head, descriptor or avail->idx value). */
  info: number;
  /** Errors recorded since the previous event (several can fold into one eventfd signal). */
  count: number;
}

/**
 * The QEMU-side vhost-scsi device (hw/scsi/vhost-scsi.c and vhost-scsi-common.c): it realizes
 * the virtio-scsi device over a /dev/vhost-scsi fd of a VhostProcess, shows the guest its
 * config space and features, and on DRIVER_OK starts the backend exactly as QEMU does
 * (features, memory table, per queue num/base/addr/kick/call, then the endpoint); on reset it
 * stops it (clear endpoint, then the queues' bases are fetched back). A memory listener keeps
 * the backend's memory table in step with guest RAM.
 */
export class VhostScsiDevice implements VirtioTransport {
  readonly deviceId = VIRTIO_ID_SCSI;
  /** Request queues (num_queues in the config space). */
  readonly requestQueues: number;
  readonly queueSize: number;
  private fd = -1;
  private hostFeatures = 0n;
  private driverFeatures = 0n;
  private statusReg = 0;
  private readonly queues: QueueState[];
  private started = false;
  private interrupt: (index: number) => void = () => {};
  private readonly callWatchers = new Set<number>();
  /** Queues whose interrupts a guest elsewhere takes itself (handOverNotifiers). */
  private readonly handedOver = new Set<number>();
  private stopListening: (() => void) | undefined;
  private readonly errorHandlers = new Set<(e: QueueErrorEvent) => void>();
  private errWatching = false;
  private readonly config = new Uint8Array(VIRTIO_SCSI_CONFIG_SIZE);
  /** The last error from starting the backend (the device then shows NEEDS_RESET). */
  lastError: Error | undefined;

  constructor(
    private readonly proc: VhostProcess,
    private readonly mem: GuestMemory,
    private readonly opts: VhostScsiDeviceOptions,
  ) {
    this.requestQueues = opts.numQueues ?? 1;
    this.queueSize = opts.queueSize ?? 128;
    if (!(this.requestQueues >= 1 && this.requestQueues <= VHOST_SCSI_MAX_IO_VQ))
      throw new RangeError(`num_queues ${this.requestQueues}: 1..${VHOST_SCSI_MAX_IO_VQ}`);
    this.queues = Array.from({ length: 2 + this.requestQueues }, () => ({ config: undefined, kick: -1, call: -1, err: -1, lastAvail: 0, errorsSeen: 0 }));
    const dv = new DataView(this.config.buffer);
    dv.setUint32(0, this.requestQueues, true);
    dv.setUint32(4, Math.min(this.queueSize - 2, 126), true); // seg_max
    dv.setUint32(8, VIRTIO_SCSI_MAX_SECTORS, true);
    dv.setUint32(12, 128, true); // cmd_per_lun
    dv.setUint32(16, VIRTIO_SCSI_EVENT_SIZE, true); // event_info_size
    dv.setUint32(20, VIRTIO_SCSI_SENSE_SIZE, true);
    dv.setUint32(24, VIRTIO_SCSI_CDB_SIZE, true);
    dv.setUint16(28, VIRTIO_SCSI_MAX_CHANNEL, true);
    dv.setUint16(30, VIRTIO_SCSI_MAX_TARGET, true);
    dv.setUint32(32, VIRTIO_SCSI_MAX_LUN, true);
  }

  /** The vhost device object (for diagnostics: counters, errors). */
  get vhost(): VhostScsi {
    return this.proc.device(this.fd, VhostScsi);
  }

  /**
   * realize: open /dev/vhost-scsi, vhost_dev_init (SET_OWNER, GET_FEATURES, each virtqueue's
   * call eventfd), check the ABI version, create the extra workers.
   */
  async realize(): Promise<void> {
    const p = this.proc;
    this.fd = p.open("/dev/vhost-scsi");
    const d = p.device(this.fd, VhostScsi);
    await d.SET_OWNER();
    this.hostFeatures = (await d.GET_FEATURES()) & ~(this.opts.maskFeatures ?? 0n);
    const abi = await d.SCSI_GET_ABI_VERSION();
    if (abi > VHOST_SCSI_ABI_VERSION) throw new Error(`vhost-scsi ABI ${abi} is newer than ${VHOST_SCSI_ABI_VERSION}`);
    for (const [i, q] of this.queues.entries()) {
      q.kick = p.eventfd();
      q.call = p.eventfd();
      q.err = p.eventfd();
      await d.SET_VRING_CALL({ index: i, fd: q.call });
      await d.SET_VRING_ERR({ index: i, fd: q.err });
    }
    this.errWatching = true;
    for (let i = 0; i < this.queues.length; i++) this.watchErr(i);
    const extra = (this.opts.workers ?? 1) - 1;
    const ids = [0];
    for (let k = 0; k < extra; k++) ids.push((await d.NEW_WORKER()).worker_id);
    for (let i = 0; i < this.requestQueues; i++) await d.ATTACH_VRING_WORKER({ index: 2 + i, worker_id: ids[i % ids.length] });
  }

  // ---- the transport the guest driver sees ----

  deviceFeatures(): bigint {
    return this.hostFeatures | (1n << BigInt(VIRTIO_F_VERSION_1));
  }

  setDriverFeatures(features: bigint): void {
    this.driverFeatures = features;
  }

  status(): number {
    return this.statusReg;
  }

  async setStatus(status: number): Promise<void> {
    if (status === 0) {
      await this.stop();
      this.statusReg = 0;
      this.driverFeatures = 0n;
      for (const q of this.queues) {
        q.config = undefined;
        q.lastAvail = 0;
      }
      return;
    }
    if (status & VIRTIO_CONFIG_S_FEATURES_OK && !(this.statusReg & VIRTIO_CONFIG_S_FEATURES_OK)) {
      // VIRTIO 1.2, 3.1.1: FEATURES_OK stays clear if the driver accepted features not offered.
      if (this.driverFeatures & ~this.deviceFeatures()) status &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
    const wasOk = this.statusReg & VIRTIO_CONFIG_S_DRIVER_OK;
    this.statusReg = status;
    if (status & VIRTIO_CONFIG_S_DRIVER_OK && !wasOk && !(status & VIRTIO_CONFIG_S_FAILED)) {
      try {
        await this.start();
      } catch (e) {
        this.lastError = e as Error;
        log("vhost-scsi device: starting the backend failed (%s): DEVICE_NEEDS_RESET", this.lastError.message);
        this.statusReg |= VIRTIO_CONFIG_S_NEEDS_RESET;
        await this.stop();
      }
    }
  }

  readConfig(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    out.set(this.config.subarray(offset, offset + length));
    return out;
  }

  /**
   * sense_size and cdb_size are driver-writable, but the vhost backend has them fixed: a change
   * is a device error, as QEMU's vhost-scsi reports it.
   */
  writeConfig(offset: number, data: Uint8Array): void {
    const copy = this.config.slice();
    copy.set(data.subarray(0, Math.max(0, copy.length - offset)), offset);
    const dv = new DataView(copy.buffer);
    if (dv.getUint32(20, true) !== VIRTIO_SCSI_SENSE_SIZE || dv.getUint32(24, true) !== VIRTIO_SCSI_CDB_SIZE) {
      this.statusReg |= VIRTIO_CONFIG_S_NEEDS_RESET;
      throw new Error("vhost-scsi does not support changing the sense data and CDB sizes");
    }
  }

  /** Control, event and request queues. */
  numQueues(): number {
    return this.queues.length;
  }

  queueMaxSize(): number {
    return this.queueSize;
  }

  setQueue(index: number, q: QueueConfig): void {
    if (index < 0 || index >= this.queues.length) throw new RangeError(`queue ${index}`);
    if (q.num > this.queueSize) throw new RangeError(`queue size ${q.num} > ${this.queueSize}`);
    this.queues[index].config = { ...q };
  }

  notify(index: number): void {
    const q = this.queues[index];
    if (q && q.kick >= 0) this.proc.eventfdOf(q.kick).write(1n);
  }

  /** Delivers the queues' interrupts to handler (wiring the guest notifiers on first use). */
  onInterrupt(handler: (index: number) => void): void {
    this.interrupt = handler;
    for (let i = 0; i < this.queues.length; i++) if (!this.callWatchers.has(i) && !this.handedOver.has(i)) this.watchCall(i);
  }

  /**
   * Hands queue index's notifiers to a guest that kicks it and takes its interrupts itself in
   * another thread (a polled I/O engine): the device model stops reading the call eventfd, as
   * QEMU stops its own handler once a guest notifier is an irqfd. Otherwise every signal would
   * also wake this thread.
   */
  handOverNotifiers(index: number): { kick: EventFdHandle; call: EventFdHandle } {
    if (index < 0 || index >= this.queues.length) throw new RangeError(`queue ${index}`);
    this.handedOver.add(index);
    this.callWatchers.delete(index);
    return this.notifiers()[index];
  }

  /**
   * The eventfds behind the queue notify registers and the guest notifiers, for a guest that
   * runs in another thread and kicks and takes interrupts itself (src/guest/remote-transport.ts).
   */
  notifiers(): { kick: EventFdHandle; call: EventFdHandle }[] {
    return this.queues.map((q) => ({ kick: this.proc.eventfdOf(q.kick).handle, call: this.proc.eventfdOf(q.call).handle }));
  }

  /**
   * Calls handler for every queue error the backend reports (a malformed ring, a request whose
   * buffers cannot carry its response, a dead worker); returns a function that unsubscribes.
   * Each is also logged under NODE_DEBUG=vhost-scsi.
   */
  onQueueError(handler: (e: QueueErrorEvent) => void): () => void {
    this.errorHandlers.add(handler);
    return () => this.errorHandlers.delete(handler);
  }

  /** The vring error notifier: what the err eventfd's signal means, read from the queue's state. */
  private watchErr(index: number): void {
    const q = this.queues[index];
    onSignal(
      this.proc.eventfdOf(q.err),
      () => this.queueErrorSignalled(index),
      () => this.errWatching,
    );
  }

  private queueErrorSignalled(index: number): void {
    const q = this.queues[index];
    const status = this.vhost.vringStatus(index);
    const last = status?.lastError;
    let e: QueueErrorEvent;
    if (status && last && status.errorCount !== q.errorsSeen) {
      e = { queue: index, name: last.name, errno: last.errno, text: last.text, info: last.info, count: status.errorCount - q.errorsSeen };
      q.errorsSeen = status.errorCount;
    } else {
      const failed = this.vhost.failedWorkers()[0];
      if (!failed) return;
      e = { queue: index, name: "WorkerFailed", errno: "EIO", text: failed.error.message, info: failed.id, count: 1 };
    }
    log("vhost vring error in virtqueue %d: %s (%s, index %d, %d new)", index, e.name, e.errno, e.info, e.count);
    for (const h of this.errorHandlers) h(e);
  }

  // ---- vhost_scsi_start / vhost_scsi_stop ----

  private hva(gpa: number, len: number): bigint {
    return BigInt(this.mem.hva(gpa, len));
  }

  private async start(): Promise<void> {
    const d = this.vhost;
    await d.SET_FEATURES(this.driverFeatures & this.hostFeatures);
    await d.SET_MEM_TABLE(vhostRegionsOf(this.mem.regions));
    for (const [i, q] of this.queues.entries()) {
      const c = q.config;
      q.errorsSeen = 0; // the backend's queue state, error count included, starts afresh
      if (!c) continue;
      await d.SET_VRING_NUM({ index: i, num: c.num });
      await d.SET_VRING_BASE({ index: i, num: q.lastAvail });
      await d.SET_VRING_ADDR({
        index: i,
        flags: 0,
        desc_user_addr: this.hva(c.desc, 16 * c.num),
        avail_user_addr: this.hva(c.avail, 6 + 2 * c.num),
        used_user_addr: this.hva(c.used, 6 + 8 * c.num),
        log_guest_addr: 0n,
      });
      await d.SET_VRING_KICK({ index: i, fd: q.kick });
      await d.SET_VRING_CALL({ index: i, fd: q.call });
    }
    await d.SCSI_SET_ENDPOINT({ abi_version: VHOST_SCSI_ABI_VERSION, vhost_wwpn: this.opts.wwpn, vhost_tpgt: this.opts.bootTpgt ?? 0 });
    this.started = true;
    this.stopListening = this.mem.listen((regions) => this.memoryChanged(regions));
  }

  /**
   * The guest notifier (QEMU's irqfd): each signal on a call eventfd becomes an interrupt for
   * that queue. It stays wired from realize to unrealize, so that a signal sent while the
   * backend stops is still delivered.
   */
  private watchCall(index: number): void {
    this.callWatchers.add(index);
    onSignal(
      this.proc.eventfdOf(this.queues[index].call),
      () => this.interrupt(index),
      () => this.callWatchers.has(index),
    );
  }

  private async memoryChanged(regions: readonly GuestRegion[]): Promise<void> {
    if (!this.started) return;
    try {
      await this.vhost.SET_MEM_TABLE(vhostRegionsOf(regions));
    } catch (e) {
      this.lastError = e as Error;
      log("vhost-scsi device: VHOST_SET_MEM_TABLE after a RAM change failed (%s): DEVICE_NEEDS_RESET", this.lastError.message);
      this.statusReg |= VIRTIO_CONFIG_S_NEEDS_RESET;
    }
  }

  private async stop(): Promise<void> {
    this.stopListening?.();
    this.stopListening = undefined;
    if (!this.started) return;
    this.started = false;
    const d = this.vhost;
    await d.SCSI_CLEAR_ENDPOINT({ abi_version: VHOST_SCSI_ABI_VERSION, vhost_wwpn: this.opts.wwpn, vhost_tpgt: this.opts.bootTpgt ?? 0 });
    for (const [i, q] of this.queues.entries()) {
      if (!q.config) continue;
      q.lastAvail = (await d.GET_VRING_BASE(i)).num;
    }
  }

  /** Tears the device down: stop, close the fds. */
  async unrealize(): Promise<void> {
    await this.stop();
    this.callWatchers.clear();
    this.errWatching = false;
    if (this.fd >= 0) await this.proc.close(this.fd);
    for (const q of this.queues) {
      for (const fd of [q.kick, q.call, q.err]) if (fd >= 0) await this.proc.close(fd);
    }
    this.fd = -1;
  }

  /**
   * The VM stops (QEMU's vm state change with should_start false): the backend is stopped and
   * the queues' positions saved; vmContinue() restarts it from there.
   */
  async vmStop(): Promise<void> {
    await this.stop();
  }

  async vmContinue(): Promise<void> {
    if (this.started || !(this.statusReg & VIRTIO_CONFIG_S_DRIVER_OK)) return;
    await this.start();
  }

  /**
   * Recovers from dead vhost workers through the control plane: stops the backend, moves every
   * vring of a dead worker to a new one (NEW_WORKER, ATTACH_VRING_WORKER, FREE_WORKER), rewinds
   * each queue to its used index so that requests the dead worker had taken but not completed
   * are served again (as QEMU restores last_avail_idx from the used index when a vhost backend
   * goes away), and starts again. Returns the ids of the workers replaced.
   */
  async recoverWorkers(): Promise<number[]> {
    const d = this.vhost;
    const dead = d.failedWorkers().map((f) => f.id);
    if (dead.length === 0) return [];
    const running = this.started;
    await this.stop();
    for (const [i, q] of this.queues.entries()) {
      if (q.config) q.lastAvail = this.mem.shm.view.getUint16(this.mem.hva(q.config.used + 2, 2), true);
      const { worker_id } = await d.GET_VRING_WORKER(i);
      if (!dead.includes(worker_id)) continue;
      const fresh = (await d.NEW_WORKER()).worker_id;
      await d.ATTACH_VRING_WORKER({ index: i, worker_id: fresh });
    }
    // A dead worker that still has unused vrings (the default worker has them all) stays listed.
    for (const id of dead) await d.FREE_WORKER({ worker_id: id }).catch(() => {});
    if (running) await this.start();
    return dead;
  }

  /** Where each queue stopped (VHOST_GET_VRING_BASE at the last stop). */
  savedBase(index: number): number {
    return this.queues[index].lastAvail;
  }

  /** Whether the backend is running (DRIVER_OK and started). */
  get running(): boolean {
    return this.started;
  }
}
