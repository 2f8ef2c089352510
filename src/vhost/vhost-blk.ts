// /dev/vhost-blk: a vhost device whose vrings are virtio-blk request queues (VIRTIO 1.2, 5.2.2),
// each attached to a block backend with VHOST_BLK_SET_BACKEND as vhost-net attaches a socket.
// No upstream kernel has one; SPDK's vhost-blk and QEMU's vhost-user-blk are the models.
import { VhostError } from "../sys/errors.js";
import { BlkBackend } from "../blk/backend.js";
import type { VringKind } from "../worker/vring-server.js";
import type { WorkerServedBackstore } from "../backstore/service.js";
import { BLK_F_DISCARD, BLK_F_READ_ONLY, BLK_F_WRITEBACK, BLK_F_WRITE_ZEROES } from "../wasm/abi.generated.js";
import { VIRTIO_BLK_F_CONFIG_WCE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_WRITE_ZEROES } from "../virtio/virtio-blk.js";
import { VHOST_BLK_FEATURES, VHOST_FILE_UNBIND, type VhostVringFile } from "./uapi.js";
import { VhostDevice, bitOf, type VhostContext } from "./vhost-device.js";

/** Request queues a device may have (as vhost-scsi's max_io_vqs). */
export const VHOST_BLK_MAX_VQ = 128;

/**
 * The /dev/vhost-blk device, one per open: the generic vhost ioctls (vhost-device.ts) and
 * VHOST_BLK_SET_BACKEND / VHOST_BLK_SET_WRITEBACK. Every vring of a device serves the same
 * backend; a vring runs from the moment its backend is set until it is unset (fd -1).
 */
export class VhostBlk extends VhostDevice {
  private backend: BlkBackend | undefined;
  /** Vrings the backend is set on (they run). */
  private readonly served = new Set<number>();

  constructor(ctx: VhostContext) {
    super(ctx, { name: "vhost-blk", features: VHOST_BLK_FEATURES, vrings: VHOST_BLK_MAX_VQ, structSize: ctx.dp.blk_device_size() });
  }

  protected kindOf(): VringKind {
    return "blk-req";
  }

  protected hasRequestContexts(): boolean {
    return true;
  }

  /**
   * VHOST_BLK_SET_BACKEND: the block backend behind fd serves vring index from now on (fd -1:
   * the vring stops, waiting for its requests in flight). EINVAL for an fd that is no block
   * backend, EBUSY when the device's other vrings serve another one, EFAULT when the vring has
   * no addresses in the memory table.
   */
  async BLK_SET_BACKEND(f: VhostVringFile): Promise<void> {
    this.checkOwner();
    this.checkVringIndex(f.index);
    if (f.fd === VHOST_FILE_UNBIND) {
      if (!this.served.delete(f.index)) return;
      await this.stopVring(f.index);
      if (this.served.size === 0) await this.detachBackend();
      return;
    }
    const b = this.ctx.file(f.fd);
    if (!(b instanceof BlkBackend)) throw new VhostError("EINVAL", `fd ${f.fd} is not a block backend`);
    if (b.boundTo && b.boundTo !== this) throw new VhostError("EBUSY", `fd ${f.fd} is the backend of another device`);
    if (this.backend && this.backend !== b) throw new VhostError("EBUSY", "the device's vrings serve another backend; unset it first");
    if (this.served.has(f.index)) return;
    this.checkRingAccess(f.index);
    if (!this.backend) await this.attachBackend(b);
    this.served.add(f.index);
    await this.startVring(f.index);
  }

  /** VHOST_BLK_SET_WRITEBACK: the volatile write cache on (writes may complete before they are durable) or off. */
  async BLK_SET_WRITEBACK(on: number): Promise<void> {
    this.checkOwner();
    this.ctx.dp.blk_dev_update_flags(this.dev, on ? BLK_F_WRITEBACK : 0, on ? 0 : BLK_F_WRITEBACK);
  }

  /** The data plane's view of the backend, for the features the driver negotiated. */
  private async attachBackend(b: BlkBackend): Promise<void> {
    const { dp, shm } = this.ctx;
    let flags = 0;
    if (b.readOnly) flags |= BLK_F_READ_ONLY;
    // Without a way to flush, the driver needs every write durable when it completes (write-through).
    const canFlush = bitOf(this.acked, VIRTIO_BLK_F_FLUSH) || bitOf(this.acked, VIRTIO_BLK_F_CONFIG_WCE);
    if (b.writeCache && canFlush) flags |= BLK_F_WRITEBACK;
    if (b.discard && bitOf(this.acked, VIRTIO_BLK_F_DISCARD)) flags |= BLK_F_DISCARD;
    if (bitOf(this.acked, VIRTIO_BLK_F_WRITE_ZEROES)) flags |= BLK_F_WRITE_ZEROES;
    dp.blk_dev_init(this.dev, b.backing, b.at, b.sectors, Math.log2(b.blockSize), flags, b.maxDiscardSectors, b.maxWriteZeroesSectors);
    shm.bytes.set(b.id, dp.blk_dev_id(this.dev));
    this.backend = b;
    b.boundTo = this;
    await this.updateWorkerBackstores();
  }

  private async detachBackend(): Promise<void> {
    if (this.backend) this.backend.boundTo = undefined;
    this.backend = undefined;
    await this.updateWorkerBackstores();
  }

  protected async stopServing(): Promise<void> {
    for (const i of this.served) await this.stopVring(i);
    this.served.clear();
    if (this.backend) await this.detachBackend();
  }

  protected workerServedBackstores(): WorkerServedBackstore[] {
    const s = this.backend?.workerServed;
    return s ? [s] : [];
  }
}
