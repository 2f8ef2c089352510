// The vhost-scsi device's view of its endpoint: TPGs by tag (the guest's target number),
// each with a table of LUNs, plus the device-wide state the request, control and event
// queues share (negotiated features, request context tables, the event mailbox, pending TMFs).
import { ScsiLun } from "./lun";

/** Targets (TPG tags) a device can address, and LUNs per TPG (the kernel's limits). */
export const VHOST_SCSI_MAX_TARGET: u32 = 256;
export const VHOST_SCSI_MAX_LUN: u32 = 16384;
/** Request queues whose in-flight tables a TMF can search. */
export const MAX_REQUEST_QUEUES: u32 = 128;
/** Events the control plane can post before the worker delivers them. */
export const EVT_SLOTS: u32 = 64;
/** TMFs that can wait at once for aborted requests to finish. */
export const TMF_SLOTS: u32 = 16;

/** ScsiDevice.features bits (negotiated virtio-scsi features the data plane acts on). */
export const SCSI_DEV_F_T10_PI: u32 = 1;

/** A target portal group: its tag and LUN table (LUN number -> ScsiLun, 0 when none). */
@unmanaged export class ScsiTpg {
  tag: u32;
  nluns: u32;
}

@inline function tpg_slot(tpg: ScsiTpg, id: u32): usize {
  return changetype<usize>(tpg) + offsetof<ScsiTpg>() + (<usize>id << 2);
}

/** The LUN with number id, or null. */
@inline export function tpg_lun(tpg: ScsiTpg, id: u32): ScsiLun | null {
  return changetype<ScsiLun | null>(<usize>atomic.load<u32>(tpg_slot(tpg, id)));
}

/** Publishes (or with 0 removes) LUN id. */
export function tpg_set_lun(tpg: ScsiTpg, id: u32, lun: usize): void {
  atomic.store<u32>(tpg_slot(tpg, id), <u32>lun);
}

export function tpg_struct_size(): usize {
  return offsetof<ScsiTpg>() + (<usize>VHOST_SCSI_MAX_LUN << 2);
}

/** A pending task management function (waiting for aborted requests to finish). */
@unmanaged export class PendingTmf {
  /** 0 = free, else 1 + the control queue head index. */
  head1: u32;
  subtype: u32;
  /** The LUN addressed (ABORT_TASK*, CLEAR_TASK_SET, LUN RESET) or the TPG (I_T NEXUS RESET). */
  lun: u32;
  tpg: u32;
  tag: u64;
  /** Where the one-byte response goes (shared-memory offset). */
  resp: u32;
  _pad: u32;
}

/** Per-device state in shared memory. Tables follow the struct (see *_OFF below). */
@unmanaged export class ScsiDevice {
  features: u32;
  /** sizeof the request header in use: CMD_REQ_SIZE or CMD_REQ_PI_SIZE. */
  req_size: u32;
  /** VHOST_SCSI_SET_EVENTS_MISSED / an event was dropped: report EVENTS_MISSED next. */
  events_missed: u32;
  /** Event mailbox: the control plane writes at tail, the event queue's worker reads at head. */
  evt_head: u32;
  evt_tail: u32;
  ntmf: u32;
  /** The I_T nexus this device is among those bound to its target (0..SCSI_MAX_NEXUS-1). */
  nexus: u32;
  /** The target's table of the devices bound to it, by nexus (caw.ts waits for their queues). */
  peers: u32;
  /** The initiator port's SAS address (what READ FULL STATUS reports for this nexus). */
  initiator: u64;
}

const TPGS_OFF: usize = offsetof<ScsiDevice>();
const CTX_TABLES_OFF: usize = TPGS_OFF + (<usize>VHOST_SCSI_MAX_TARGET << 2);
const EVT_OFF: usize = CTX_TABLES_OFF + (<usize>MAX_REQUEST_QUEUES << 2);
const TMF_OFF: usize = EVT_OFF + <usize>EVT_SLOTS * 16;
const GATES_OFF: usize = TMF_OFF + <usize>TMF_SLOTS * offsetof<PendingTmf>();
const DEVICE_SIZE: usize = GATES_OFF + (<usize>MAX_REQUEST_QUEUES << 2);

export function device_struct_size(): usize {
  return DEVICE_SIZE;
}

/** The TPG with tag t (the guest's target number), or null. */
@inline export function dev_tpg(dev: ScsiDevice, t: u32): ScsiTpg | null {
  return changetype<ScsiTpg | null>(<usize>atomic.load<u32>(changetype<usize>(dev) + TPGS_OFF + (<usize>t << 2)));
}

export function dev_set_tpg(dev: ScsiDevice, t: u32, tpg: usize): void {
  atomic.store<u32>(changetype<usize>(dev) + TPGS_OFF + (<usize>t << 2), <u32>tpg);
}

/** Address of the slot holding request queue q's request context table (IoCtxTable) pointer. */
@inline export function dev_ctx_table_slot(dev: ScsiDevice, q: u32): usize {
  return changetype<usize>(dev) + CTX_TABLES_OFF + (<usize>q << 2);
}

/** Address of event mailbox entry i (a struct virtio_scsi_event). */
@inline export function dev_event(dev: ScsiDevice, i: u32): usize {
  return changetype<usize>(dev) + EVT_OFF + (<usize>(i % EVT_SLOTS) << 4);
}

/**
 * Request queue q's in-place gate: odd while a drain of the queue may have in-place medium
 * accesses not yet done (caw.ts), even otherwise. Only the queue's worker changes it.
 */
@inline export function dev_gate(dev: ScsiDevice, q: u32): usize {
  return changetype<usize>(dev) + GATES_OFF + (<usize>(q % MAX_REQUEST_QUEUES) << 2);
}

/** Pending TMF slot i. */
@inline export function dev_tmf(dev: ScsiDevice, i: u32): PendingTmf {
  return changetype<PendingTmf>(changetype<usize>(dev) + TMF_OFF + <usize>i * offsetof<PendingTmf>());
}
