// The control queue (VIRTIO 1.2, 5.6.6.2): task management functions and asynchronous
// notification query/subscribe. A TMF that aborts requests held by a backstore served elsewhere
// is answered only once those requests have completed (with VIRTIO_SCSI_S_ABORTED): it waits
// in the device's pending-TMF table and ctl_poll() finishes it.
import { IoVecArray } from "../iovec";
import { reply_cursor, request_cursor, scratch } from "../instance";
import { VirtQueue, vq_add_used, vq_err, vq_flush_used, vq_log_range } from "../queue";
import { CTL_TMF_PENDING, VQ_ERR_BAD_REQUEST } from "../defs";
import { REQUEST_PENDING } from "../drain";
import { PendingTmf, ScsiDevice, ScsiTpg, TMF_SLOTS, VHOST_SCSI_MAX_LUN, dev_tmf, dev_tpg, tpg_lun } from "./target";
import { LUN_F_PREVENT, LUN_F_STOPPED, ScsiLun, UA_LUN_RESET, UA_NEXUS_LOSS, lun_raise_ua, lun_raise_ua_all, lun_update_flags } from "./lun";
import { spc2_drop, spc2_reset } from "./pr";
import { ALL_NEXUSES, SCAN_ABORT, SCAN_COUNT, SCAN_WAITING, scan, scan_nexuses } from "./tasks";
import { lun_number } from "./request";
import * as K from "./constants";

/**
 * SAM-5 7.6: a logical unit reset clears the unit's prevent and stopped state and its SPC-2
 * reservation, and every I_T nexus gets a unit attention; persistent reservations stay.
 */
function reset_lun(lun: ScsiLun): void {
  lun_update_flags(lun, 0, LUN_F_PREVENT | LUN_F_STOPPED);
  spc2_reset(lun);
  lun_raise_ua_all(lun, UA_LUN_RESET);
}

/** SAM-5 6.3.4: I_T nexus loss ends what the nexus held (its SPC-2 reservation) and tells it alone. */
function lose_nexus(lun: ScsiLun, n: u32): void {
  lun_update_flags(lun, 0, LUN_F_PREVENT | LUN_F_STOPPED);
  spc2_drop(lun, n);
  lun_raise_ua(lun, n, UA_NEXUS_LOSS);
}

/** Holds a TMF until its aborted requests complete; false when no slot is free. */
function pend_tmf(dev: ScsiDevice, head: u32, subtype: u32, lun: usize, tpg: ScsiTpg, tag: u64, resp: u32): bool {
  for (let i: u32 = 0; i < TMF_SLOTS; i++) {
    const t = dev_tmf(dev, i);
    if (t.head1 != 0) continue;
    t.subtype = subtype;
    t.lun = <u32>lun;
    t.tpg = changetype<u32>(tpg);
    t.tag = tag;
    t.resp = resp;
    t.head1 = head + 1;
    dev.ntmf++;
    return true;
  }
  return false;
}

/** The LUN whose commands a TMF acts on: 0 (every LUN of the TPG) for I_T NEXUS RESET, else the addressed one. */
function tmf_lun(subtype: u32, lun: ScsiLun | null): usize {
  return subtype == K.VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET ? 0 : changetype<usize>(lun);
}

/**
 * The commands a TMF acts on, found with scan mode `mode`: every nexus's on the unit for a
 * LOGICAL UNIT RESET (SAM-5 7.6), the tagged one for ABORT TASK and QUERY TASK, else this
 * nexus's on the LUN (lun 0: on the TPG, for I_T NEXUS RESET).
 */
function tmf_scan(dev: ScsiDevice, subtype: u32, tpg: ScsiTpg, lun: usize, tag: u64, mode: u32): u32 {
  if (subtype == K.VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET) return scan_nexuses(dev, ALL_NEXUSES, lun, mode);
  const tagged = subtype == K.VIRTIO_SCSI_T_TMF_ABORT_TASK || subtype == K.VIRTIO_SCSI_T_TMF_QUERY_TASK;
  return scan(dev, tpg, lun, tagged, tag, mode);
}

/** Executes a TMF; returns its response code, or 0xff when it must wait for aborted requests. */
function do_tmf(dev: ScsiDevice, subtype: u32, tpg: ScsiTpg, lun: ScsiLun | null, tag: u64): u32 {
  const lunp = tmf_lun(subtype, lun);
  if (subtype == K.VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET) {
    for (let id: u32 = 0; id < VHOST_SCSI_MAX_LUN; id++) {
      const l = tpg_lun(tpg, id);
      if (l !== null) lose_nexus(l, dev.nexus);
    }
  } else {
    if (subtype == K.VIRTIO_SCSI_T_TMF_CLEAR_ACA) return K.VIRTIO_SCSI_S_FUNCTION_REJECTED; // NACA unsupported
    if (subtype > K.VIRTIO_SCSI_T_TMF_QUERY_TASK_SET) return K.VIRTIO_SCSI_S_FUNCTION_REJECTED;
    if (lun === null) return K.VIRTIO_SCSI_S_INCORRECT_LUN;
    if (subtype == K.VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET) reset_lun(lun);
  }
  if (subtype == K.VIRTIO_SCSI_T_TMF_QUERY_TASK || subtype == K.VIRTIO_SCSI_T_TMF_QUERY_TASK_SET) {
    return tmf_scan(dev, subtype, tpg, lunp, tag, SCAN_COUNT) > 0 ? K.VIRTIO_SCSI_S_FUNCTION_SUCCEEDED : K.VIRTIO_SCSI_S_FUNCTION_COMPLETE;
  }
  return tmf_scan(dev, subtype, tpg, lunp, tag, SCAN_ABORT) > 0 ? 0xff : K.VIRTIO_SCSI_S_FUNCTION_COMPLETE;
}

/** The control-queue device: ScsiDevice seen through its control handler. */
@unmanaged export class ScsiControlQueue {
  handle(vq: VirtQueue, head: u32, iov: IoVecArray): i64 {
    const dev = changetype<ScsiDevice>(this);
    const outBytes = iov.bytes(0, iov.out);
    const inBytes = iov.bytes(iov.out, iov.count);
    const req = scratch();
    const rd = request_cursor();
    rd.init(iov, 0, iov.out);
    const got = rd.read(req, K.CTRL_TMF_REQ_SIZE);
    const type = got >= 4 ? load<u32>(req) : 0xffffffff;
    const reqSize = type == K.VIRTIO_SCSI_T_TMF ? K.CTRL_TMF_REQ_SIZE : K.CTRL_AN_REQ_SIZE;
    const respSize = type == K.VIRTIO_SCSI_T_TMF ? K.CTRL_TMF_RESP_SIZE : K.CTRL_AN_RESP_SIZE;
    const known = type == K.VIRTIO_SCSI_T_TMF || type == K.VIRTIO_SCSI_T_AN_QUERY || type == K.VIRTIO_SCSI_T_AN_SUBSCRIBE;
    // Unknown types and responses that do not fit cannot be answered: a queue error (vq_err).
    if (!known || inBytes < <u64>respSize) {
      vq_err(vq, VQ_ERR_BAD_REQUEST, head);
      return 0;
    }
    const resp = scratch() + 64;
    memory.fill(resp, 0, 8);
    const wr = reply_cursor();
    wr.init(iov, iov.out, iov.count);
    const lun = req + (type == K.VIRTIO_SCSI_T_TMF ? 8 : 4);
    // As vhost-scsi: the whole request and lun[0] == 1 are required; only a TMF looks its
    // target up (AN requests are answered for any target).
    const addressed = outBytes >= <u64>reqSize && load<u8>(lun) == 1;
    const tpg: ScsiTpg | null = addressed && type == K.VIRTIO_SCSI_T_TMF ? dev_tpg(dev, <u32>load<u8>(lun, 1)) : null;
    if (!addressed) {
      store<u8>(resp + (type == K.VIRTIO_SCSI_T_TMF ? 0 : 4), K.VIRTIO_SCSI_S_BAD_TARGET);
    } else if (type != K.VIRTIO_SCSI_T_TMF) {
      // No asynchronous events are supported: event_actual is empty (VIRTIO 1.2, 5.6.6.2.1).
      store<u32>(resp, 0);
      store<u8>(resp, K.VIRTIO_SCSI_S_OK, 4);
    } else if (tpg === null) {
      store<u8>(resp, K.VIRTIO_SCSI_S_BAD_TARGET);
    } else {
      const subtype = load<u32>(req, 4);
      const l = tpg_lun(tpg, lun_number(lun));
      const tag = load<u64>(req, 16);
      const r = do_tmf(dev, subtype, tpg, l, tag);
      if (r == 0xff) {
        // iov.base(iov.out) holds at least one byte: the writable part is not empty.
        if (pend_tmf(dev, head, subtype, tmf_lun(subtype, l), tpg, tag, iov.base(iov.out))) return REQUEST_PENDING;
        store<u8>(resp, K.VIRTIO_SCSI_S_BUSY);
      } else {
        store<u8>(resp, <u8>r);
      }
    }
    return wr.write(resp, respSize);
  }
}

/**
 * Answers the pending TMFs whose aborted requests have all completed; returns DRAIN_* bits
 * of the used-ring flush, plus CTL_TMF_PENDING when some TMF still waits.
 */
export function ctl_poll(dev: ScsiDevice, vq: VirtQueue): u32 {
  if (dev.ntmf == 0) return 0;
  let added = false;
  for (let i: u32 = 0; i < TMF_SLOTS; i++) {
    const t = dev_tmf(dev, i);
    if (t.head1 == 0) continue;
    if (tmf_scan(dev, t.subtype, changetype<ScsiTpg>(<usize>t.tpg), <usize>t.lun, t.tag, SCAN_WAITING) > 0) continue;
    atomic.store<u8>(<usize>t.resp, K.VIRTIO_SCSI_S_FUNCTION_COMPLETE);
    vq_log_range(vq, <usize>t.resp, 1);
    vq_add_used(vq, t.head1 - 1, K.CTRL_TMF_RESP_SIZE);
    vq.inflight--;
    t.head1 = 0;
    dev.ntmf--;
    added = true;
  }
  const flags = added ? vq_flush_used(vq) : 0;
  return flags | (dev.ntmf > 0 ? CTL_TMF_PENDING : 0);
}
