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
