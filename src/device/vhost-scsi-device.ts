import type { GuestMemory } from "../guest/guest-memory.js";
import type { VhostProcess } from "../vhost/process.js";
import { VhostScsi, VHOST_SCSI_MAX_IO_VQ, VHOST_SCSI_VQ_IO } from "../vhost/vhost-scsi.js";
import { VHOST_SCSI_ABI_VERSION } from "../vhost/uapi.js";
import {
  VIRTIO_ID_SCSI,
  VIRTIO_SCSI_CDB_SIZE,
  VIRTIO_SCSI_MAX_SECTORS,
  VIRTIO_SCSI_CONFIG_SIZE,
  VIRTIO_SCSI_EVENT_SIZE,
  VIRTIO_SCSI_SENSE_SIZE,
} from "../virtio/virtio-scsi.js";
import { VhostVirtioDevice, type VhostVirtioDeviceOptions } from "./vhost-virtio-device.js";

export type { QueueErrorEvent } from "./vhost-virtio-device.js";

/** QEMU's limits for virtio-scsi: max_channel 0, max_target 255, max_lun 16383. */
const VIRTIO_SCSI_MAX_CHANNEL = 0;
const VIRTIO_SCSI_MAX_TARGET = 255;
const VIRTIO_SCSI_MAX_LUN = 16383;

export interface VhostScsiDeviceOptions extends VhostVirtioDeviceOptions {
  /** The target's WWPN (vhost-scsi-pci,wwpn=...). */
  wwpn: string;
  /** Request queues (num_queues). Default 1. */
  numQueues?: number;
  /** Target number passed to SET_ENDPOINT (boot_tpgt). Default 0. */
  bootTpgt?: number;
}

/**
 * The QEMU-side vhost-scsi device (hw/scsi/vhost-scsi.c and vhost-scsi-common.c): the
 * virtio-scsi config space over /dev/vhost-scsi; serving starts with SET_ENDPOINT and ends with
 * CLEAR_ENDPOINT.
 */
export class VhostScsiDevice extends VhostVirtioDevice<VhostScsi> {
  /** Request queues (num_queues in the config space). */
  readonly requestQueues: number;
  protected readonly config = new Uint8Array(VIRTIO_SCSI_CONFIG_SIZE);

  constructor(
    proc: VhostProcess,
    mem: GuestMemory,
    private readonly scsi: VhostScsiDeviceOptions,
  ) {
    const n = scsi.numQueues ?? 1;
    if (!(n >= 1 && n <= VHOST_SCSI_MAX_IO_VQ)) throw new RangeError(`num_queues ${n}: 1..${VHOST_SCSI_MAX_IO_VQ}`);
    const requestQueues = Array.from({ length: n }, (_, i) => VHOST_SCSI_VQ_IO + i);
    super(
      proc,
      mem,
      { name: "vhost-scsi", deviceId: VIRTIO_ID_SCSI, path: "/dev/vhost-scsi", queues: VHOST_SCSI_VQ_IO + n, requestQueues, queueSize: 128 },
      scsi,
      VhostScsi,
    );
    this.requestQueues = n;
    const dv = new DataView(this.config.buffer);
    dv.setUint32(0, n, true);
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

  /** The ABI version must be one this model speaks. */
  protected async realizeDevice(d: VhostScsi): Promise<void> {
    const abi = await d.SCSI_GET_ABI_VERSION();
    if (abi > VHOST_SCSI_ABI_VERSION) throw new Error(`vhost-scsi ABI ${abi} is newer than ${VHOST_SCSI_ABI_VERSION}`);
  }

  private get endpoint() {
    return { abi_version: VHOST_SCSI_ABI_VERSION, vhost_wwpn: this.scsi.wwpn, vhost_tpgt: this.scsi.bootTpgt ?? 0 };
  }

  protected async startServing(d: VhostScsi): Promise<void> {
    await d.SCSI_SET_ENDPOINT(this.endpoint);
  }

  protected async stopServing(d: VhostScsi): Promise<void> {
    await d.SCSI_CLEAR_ENDPOINT(this.endpoint);
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
      this.needsReset();
      throw new Error("vhost-scsi does not support changing the sense data and CDB sizes");
    }
  }
}
