import type { SharedMemory } from "../memory/shared-memory.js";
import type { DataplaneExports } from "../wasm/dataplane.js";
import type { EventFd } from "../sys/eventfd.js";
import { DeviceQueue, VQ_FEAT_EVENT_IDX, VQ_FEAT_NOTIFY_ON_EMPTY } from "../virtio/device-queue.js";
import { VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_RING_F_EVENT_IDX, isValidQueueSize, vringAvailSize, vringDescSize, vringUsedSize } from "../virtio/ring.js";
import {
  VIRTIO_SCSI_EVT_RESET_REMOVED,
  VIRTIO_SCSI_EVT_RESET_RESCAN,
  VIRTIO_SCSI_F_CHANGE,
  VIRTIO_SCSI_F_HOTPLUG,
  VIRTIO_SCSI_F_T10_PI,
  VIRTIO_SCSI_T_PARAM_CHANGE,
  VIRTIO_SCSI_T_TRANSPORT_RESET,
} from "../virtio/virtio-scsi.js";
import type { TargetRegistry } from "../target/registry.js";
import type { ScsiTarget } from "../target/target.js";
import type { Tpg, TpgListener } from "../target/tpg.js";
import type { Lun } from "../target/lun.js";
import type { VringKind } from "../worker/scsi-vrings.js";
import { VhostError } from "../sys/errors.js";
import { VhostMemTable, type VhostMemoryRegion } from "./mem-table.js";
import {
  VHOST_FILE_UNBIND,
  VHOST_SCSI_ABI_VERSION,
  VHOST_SCSI_FEATURES,
  VHOST_VRING_F_LOG,
  type VhostScsiTarget,
  type VhostVringAddr,
  type VhostVringFile,
  type VhostVringState,
  type VhostVringWorker,
} from "./uapi.js";
import type { VhostWorker, VringAttachment } from "../worker/worker.js";
import type { WorkerServedBackstore } from "../backstore/service.js";
import { log } from "../sys/log.js";

/** Request queues a device may have (the kernel's default max_io_vqs), plus control and event. */
export const VHOST_SCSI_MAX_IO_VQ = 128;
export const VHOST_SCSI_VQ_CTL = 0;
export const VHOST_SCSI_VQ_EVT = 1;
export const VHOST_SCSI_VQ_IO = 2;
/** Request contexts per request queue (requests backstores served elsewhere may hold at once). */
const CONTEXTS_MAX = 256;

/** What a vhost-scsi device needs from its process: memory, data plane, targets, fds, workers. */
export interface VhostContext {
  shm: SharedMemory;
  /** The control plane's own data plane instance (struct setup only). */
  dp: DataplaneExports;
  targets: TargetRegistry;
  /** The eventfd behind fd, or EBADF/EINVAL as eventfd_fget() would fail. */
  eventfd(fd: number): EventFd;
  /** Starts a vhost worker. */
  createWorker(id: number): VhostWorker;
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

const bitOf = (features: bigint, b: number) => (features >> BigInt(b)) & 1n;

/**
 * The /dev/vhost-scsi device, one per open: the ioctls of drivers/vhost/vhost.c and scsi.c with
 * their order rules and errors. Methods are named after the ioctls; ioctl() in process.ts
 * decodes the binary uapi arguments onto them. Nothing is changed by a call that fails.
 */
export class VhostScsi {
  private owner = false;
  private acked = 0n;
  private readonly mem: VhostMemTable;
  private readonly vrings: Vring[];
  private readonly workers = new Map<number, VhostWorker>();
  private nextWorkerId = 1;
  private endpoint: { target: ScsiTarget; tpgs: Tpg[] } | undefined;
  private readonly dev: number;
  /** VHOST_SET_LOG_BASE's address (kept; dirty logging itself is not offered). */
  logBase = 0n;
  private closed = false;

  constructor(private readonly ctx: VhostContext) {
    this.mem = new VhostMemTable(ctx.shm, ctx.dp);
    this.vrings = Array.from({ length: VHOST_SCSI_VQ_IO + VHOST_SCSI_MAX_IO_VQ }, () => this.freshVring());
    const size = ctx.dp.scsi_device_size();
    this.dev = ctx.shm.device.alloc(size, 16, "vhost-scsi device");
    ctx.shm.bytes.fill(0, this.dev, this.dev + size);
  }

  private freshVring(): Vring {
    return { num: 1, addr: undefined, base: 0, kick: null, call: null, err: null, busyloopUs: 0, workerId: 0, q: undefined, table: 0, cq: 0 };
  }

  private checkOwner(): void {
    if (this.closed) throw new VhostError("EBADF", "device is closed");
    if (!this.owner) throw new VhostError("EPERM", "VHOST_SET_OWNER first");
  }

  private vring(index: number): Vring {
    if (!Number.isInteger(index) || index < 0 || index >= this.vrings.length) throw new VhostError("ENOBUFS", `vring ${index} out of range`);
    return this.vrings[index];
  }

  private get running(): boolean {
    return this.endpoint !== undefined;
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
    return VHOST_SCSI_FEATURES;
  }

  async SET_FEATURES(features: bigint): Promise<void> {
    if (features & ~VHOST_SCSI_FEATURES) throw new VhostError("EOPNOTSUPP", `features 0x${(features & ~VHOST_SCSI_FEATURES).toString(16)} not offered`);
    this.acked = features;
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
    await this.stopEndpoint();
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
    // Running rings must stay reachable: a table that drops them is refused, not half-applied.
    for (const [i, v] of this.vrings.entries()) {
      if (v.q && v.addr && !this.ringCovered(v.num, v.addr, regions)) throw new VhostError("EFAULT", `vring ${i} would lose its memory`);
    }
    const mt = this.mem.set(regions);
    for (const v of this.vrings) v.q?.setMemTable(mt);
    await this.flushWorkers();
  }

  async SET_LOG_BASE(base: bigint): Promise<void> {
    this.checkOwner();
    if (base < 0n || base >= 1n << 64n) throw new VhostError("EFAULT", "log base out of range");
    this.logBase = base;
  }

  /** VHOST_SET_LOG_FD: accepted for compatibility; dirty logging is not offered. */
  async SET_LOG_FD(fd: number): Promise<void> {
    this.checkOwner();
    if (fd !== VHOST_FILE_UNBIND) this.ctx.eventfd(fd);
  }

  // ---- vring ioctls ----

  async SET_VRING_NUM(s: VhostVringState): Promise<void> {
    this.checkOwner();
    const v = this.vring(s.index);
    if (v.q) throw new VhostError("EBUSY", "ring size change while the endpoint is set");
    if (!isValidQueueSize(s.num)) throw new VhostError("EINVAL", `queue size ${s.num}`);
    v.num = s.num;
  }

  async SET_VRING_ADDR(a: VhostVringAddr): Promise<void> {
    this.checkOwner();
    const v = this.vring(a.index);
    if (a.flags & ~(1 << VHOST_VRING_F_LOG)) throw new VhostError("EOPNOTSUPP", `vring flags 0x${a.flags.toString(16)}`);
    if (v.q) throw new VhostError("EBUSY", "ring address change while the endpoint is set");
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
    if (v.q) throw new VhostError("EBUSY", "ring base change while the endpoint is set");
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

  // ---- vhost-scsi ioctls ----

  async SCSI_GET_ABI_VERSION(): Promise<number> {
    return VHOST_SCSI_ABI_VERSION;
  }

  async SCSI_SET_EVENTS_MISSED(v: number): Promise<void> {
    this.ctx.dp.scsi_dev_set_events_missed(this.dev, v ? 1 : 0);
    if (v && this.running) this.wakeEvents();
  }

  async SCSI_GET_EVENTS_MISSED(): Promise<number> {
    return this.ctx.dp.scsi_dev_events_missed(this.dev) >>> 0;
  }

  /**
   * VHOST_SCSI_SET_ENDPOINT: binds every TPG of the target with this WWPN and starts serving
   * the configured vrings. EEXIST when no TPG matches or they are bound here already (as the
   * kernel), EBUSY when another device holds them, EFAULT when a ring is outside the memory.
   */
  async SCSI_SET_ENDPOINT(t: VhostScsiTarget): Promise<void> {
    this.checkOwner();
    if (t.reserved) throw new VhostError("EOPNOTSUPP", "vhost_scsi_target.reserved must be 0");
    for (const [i, v] of this.vrings.entries()) {
      if (v.addr && !this.ringCovered(v.num, v.addr, this.mem.regions)) throw new VhostError("EFAULT", `vring ${i} is outside the memory table`);
    }
    const target = this.ctx.targets.get(t.vhost_wwpn);
    if (this.endpoint && target === this.endpoint.target) throw new VhostError("EEXIST", `${t.vhost_wwpn} is already the endpoint`);
    if (this.endpoint) throw new VhostError("EBUSY", "another endpoint is set; clear it first");
    if (!target || target.tpgs.length === 0) throw new VhostError("EEXIST", `no TPG with WWPN ${t.vhost_wwpn}`);
    if (target.boundTo) throw new VhostError("EBUSY", `${t.vhost_wwpn} is the endpoint of another device`);
    const { dp } = this.ctx;
    let features = 0;
    if (bitOf(this.acked, VIRTIO_SCSI_F_T10_PI)) features |= 1;
    dp.scsi_dev_set_features(this.dev, features);
    this.endpoint = { target, tpgs: target.tpgs };
    target.boundTo = this;
    for (const tpg of this.endpoint.tpgs) {
      dp.scsi_dev_set_tpg(this.dev, tpg.tag, tpg.ptr);
      tpg.listener = this.tpgListener;
    }
    await this.updateWorkerBackstores();
    for (let i = 0; i < this.vrings.length; i++) if (this.vrings[i].addr) await this.startVring(i);
  }

  /** VHOST_SCSI_CLEAR_ENDPOINT: stops the vrings (waiting for requests in flight) and unbinds. */
  async SCSI_CLEAR_ENDPOINT(t: VhostScsiTarget): Promise<void> {
    this.checkOwner();
    if (t.reserved) throw new VhostError("EOPNOTSUPP", "vhost_scsi_target.reserved must be 0");
    if (!this.endpoint) return;
    if (this.endpoint.target.wwpn !== t.vhost_wwpn) throw new VhostError("EINVAL", `endpoint is ${this.endpoint.target.wwpn}, not ${t.vhost_wwpn}`);
    await this.stopEndpoint();
  }

  // ---- running the rings ----

  private ringCovered(num: number, a: VhostVringAddr, regions: readonly VhostMemoryRegion[]): boolean {
    const inOne = (addr: bigint, len: number) => regions.some((r) => addr >= r.userspace_addr && addr + BigInt(len) <= r.userspace_addr + r.memory_size);
    return inOne(a.desc_user_addr, vringDescSize(num)) && inOne(a.avail_user_addr, vringAvailSize(num)) && inOne(a.used_user_addr, vringUsedSize(num));
  }

  private kindOf(index: number): VringKind {
    return index === VHOST_SCSI_VQ_CTL ? "ctl" : index === VHOST_SCSI_VQ_EVT ? "evt" : "req";
  }

  /** Sets up the VirtQueue struct from the vring state (vhost_vq_init_access) and hands it to its worker. */
  private async startVring(index: number): Promise<void> {
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
    if (this.kindOf(index) === "req") {
      // Request contexts, their completion queue (a power of two at least as long) and a bounce buffer.
      const cap = Math.min(v.num, CONTEXTS_MAX);
      v.table = shm.device.alloc(dp.io_area_size(cap), 16, `vring ${index} request contexts`);
      v.cq = dp.io_area_init(v.table, cap);
      dp.vq_set_private(q.ptr, v.table);
      dp.scsi_dev_set_ctx_table(this.dev, index - VHOST_SCSI_VQ_IO, v.table);
    }
    v.q = q;
    await this.attach(index);
  }

  private attachment(index: number): VringAttachment {
    const v = this.vrings[index];
    return {
      binding: { index, kind: this.kindOf(index), vq: v.q!.ptr, dev: this.dev, cq: v.cq },
      kick: v.kick?.handle ?? null,
      call: v.call?.handle ?? null,
      err: v.err?.handle ?? null,
      busyloopUs: v.busyloopUs,
    };
  }

  private async attach(index: number): Promise<void> {
    const w = this.workers.get(this.vrings[index].workerId);
    if (!w) throw new VhostError("ENODEV", `worker ${this.vrings[index].workerId} is gone`);
    await w.attach(this.attachment(index));
  }

  /**
   * Stops every vring: detached from its worker once its requests in flight are answered. A
   * vring whose worker died cannot answer them; it is fenced instead: its memory is reused only
   * once no backstore works on its requests any more (their completions are then dropped, and a
   * recovery serves those requests again).
   */
  private async stopEndpoint(): Promise<void> {
    const ep = this.endpoint;
    if (!ep) return;
    const { shm, dp } = this.ctx;
    for (const [index, v] of this.vrings.entries()) {
      if (!v.q) continue;
      await this.workers.get(v.workerId)?.detach(index);
      v.base = v.q.lastAvailIdx;
      if (v.table) {
        await this.fence(v);
        dp.scsi_dev_set_ctx_table(this.dev, index - VHOST_SCSI_VQ_IO, 0);
        shm.device.release(v.table);
        v.table = 0;
        v.cq = 0;
      }
      v.q.dispose();
      v.q = undefined;
    }
    for (const tpg of ep.tpgs) {
      dp.scsi_dev_set_tpg(this.dev, tpg.tag, 0);
      tpg.listener = undefined;
    }
    ep.target.boundTo = undefined;
    this.endpoint = undefined;
    await this.updateWorkerBackstores();
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
  private async flushWorkers(): Promise<void> {
    for (const w of this.workers.values()) await w.flush();
    for (const v of this.vrings) await this.fence(v);
  }

  /** The backstores of the endpoint's LUNs that the vhost workers serve themselves (io-threads 0). */
  private workerServedBackstores(): WorkerServedBackstore[] {
    const out: WorkerServedBackstore[] = [];
    for (const tpg of this.endpoint?.tpgs ?? []) {
      for (const id of tpg.lunIds) {
        const s = tpg.lun(id)!.workerServed;
        if (s) out.push(s);
      }
    }
    return out;
  }

  /** Tells every live worker which backstores to serve (requests of any queue reach any of them). */
  private async updateWorkerBackstores(): Promise<void> {
    const list = this.workerServedBackstores();
    for (const w of this.workers.values()) if (!w.failure) await w.setBackstores(list);
  }

  /** Has the event vring's worker deliver what was posted (the kernel queues vs_event_work). */
  private wakeEvents(): void {
    const v = this.vrings[VHOST_SCSI_VQ_EVT];
    if (v.q) this.workers.get(v.workerId)?.kick(VHOST_SCSI_VQ_EVT);
  }

  private postEvent(event: number, tpg: Tpg, lun: Lun, reason: number): void {
    this.ctx.dp.scsi_post_event(this.dev, event, tpg.tag, lun.id, reason);
    this.wakeEvents();
  }

  /** Hotplug and capacity changes on the endpoint's TPGs become events (VIRTIO 1.2, 5.6.6.3). */
  private readonly tpgListener: TpgListener = {
    lunAdded: (tpg, lun) => {
      if (lun.workerServed) void this.updateWorkerBackstores().catch((e) => log("vhost-scsi: serving LUN %d failed: %s", lun.id, (e as Error).message));
      if (bitOf(this.acked, VIRTIO_SCSI_F_HOTPLUG)) this.postEvent(VIRTIO_SCSI_T_TRANSPORT_RESET, tpg, lun, VIRTIO_SCSI_EVT_RESET_RESCAN);
    },
    lunRemoved: (tpg, lun) => {
      if (bitOf(this.acked, VIRTIO_SCSI_F_HOTPLUG)) this.postEvent(VIRTIO_SCSI_T_TRANSPORT_RESET, tpg, lun, VIRTIO_SCSI_EVT_RESET_REMOVED);
    },
    lunReleased: async (_tpg, lun) => {
      if (lun.workerServed) await this.updateWorkerBackstores();
    },
    lunResized: (tpg, lun) => {
      // The reason carries ASC 2Ah ASCQ 09h: CAPACITY DATA HAS CHANGED.
      if (bitOf(this.acked, VIRTIO_SCSI_F_CHANGE)) this.postEvent(VIRTIO_SCSI_T_PARAM_CHANGE, tpg, lun, 0x2a | (0x09 << 8));
    },
    flush: () => this.flushWorkers(),
    paused: async (fn) => {
      const ws = [...this.workers.values()];
      for (const w of ws) await w.pause();
      try {
        fn();
      } finally {
        for (const w of ws) w.resume();
      }
    },
  };

  /** close(): everything stops and is freed. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.owner) await this.RESET_OWNER();
    this.mem.dispose();
    this.ctx.shm.device.release(this.dev);
    this.closed = true;
  }
}
