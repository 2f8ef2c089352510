// The data plane's exports: the entry points a vhost worker calls once per batch, and the
// accessors the control plane uses to set up the structs it allocated in shared memory.
import { VHOST_MAX_MEM_REGIONS } from "./defs";
import { MemTable, MemRegion, memtable_region } from "./memtable";
import { chain_iov, instance_init, instance_area_size } from "./instance";
import { VirtQueue, vq_flush_used } from "./queue";
import { vq_drain, vq_serve, vq_serve_completions } from "./drain";
import { IOVEC_SIZE, IoVecArray } from "./iovec";

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

/**
 * The dirty log of a queue (VHOST_F_LOG_ALL): the bitmap's offset in the shared memory and its
 * bytes (base 0: not logging), the used ring's guest-physical address when it is logged
 * (VHOST_VRING_F_LOG; usedGpa < 0: not logged), and whether a log eventfd is bound (signal 1:
 * a logged used ring is reported, DRAIN_LOGGED). Nothing is validated here: the control plane did.
 */
export function vq_set_log(p: usize, base: usize, bytes: u32, usedGpa: f64, signal: u32): void {
  const vq = changetype<VirtQueue>(p);
  vq.log_bytes = bytes;
  vq.log_ctx = signal;
  vq.log_used = usedGpa >= 0 ? 1 : 0;
  vq.log_used_gpa = usedGpa >= 0 ? <u64>usedGpa : 0;
  atomic.store<u32>(p + offsetof<VirtQueue>("log_base"), <u32>base);
}

/** Clears the recorded error (the control plane read it). */
export function vq_clear_error(p: usize): void {
  changetype<VirtQueue>(p).error = 0;
}

/** End of the module's static data: the control plane's allocations start above it. */
export function static_end(): usize {
  return __heap_base;
}

// ---- virtio-scsi device ----

import { ScsiDevice, ScsiTpg, device_struct_size, tpg_struct_size, dev_set_tpg, tpg_set_lun, dev_ctx_table_slot, dev_event } from "./scsi/target";
import { ScsiLun, lun_struct_size, lun_ident, lun_ident_len, lun_raise_ua, lun_raise_ua_all, lun_flags, lun_update_flags, lun_clear_ua, lun_pr, lun_ua_pending } from "./scsi/lun";
import { spc2_drop } from "./scsi/pr";
import { gate_enter, gate_leave } from "./scsi/caw";
import { PR_KEYS_OFF, PrState } from "./scsi/pr-state";
import { ScsiRequestQueue } from "./scsi/request";
import { ScsiControlQueue, ctl_poll } from "./scsi/ctrl";
import { evt_drain, evt_post } from "./scsi/event";
import {
  BOUNCE_SIZE, CQE_SIZE, CTX_DEVICE_BYTES, CTX_IOV, IoCompletionQueue, IoCtx, IoCtxTable, IoSubmitQueue, cq_init, cq_size,
  ctx_table_init, ctx_table_size, sq_init, sq_size,
} from "./ioring";
import { REMOTE_MAX_RANGES, ScsiCompletions } from "./scsi/remote";
import { CMD_REQ_PI_SIZE, CMD_REQ_SIZE, VIRTIO_SCSI_VQ_REQUEST } from "./scsi/constants";
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
/** Registers request queue q's request context table, where TMFs look for requests (0 unregisters). */
export function scsi_dev_set_ctx_table(dev: usize, q: u32, table: usize): void {
  atomic.store<u32>(dev_ctx_table_slot(changetype<ScsiDevice>(dev), q), <u32>table);
}
/**
 * Sets the I_T nexus the device is on its target, its initiator port's SAS address, and the
 * target's table of bound devices (SCSI_MAX_NEXUS u32 slots, one per nexus).
 */
export function scsi_dev_set_nexus(dev: usize, n: u32, initiator: u64, peers: usize): void {
  const d = changetype<ScsiDevice>(dev);
  d.nexus = n;
  d.initiator = initiator;
  d.peers = <u32>peers;
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

/** The k-th event posted and not delivered yet (a virtio_scsi_event's address), or 0 past the last. */
export function scsi_dev_pending_event(dev: usize, k: u32): usize {
  const d = changetype<ScsiDevice>(dev);
  const head = atomic.load<u32>(dev + offsetof<ScsiDevice>("evt_head"));
  if (k >= atomic.load<u32>(dev + offsetof<ScsiDevice>("evt_tail")) - head) return 0;
  return dev_event(d, head + k);
}

export function scsi_tpg_init(tpg: usize, tag: u32): void {
  changetype<ScsiTpg>(tpg).tag = tag;
}
export function scsi_tpg_set_lun(tpg: usize, id: u32, lun: usize): void {
  tpg_set_lun(changetype<ScsiTpg>(tpg), id, lun);
}

/**
 * Fills a zeroed LUN struct. nblocks is passed as f64 (exact below 2^53). `at` is where the
 * blocks are for BS_RAM, the backstore's submission queue for BS_QUEUED.
 */
export function scsi_lun_init(lun: usize, id: u32, backstore: u32, blockShift: u32, nblocks: f64, at: usize, flags: u32, port: u32): void {
  const l = changetype<ScsiLun>(lun);
  l.id = id;
  l.backstore = backstore;
  l.block_shift = blockShift;
  l.nblocks = <u64>nblocks;
  if (backstore == 0) l.ram = <u32>at;
  else l.sq = <u32>at;
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
/** Raises unit attention bits for every I_T nexus (a condition of the logical unit). */
export function scsi_lun_raise_ua(lun: usize, bits: u32): void {
  lun_raise_ua_all(changetype<ScsiLun>(lun), bits);
}
/** Sets I_T nexus n's pending unit attentions to exactly `bits` (a restored nexus's are the saved ones). */
export function scsi_lun_set_ua(lun: usize, n: u32, bits: u32): void {
  lun_clear_ua(changetype<ScsiLun>(lun), n, ~bits);
  lun_raise_ua(changetype<ScsiLun>(lun), n, bits);
}
export function scsi_lun_ua(lun: usize, n: u32): u32 {
  return lun_ua_pending(changetype<ScsiLun>(lun), n);
}
/** The LUN's reservation state (PrState; read and written by the control plane while no worker serves the LUN). */
export function scsi_lun_pr(lun: usize): usize {
  return changetype<usize>(lun_pr(changetype<ScsiLun>(lun)));
}
/** I_T nexus n is gone (its device unbound): its SPC-2 reservation of the LUN ends. */
export function scsi_lun_nexus_lost(lun: usize, n: u32): void {
  spc2_drop(changetype<ScsiLun>(lun), n);
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

/**
 * Serves request queue vq (vring `index` of the device at dev): answers the requests whose
 * backstore completed them, then drains new ones; returns DRAIN_* bits. `polling` keeps kicks
 * off. The queue's gate is odd meanwhile (caw.ts).
 */
export function scsi_req_drain(vq: usize, dev: usize, index: u32, weight: u32, polling: bool): u32 {
  gate_enter(changetype<ScsiDevice>(dev), index - VIRTIO_SCSI_VQ_REQUEST);
  const flags = vq_serve<ScsiRequestQueue, ScsiCompletions>(changetype<VirtQueue>(vq), changetype<ScsiRequestQueue>(dev), weight, polling);
  gate_leave();
  return flags;
}
/** Answers the completed requests of a request queue no longer drained (it is being detached). */
export function scsi_req_reap(vq: usize): u32 {
  return vq_serve_completions<ScsiCompletions>(changetype<VirtQueue>(vq));
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

// ---- backstores served elsewhere (ioring.ts): the layout src/backstore/ring.ts uses ----

export const IOCTX_STATE: u32 = offsetof<IoCtx>("state");
export const IOCTX_INDEX: u32 = offsetof<IoCtx>("index");
export const IOCTX_CQ: u32 = offsetof<IoCtx>("cq");
export const IOCTX_OP: u32 = offsetof<IoCtx>("op");
export const IOCTX_FLAGS: u32 = offsetof<IoCtx>("flags");
export const IOCTX_OFFSET: u32 = offsetof<IoCtx>("offset");
export const IOCTX_LENGTH: u32 = offsetof<IoCtx>("length");
export const IOCTX_EXTENTS: u32 = <u32>offsetof<IoCtx>() + <u32>CTX_DEVICE_BYTES + <u32>offsetof<IoVecArray>() + CTX_IOV * <u32>IOVEC_SIZE;
export const SQ_MASK: u32 = offsetof<IoSubmitQueue>("mask");
export const SQ_DEQUEUE: u32 = offsetof<IoSubmitQueue>("dequeue");
export const SQ_WAKE: u32 = offsetof<IoSubmitQueue>("wake");
export const SQ_SLEEPERS: u32 = offsetof<IoSubmitQueue>("sleepers");
export const SQ_EXCLUSIVE: u32 = offsetof<IoSubmitQueue>("exclusive");
export const SQ_ACTIVE: u32 = offsetof<IoSubmitQueue>("active");
export const SQ_CELLS: u32 = offsetof<IoSubmitQueue>();
export const CQ_MASK: u32 = offsetof<IoCompletionQueue>("mask");
export const CQ_TAIL: u32 = offsetof<IoCompletionQueue>("tail");
export const CQ_DOORBELL: u32 = offsetof<IoCompletionQueue>("doorbell");
export const CQ_FINISHED: u32 = offsetof<IoCompletionQueue>("finished");
export const CQ_CELLS: u32 = offsetof<IoCompletionQueue>();
export const CQ_CELL_SIZE: u32 = <u32>CQE_SIZE;
/** Where the entries of an iovec array ({ count u32, out u32, [base u32, len u32] * count }) start. */
export const IOVEC_ARRAY_ENTRIES: u32 = offsetof<IoVecArray>();
/** Where the control plane finds a LUN's reservation state (PrState) when it saves or restores it. */
export const PR_GENERATION: u32 = offsetof<PrState>("generation");
export const PR_REGISTERED: u32 = offsetof<PrState>("registered");
export const PR_HOLDER: u32 = offsetof<PrState>("holder");
export const PR_TYPE: u32 = offsetof<PrState>("type");
export const PR_SPC2: u32 = offsetof<PrState>("spc2");
/** Each I_T nexus's reservation key (u64) from here, then each one's initiator SAS address (u64). */
export const PR_KEYS: u32 = <u32>PR_KEYS_OFF;

@inline function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}
/** Cells of the completion queue of a table of `capacity` contexts: the next power of two. */
@inline function req_cq_entries(capacity: u32): u32 {
  return capacity <= 1 ? 1 : <u32>1 << (32 - clz(capacity - 1));
}
/**
 * Bytes of a request queue's contexts area: the table of `capacity` contexts, its completion
 * queue and a bounce buffer, each 16-aligned (io_area_init lays them out).
 */
export function io_area_size(capacity: u32): usize {
  return align16(ctx_table_size(capacity)) + align16(cq_size(req_cq_entries(capacity))) + BOUNCE_SIZE;
}
/**
 * Sets up a request queue's contexts area at `area` (io_area_size bytes, 16-aligned): the
 * contexts numbered and free, an empty completion queue, the bounce buffer. Returns the
 * completion queue's address.
 */
export function io_area_init(area: usize, capacity: u32): usize {
  const cq = area + align16(ctx_table_size(capacity));
  const entries = req_cq_entries(capacity);
  memory.fill(area, 0, ctx_table_size(capacity));
  cq_init(changetype<IoCompletionQueue>(cq), entries);
  ctx_table_init(changetype<IoCtxTable>(area), capacity, <u32>cq, <u32>(cq + align16(cq_size(entries))));
  return cq;
}
/** Names the worker doorbell a completion queue rings (the worker serving its request queue). */
export function io_cq_set_doorbell(cq: usize, doorbell: u32): void {
  atomic.store<u32>(cq + offsetof<IoCompletionQueue>("doorbell"), doorbell);
}
/** Requests of a completion queue's table handed to backstores so far, and completions posted so far. */
export function io_cq_submitted(cq: usize): u32 {
  return atomic.load<u32>(cq + offsetof<IoCompletionQueue>("submitted"));
}
export function io_cq_finished(cq: usize): u32 {
  return atomic.load<u32>(cq + offsetof<IoCompletionQueue>("finished"));
}
/** Bytes of a submission queue of `entries` cells (a power of two), and its set-up. */
export function io_sq_size(entries: u32): usize { return sq_size(entries); }
export function io_sq_init(sq: usize, entries: u32): void { sq_init(changetype<IoSubmitQueue>(sq), entries); }
/** The most UNMAP ranges a LUN served elsewhere can take in one command. */
export function scsi_remote_max_ranges(): u32 { return REMOTE_MAX_RANGES; }

// ---- virtio-blk device ----

import { BlkDevice, blk_device_struct_size, blk_id } from "./blk/device";
import { BS_RAM } from "./ioring";
import { BlkCompletions, BlkRequestQueue } from "./blk/request";

export function blk_device_size(): usize { return blk_device_struct_size(); }

/**
 * Fills a zeroed virtio-blk device struct: backing kind (BS_*) and where (the blocks for BS_RAM,
 * the submission queue for BS_QUEUED), capacity in 512-byte sectors (f64, exact below 2^53),
 * logical block size, BLK_F_* flags and the DISCARD / WRITE_ZEROES segment limits in sectors.
 */
export function blk_dev_init(dev: usize, backing: u32, at: usize, sectors: f64, blockShift: u32, flags: u32, maxDiscard: u32, maxWriteZeroes: u32): void {
  const d = changetype<BlkDevice>(dev);
  d.backing = backing;
  if (backing == BS_RAM) d.ram = <u32>at;
  else d.sq = <u32>at;
  d.capacity = <u64>sectors;
  d.block_shift = blockShift;
  d.max_discard_sectors = maxDiscard;
  d.max_write_zeroes_sectors = maxWriteZeroes;
  atomic.store<u32>(dev + offsetof<BlkDevice>("flags"), flags);
}
/** Sets and clears BLK_F_* bits of a running device (the driver's writeback toggle, read-only). */
export function blk_dev_update_flags(dev: usize, set: u32, clear: u32): void {
  const at = dev + offsetof<BlkDevice>("flags");
  if (clear != 0) atomic.and<u32>(at, ~clear);
  if (set != 0) atomic.or<u32>(at, set);
}
export function blk_dev_flags(dev: usize): u32 {
  return atomic.load<u32>(dev + offsetof<BlkDevice>("flags"));
}
/** Where the device's GET_ID string lies (VIRTIO_BLK_ID_BYTES). */
export function blk_dev_id(dev: usize): usize {
  return blk_id(changetype<BlkDevice>(dev));
}
export function blk_dev_inflight(dev: usize): u32 {
  return atomic.load<u32>(dev + offsetof<BlkDevice>("inflight"));
}
/** Serves a virtio-blk request queue: answers completed requests, drains new ones; DRAIN_* bits. */
export function blk_req_drain(vq: usize, dev: usize, weight: u32, polling: bool): u32 {
  return vq_serve<BlkRequestQueue, BlkCompletions>(changetype<VirtQueue>(vq), changetype<BlkRequestQueue>(dev), weight, polling);
}
/** Answers the completed requests of a virtio-blk request queue no longer drained. */
export function blk_req_reap(vq: usize): u32 {
  return vq_serve_completions<BlkCompletions>(changetype<VirtQueue>(vq));
}
