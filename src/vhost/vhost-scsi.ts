// /dev/vhost-scsi (drivers/vhost/scsi.c): a vhost device whose vrings are virtio-scsi's
// control, event and request queues, and whose endpoint is a target's TPGs.
import {
  VIRTIO_SCSI_EVT_RESET_REMOVED,
  VIRTIO_SCSI_EVT_RESET_RESCAN,
  VIRTIO_SCSI_F_CHANGE,
  VIRTIO_SCSI_F_HOTPLUG,
  VIRTIO_SCSI_F_T10_PI,
  VIRTIO_SCSI_T_PARAM_CHANGE,
  VIRTIO_SCSI_T_TRANSPORT_RESET,
  VIRTIO_SCSI_VQ_REQUEST,
} from "../virtio/virtio-scsi.js";
import { generateWwpn, isNaaName, sasAddress, type ScsiTarget } from "../target/target.js";
import type { Tpg, TpgListener } from "../target/tpg.js";
import type { Lun } from "../target/lun.js";
import type { VringKind } from "../worker/vring-server.js";
import { VhostError } from "../sys/errors.js";
import { VHOST_SCSI_ABI_VERSION, VHOST_SCSI_FEATURES, type VhostScsiTarget } from "./uapi.js";
import type { WorkerServedBackstore } from "../backstore/service.js";
import { log } from "../sys/log.js";
import { VhostDevice, bitOf, type VhostContext } from "./vhost-device.js";

export type { VhostContext } from "./vhost-device.js";

/** An event of the event queue (VIRTIO 1.2, 5.6.6.3): its type, the target and LUN it names, and its reason. */
export interface VirtioScsiEventRecord {
  event: number;
  target: number;
  lun: number;
  reason: number;
}

/** Request queues a device may have (the kernel's default max_io_vqs), plus control and event. */
export const VHOST_SCSI_MAX_IO_VQ = 128;
export const VHOST_SCSI_VQ_CTL = 0;
export const VHOST_SCSI_VQ_EVT = 1;
/** The first request queue (the data plane's VIRTIO_SCSI_VQ_REQUEST, whose gates are numbered from it). */
export const VHOST_SCSI_VQ_IO = VIRTIO_SCSI_VQ_REQUEST;

/**
 * The /dev/vhost-scsi device, one per open: the generic vhost ioctls (vhost-device.ts) and
 * those of drivers/vhost/scsi.c: the endpoint, the ABI version, missed events.
 */
export class VhostScsi extends VhostDevice {
  private endpoint: { target: ScsiTarget; tpgs: Tpg[]; nexus: number } | undefined;
  private initiatorName = generateWwpn();

  constructor(ctx: VhostContext) {
    super(ctx, { name: "vhost-scsi", features: VHOST_SCSI_FEATURES, vrings: VHOST_SCSI_VQ_IO + VHOST_SCSI_MAX_IO_VQ, structSize: ctx.dp.scsi_device_size() });
  }

  private get running(): boolean {
    return this.endpoint !== undefined;
  }

  protected kindOf(index: number): VringKind {
    return index === VHOST_SCSI_VQ_CTL ? "scsi-ctl" : index === VHOST_SCSI_VQ_EVT ? "scsi-evt" : "scsi-req";
  }

  protected hasRequestContexts(index: number): boolean {
    return index >= VHOST_SCSI_VQ_IO;
  }

  /** A TMF on any queue finds the requests it aborts through the device's table of context tables. */
  protected contextTableChanged(index: number, table: number): void {
    this.ctx.dp.scsi_dev_set_ctx_table(this.dev, index - VHOST_SCSI_VQ_IO, table);
  }

  /**
   * The initiator port this device is on its target (an naa. name, generated unless set): the
   * I_T nexus its reservations and unit attentions belong to. Linux sets it in the TPG's configfs
   * nexus; here each device has its own, so that several devices can share a TPG.
   */
  get initiator(): string {
    return this.initiatorName;
  }

  /** Sets the initiator port name; EBUSY while an endpoint is set, EINVAL for a name that is not naa. and 16 hex digits. */
  setInitiator(name: string): void {
    if (this.endpoint) throw new VhostError("EBUSY", "the initiator port cannot change while an endpoint is set");
    if (!isNaaName(name)) throw new VhostError("EINVAL", `initiator ${name}: expected naa. and 16 hex digits`);
    this.initiatorName = name;
  }

  /** This device's nexus number on its endpoint's target (while an endpoint is set). */
  get nexus(): number | undefined {
    return this.endpoint?.nexus;
  }

  // ---- vhost-scsi ioctls ----

  async SCSI_GET_ABI_VERSION(): Promise<number> {
    return VHOST_SCSI_ABI_VERSION;
  }

  async SCSI_SET_EVENTS_MISSED(v: number): Promise<void> {
    this.ctx.dp.scsi_dev_set_events_missed(this.dev, v ? 1 : 0);
    if (v && this.running) this.wake(VHOST_SCSI_VQ_EVT);
  }

  async SCSI_GET_EVENTS_MISSED(): Promise<number> {
    return this.ctx.dp.scsi_dev_events_missed(this.dev) >>> 0;
  }

  /**
   * Events posted and not delivered yet, oldest first, and whether one was missed: the event
   * queue's part of a saved device (read while the device is stopped).
   */
  pendingEvents(): { missed: boolean; events: VirtioScsiEventRecord[] } {
    const { dp, shm } = this.ctx;
    const events: VirtioScsiEventRecord[] = [];
    for (let k = 0, at = dp.scsi_dev_pending_event(this.dev, 0); at !== 0; at = dp.scsi_dev_pending_event(this.dev, ++k)) {
      const b = shm.bytes;
      events.push({
        event: shm.view.getUint32(at, true),
        target: b[at + 5],
        lun: ((b[at + 6] & 0x3f) << 8) | b[at + 7],
        reason: shm.view.getUint32(at + 12, true),
      });
    }
    return { missed: dp.scsi_dev_events_missed(this.dev) !== 0, events };
  }

  /** Posts saved events again, in order, and the missed flag (a device loaded from a saved state). */
  restoreEvents(s: { missed: boolean; events: readonly VirtioScsiEventRecord[] }): void {
    for (const e of s.events) this.ctx.dp.scsi_post_event(this.dev, e.event, e.target, e.lun, e.reason);
    if (s.missed) this.ctx.dp.scsi_dev_set_events_missed(this.dev, 1);
  }

  /**
   * VHOST_SCSI_SET_ENDPOINT: binds every TPG of the target with this WWPN and starts serving
   * the configured vrings. EEXIST when no TPG matches or they are bound here already (as the
   * kernel), EBUSY when another device is bound as the same initiator or the target has no
   * nexus left, EFAULT when a ring is outside the memory. Other devices may be bound to the same
   * TPGs: each is its own I_T nexus.
   */
  async SCSI_SET_ENDPOINT(t: VhostScsiTarget): Promise<void> {
    this.checkOwner();
    if (t.reserved) throw new VhostError("EOPNOTSUPP", "vhost_scsi_target.reserved must be 0");
    this.checkRingsCovered();
    const target = this.ctx.targets.get(t.vhost_wwpn);
    if (this.endpoint && target === this.endpoint.target) throw new VhostError("EEXIST", `${t.vhost_wwpn} is already the endpoint`);
    if (this.endpoint) throw new VhostError("EBUSY", "another endpoint is set; clear it first");
    if (!target || target.tpgs.length === 0) throw new VhostError("EEXIST", `no TPG with WWPN ${t.vhost_wwpn}`);
    const nexus = target.bind(this, this.dev, this.initiatorName);
    if (typeof nexus === "string") throw new VhostError("EBUSY", nexus);
    const { dp } = this.ctx;
    let features = 0;
    if (bitOf(this.acked, VIRTIO_SCSI_F_T10_PI)) features |= 1;
    dp.scsi_dev_set_features(this.dev, features);
    dp.scsi_dev_set_nexus(this.dev, nexus, sasAddress(this.initiatorName), target.peers);
    this.endpoint = { target, tpgs: target.tpgs, nexus };
    for (const tpg of this.endpoint.tpgs) {
      dp.scsi_dev_set_tpg(this.dev, tpg.tag, tpg.ptr);
      tpg.listeners.add(this.tpgListener);
    }
    await this.updateWorkerBackstores();
    await this.startConfiguredVrings();
  }

  /** VHOST_SCSI_CLEAR_ENDPOINT: stops the vrings (waiting for requests in flight) and unbinds. */
  async SCSI_CLEAR_ENDPOINT(t: VhostScsiTarget): Promise<void> {
    this.checkOwner();
    if (t.reserved) throw new VhostError("EOPNOTSUPP", "vhost_scsi_target.reserved must be 0");
    if (!this.endpoint) return;
    if (this.endpoint.target.wwpn !== t.vhost_wwpn) throw new VhostError("EINVAL", `endpoint is ${this.endpoint.target.wwpn}, not ${t.vhost_wwpn}`);
    await this.stopServing();
  }

  /** Stops every vring and unbinds the endpoint's TPGs. */
  protected async stopServing(): Promise<void> {
    const ep = this.endpoint;
    if (!ep) return;
    await this.stopVrings();
    const { dp } = this.ctx;
    for (const tpg of ep.tpgs) {
      dp.scsi_dev_set_tpg(this.dev, tpg.tag, 0);
      tpg.listeners.delete(this.tpgListener);
    }
    ep.target.unbind(ep.nexus);
    this.endpoint = undefined;
    await this.updateWorkerBackstores();
  }

  /** The backstores of the endpoint's LUNs that the vhost workers serve themselves (io-threads 0). */
  protected workerServedBackstores(): WorkerServedBackstore[] {
    const out: WorkerServedBackstore[] = [];
    for (const tpg of this.endpoint?.tpgs ?? []) {
      for (const id of tpg.lunIds) {
        const s = tpg.lun(id)!.workerServed;
        if (s) out.push(s);
      }
    }
    return out;
  }

  private postEvent(event: number, tpg: Tpg, lun: Lun, reason: number): void {
    this.ctx.dp.scsi_post_event(this.dev, event, tpg.tag, lun.id, reason);
    this.wake(VHOST_SCSI_VQ_EVT);
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
    paused: (fn) => this.paused(fn),
  };
}
