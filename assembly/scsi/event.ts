// The event queue (VIRTIO 1.2, 5.6.6.3): the control plane posts events (hotplug, capacity
// change) to the device's mailbox; the worker owning the event queue delivers each into a
// buffer the driver placed there. With no buffer the event is lost and the next one delivered
// carries VIRTIO_SCSI_T_EVENTS_MISSED, as the kernel's vhost_scsi_send_evt() does; a driver
// that adds buffers after a loss receives VIRTIO_SCSI_T_NO_EVENT | EVENTS_MISSED.
import { VirtQueue, vq_add_used, vq_disable_notify, vq_enable_notify, vq_err, vq_flush_used, vq_log_write, VQ_NO_HEAD } from "../queue";
import { vq_pop_chain } from "../chain";
import { VQ_ERR_BAD_REQUEST, DRAIN_ERROR } from "../defs";
import { chain_iov, reply_cursor, scratch } from "../instance";
import { ScsiDevice, EVT_SLOTS, dev_event } from "./target";
import { copy_bytes } from "../bytes";
import * as K from "./constants";

/** Posts an event to the mailbox (control plane side); false when it was full (counted as missed). */
export function evt_post(dev: ScsiDevice, event: u32, target: u32, lun: u32, reason: u32): bool {
  const tail = atomic.load<u32>(changetype<usize>(dev) + offsetof<ScsiDevice>("evt_tail"));
  const head = atomic.load<u32>(changetype<usize>(dev) + offsetof<ScsiDevice>("evt_head"));
  if (tail - head >= EVT_SLOTS) {
    atomic.store<u32>(changetype<usize>(dev) + offsetof<ScsiDevice>("events_missed"), 1);
    return false;
  }
  const e = dev_event(dev, tail);
  store<u32>(e, event);
  store<u64>(e, 0, 4);
  store<u8>(e, 1, 4);
  store<u8>(e, <u8>target, 5);
  // LUN as Linux encodes it: flat space addressing (0x40) above 255.
  store<u8>(e, <u8>(lun < 256 ? 0 : 0x40 | (lun >> 8)), 6);
  store<u8>(e, <u8>lun, 7);
  store<u32>(e, reason, 12);
  atomic.store<u32>(changetype<usize>(dev) + offsetof<ScsiDevice>("evt_tail"), tail + 1);
  return true;
}

/** Delivers pending events into the driver's event buffers; returns DRAIN_* bits. */
export function evt_drain(dev: ScsiDevice, vq: VirtQueue): u32 {
  const iov = chain_iov();
  const headAt = changetype<usize>(dev) + offsetof<ScsiDevice>("evt_head");
  const tailAt = changetype<usize>(dev) + offsetof<ScsiDevice>("evt_tail");
  const missedAt = changetype<usize>(dev) + offsetof<ScsiDevice>("events_missed");
  let flags: u32 = 0;
  let added = false;
  vq_disable_notify(vq);
  while (true) {
    const h = atomic.load<u32>(headAt);
    const pending = h != atomic.load<u32>(tailAt);
    if (!pending && atomic.load<u32>(missedAt) == 0) break;
    const head = vq_pop_chain(vq, iov);
    // An empty ring: ask for a kick when buffers come (with event-idx this sets avail_event),
    // and look once more in case they came meanwhile.
    if (head == vq.num && vq_enable_notify(vq)) {
      vq_disable_notify(vq);
      continue;
    }
    if (head == VQ_NO_HEAD || head == vq.num) {
      // No buffer (or a broken ring): the pending events are lost.
      if (pending) {
        atomic.store<u32>(headAt, atomic.load<u32>(tailAt));
        atomic.store<u32>(missedAt, 1);
      }
      if (head == VQ_NO_HEAD) flags |= DRAIN_ERROR;
      break;
    }
    const ev = scratch();
    if (pending) {
      copy_bytes(ev, dev_event(dev, h), K.EVENT_SIZE);
      atomic.store<u32>(headAt, h + 1);
    } else {
      memory.fill(ev, 0, K.EVENT_SIZE);
      store<u32>(ev, K.VIRTIO_SCSI_T_NO_EVENT);
    }
    if (iov.bytes(iov.out, iov.count) < <u64>K.EVENT_SIZE) {
      vq_err(vq, VQ_ERR_BAD_REQUEST, head);
      atomic.store<u32>(missedAt, 1);
      vq_add_used(vq, head, 0);
      added = true;
      continue;
    }
    if (atomic.xchg<u32>(missedAt, 0) != 0) store<u32>(ev, load<u32>(ev) | K.VIRTIO_SCSI_T_EVENTS_MISSED);
    const wr = reply_cursor();
    wr.init(iov, iov.out, iov.count);
    const n = wr.write(ev, K.EVENT_SIZE);
    vq_log_write(vq, iov);
    vq_add_used(vq, head, n);
    added = true;
  }
  // Leave kicks on: a driver adding buffers after a loss must reach us (EVENTS_MISSED).
  vq_enable_notify(vq);
  if (added) flags |= vq_flush_used(vq);
  return flags;
}
