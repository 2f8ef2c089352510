// Moving logical blocks between the guest's buffers and a backstore. RAM and null complete in
// place (one memory.copy per guest segment); the file backstore records the request in the
// queue's in-flight table for the worker's TS side and completes later (scsi_complete).
import { IovIter } from "../iovec";
import { chain_iov } from "../instance";
import { VirtQueue } from "../queue";
import { ScsiCmd, data_in, data_out } from "./cmd";
import { BS_FILE, BS_RAM, ScsiLun } from "./lun";
import {
  InflightTable, IO_READ, IO_WRITE, SLOT_IOV, SLOT_SUBMITTED, inflight_alloc, inflight_slot, iov_extract,
} from "./inflight";
import { SAM_STAT_TASK_SET_FULL, VIRTIO_SCSI_S_FAILURE } from "./constants";
import { copy_bytes } from "../bytes";

/** Reads `bytes` at byte offset `off` of the LUN into the data-in buffers. */
export function bs_read(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u32): void {
  if (lun.backstore == BS_RAM) {
    c.done += data_in().write(<usize>lun.ram + <usize>off, bytes);
  } else if (lun.backstore == BS_FILE) {
    bs_submit(c, lun, IO_READ, off, bytes, data_in(), bytes);
  } else {
    c.done += data_in().fill(0, bytes);
  }
}

/** Writes `bytes` of data-out at byte offset `off` of the LUN. */
export function bs_write(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u32): void {
  if (lun.backstore == BS_RAM) {
    c.done += data_out().read(<usize>lun.ram + <usize>off, bytes);
  } else if (lun.backstore == BS_FILE) {
    bs_submit(c, lun, IO_WRITE, off, bytes, data_out(), bytes);
  } else {
    c.done += data_out().skip(bytes);
  }
}

/** Fills `bytes` at byte offset `off` of a RAM LUN with zeroes (UNMAP, WRITE SAME NDOB). */
export function bs_zero_ram(lun: ScsiLun, off: u64, bytes: u64): void {
  memory.fill(<usize>lun.ram + <usize>off, 0, <usize>bytes);
}

/**
 * Hands the command to the asynchronous backstore: takes a slot in the queue's in-flight
 * table, copies the chain's iovecs and the `dataLen` data bytes at the cursor `data` (if any)
 * into it, and marks the command pending. A full table answers TASK SET FULL; a chain with
 * more segments than a slot holds (more than seg_max) answers VIRTIO_SCSI_S_FAILURE.
 */
export function bs_submit(c: ScsiCmd, lun: ScsiLun, op: u32, off: u64, length: u64, data: IovIter | null, dataLen: u64): void {
  const vq = changetype<VirtQueue>(<usize>c.vq);
  const table = changetype<InflightTable>(<usize>vq.private_data);
  const chain = chain_iov();
  if (changetype<usize>(table) == 0 || chain.count > SLOT_IOV) {
    c.response = VIRTIO_SCSI_S_FAILURE;
    return;
  }
  const i = inflight_alloc(table);
  if (i < 0) {
    c.status = SAM_STAT_TASK_SET_FULL;
    return;
  }
  const s = inflight_slot(table, <u32>i);
  const copy = s.chain();
  copy_bytes(changetype<usize>(copy), changetype<usize>(chain), 8 + <usize>chain.count * 8);
  const d = s.data();
  d.count = 0;
  d.out = 0;
  if (data !== null && !iov_extract(d, chain, data.idx, data.off, data.end, dataLen)) {
    c.response = VIRTIO_SCSI_S_FAILURE;
    table.nsubmit--;
    table.count--;
    return;
  }
  s.head = c.head;
  s.lun = changetype<u32>(lun);
  s.op = op;
  s.tag = c.tag;
  s.offset = off;
  s.length = length;
  s.buf_len = c.buf_len;
  s.desc_sense = c.desc_sense;
  atomic.add<u32>(changetype<usize>(lun) + offsetof<ScsiLun>("inflight"), 1);
  atomic.store<u32>(changetype<usize>(s), SLOT_SUBMITTED);
  c.pending = 1;
}
