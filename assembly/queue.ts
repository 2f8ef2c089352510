// Split virtqueue state and the device side of the rings (VIRTIO 1.2, 2.7): reading avail
// entries, publishing used entries and the notification-suppression rules both ways.
// The chain walk is in chain.ts; nothing here knows what a request means.
import {
  RING_HEADER_SIZE, USED_ELEM_SIZE, VQ_ERR_AVAIL_IDX, VQ_ERR_HEAD_RANGE, VQ_FEAT_EVENT_IDX,
  VQ_FEAT_NOTIFY_ON_EMPTY, VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY, DRAIN_SIGNAL, DRAIN_USED, DRAIN_LOGGED,
} from "./defs";
import { MemTable } from "./memtable";
import { copies_flush } from "./copies";
import { IoVecArray } from "./iovec";
import { log_gpa, log_written, mark_deferred, marks_flush } from "./dirtylog";

/** Returned instead of a head index when the queue hit an error. */
export const VQ_NO_HEAD: u32 = 0xffffffff;

/**
 * One vring's device-side state, in shared memory at an offset the control plane allocates
 * (the analogue of struct vhost_virtqueue). Ring addresses are offsets in the shared memory
 * that the control plane checked against the memory table for the whole ring size.
 */
@unmanaged export class VirtQueue {
  /** Queue size, a power of two. */
  num: u32;
  /** VQ_FEAT_* bits from the negotiated features. */
  features: u32;
  /** Descriptor table, avail ring, used ring (offsets in the shared memory). */
  desc: u32;
  avail: u32;
  used: u32;
  /** The memory table descriptor addresses are translated through. */
  memtable: MemTable;
  /** Next avail entry to consume (u16 arithmetic). */
  last_avail_idx: u32;
  /** Last avail->idx value read from the ring. */
  avail_idx: u32;
  /** Next used entry to fill (u16 arithmetic); published to used->idx by vq_flush_used. */
  last_used_idx: u32;
  /** used->idx when the driver was last signalled (event-idx bookkeeping). */
  signalled_used: u32;
  signalled_used_valid: u32;
  /** Our copy of used->flags (VRING_USED_F_NO_NOTIFY while a drain runs). */
  used_flags: u32;
  /**
   * The queue's current error (VQ_ERR_*, cleared once a well-formed chain is served again), the
   * last error ever recorded, how many so far, and the index involved in the last one.
   */
  error: u32;
  last_error: u32;
  error_count: u32;
  error_info: u32;
  /** Requests popped and not yet completed (an asynchronous backstore holds them). */
  inflight: u32;
  /** The device's per-queue state (the kernel's vq->private_data), 0 when none. */
  private_data: u32;
  /** Chains popped, used entries added, signals requested: counters for the control plane. */
  popped: u64;
  completed: u64;
  signals: u64;
  /** The dirty log while the queue logs (dirtylog.ts): the bitmap's offset (0: not logging) and bytes. */
  log_base: u32;
  log_bytes: u32;
  /** VHOST_VRING_F_LOG: the used ring's guest-physical address, logged when log_used is 1. */
  log_used_gpa: u64;
  log_used: u32;
  /** 1 when a log eventfd is bound (VHOST_SET_LOG_FD): a logged used ring is then reported (DRAIN_LOGGED). */
  log_ctx: u32;
}

/** Records a queue error, the analogue of vq_err(); returns VQ_NO_HEAD. */
export function vq_err(vq: VirtQueue, code: u32, info: u32): u32 {
  vq.error = code;
  vq.last_error = code;
  vq.error_info = info;
  vq.error_count++;
  return VQ_NO_HEAD;
}

/** Address of avail->ring[0]. The used_event field follows ring[num] (VIRTIO 1.2, 2.7.10). */
@inline function avail_ring(vq: VirtQueue): usize {
  return <usize>vq.avail + RING_HEADER_SIZE;
}

/** Address of used->ring[0]. The avail_event field follows ring[num] (VIRTIO 1.2, 2.7.10). */
@inline function used_ring(vq: VirtQueue): usize {
  return <usize>vq.used + RING_HEADER_SIZE;
}

/**
 * The head index of the next available chain, vq.num when the ring is empty, or VQ_NO_HEAD
 * when the driver moved avail->idx more than a ring's worth or named a head out of range.
 * Does not consume the entry: vq_consume_avail() does, once the chain is good.
 */
export function vq_next_head(vq: VirtQueue): u32 {
  const num = vq.num;
  const last = vq.last_avail_idx;
  if (last == vq.avail_idx) {
    // VIRTIO 1.2, 2.7.13.3: read idx before the ring entries it covers (the atomic load orders them).
    const idx = <u32>atomic.load<u16>(<usize>vq.avail, 2);
    if (((idx - last) & 0xffff) > num) return vq_err(vq, VQ_ERR_AVAIL_IDX, idx);
    vq.avail_idx = idx;
    if (idx == last) return num;
  }
  const head = <u32>load<u16>(avail_ring(vq) + (<usize>(last & (num - 1)) << 1));
  if (head >= num) return vq_err(vq, VQ_ERR_HEAD_RANGE, head);
  return head;
}

/** Consumes the avail entry vq_next_head() returned: a good chain, so the queue's error is over. */
@inline export function vq_consume_avail(vq: VirtQueue): void {
  vq.last_avail_idx = (vq.last_avail_idx + 1) & 0xffff;
  vq.popped++;
  vq.error = 0;
}

/**
 * While the queue logs: marks the pages of the chain's writable part (all of it: the device may
 * have written anywhere in it, and a page marked twice costs nothing), once the writes deferred
 * before it ran (copies.ts) and before the used entry is published: a sync that cleared a mark
 * between the mark and a later write would lose that write.
 */
@inline export function vq_log_write(vq: VirtQueue, chain: IoVecArray): void {
  const log = <usize>vq.log_base;
  if (log == 0) return;
  for (let i = chain.out; i < chain.count; i++) mark_deferred(log, vq.log_bytes, vq.memtable, <usize>chain.base(i), <usize>chain.len(i));
}

/** While the queue logs: marks the pages of shared-memory range [at, at + len) the device wrote. */
export function vq_log_range(vq: VirtQueue, at: usize, len: usize): void {
  if (vq.log_base != 0) log_written(<usize>vq.log_base, vq.log_bytes, vq.memtable, at, len);
}

/** While the queue logs its used ring (VHOST_VRING_F_LOG): marks the used ring's pages (flags, elements, idx, avail_event). */
@inline function vq_log_used(vq: VirtQueue): bool {
  if (vq.log_base == 0 || vq.log_used == 0) return false;
  log_gpa(<usize>vq.log_base, vq.log_bytes, vq.log_used_gpa, 6 + <u64>vq.num * USED_ELEM_SIZE);
  return true;
}

/** Puts a used element for chain `head` with `len` bytes written; vq_flush_used() publishes it. */
export function vq_add_used(vq: VirtQueue, head: u32, len: u32): void {
  const elem = used_ring(vq) + (<usize>(vq.last_used_idx & (vq.num - 1)) * USED_ELEM_SIZE);
  store<u32>(elem, head);
  store<u32>(elem, len, 4);
  vq.last_used_idx = (vq.last_used_idx + 1) & 0xffff;
  vq.completed++;
}

/**
 * Stores used->idx (release ordering, VIRTIO 1.2, 2.7.8.2) without deciding on an interrupt.
 * Returns DRAIN_USED, plus DRAIN_LOGGED when the used ring was logged and a log eventfd is bound:
 * it is then signalled, as the kernel's vhost_add_used_n() signals log_ctx after log_used().
 */
@inline function vq_publish_used(vq: VirtQueue): u32 {
  copies_flush(); // the data of the entries published is in their buffers first
  marks_flush(); // and its pages marked, while logging
  atomic.store<u16>(<usize>vq.used, <u16>vq.last_used_idx, 2);
  return vq_log_used(vq) && vq.log_ctx != 0 ? DRAIN_USED | DRAIN_LOGGED : DRAIN_USED; // the elements and the index, after they are written
}

/**
 * Publishes the used elements added so far (used->idx store with release ordering, VIRTIO 1.2,
 * 2.7.8.2) and decides whether the driver wants an interrupt. Returns DRAIN_USED, plus
 * DRAIN_SIGNAL when the call eventfd should be signalled.
 */
export function vq_flush_used(vq: VirtQueue): u32 {
  const published = vq_publish_used(vq);
  if (!vq_needs_notification(vq)) return published;
  vq.signals++;
  return published | DRAIN_SIGNAL;
}

/**
 * Publishes the used elements added so far in the middle of a batch. With
 * VIRTIO_RING_F_EVENT_IDX it also decides on an interrupt, as vq_flush_used() (used->idx passing
 * used_event means the driver waits for exactly these entries, VIRTIO 1.2, 2.7.10); without it
 * the interrupt waits for the end of the batch, as the kernel's vhost signals once per batch.
 */
export function vq_publish_early(vq: VirtQueue): u32 {
  if ((vq.features & VQ_FEAT_EVENT_IDX) != 0) return vq_flush_used(vq);
  return vq_publish_used(vq);
}

/** vring_need_event(): has new_idx moved past event_idx since old? (VIRTIO 1.2, 2.7.10) */
@inline export function vring_need_event(event_idx: u32, new_idx: u32, old: u32): bool {
  return ((new_idx - event_idx - 1) & 0xffff) < ((new_idx - old) & 0xffff);
}

/**
 * Whether the driver wants an interrupt for the used entries published so far: the
 * VRING_AVAIL_F_NO_INTERRUPT flag, or with VIRTIO_RING_F_EVENT_IDX the used_event rule
 * (VIRTIO 1.2, 2.7.10), as the kernel's vhost_notify().
 */
export function vq_needs_notification(vq: VirtQueue): bool {
  const features = vq.features;
  // VIRTIO 1.2, 6.3 (VIRTIO_F_NOTIFY_ON_EMPTY): interrupt when the ring has run empty.
  if ((features & VQ_FEAT_NOTIFY_ON_EMPTY) != 0 && vq.avail_idx == vq.last_avail_idx) return true;
  if ((features & VQ_FEAT_EVENT_IDX) == 0) {
    return (atomic.load<u16>(<usize>vq.avail) & VRING_AVAIL_F_NO_INTERRUPT) == 0;
  }
  const old = vq.signalled_used;
  const wasValid = vq.signalled_used_valid;
  const now = vq.last_used_idx;
  vq.signalled_used = now;
  vq.signalled_used_valid = 1;
  if (wasValid == 0) return true;
  const usedEvent = <u32>atomic.load<u16>(avail_ring(vq) + (<usize>vq.num << 1));
  return vring_need_event(usedEvent, now, old);
}

/** Asks the driver not to kick while the device is draining (VIRTIO 1.2, 2.7.10). */
export function vq_disable_notify(vq: VirtQueue): void {
  if ((vq.used_flags & VRING_USED_F_NO_NOTIFY) != 0) return;
  vq.used_flags |= VRING_USED_F_NO_NOTIFY;
  if ((vq.features & VQ_FEAT_EVENT_IDX) == 0) {
    atomic.store<u16>(<usize>vq.used, <u16>vq.used_flags);
    vq_log_used(vq);
  }
}

/**
 * Asks the driver to kick again: clears VRING_USED_F_NO_NOTIFY, or with event-idx sets
 * avail_event to the last avail->idx seen. Returns true when new entries arrived meanwhile,
 * in which case the caller must look at the ring again (the kernel's vhost_enable_notify()).
 */
export function vq_enable_notify(vq: VirtQueue): bool {
  if ((vq.used_flags & VRING_USED_F_NO_NOTIFY) == 0) return false;
  vq.used_flags &= ~VRING_USED_F_NO_NOTIFY;
  if ((vq.features & VQ_FEAT_EVENT_IDX) == 0) {
    atomic.store<u16>(<usize>vq.used, <u16>vq.used_flags);
  } else {
    atomic.store<u16>(used_ring(vq) + <usize>vq.num * USED_ELEM_SIZE, <u16>vq.avail_idx);
  }
  vq_log_used(vq);
  return <u32>atomic.load<u16>(<usize>vq.avail, 2) != vq.avail_idx;
}
