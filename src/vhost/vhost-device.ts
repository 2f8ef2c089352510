// The device-neutral half of a vhost device (drivers/vhost/vhost.c): owner, features, memory
// table, vrings, workers, and fencing before memory is reused. A device type (vhost-scsi.ts,
// vhost-blk.ts) extends it with its own ioctls, the roles of its vrings and what it serves.
import type { SharedMemory } from "../memory/shared-memory.js";
import type { DataplaneExports } from "../wasm/dataplane.js";
import type { EventFd } from "../sys/eventfd.js";
import { DeviceQueue, VQ_FEAT_EVENT_IDX, VQ_FEAT_NOTIFY_ON_EMPTY } from "../virtio/device-queue.js";
import { VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_RING_F_EVENT_IDX, isValidQueueSize, vringAvailSize, vringDescSize, vringUsedSize } from "../virtio/ring.js";
import type { TargetRegistry } from "../target/registry.js";
import type { VringKind } from "../worker/vring-server.js";
import { VhostError } from "../sys/errors.js";
import { VhostMemTable, type VhostMemoryRegion } from "./mem-table.js";
import {
  VHOST_FILE_UNBIND,
  VHOST_F_LOG_ALL,
  VHOST_VRING_F_LOG,
  type VhostVringAddr,
  type VhostVringFile,
  type VhostVringState,
  type VhostVringWorker,
} from "./uapi.js";
import type { VhostWorker, VringAttachment } from "../worker/worker.js";
import type { WorkerServedBackstore } from "../backstore/service.js";

/** Request contexts per request queue (requests backstores served elsewhere may hold at once). */
const CONTEXTS_MAX = 256;

/** What a vhost device needs from its process: memory, data plane, targets, fds, workers. */
export interface VhostContext {
  shm: SharedMemory;
  /** The control plane's own data plane instance (struct setup only). */
  dp: DataplaneExports;
  targets: TargetRegistry;
  /** The eventfd behind fd, or EBADF/EINVAL as eventfd_fget() would fail. */
  eventfd(fd: number): EventFd;
  /** Starts a vhost worker. */
  createWorker(id: number): VhostWorker;
  /** The object behind fd (EBADF when none): what a device type's ioctl attaches. */
  file(fd: number): unknown;
}

/** One vhost_virtqueue as the control plane keeps it. */
interface Vring {
  num: number;
  addr: VhostVringAddr | undefined;
  base: number;
  kick: EventFd | null;
  call: EventFd | null;
  err: EventFd | null;
  busyloopUs: number;
  workerId: number;
  /**
   * While the endpoint is set: the VirtQueue struct, and for request queues one allocation
   * holding the request context table, its completion queue and bounce buffer.
   */
  q: DeviceQueue | undefined;
  table: number;
  cq: number;
}

export const bitOf = (features: bigint, b: number) => (features >> BigInt(b)) & 1n;

/** What a device type tells the core about itself. */
export interface VhostDeviceType {
  /** Its name in messages and allocation labels. */
  name: string;
  /** VHOST_GET_FEATURES. */
  features: bigint;
  /** Vrings it has (indices 0..vrings-1). */
  vrings: number;
  /** Bytes of its struct in the device heap (the data plane's view of the device). */
  structSize: number;
}

/**
 * A vhost device, one per open of its /dev node: the ioctls of drivers/vhost/vhost.c with their
 * order rules and errors. Methods are named after the ioctls; ioctl() in process.ts decodes the
 * binary uapi arguments onto them. Nothing is changed by a call that fails. A device type says
 * what its vrings are (kindOf), which of them carry requests for backstores (request contexts),
 * and which backstores the workers serve themselves.
 */
export abstract class VhostDevice {
  private owner = false;
  protected acked = 0n;
  protected readonly mem: VhostMemTable;
  private readonly vrings: Vring[];
  protected readonly workers = new Map<number, VhostWorker>();
  private nextWorkerId = 1;
  /** The device type's struct in the device heap. */
  protected readonly dev: number;
  /** VHOST_SET_LOG_BASE: the dirty log bitmap's address in the process's (the shared) memory. */
  logBase = 0n;
  /** VHOST_SET_LOG_FD: the eventfd told of log writes, or none. */
  private logFd: EventFd | null = null;
  private closed = false;

  constructor(
    protected readonly ctx: VhostContext,
    private readonly type: VhostDeviceType,
  ) {
    this.mem = new VhostMemTable(ctx.shm, ctx.dp);
    this.vrings = Array.from({ length: type.vrings }, () => this.freshVring());
    this.dev = ctx.shm.device.alloc(type.structSize, 16, `${type.name} device`);
    ctx.shm.bytes.fill(0, this.dev, this.dev + type.structSize);
  }

  /** The role of vring index, which picks the handler its worker runs. */
  protected abstract kindOf(index: number): VringKind;
  /** Whether vring index carries requests that backstores served elsewhere may hold (it gets request contexts). */
  protected abstract hasRequestContexts(index: number): boolean;
  /** Request queue index's context table was set up (an address) or is going away (0). */
  protected contextTableChanged(_index: number, _table: number): void {}
  /** The backstores the vhost workers serve themselves (io-threads 0). */
  protected abstract workerServedBackstores(): WorkerServedBackstore[];
  /** Stops whatever the device type serves (RESET_OWNER, close). */
  protected abstract stopServing(): Promise<void>;

  private freshVring(): Vring {
    return { num: 1, addr: undefined, base: 0, kick: null, call: null, err: null, busyloopUs: 0, workerId: 0, q: undefined, table: 0, cq: 0 };
  }

  protected checkOwner(): void {
    if (this.closed) throw new VhostError("EBADF", "device is closed");
    if (!this.owner) throw new VhostError("EPERM", "VHOST_SET_OWNER first");
  }

  /** ENOBUFS unless index names one of the device's vrings. */
  protected checkVringIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.vrings.length) throw new VhostError("ENOBUFS", `vring ${index} out of range`);
  }

  private vring(index: number): Vring {
    this.checkVringIndex(index);
    return this.vrings[index];
  }

  /** The negotiated features. */
  get features(): bigint {
    return this.acked;
  }

  /** Workers that died (thread exit or crash), by id, with what was reported. */
  failedWorkers(): { id: number; error: Error }[] {
    return [...this.workers].filter(([, w]) => w.failure).map(([id, w]) => ({ id, error: w.failure! }));
  }

  /** CPU time (ms) of each worker that can tell it, and how much of it went into serving requests. */
  async workerCpu(): Promise<{ id: number; user: number; system: number; busy: number }[]> {
    const out: { id: number; user: number; system: number; busy: number }[] = [];
    for (const [id, w] of this.workers) {
      const t = await w.cpuTime?.();
      if (t) out.push({ id, ...t });
    }
    return out;
  }

  /** Counters and the recorded error of a running vring (for diagnostics and tests). */
  vringStatus(index: number): DeviceQueue | undefined {
    return this.vring(index).q;
  }

  // ---- device ioctls ----

  async GET_FEATURES(): Promise<bigint> {
    return this.type.features;
  }

  /**
   * VHOST_SET_FEATURES. While vrings run only VHOST_F_LOG_ALL may change (EBUSY otherwise);
   * turning logging on with a log base set needs the base to hold the bitmap (EFAULT); the
   * device logs once both are set. Turning it off returns once no worker writes the bitmap.
   */
  async SET_FEATURES(features: bigint): Promise<void> {
    const offered = this.type.features;
    if (features & ~offered) throw new VhostError("EOPNOTSUPP", `features 0x${(features & ~offered).toString(16)} not offered`);
    const logBit = 1n << BigInt(VHOST_F_LOG_ALL);
    if (this.vrings.some((v) => v.q) && (features & ~logBit) !== (this.acked & ~logBit))
      throw new VhostError("EBUSY", "only VHOST_F_LOG_ALL may change while vrings run");
    const wasLogging = this.logging;
    if (features & logBit && this.logBase !== 0n) this.checkLog(this.logBase, this.mem.regions);
    this.acked = features;
    this.applyLog();
    if (wasLogging && !this.logging) await this.flushWorkers();
  }

  /** VHOST_SET_OWNER: this caller owns the device; starts the default worker. */
  async SET_OWNER(): Promise<void> {
    if (this.closed) throw new VhostError("EBADF", "device is closed");
    if (this.owner) throw new VhostError("EBUSY", "device already has an owner");
    const w = this.ctx.createWorker(0);
    this.workers.set(0, w);
    this.owner = true;
  }

  /** VHOST_RESET_OWNER: stops everything and returns the device to its state after open. */
  async RESET_OWNER(): Promise<void> {
    this.checkOwner();
    await this.stopServing();
    for (const w of this.workers.values()) await w.stop();
    this.workers.clear();
    this.nextWorkerId = 1;
    for (let i = 0; i < this.vrings.length; i++) this.vrings[i] = this.freshVring();
    this.acked = 0n;
    this.logBase = 0n;
    this.mem.set([]);
    this.owner = false;
  }

  /** VHOST_SET_MEM_TABLE: checked as a whole; running queues switch over, then workers flush. */
  async SET_MEM_TABLE(regions: readonly VhostMemoryRegion[], padding = 0): Promise<void> {
    this.checkOwner();
    if (padding !== 0) throw new VhostError("EOPNOTSUPP", "vhost_memory.padding must be 0");
    this.mem.validate(regions);
    if (this.logging && this.logBase !== 0n) this.checkLog(this.logBase, regions);
    // Running rings must stay reachable: a table that drops them is refused, not half-applied.
    for (const [i, v] of this.vrings.entries()) {
      if (v.q && v.addr && !this.ringCovered(v.num, v.addr, regions)) throw new VhostError("EFAULT", `vring ${i} would lose its memory`);
    }
    const mt = this.mem.set(regions);
    for (const v of this.vrings) v.q?.setMemTable(mt);
    this.applyLog();
    await this.flushWorkers();
  }

  /** VHOST_SET_LOG_BASE: where the dirty log bitmap is (EFAULT unless it fits the memory for the memory table's pages). */
  async SET_LOG_BASE(base: bigint): Promise<void> {
    this.checkOwner();
    this.checkLog(base, this.mem.regions);
    this.logBase = base;
    this.applyLog();
  }

  /** Whether the device logs its writes: VHOST_F_LOG_ALL negotiated. */
  get logging(): boolean {
    return bitOf(this.acked, VHOST_F_LOG_ALL) === 1n;
  }

  /** Bytes of bitmap the memory table needs: a bit per 4 KiB page up to its highest guest-physical address. */
  private logBytes(regions: readonly VhostMemoryRegion[]): number {
    // Exact below 2^53; a table reaching past that needs a bitmap no memory here holds (EFAULT either way).
    const end = regions.reduce((m, r) => Math.max(m, Number(r.guest_phys_addr + r.memory_size)), 0);
    return Math.ceil(end / 4096 / 8);
  }

  /** EFAULT unless a bitmap at `base` for these regions lies inside the shared memory (vhost_log_access_ok). */
  private checkLog(base: bigint, regions: readonly VhostMemoryRegion[]): void {
    const size = BigInt(this.ctx.shm.bytes.length);
    if (base <= 0n || base + BigInt(this.logBytes(regions)) > size) throw new VhostError("EFAULT", `log base 0x${base.toString(16)} does not hold the bitmap`);
  }

  /** Tells every running vring where to log (or that it does not). */
  private applyLog(): void {
    for (const v of this.vrings) if (v.q) this.applyVringLog(v);
  }

  private applyVringLog(v: Vring): void {
    const on = this.logging && this.logBase > 0n;
    const logUsed = v.addr && v.addr.flags & (1 << VHOST_VRING_F_LOG) ? Number(v.addr.log_guest_addr) : -1;
    this.ctx.dp.vq_set_log(v.q!.ptr, on ? Number(this.logBase) : 0, on ? this.logBytes(this.mem.regions) : 0, logUsed, this.logFd ? 1 : 0);
  }

  /**
   * VHOST_SET_LOG_FD: an eventfd signalled each time a vring logging its used ring
   * (VHOST_VRING_F_LOG) has published and logged used entries, as the kernel signals log_ctx;
   * -1 unbinds it. Running vrings take it at once.
   */
  async SET_LOG_FD(fd: number): Promise<void> {
    this.checkOwner();
    const efd = fd === VHOST_FILE_UNBIND ? null : this.ctx.eventfd(fd);
    this.logFd = efd;
    // The rings stop reporting before the workers lose the eventfd, and start once the workers hold it.
    if (!efd) this.applyLog();
    for (let i = 0; i < this.vrings.length; i++) if (this.vrings[i].q) await this.attach(i);
    if (efd) this.applyLog();
  }

  // ---- vring ioctls ----

  async SET_VRING_NUM(s: VhostVringState): Promise<void> {
    this.checkOwner();
    const v = this.vring(s.index);
    if (v.q) throw new VhostError("EBUSY", "ring size change while the vring runs");
    if (!isValidQueueSize(s.num)) throw new VhostError("EINVAL", `queue size ${s.num}`);
    v.num = s.num;
  }

  async SET_VRING_ADDR(a: VhostVringAddr): Promise<void> {
    this.checkOwner();
    const v = this.vring(a.index);
    if (a.flags & ~(1 << VHOST_VRING_F_LOG)) throw new VhostError("EOPNOTSUPP", `vring flags 0x${a.flags.toString(16)}`);
    if (v.q) {
      // A running ring may change its logging only (QEMU turns VHOST_VRING_F_LOG on and off so).
      const o = v.addr!;
      if (a.desc_user_addr !== o.desc_user_addr || a.avail_user_addr !== o.avail_user_addr || a.used_user_addr !== o.used_user_addr)
        throw new VhostError("EBUSY", "ring address change while the vring runs");
      if (a.log_guest_addr & 3n) throw new VhostError("EINVAL", "misaligned log address");
      v.addr = { ...a };
      this.applyVringLog(v);
      return;
    }
    const max = BigInt(Number.MAX_SAFE_INTEGER);
    if (a.desc_user_addr > max || a.avail_user_addr > max || a.used_user_addr > max) throw new VhostError("EFAULT", "ring address out of range");
    // VIRTIO 1.2, 2.7: descriptor table 16-, avail ring 2-, used ring 4-byte aligned.
    if (a.desc_user_addr & 15n || a.avail_user_addr & 1n || a.used_user_addr & 3n || a.log_guest_addr & 3n) {
      throw new VhostError("EINVAL", "misaligned ring address");
    }
    if (this.mem.isSet && !this.ringCovered(v.num, a, this.mem.regions)) throw new VhostError("EFAULT", "ring outside the memory table");
    v.addr = { ...a };
  }

  async SET_VRING_BASE(s: VhostVringState): Promise<void> {
    this.checkOwner();
    const v = this.vring(s.index);
    if (v.q) throw new VhostError("EBUSY", "ring base change while the vring runs");
    if (s.num > 0xffff) throw new VhostError("EINVAL", `base ${s.num}`);
    v.base = s.num;
  }

  /** VHOST_GET_VRING_BASE: the next avail index the device will consume. */
  async GET_VRING_BASE(index: number): Promise<VhostVringState> {
    this.checkOwner();
    const v = this.vring(index);
    return { index, num: v.q ? v.q.lastAvailIdx : v.base };
  }

  private async setFile(f: VhostVringFile, slot: "kick" | "call" | "err"): Promise<void> {
    this.checkOwner();
    const v = this.vring(f.index);
    const efd = f.fd === VHOST_FILE_UNBIND ? null : this.ctx.eventfd(f.fd);
    v[slot] = efd;
    if (v.q) await this.attach(f.index);
  }

  SET_VRING_KICK(f: VhostVringFile): Promise<void> {
    return this.setFile(f, "kick");
  }
  SET_VRING_CALL(f: VhostVringFile): Promise<void> {
    return this.setFile(f, "call");
  }
  SET_VRING_ERR(f: VhostVringFile): Promise<void> {
    return this.setFile(f, "err");
  }

  async SET_VRING_BUSYLOOP_TIMEOUT(s: VhostVringState): Promise<void> {
    this.checkOwner();
    this.vring(s.index).busyloopUs = s.num;
    if (this.vring(s.index).q) await this.attach(s.index);
  }

  async GET_VRING_BUSYLOOP_TIMEOUT(index: number): Promise<VhostVringState> {
    this.checkOwner();
    return { index, num: this.vring(index).busyloopUs };
  }

  // ---- worker ioctls ----

  async NEW_WORKER(): Promise<{ worker_id: number }> {
    this.checkOwner();
    const id = this.nextWorkerId++;
    const w = this.ctx.createWorker(id);
    this.workers.set(id, w);
    await w.setBackstores(this.workerServedBackstores());
    return { worker_id: id };
  }

  async FREE_WORKER(s: { worker_id: number }): Promise<void> {
    this.checkOwner();
    const w = this.workers.get(s.worker_id);
    if (!w) throw new VhostError("ENODEV", `no worker ${s.worker_id}`);
    if (this.vrings.some((v) => v.workerId === s.worker_id)) throw new VhostError("EBUSY", `worker ${s.worker_id} serves vrings`);
    this.workers.delete(s.worker_id);
    await w.stop();
  }

  async ATTACH_VRING_WORKER(a: VhostVringWorker): Promise<void> {
    this.checkOwner();
    const v = this.vring(a.index);
    if (!this.workers.has(a.worker_id)) throw new VhostError("ENODEV", `no worker ${a.worker_id}`);
    if (v.workerId === a.worker_id) return;
    const old = this.workers.get(v.workerId);
    if (v.q && old) await old.detach(a.index);
    v.workerId = a.worker_id;
    if (v.q) await this.attach(a.index);
  }

  async GET_VRING_WORKER(index: number): Promise<VhostVringWorker> {
    this.checkOwner();
    return { index, worker_id: this.vring(index).workerId };
  }

  // ---- running the rings ----

  protected ringCovered(num: number, a: VhostVringAddr, regions: readonly VhostMemoryRegion[]): boolean {
    const inOne = (addr: bigint, len: number) => regions.some((r) => addr >= r.userspace_addr && addr + BigInt(len) <= r.userspace_addr + r.memory_size);
    return inOne(a.desc_user_addr, vringDescSize(num)) && inOne(a.avail_user_addr, vringAvailSize(num)) && inOne(a.used_user_addr, vringUsedSize(num));
  }

  /** EFAULT unless every configured vring lies in the memory table (checked before anything starts). */
  protected checkRingsCovered(): void {
    for (const [i, v] of this.vrings.entries()) {
      if (v.addr && !this.ringCovered(v.num, v.addr, this.mem.regions)) throw new VhostError("EFAULT", `vring ${i} is outside the memory table`);
    }
  }

  /** EFAULT unless vring index has its addresses, inside the memory table (vhost_vq_access_ok). */
  protected checkRingAccess(index: number): void {
    const v = this.vring(index);
    if (!v.addr || !this.ringCovered(v.num, v.addr, this.mem.regions)) throw new VhostError("EFAULT", `vring ${index} has no addresses in the memory table`);
  }

  /** Starts every vring that has an address (the endpoint or backend was set). */
  protected async startConfiguredVrings(): Promise<void> {
    for (let i = 0; i < this.vrings.length; i++) if (this.vrings[i].addr) await this.startVring(i);
  }

  /** Stops every running vring. */
  protected async stopVrings(): Promise<void> {
    for (let i = 0; i < this.vrings.length; i++) await this.stopVring(i);
  }

  /** Sets up the VirtQueue struct from the vring state (vhost_vq_init_access) and hands it to its worker. */
  protected async startVring(index: number): Promise<void> {
    const { shm, dp } = this.ctx;
    const v = this.vrings[index];
    const a = v.addr!;
    const q = new DeviceQueue(shm, dp);
    let vqFeatures = 0;
    if (bitOf(this.acked, VIRTIO_RING_F_EVENT_IDX)) vqFeatures |= VQ_FEAT_EVENT_IDX;
    if (bitOf(this.acked, VIRTIO_F_NOTIFY_ON_EMPTY)) vqFeatures |= VQ_FEAT_NOTIFY_ON_EMPTY;
    q.setup({ num: v.num, desc: Number(a.desc_user_addr), avail: Number(a.avail_user_addr), used: Number(a.used_user_addr) }, vqFeatures, this.mem.address);
    q.setBase(v.base);
    // The used index continues from what the ring says (vhost_vq_init_access reads used->idx).
    dp.vq_set_used_base(q.ptr, shm.view.getUint16(Number(a.used_user_addr) + 2, true));
    if (this.hasRequestContexts(index)) {
      // Request contexts, their completion queue (a power of two at least as long) and a bounce buffer.
      const cap = Math.min(v.num, CONTEXTS_MAX);
      v.table = shm.device.alloc(dp.io_area_size(cap), 16, `vring ${index} request contexts`);
      v.cq = dp.io_area_init(v.table, cap);
      dp.vq_set_private(q.ptr, v.table);
      this.contextTableChanged(index, v.table);
    }
    v.q = q;
    this.applyVringLog(v);
    await this.attach(index);
  }

  /**
   * Stops a running vring: detached from its worker once its requests in flight are answered. A
   * vring whose worker died cannot answer them; it is fenced instead: its memory is reused only
   * once no backstore works on its requests any more (their completions are then dropped, and a
   * recovery serves those requests again).
   */
  protected async stopVring(index: number): Promise<void> {
    const v = this.vrings[index];
    if (!v.q) return;
    await this.workers.get(v.workerId)?.detach(index);
    v.base = v.q.lastAvailIdx;
    if (v.table) {
      await this.fence(v);
      this.contextTableChanged(index, 0);
      this.ctx.shm.device.release(v.table);
      v.table = 0;
      v.cq = 0;
    }
    v.q.dispose();
    v.q = undefined;
  }

  private attachment(index: number): VringAttachment {
    const v = this.vrings[index];
    return {
      binding: { index, kind: this.kindOf(index), vq: v.q!.ptr, dev: this.dev, cq: v.cq },
      kick: v.kick?.handle ?? null,
      call: v.call?.handle ?? null,
      err: v.err?.handle ?? null,
      log: this.logFd?.handle ?? null,
      busyloopUs: v.busyloopUs,
    };
  }

  private async attach(index: number): Promise<void> {
    const w = this.workers.get(this.vrings[index].workerId);
    if (!w) throw new VhostError("ENODEV", `worker ${this.vrings[index].workerId} is gone`);
    await w.attach(this.attachment(index));
  }

  /**
   * Resolves once every request vring v handed to a backstore until now has ended (later ones
   * may still run): nothing it was given touches guest memory any more.
   */
  private async fence(v: Vring): Promise<void> {
    const { dp } = this.ctx;
    const cq = v.cq;
    if (!cq) return;
    const until = dp.io_cq_submitted(cq);
    while (((dp.io_cq_finished(cq) - until) | 0) < 0) await new Promise((r) => setTimeout(r, 1));
  }

  /**
   * Waits until every worker finished the pass it was in and no backstore works on a request
   * any more, so that nothing touches memory the caller is about to change (vhost_dev_flush).
   */
  protected async flushWorkers(): Promise<void> {
    for (const w of this.workers.values()) await w.flush();
    for (const v of this.vrings) await this.fence(v);
  }

  /** Tells every live worker which backstores to serve (requests of any queue reach any of them). */
  protected async updateWorkerBackstores(): Promise<void> {
    const list = this.workerServedBackstores();
    for (const w of this.workers.values()) if (!w.failure) await w.setBackstores(list);
  }

  /** Has vring index's worker run its handler as if kicked (the kernel's vhost_work_queue). */
  protected wake(index: number): void {
    const v = this.vrings[index];
    if (v.q) this.workers.get(v.workerId)?.kick(index);
  }

  /** Runs fn while no worker serves the device. */
  protected async paused(fn: () => void | Promise<void>): Promise<void> {
    const ws = [...this.workers.values()];
    for (const w of ws) await w.pause();
    try {
      await fn();
    } finally {
      for (const w of ws) w.resume();
    }
  }

  /** close(): everything stops and is freed. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.owner) await this.RESET_OWNER();
    this.mem.dispose();
    this.ctx.shm.device.release(this.dev);
    this.closed = true;
  }
}
