import { EventFd } from "../sys/eventfd.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { createDataplane, type DataplaneInstance } from "../wasm/dataplane.js";
import { TargetRegistry } from "../target/registry.js";
import { VhostError } from "../sys/errors.js";
import { VhostScsi } from "./vhost-scsi.js";
import { VhostBlk } from "./vhost-blk.js";
import { BlkBackend, type BlkBackendOptions } from "../blk/backend.js";
import type { Backstore } from "../backstore/backstore.js";
import { VhostDevice, type VhostContext } from "./vhost-device.js";
import type { VhostWorker } from "../worker/worker.js";
import { LocalWorker } from "../worker/local-worker.js";
import { ThreadWorker } from "../worker/thread-worker.js";
import * as U from "./uapi.js";

/** How a process runs its vhost workers. */
export interface VhostProcessOptions {
  /** Run vhost workers in worker threads (default) or in the calling thread. */
  workerThreads?: boolean;
  /** Starts worker `id` for a device (overrides workerThreads). */
  createWorker?: (id: number, shm: SharedMemory) => VhostWorker;
  /**
   * The CPUs worker thread `id` of a device runs on (as libvirt's emulatorpin places a VM's vhost
   * threads); undefined: wherever the scheduler puts it. Needs worker threads and Linux.
   */
  workerCpus?: (id: number) => readonly number[] | undefined;
}

/** The vhost device nodes open() knows, by path: each makes a device of its type. */
const DEVICE_NODES = new Map<string, (ctx: VhostContext) => VhostDevice>([
  ["/dev/vhost-scsi", (ctx) => new VhostScsi(ctx)],
  ["/dev/vhost-blk", (ctx) => new VhostBlk(ctx)],
]);

/**
 * A process-like file descriptor table over one shared memory: eventfd(), open() of a vhost
 * device node, close() and ioctl() with the real request numbers and binary arguments. The
 * LIO-like target registry lives here too (the kernel's configfs is per host).
 */
export class VhostProcess {
  readonly control: DataplaneInstance;
  readonly targets: TargetRegistry;
  private readonly fds = new Map<number, EventFd | VhostDevice | BlkBackend>();
  private nextFd = 3;

  constructor(
    readonly shm: SharedMemory,
    private readonly opts: VhostProcessOptions = {},
  ) {
    if (opts.workerCpus && opts.workerThreads === false) throw new VhostError("EINVAL", "workerCpus places worker threads; workerThreads is false");
    this.control = createDataplane(shm);
    this.targets = new TargetRegistry(shm, this.control.dp);
  }

  private install(f: EventFd | VhostDevice | BlkBackend): number {
    const fd = this.nextFd++;
    this.fds.set(fd, f);
    return fd;
  }

  /** eventfd(2). */
  eventfd(initval = 0, flags = 0): number {
    return this.install(EventFd.create(initval, flags));
  }

  /** The eventfd behind fd: EBADF for no such fd, EINVAL for a non-eventfd (eventfd_fget). */
  eventfdOf(fd: number): EventFd {
    const f = this.fds.get(fd);
    if (!f) throw new VhostError("EBADF", `fd ${fd} is not open`);
    if (!(f instanceof EventFd)) throw new VhostError("EINVAL", `fd ${fd} is not an eventfd`);
    return f;
  }

  /**
   * Opens a backstore as a block backend (what opening a disk image is to QEMU's vhost-blk):
   * the fd VHOST_BLK_SET_BACKEND attaches. Its close() closes the backstore.
   */
  openBlockBackend(backstore: Backstore, options: BlkBackendOptions = {}): number {
    return this.install(new BlkBackend(this.shm, this.control.dp, backstore, options));
  }

  /** The block backend behind fd. */
  blockBackend(fd: number): BlkBackend {
    const f = this.fds.get(fd);
    if (!f) throw new VhostError("EBADF", `fd ${fd} is not open`);
    if (!(f instanceof BlkBackend)) throw new VhostError("EINVAL", `fd ${fd} is not a block backend`);
    return f;
  }

  /** The vhost device behind fd; with a type, ENOTTY unless it is one (its ioctls do not apply). */
  device(fd: number): VhostDevice;
  device<T extends VhostDevice>(fd: number, type: abstract new (...args: never[]) => T): T;
  device(fd: number, type: abstract new (...args: never[]) => VhostDevice = VhostDevice): VhostDevice {
    const f = this.fds.get(fd);
    if (!f) throw new VhostError("EBADF", `fd ${fd} is not open`);
    if (!(f instanceof type)) throw new VhostError("ENOTTY", `fd ${fd} is not a ${type === VhostDevice ? "vhost device" : `${type.name} device`}`);
    return f;
  }

  /** open(2) of a vhost device node (/dev/vhost-scsi, /dev/vhost-blk). */
  open(path: string): number {
    const make = DEVICE_NODES.get(path);
    if (!make) throw new VhostError("ENOENT", `${path}: no such device`);
    const ctx: VhostContext = {
      shm: this.shm,
      dp: this.control.dp,
      targets: this.targets,
      eventfd: (fd) => this.eventfdOf(fd),
      file: (fd) => {
        const f = this.fds.get(fd);
        if (!f) throw new VhostError("EBADF", `fd ${fd} is not open`);
        return f;
      },
      createWorker: (id) =>
        this.opts.createWorker?.(id, this.shm) ??
        (this.opts.workerThreads === false ? new LocalWorker(id, this.shm) : new ThreadWorker(id, this.shm, this.control.dp, this.opts.workerCpus?.(id))),
    };
    return this.install(make(ctx));
  }

  /**
   * close(2): a vhost device stops its workers and releases everything; a block backend closes
   * its backstore (EBUSY while a device's vrings serve it).
   */
  async close(fd: number): Promise<void> {
    const f = this.fds.get(fd);
    if (!f) throw new VhostError("EBADF", `fd ${fd} is not open`);
    if (f instanceof BlkBackend && f.boundTo) throw new VhostError("EBUSY", `fd ${fd} is the backend of a vhost-blk device`);
    this.fds.delete(fd);
    if (f instanceof EventFd) f.close();
    else await f.close();
  }

  /**
   * ioctl(2) on a vhost device: `arg` holds the uapi struct in its binary layout; results of
   * _IOR/_IOWR requests are written back into it. Resolves to 0, or rejects with VhostError.
   */
  async ioctl(fd: number, request: number, arg: Uint8Array = new Uint8Array(0)): Promise<number> {
    const d = this.device(fd);
    const scsi = () => this.device(fd, VhostScsi);
    const dv = () => new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
    const need = (n: number) => {
      if (arg.byteLength < n) throw new VhostError("EFAULT", `argument of ${arg.byteLength} bytes, need ${n}`);
    };
    switch (request >>> 0) {
      case U.VHOST_GET_FEATURES:
        need(8);
        dv().setBigUint64(0, await d.GET_FEATURES(), true);
        return 0;
      case U.VHOST_SET_FEATURES:
        need(8);
        await d.SET_FEATURES(dv().getBigUint64(0, true));
        return 0;
      case U.VHOST_SET_OWNER:
        await d.SET_OWNER();
        return 0;
      case U.VHOST_RESET_OWNER:
        await d.RESET_OWNER();
        return 0;
      case U.VHOST_SET_MEM_TABLE: {
        const m = U.decodeMemory(arg);
        if (m.nregions > 64) throw new VhostError("E2BIG", `${m.nregions} regions`);
        if (m.regions.length < m.nregions) throw new VhostError("EFAULT", "regions past the end of the argument");
        await d.SET_MEM_TABLE(m.regions, m.padding);
        return 0;
      }
      case U.VHOST_SET_LOG_BASE:
        need(8);
        await d.SET_LOG_BASE(dv().getBigUint64(0, true));
        return 0;
      case U.VHOST_SET_LOG_FD:
        need(4);
        await d.SET_LOG_FD(dv().getInt32(0, true));
        return 0;
      case U.VHOST_SET_VRING_NUM:
        await d.SET_VRING_NUM(U.decodeVringState(arg));
        return 0;
      case U.VHOST_SET_VRING_ADDR:
        await d.SET_VRING_ADDR(U.decodeVringAddr(arg));
        return 0;
      case U.VHOST_SET_VRING_BASE:
        await d.SET_VRING_BASE(U.decodeVringState(arg));
        return 0;
      case U.VHOST_GET_VRING_BASE:
        U.encodeVringState(await d.GET_VRING_BASE(U.decodeVringState(arg).index), arg);
        return 0;
      case U.VHOST_SET_VRING_KICK:
        await d.SET_VRING_KICK(U.decodeVringFile(arg));
        return 0;
      case U.VHOST_SET_VRING_CALL:
        await d.SET_VRING_CALL(U.decodeVringFile(arg));
        return 0;
      case U.VHOST_SET_VRING_ERR:
        await d.SET_VRING_ERR(U.decodeVringFile(arg));
        return 0;
      case U.VHOST_SET_VRING_BUSYLOOP_TIMEOUT:
        await d.SET_VRING_BUSYLOOP_TIMEOUT(U.decodeVringState(arg));
        return 0;
      case U.VHOST_GET_VRING_BUSYLOOP_TIMEOUT:
        U.encodeVringState(await d.GET_VRING_BUSYLOOP_TIMEOUT(U.decodeVringState(arg).index), arg);
        return 0;
      case U.VHOST_NEW_WORKER:
        need(4);
        dv().setUint32(0, (await d.NEW_WORKER()).worker_id, true);
        return 0;
      case U.VHOST_FREE_WORKER:
        need(4);
        await d.FREE_WORKER({ worker_id: dv().getUint32(0, true) });
        return 0;
      case U.VHOST_ATTACH_VRING_WORKER:
        await d.ATTACH_VRING_WORKER(U.decodeVringWorker(arg));
        return 0;
      case U.VHOST_GET_VRING_WORKER:
        U.encodeVringWorker(await d.GET_VRING_WORKER(U.decodeVringWorker(arg).index), arg);
        return 0;
      case U.VHOST_SCSI_SET_ENDPOINT:
        await scsi().SCSI_SET_ENDPOINT(U.decodeScsiTarget(arg));
        return 0;
      case U.VHOST_SCSI_CLEAR_ENDPOINT:
        await scsi().SCSI_CLEAR_ENDPOINT(U.decodeScsiTarget(arg));
        return 0;
      case U.VHOST_SCSI_GET_ABI_VERSION:
        need(4);
        dv().setInt32(0, await scsi().SCSI_GET_ABI_VERSION(), true);
        return 0;
      case U.VHOST_SCSI_SET_EVENTS_MISSED:
        need(4);
        await scsi().SCSI_SET_EVENTS_MISSED(dv().getUint32(0, true));
        return 0;
      case U.VHOST_BLK_SET_BACKEND:
        await this.device(fd, VhostBlk).BLK_SET_BACKEND(U.decodeVringFile(arg));
        return 0;
      case U.VHOST_BLK_SET_WRITEBACK:
        need(4);
        await this.device(fd, VhostBlk).BLK_SET_WRITEBACK(dv().getInt32(0, true));
        return 0;
      case U.VHOST_SCSI_GET_EVENTS_MISSED:
        need(4);
        dv().setUint32(0, await scsi().SCSI_GET_EVENTS_MISSED(), true);
        return 0;
    }
    throw new VhostError("ENOTTY", `unknown ioctl 0x${(request >>> 0).toString(16)}`);
  }
}
