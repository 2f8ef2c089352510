// The data plane's exports: the entry points a vhost worker calls once per batch, and the
// accessors the control plane uses to set up the structs it allocated in shared memory.
import { UIO_MAXIOV, VHOST_MAX_MEM_REGIONS } from "./defs";
import { MemTable, MemRegion, memtable_region } from "./memtable";
import { chain_iov, instance_init, instance_area_size } from "./instance";
import { VirtQueue, vq_add_used, vq_flush_used, vq_enable_notify, vq_disable_notify } from "./queue";
import { vq_pop_chain } from "./chain";
import { vq_drain } from "./drain";
import { EchoDevice, NullDevice } from "./testdev";
import { iovec_array_size } from "./iovec";

export { instance_init, instance_area_size };

// ---- memory table ----

/** Bytes a memory table with room for VHOST_MAX_MEM_REGIONS regions occupies. */
export function memtable_size(): usize {
  return offsetof<MemTable>() + <usize>VHOST_MAX_MEM_REGIONS * offsetof<MemRegion>();
}

/** Sets region i of the table (the control plane validated it). */
export function memtable_set_region(mt: usize, i: u32, gpa: u64, size: u64, uaddr: u64): void {
  const r = memtable_region(changetype<MemTable>(mt), i);
  r.guest_phys_addr = gpa;
  r.memory_size = size;
  r.userspace_addr = uaddr;
}

/** Sets how many regions of the table are in use. */
export function memtable_set_count(mt: usize, n: u32): void {
  changetype<MemTable>(mt).nregions = n;
}

// ---- virtqueue state ----

/** Bytes one VirtQueue struct occupies. */
export function vq_size(): usize {
  return offsetof<VirtQueue>();
}

/** Configures a stopped queue: size, features (VQ_FEAT_*), ring offsets and memory table. */
export function vq_setup(p: usize, num: u32, features: u32, desc: u32, avail: u32, used: u32, mt: usize): void {
  const vq = changetype<VirtQueue>(p);
  vq.num = num;
  vq.features = features;
  vq.desc = desc;
  vq.avail = avail;
  vq.used = used;
  vq.memtable = changetype<MemTable>(mt);
}

/** Sets the device's per-queue state pointer (vq->private_data). */
export function vq_set_private(p: usize, data: usize): void {
  changetype<VirtQueue>(p).private_data = <u32>data;
}

/** Switches the memory table a running queue translates through. */
export function vq_set_memtable(p: usize, mt: usize): void {
  changetype<VirtQueue>(p).memtable = changetype<MemTable>(mt);
}

/** VHOST_SET_VRING_BASE: the next avail index to consume; the used index continues from it. */
export function vq_set_base(p: usize, base: u32): void {
  const vq = changetype<VirtQueue>(p);
  vq.last_avail_idx = base & 0xffff;
  vq.avail_idx = base & 0xffff;
  vq.last_used_idx = base & 0xffff;
  vq.signalled_used_valid = 0;
  vq.used_flags = 0;
}

/** Sets the used index independently (a restart where used and avail differ). */
export function vq_set_used_base(p: usize, idx: u32): void {
  changetype<VirtQueue>(p).last_used_idx = idx & 0xffff;
}

export function vq_last_avail_idx(p: usize): u32 { return changetype<VirtQueue>(p).last_avail_idx; }
export function vq_last_used_idx(p: usize): u32 { return changetype<VirtQueue>(p).last_used_idx; }
export function vq_error(p: usize): u32 { return changetype<VirtQueue>(p).error; }
export function vq_last_error(p: usize): u32 { return changetype<VirtQueue>(p).last_error; }
export function vq_error_count(p: usize): u32 { return changetype<VirtQueue>(p).error_count; }
export function vq_error_info(p: usize): u32 { return changetype<VirtQueue>(p).error_info; }
export function vq_inflight(p: usize): u32 { return changetype<VirtQueue>(p).inflight; }
export function vq_popped(p: usize): u64 { return changetype<VirtQueue>(p).popped; }
export function vq_completed(p: usize): u64 { return changetype<VirtQueue>(p).completed; }
export function vq_signals(p: usize): u64 { return changetype<VirtQueue>(p).signals; }

/** Clears the recorded error (the control plane read it). */
export function vq_clear_error(p: usize): void {
  changetype<VirtQueue>(p).error = 0;
}

// ---- low-level ring access (tests, the control plane's checks) ----

/** Bytes one iovec array of UIO_MAXIOV entries occupies. */
export function iov_array_size(): usize {
  return iovec_array_size(UIO_MAXIOV);
}

/** Pops one chain into this instance's chain iovec array; see vq_pop_chain(). */
export function vq_pop(p: usize): u32 {
  return vq_pop_chain(changetype<VirtQueue>(p), chain_iov());
}

/** Address of this instance's chain iovec array: { count u32, out u32, [base u32, len u32] * n }. */
export function chain_iov_ptr(): usize {
  return changetype<usize>(chain_iov());
}

export function vq_push_used(p: usize, head: u32, len: u32): void {
  vq_add_used(changetype<VirtQueue>(p), head, len);
}

/** Publishes used entries; returns DRAIN_USED | DRAIN_SIGNAL as vq_flush_used(). */
export function vq_flush(p: usize): u32 {
  return vq_flush_used(changetype<VirtQueue>(p));
}

export function vq_notify_enable(p: usize): bool {
  return vq_enable_notify(changetype<VirtQueue>(p));
}

export function vq_notify_disable(p: usize): void {
  vq_disable_notify(changetype<VirtQueue>(p));
}

// ---- batch entry points ----

/** Drains vq with the echo device; returns DRAIN_* bits. */
export function echo_drain(p: usize, weight: u32): u32 {
  return vq_drain<EchoDevice>(changetype<VirtQueue>(p), chain_iov(), changetype<EchoDevice>(0), weight);
}

/** Drains vq with a null device (struct at dev: { replyLen u32 }); returns DRAIN_* bits. */
export function null_drain(p: usize, dev: usize, weight: u32): u32 {
  return vq_drain<NullDevice>(changetype<VirtQueue>(p), chain_iov(), changetype<NullDevice>(dev), weight);
}

/** End of the module's static data: the control plane's allocations start above it. */
export function static_end(): usize {
  return __heap_base;
}

// ---- virtio-scsi device ----

import { ScsiDevice, ScsiTpg, device_struct_size, tpg_struct_size, dev_set_tpg, tpg_set_lun, dev_inflight_slot } from "./scsi/target";
import { ScsiLun, lun_struct_size, lun_ident, lun_ident_len, lun_raise_ua, lun_flags, lun_update_flags } from "./scsi/lun";
import { ScsiRequestQueue, scsi_complete } from "./scsi/request";
import { ScsiControlQueue, ctl_poll } from "./scsi/ctrl";
import { evt_drain, evt_post } from "./scsi/event";
import {
  InflightTable, inflight_table_size, inflight_slot, inflight_submitted,
} from "./scsi/inflight";
import { opcode_count, opcode_row } from "./scsi/opcodes";
import { CMD_REQ_PI_SIZE, CMD_REQ_SIZE } from "./scsi/constants";
import { SCSI_DEV_F_T10_PI } from "./scsi/target";

export function scsi_device_size(): usize { return device_struct_size(); }
export function scsi_tpg_size(): usize { return tpg_struct_size(); }
export function scsi_lun_size(): usize { return lun_struct_size(); }

/** Initializes a zeroed device struct for the negotiated features (SCSI_DEV_F_*). */
export function scsi_dev_set_features(dev: usize, features: u32): void {
  const d = changetype<ScsiDevice>(dev);
  d.features = features;
  d.req_size = (features & SCSI_DEV_F_T10_PI) != 0 ? CMD_REQ_PI_SIZE : CMD_REQ_SIZE;
}
/** Binds TPG tag t of the device to a TPG struct (0 unbinds). */
export function scsi_dev_set_tpg(dev: usize, t: u32, tpg: usize): void {
  dev_set_tpg(changetype<ScsiDevice>(dev), t, tpg);
}
/** Registers request queue q's in-flight table (0 unregisters). */
export function scsi_dev_set_inflight(dev: usize, q: u32, table: usize): void {
  atomic.store<u32>(dev_inflight_slot(changetype<ScsiDevice>(dev), q), <u32>table);
}
export function scsi_dev_events_missed(dev: usize): u32 {
  return atomic.load<u32>(dev + offsetof<ScsiDevice>("events_missed"));
}
export function scsi_dev_set_events_missed(dev: usize, v: u32): void {
  atomic.store<u32>(dev + offsetof<ScsiDevice>("events_missed"), v);
}
/** Posts a virtio_scsi_event; false when the mailbox was full (recorded as missed). */
export function scsi_post_event(dev: usize, event: u32, target: u32, lun: u32, reason: u32): bool {
  return evt_post(changetype<ScsiDevice>(dev), event, target, lun, reason);
}

export function scsi_tpg_init(tpg: usize, tag: u32): void {
  changetype<ScsiTpg>(tpg).tag = tag;
}
export function scsi_tpg_set_lun(tpg: usize, id: u32, lun: usize): void {
  tpg_set_lun(changetype<ScsiTpg>(tpg), id, lun);
}

/** Fills a zeroed LUN struct. nblocks is passed as f64 (exact below 2^53). */
export function scsi_lun_init(lun: usize, id: u32, backstore: u32, blockShift: u32, nblocks: f64, ram: usize, flags: u32, port: u32): void {
  const l = changetype<ScsiLun>(lun);
  l.id = id;
  l.backstore = backstore;
  l.block_shift = blockShift;
  l.nblocks = <u64>nblocks;
  l.ram = <u32>ram;
  l.port = port;
  atomic.store<u32>(lun + offsetof<ScsiLun>("flags"), flags);
}
export function scsi_lun_set_limits(lun: usize, maxXfer: u32, maxUnmap: u32, maxUnmapDescs: u32, maxWs: u32): void {
  const l = changetype<ScsiLun>(lun);
  l.max_xfer_blocks = maxXfer;
  l.max_unmap_blocks = maxUnmap;
  l.max_unmap_descs = maxUnmapDescs;
  l.max_ws_blocks = maxWs;
}
/** Moves the LUN to new backing (capacity in blocks, RAM offset); only while no worker serves it. */
export function scsi_lun_set_backing(lun: usize, nblocks: f64, ram: usize): void {
  changetype<ScsiLun>(lun).nblocks = <u64>nblocks;
  changetype<ScsiLun>(lun).ram = <u32>ram;
}
export function scsi_lun_flags(lun: usize): u32 {
  return lun_flags(changetype<ScsiLun>(lun));
}
export function scsi_lun_update_flags(lun: usize, set: u32, clear: u32): void {
  lun_update_flags(changetype<ScsiLun>(lun), set, clear);
}
export function scsi_lun_raise_ua(lun: usize, bits: u32): void {
  lun_raise_ua(changetype<ScsiLun>(lun), bits);
}
export function scsi_lun_ua(lun: usize): u32 {
  return atomic.load<u32>(lun + offsetof<ScsiLun>("ua"));
}
export function scsi_lun_inflight(lun: usize): u32 {
  return atomic.load<u32>(lun + offsetof<ScsiLun>("inflight"));
}
/** Address and size of identification field f (IDENT_*) of a LUN. */
export function scsi_lun_ident(lun: usize, f: u32): usize {
  return lun_ident(changetype<ScsiLun>(lun), f);
}
export function scsi_lun_ident_len(f: u32): u32 {
  return lun_ident_len(f);
}

/** Drains a request queue of the device at dev; returns DRAIN_* bits. `polling` keeps kicks off. */
export function scsi_req_drain(vq: usize, dev: usize, weight: u32, polling: bool): u32 {
  return vq_drain<ScsiRequestQueue>(changetype<VirtQueue>(vq), chain_iov(), changetype<ScsiRequestQueue>(dev), weight, polling);
}
/** Drains the control queue; returns DRAIN_* bits (pending TMFs finish in scsi_ctl_poll). */
export function scsi_ctl_drain(vq: usize, dev: usize, weight: u32): u32 {
  return vq_drain<ScsiControlQueue>(changetype<VirtQueue>(vq), chain_iov(), changetype<ScsiControlQueue>(dev), weight);
}
/** Answers pending TMFs that can be answered; CTL_TMF_PENDING set while some still wait. */
export function scsi_ctl_poll(vq: usize, dev: usize): u32 {
  return ctl_poll(changetype<ScsiDevice>(dev), changetype<VirtQueue>(vq));
}
/** Delivers posted events into the event queue; returns DRAIN_* bits. */
export function scsi_evt_drain(vq: usize, dev: usize): u32 {
  return evt_drain(changetype<ScsiDevice>(dev), changetype<VirtQueue>(vq));
}

// ---- asynchronous backstore requests ----

export function scsi_inflight_size(capacity: u32): usize { return inflight_table_size(capacity); }
export function scsi_inflight_init(table: usize, capacity: u32): void {
  memory.fill(table, 0, inflight_table_size(capacity));
  changetype<InflightTable>(table).capacity = capacity;
}
/** Slots submitted since the last scsi_inflight_clear_submitted(). */
export function scsi_inflight_nsubmit(table: usize): u32 { return changetype<InflightTable>(table).nsubmit; }
export function scsi_inflight_submitted(table: usize, k: u32): u32 { return inflight_submitted(changetype<InflightTable>(table), k); }
export function scsi_inflight_clear_submitted(table: usize): void { changetype<InflightTable>(table).nsubmit = 0; }
export function scsi_slot_op(table: usize, i: u32): u32 { return inflight_slot(changetype<InflightTable>(table), i).op; }
export function scsi_slot_lun(table: usize, i: u32): usize { return inflight_slot(changetype<InflightTable>(table), i).lun; }
export function scsi_slot_offset(table: usize, i: u32): f64 { return <f64>inflight_slot(changetype<InflightTable>(table), i).offset; }
export function scsi_slot_length(table: usize, i: u32): f64 { return <f64>inflight_slot(changetype<InflightTable>(table), i).length; }
/** The slot's data iovecs: { count u32, out u32, [base u32, len u32] * count }. */
export function scsi_slot_data(table: usize, i: u32): usize { return changetype<usize>(inflight_slot(changetype<InflightTable>(table), i).data()); }
/** Completes slot i of vq's in-flight table (IO_OK, IO_ERROR, IO_MISCOMPARE at offset info). */
export function scsi_complete_request(vq: usize, i: u32, result: u32, info: f64): void {
  scsi_complete(changetype<VirtQueue>(vq), i, result, <u64>info);
}

/** Supported command table, for tests: count and row i as (opcode << 16) | ((sa + 1) << 8) | cdb length. */
export function scsi_opcode_count(): u32 { return opcode_count(); }
export function scsi_opcode_row(i: u32): u32 { return opcode_row(i); }
