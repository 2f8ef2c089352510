import type { GuestMemory, GuestRegion } from "../guest/guest-memory.js";
import { onSignal, type EventFdHandle } from "../sys/eventfd.js";
import { log } from "../sys/log.js";
import type { ErrnoCode } from "../sys/errors.js";
import type { QueueErrorName } from "../virtio/queue-error.js";
import type { VhostProcess } from "../vhost/process.js";
import type { VhostDevice } from "../vhost/vhost-device.js";
import { vhostRegionsOf } from "../vhost/mem-table.js";
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  type QueueConfig,
  type VirtioTransport,
} from "../virtio/transport.js";
import { VIRTIO_F_VERSION_1, isValidQueueSize } from "../virtio/ring.js";
import { DEVICE_STATE_FORMAT, DEVICE_STATE_VERSION, checkDocument, expectState, fromHex, toHex, type DeviceState } from "./device-state.js";
import { VHOST_F_LOG_ALL, VHOST_VRING_F_LOG } from "../vhost/uapi.js";

const LOG_ALL = 1n << BigInt(VHOST_F_LOG_ALL);

/** What every vhost device model takes besides its device type's own options. */
export interface VhostVirtioDeviceOptions {
  /** Largest queue size offered (virtqueue_size / queue-size). */
  queueSize?: number;
  /** Features masked from what the backend offers (e.g. to test a driver without event-idx). */
  maskFeatures?: bigint;
  /** Workers beyond the default: request queue i is served by worker i % (workers). Default 1 (all on the default). */
  workers?: number;
}

/** How a device type sets itself up on the generic model. */
export interface VhostVirtioDeviceType {
  /** Its name in messages. */
  name: string;
  /** VIRTIO 1.2, 5: the device ID. */
  deviceId: number;
  /** The vhost device node it opens. */
  path: string;
  /** Virtqueues, and the indices of those that carry requests (spread over the workers). */
  queues: number;
  requestQueues: readonly number[];
  /** The default queue size. */
  queueSize: number;
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
  /** Virtqueue index (virtio-scsi: 0 control, 1 event, 2.. request queues). */
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
 * The QEMU-side half of a vhost device (hw/virtio/vhost.c with a device's realize): it realizes
 * a virtio device over a vhost device node of a VhostProcess, shows the guest its config space
 * and features, and on DRIVER_OK starts the backend as QEMU's vhost_dev_start does (features,
 * memory table, per queue num/base/addr/kick/call, then the device type's step: the endpoint,
 * the backends); on reset it stops it (the device type's step, then the queues' bases are
 * fetched back). A memory listener keeps the backend's memory table in step with guest RAM.
 * vhost-scsi-device.ts and vhost-blk-device.ts are the device types.
 */
export abstract class VhostVirtioDevice<D extends VhostDevice> implements VirtioTransport {
  readonly deviceId: number;
  readonly queueSize: number;
  private fd = -1;
  protected hostFeatures = 0n;
  protected driverFeatures = 0n;
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
  /** The config space the driver reads. */
  protected abstract readonly config: Uint8Array;
  /** Offsets of the config bytes the driver may change: load() takes them from the document; the rest must match. */
  protected readonly writableConfig: readonly number[] = [];
  /** The last error from starting the backend (the device then shows NEEDS_RESET). */
  lastError: Error | undefined;
  /** The dirty log while logging: the bitmap in the device heap and its bytes. */
  private log: { base: number; bytes: number } | undefined;

  constructor(
    protected readonly proc: VhostProcess,
    protected readonly mem: GuestMemory,
    private readonly type: VhostVirtioDeviceType,
    private readonly opts: VhostVirtioDeviceOptions,
    private readonly deviceClass: abstract new (...args: never[]) => D,
  ) {
    this.deviceId = type.deviceId;
    this.queueSize = opts.queueSize ?? type.queueSize;
    this.queues = Array.from({ length: type.queues }, () => ({ config: undefined, kick: -1, call: -1, err: -1, lastAvail: 0, errorsSeen: 0 }));
  }

  /** The vhost device object (for diagnostics: counters, errors). */
  get vhost(): D {
    return this.proc.device(this.fd, this.deviceClass);
  }

  /** The device type's checks once its fd is owned (an ABI version). */
  protected async realizeDevice(_d: D): Promise<void> {}
  /**
   * The disks whose blocks live in the device heap (RAM backstores), by a name that is the same
   * in a destination configured alike: they are not shared storage, so a migration moves them.
   */
  abstract ramDisks(): { name: string; bytes: Uint8Array }[];
  /** The device type's part of a saved state (the device is stopped). */
  protected abstract saveType(d: D): unknown;
  /** Throws DeviceStateError unless the device type's part of a document fits this device; changes nothing. */
  protected abstract checkType(state: unknown): void;
  /** Applies the device type's part of a document checkType accepted. */
  protected abstract restoreType(d: D, state: unknown): void;
  /** The device type's last step of a start: serving begins. */
  protected abstract startServing(d: D, configured: readonly number[]): Promise<void>;
  /** The device type's first step of a stop: serving ends, requests in flight answered. */
  protected abstract stopServing(d: D, configured: readonly number[]): Promise<void>;

  /**
   * realize: open the device node, vhost_dev_init (SET_OWNER, GET_FEATURES, each virtqueue's
   * call eventfd), the device type's checks, create the extra workers.
   */
  async realize(): Promise<void> {
    const p = this.proc;
    this.fd = p.open(this.type.path);
    const d = this.vhost;
    await d.SET_OWNER();
    // VHOST_F_LOG_ALL is the vhost device's, not the guest's: it is set while dirty logging runs.
    this.hostFeatures = (await d.GET_FEATURES()) & ~(this.opts.maskFeatures ?? 0n) & ~LOG_ALL;
    await this.realizeDevice(d);
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
    for (const [k, index] of this.type.requestQueues.entries()) await d.ATTACH_VRING_WORKER({ index, worker_id: ids[k % ids.length] });
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
        log("%s device: starting the backend failed (%s): DEVICE_NEEDS_RESET", this.type.name, this.lastError.message);
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

  /** The driver writes the config space (a device type decides what it may change). */
  abstract writeConfig(offset: number, data: Uint8Array): void;

  /** Marks the device broken (DEVICE_NEEDS_RESET), as QEMU's virtio_error. */
  protected needsReset(): void {
    this.statusReg |= VIRTIO_CONFIG_S_NEEDS_RESET;
  }

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

  // ---- vhost_dev_start / vhost_dev_stop ----

  /** Queue i's vring addresses for the backend, its used ring logged while dirty logging runs (VHOST_VRING_F_LOG). */
  private vringAddr(index: number, c: QueueConfig) {
    return {
      index,
      flags: this.log ? 1 << VHOST_VRING_F_LOG : 0,
      desc_user_addr: this.hva(c.desc, 16 * c.num),
      avail_user_addr: this.hva(c.avail, 6 + 2 * c.num),
      used_user_addr: this.hva(c.used, 6 + 8 * c.num),
      log_guest_addr: this.log ? BigInt(c.used) : 0n,
    };
  }

  // ---- dirty logging (QEMU's memory listener: log_start, log_sync, log_stop) ----

  /**
   * Starts logging every guest page the device writes: a bitmap of one bit per 4 KiB page of
   * guest RAM in the device heap, VHOST_SET_LOG_BASE, each running ring's used ring logged, and
   * VHOST_F_LOG_ALL. Pages written from now on show in syncLog().
   */
  async startLogging(): Promise<void> {
    if (this.log) return;
    const end = this.mem.regions.reduce((m, r) => Math.max(m, r.gpa + r.size), 0);
    const bytes = Math.ceil(end / 4096 / 8);
    const base = this.mem.shm.device.alloc(bytes, 8, `${this.type.name} dirty log`);
    this.mem.shm.bytes.fill(0, base, base + bytes);
    this.log = { base, bytes };
    if (!this.started) return;
    const d = this.vhost;
    await d.SET_LOG_BASE(BigInt(base));
    for (const [i, q] of this.queues.entries()) if (q.config) await d.SET_VRING_ADDR(this.vringAddr(i, q.config));
    await d.SET_FEATURES(d.features | LOG_ALL);
  }

  /**
   * The guest-physical page numbers (4 KiB pages) written since logging started or the last
   * sync, each once; their bits are cleared as they are read (QEMU's vhost_log_sync).
   */
  syncLog(): number[] {
    const log = this.log;
    if (!log) return [];
    const bits = new Uint8Array(this.mem.shm.buffer, log.base, log.bytes);
    const pages: number[] = [];
    for (let i = 0; i < log.bytes; i++) {
      if (bits[i] === 0) continue;
      const b = Atomics.exchange(bits, i, 0);
      for (let k = 0; k < 8; k++) if (b & (1 << k)) pages.push(i * 8 + k);
    }
    return pages;
  }

  /** Stops logging; once it returns no worker writes the bitmap, which is freed (unsynced pages are lost). */
  async stopLogging(): Promise<void> {
    const log = this.log;
    if (!log) return;
    this.log = undefined;
    if (this.started) {
      const d = this.vhost;
      await d.SET_FEATURES(d.features & ~LOG_ALL);
      for (const [i, q] of this.queues.entries()) if (q.config) await d.SET_VRING_ADDR(this.vringAddr(i, q.config));
    }
    this.mem.shm.device.release(log.base);
  }

  /** The queues the driver set up. */
  private configuredQueues(): number[] {
    return this.queues.flatMap((q, i) => (q.config ? [i] : []));
  }

  private hva(gpa: number, len: number): bigint {
    return BigInt(this.mem.hva(gpa, len));
  }

  private async start(): Promise<void> {
    const d = this.vhost;
    await d.SET_FEATURES((this.driverFeatures & this.hostFeatures) | (this.log ? LOG_ALL : 0n));
    await d.SET_MEM_TABLE(vhostRegionsOf(this.mem.regions));
    for (const [i, q] of this.queues.entries()) {
      const c = q.config;
      q.errorsSeen = 0; // the backend's queue state, error count included, starts afresh
      if (!c) continue;
      await d.SET_VRING_NUM({ index: i, num: c.num });
      await d.SET_VRING_BASE({ index: i, num: q.lastAvail });
      await d.SET_VRING_ADDR(this.vringAddr(i, c));
      await d.SET_VRING_KICK({ index: i, fd: q.kick });
      await d.SET_VRING_CALL({ index: i, fd: q.call });
    }
    if (this.log) await d.SET_LOG_BASE(BigInt(this.log.base));
    await this.startServing(d, this.configuredQueues());
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
      log("%s device: VHOST_SET_MEM_TABLE after a RAM change failed (%s): DEVICE_NEEDS_RESET", this.type.name, this.lastError.message);
      this.statusReg |= VIRTIO_CONFIG_S_NEEDS_RESET;
    }
  }

  private async stop(): Promise<void> {
    this.stopListening?.();
    this.stopListening = undefined;
    if (!this.started) return;
    this.started = false;
    const d = this.vhost;
    await this.stopServing(d, this.configuredQueues());
    for (const [i, q] of this.queues.entries()) {
      if (!q.config) continue;
      q.lastAvail = (await d.GET_VRING_BASE(i)).num;
    }
  }

  /** Tears the device down: stop, close the fds. */
  async unrealize(): Promise<void> {
    await this.stop();
    if (this.log) this.mem.shm.device.release(this.log.base);
    this.log = undefined;
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

  // ---- device state (QEMU's vmstate save/load of a virtio device with a vhost backend) ----

  /**
   * The device's state, for load() into a device of another process (a migration's destination,
   * a restored snapshot): features, status, config space, each virtqueue's addresses and where
   * the device stopped in it, and the device type's part. The device must be stopped
   * (vmStop(), which answers every request in flight first, or never started).
   */
  save(): DeviceState {
    if (this.started) throw new Error(`${this.type.name}: save() needs the device stopped (vmStop() answers the requests in flight first)`);
    return {
      format: DEVICE_STATE_FORMAT,
      version: DEVICE_STATE_VERSION,
      device: this.type.name,
      queues: this.queues.length,
      queueSize: this.queueSize,
      driverFeatures: this.driverFeatures.toString(16),
      status: this.statusReg,
      config: toHex(this.config),
      vrings: this.queues.map((q) => (q.config ? { ...q.config, lastAvail: q.lastAvail } : null)),
      type: this.saveType(this.vhost),
    };
  }

  /**
   * Takes a saved state into this realized device, which the driver has not set up (status 0):
   * everything is checked first (format, version, device type, queue count and sizes, features
   * offered, the config space and the device type's configuration) and a DeviceStateError names
   * the first mismatch, leaving the device as it was. vmContinue() then starts the backend where
   * the source stopped: the requests it had answered are not served again, those it had not
   * taken are served once.
   */
  load(doc: unknown): void {
    const name = this.type.name;
    if (this.fd < 0) throw new Error(`${name}: load() needs a realized device`);
    if (this.statusReg !== 0 || this.started) throw new Error(`${name}: load() needs a device the driver has not set up (status 0, not ${this.statusReg})`);
    checkDocument(doc);
    expectState(doc.device === name, `it is a ${doc.device} device's, this is ${name}`);
    expectState(doc.queues === this.queues.length, `${doc.queues} virtqueues, this device has ${this.queues.length}`);
    const features = BigInt(`0x${doc.driverFeatures}`);
    const missing = features & ~this.deviceFeatures();
    expectState(missing === 0n, `the driver accepted features 0x${missing.toString(16)} that this device does not offer`);
    for (const [i, v] of doc.vrings.entries())
      expectState(!v || (isValidQueueSize(v.num) && v.num <= this.queueSize), `virtqueue ${i} has ${v?.num} entries, this device allows ${this.queueSize}`);
    const config = fromHex(doc.config);
    expectState(config.length === this.config.length, `a ${config.length}-byte config space, this device's has ${this.config.length}`);
    const differs = config.findIndex((b, i) => b !== this.config[i] && !this.writableConfig.includes(i));
    expectState(differs < 0, `the config space differs at byte ${differs} (another disk size, queue count or limits)`);
    this.checkType(doc.type);
    this.driverFeatures = features;
    this.config.set(config);
    for (const [i, v] of doc.vrings.entries()) {
      this.queues[i].config = v ? { num: v.num, desc: v.desc, avail: v.avail, used: v.used } : undefined;
      this.queues[i].lastAvail = v?.lastAvail ?? 0;
    }
    this.statusReg = doc.status;
    this.restoreType(this.vhost, doc.type);
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
