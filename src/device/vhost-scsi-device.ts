import type { GuestMemory } from "../guest/guest-memory.js";
import type { VhostProcess } from "../vhost/process.js";
import { VhostScsi, VHOST_SCSI_MAX_IO_VQ, VHOST_SCSI_VQ_IO, type VirtioScsiEventRecord } from "../vhost/vhost-scsi.js";
import type { LunState } from "../target/lun.js";
import { expectState } from "./device-state.js";
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

/** A LUN as a saved vhost-scsi device records it: what must match on load, and the guest-made state. */
export interface SavedLun {
  id: number;
  blockSize: number;
  blocks: number;
  backstore: string;
  readOnly: boolean;
  state: LunState;
}

/** vhost-scsi's part of a saved device state: the endpoint's target and LUNs, and undelivered events. */
export interface ScsiDeviceState {
  wwpn: string;
  tpgs: { tag: number; luns: SavedLun[] }[];
  events: { missed: boolean; events: VirtioScsiEventRecord[] };
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

  /** The target the device's endpoint names (VHOST_SCSI_SET_ENDPOINT's WWPN). */
  private get target() {
    const t = this.proc.targets.get(this.scsi.wwpn);
    if (!t) throw new Error(`vhost-scsi: no target ${this.scsi.wwpn}`);
    return t;
  }

  /** The LUNs as they are now, per TPG of the target. */
  private savedTpgs(): ScsiDeviceState["tpgs"] {
    return this.target.tpgs.map((tpg) => ({
      tag: tpg.tag,
      luns: tpg.lunIds.map((id) => {
        const l = tpg.lun(id)!;
        return { id, blockSize: l.blockSize, blocks: l.blocks, backstore: l.backstore.name, readOnly: l.readOnly, state: l.state };
      }),
    }));
  }

  /** The RAM LUNs of the endpoint's target, named "tpg T lun L". */
  ramDisks(): { name: string; bytes: Uint8Array }[] {
    const shm = this.mem.shm;
    return this.target.tpgs.flatMap((tpg) =>
      tpg.lunIds.flatMap((id) => {
        const b = tpg.lun(id)!.backstore;
        return b.kind === "ram" ? [{ name: `tpg ${tpg.tag} lun ${id}`, bytes: shm.bytes.subarray(b.ram, b.ram + b.size) }] : [];
      }),
    );
  }

  /** The endpoint's LUNs with their unit attentions and modes, and the events the guest has not received yet. */
  protected saveType(d: VhostScsi): ScsiDeviceState {
    return { wwpn: this.scsi.wwpn, tpgs: this.savedTpgs(), events: d.pendingEvents() };
  }

  /** The same WWPN (the guest sees it in its LUNs' identifiers), TPGs and LUNs: numbers, geometry, backstore type, read-only. */
  protected checkType(x: unknown): void {
    const s = x as Partial<ScsiDeviceState> | null;
    expectState(
      typeof s === "object" && s !== null && Array.isArray(s.tpgs) && typeof s.events === "object" && Array.isArray(s.events?.events),
      "a malformed vhost-scsi part",
    );
    expectState(s.wwpn === this.scsi.wwpn, `it was saved from target ${String(s.wwpn)}, this device's is ${this.scsi.wwpn}`);
    const here = this.savedTpgs();
    expectState(s.tpgs.length === here.length, `${s.tpgs.length} TPGs saved, the target here has ${here.length}`);
    for (const [i, t] of s.tpgs.entries()) {
      const h = here[i];
      expectState(t.tag === h.tag, `TPG ${t.tag} saved, the target here has TPG ${h.tag}`);
      const ids = (l: { id: number }[]) => l.map((x) => x.id).join(",");
      expectState(ids(t.luns) === ids(h.luns), `TPG ${t.tag} had LUNs ${ids(t.luns)}, here it has ${ids(h.luns)}`);
      for (const [k, l] of t.luns.entries()) {
        const m = h.luns[k];
        for (const f of ["blockSize", "blocks", "backstore", "readOnly"] as const)
          expectState(l[f] === m[f], `TPG ${t.tag} LUN ${l.id}: ${f} ${String(l[f])} saved, ${String(m[f])} here`);
      }
    }
  }

  protected restoreType(d: VhostScsi, x: unknown): void {
    const s = x as ScsiDeviceState;
    for (const t of s.tpgs) for (const l of t.luns) this.target.tpg(t.tag)!.lun(l.id)!.restoreState(l.state);
    d.restoreEvents(s.events);
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
