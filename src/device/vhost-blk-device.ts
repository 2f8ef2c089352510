import type { GuestMemory } from "../guest/guest-memory.js";
import type { VhostProcess } from "../vhost/process.js";
import { VhostBlk, VHOST_BLK_MAX_VQ } from "../vhost/vhost-blk.js";
import type { BlkBackend } from "../blk/backend.js";
import {
  VIRTIO_BLK_CFG_BLK_SIZE,
  VIRTIO_BLK_CFG_CAPACITY,
  VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT,
  VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS,
  VIRTIO_BLK_CFG_MAX_DISCARD_SEG,
  VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS,
  VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG,
  VIRTIO_BLK_CFG_MIN_IO_SIZE,
  VIRTIO_BLK_CFG_NUM_QUEUES,
  VIRTIO_BLK_CFG_SEG_MAX,
  VIRTIO_BLK_CFG_SIZE_MAX,
  VIRTIO_BLK_CFG_WRITEBACK,
  VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP,
  VIRTIO_BLK_CONFIG_SIZE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_ID_BLOCK,
} from "../virtio/virtio-blk.js";
import { VhostVirtioDevice, type VhostVirtioDeviceOptions } from "./vhost-virtio-device.js";
import { expectState } from "./device-state.js";

export interface VhostBlkDeviceOptions extends VhostVirtioDeviceOptions {
  /** The block backend's fd (VhostProcess.openBlockBackend). */
  backend: number;
  /** Request queues (num-queues). Default 1. */
  numQueues?: number;
}

const bit = (n: number) => 1n << BigInt(n);

/**
 * The QEMU-side virtio-blk device over /dev/vhost-blk (in the manner of hw/block/vhost-user-blk.c):
 * the config space from the backend (capacity, block size, limits, writeback), the features it
 * supports, and serving that starts by attaching the backend to every configured queue.
 */
export class VhostBlkDevice extends VhostVirtioDevice<VhostBlk> {
  readonly requestQueues: number;
  protected readonly config = new Uint8Array(VIRTIO_BLK_CONFIG_SIZE);
  private readonly backend: BlkBackend;

  constructor(
    proc: VhostProcess,
    mem: GuestMemory,
    private readonly blk: VhostBlkDeviceOptions,
  ) {
    const n = blk.numQueues ?? 1;
    if (!(n >= 1 && n <= VHOST_BLK_MAX_VQ)) throw new RangeError(`num-queues ${n}: 1..${VHOST_BLK_MAX_VQ}`);
    const queues = Array.from({ length: n }, (_, i) => i);
    super(proc, mem, { name: "vhost-blk", deviceId: VIRTIO_ID_BLOCK, path: "/dev/vhost-blk", queues: n, requestQueues: queues, queueSize: 256 }, blk, VhostBlk);
    this.requestQueues = n;
    this.backend = proc.blockBackend(blk.backend);
    const b = this.backend;
    const dv = new DataView(this.config.buffer);
    dv.setBigUint64(VIRTIO_BLK_CFG_CAPACITY, BigInt(b.sectors), true);
    dv.setUint32(VIRTIO_BLK_CFG_SIZE_MAX, b.sizeMax, true);
    dv.setUint32(VIRTIO_BLK_CFG_SEG_MAX, Math.min(this.queueSize - 2, b.segMax), true);
    dv.setUint32(VIRTIO_BLK_CFG_BLK_SIZE, b.blockSize, true);
    // Topology: physical blocks as large as logical ones, aligned, minimum I/O one block.
    dv.setUint16(VIRTIO_BLK_CFG_MIN_IO_SIZE, 1, true);
    dv.setUint8(VIRTIO_BLK_CFG_WRITEBACK, b.writeCache ? 1 : 0);
    dv.setUint16(VIRTIO_BLK_CFG_NUM_QUEUES, n, true);
    dv.setUint32(VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, b.maxDiscardSectors, true);
    dv.setUint32(VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1, true);
    dv.setUint32(VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT, b.blockSize >> 9, true);
    dv.setUint32(VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, b.maxWriteZeroesSectors, true);
    dv.setUint32(VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 1, true);
    dv.setUint8(VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, b.discard ? 1 : 0);
  }

  /** What the backend supports of the vhost device's features: RO only for a read-only disk, DISCARD where it deallocates, MQ with more than one queue. */
  deviceFeatures(): bigint {
    let f = super.deviceFeatures();
    if (!this.backend.readOnly) f &= ~bit(VIRTIO_BLK_F_RO);
    if (!this.backend.discard) f &= ~bit(VIRTIO_BLK_F_DISCARD);
    if (this.requestQueues === 1) f &= ~bit(VIRTIO_BLK_F_MQ);
    return f;
  }

  protected async startServing(d: VhostBlk, configured: readonly number[]): Promise<void> {
    await d.BLK_SET_WRITEBACK(this.config[VIRTIO_BLK_CFG_WRITEBACK]);
    for (const index of configured) await d.BLK_SET_BACKEND({ index, fd: this.blk.backend });
  }

  protected async stopServing(d: VhostBlk, configured: readonly number[]): Promise<void> {
    for (const index of configured) await d.BLK_SET_BACKEND({ index, fd: -1 });
  }

  protected readonly writableConfig = [VIRTIO_BLK_CFG_WRITEBACK];

  /** The disk, when it is a RAM backstore ("disk"). */
  ramDisks(): { name: string; bytes: Uint8Array }[] {
    const b = this.backend.backstore;
    return b.kind === "ram" ? [{ name: "disk", bytes: this.mem.shm.bytes.subarray(b.ram, b.ram + b.size) }] : [];
  }

  /** Everything a virtio-blk device keeps is in the generic part (the config space carries the disk's geometry and writeback). */
  protected saveType(): null {
    return null;
  }

  protected checkType(x: unknown): void {
    expectState(x === null, "a malformed vhost-blk part");
  }

  protected restoreType(): void {}

  /** Only `writeback` is driver-writable (VIRTIO_BLK_F_CONFIG_WCE); the running backend follows it. */
  writeConfig(offset: number, data: Uint8Array): void {
    if (offset !== VIRTIO_BLK_CFG_WRITEBACK || data.length !== 1) return;
    this.config[VIRTIO_BLK_CFG_WRITEBACK] = data[0] ? 1 : 0;
    if (this.running) void this.vhost.BLK_SET_WRITEBACK(data[0] ? 1 : 0);
  }
}
