// SCSI commands on LUNs whose backstore is served elsewhere (BS_QUEUED): each becomes a request
// context posted to the backstore's submission queue (ioring.ts), and its completion becomes
// the SCSI answer. Commands the backstore operations do not cover one to one run as several
// steps of the same context: VERIFY with BYTCHK reads the medium a chunk at a time into the
// table's bounce buffer and compares, WRITE SAME with a data block writes it repeated, UNMAP
// discards one descriptor's range at a time.
import { IoVecArray, IovIter } from "../iovec";
import { chain_iov, reply_cursor, verify_cursor } from "../instance";
import { VirtQueue } from "../queue";
import { ctx_answer } from "../drain";
import { ScsiCmd, cmd, cmd_check, cmd_reset, DIR_FROM_DEVICE, DIR_TO_DEVICE } from "./cmd";
import { ScsiLun } from "./lun";
import {
  BOUNCE_SIZE, BS_MISCOMPARE, BS_OP_COMPARE_AND_WRITE, BS_OP_DISCARD, BS_OP_READ, BS_OP_WRITE, CTX_ABORTED, CTX_IOV, IoCtx, IoCtxTable, IoSubmitQueue,
  ctx_alloc, ctx_release, ctx_submit, ctx_take_extents,
} from "../ioring";
import { write_response } from "./response";
import * as K from "./constants";
import { scsi_ctx } from "./ctx";

/** What a context's steps carry out (IoCtx.kind). */
const REMOTE_ONE: u32 = 0; // one operation: READ, WRITE, FLUSH, WRITE_ZEROES or DISCARD of the range
const REMOTE_COMPARE: u32 = 1; // VERIFY BYTCHK=1: READ a chunk into the bounce buffer, compare with data-out
const REMOTE_PATTERN: u32 = 2; // WRITE SAME: one block repeated over the range, a WRITE per step
const REMOTE_RANGES: u32 = 3; // UNMAP: a DISCARD per range kept in the extents area

/** Ranges an UNMAP on a queued LUN may carry: what the extents area holds as (lba u64, count u32). */
export const REMOTE_MAX_RANGES: u32 = (CTX_IOV * 8) / 12;

/** Linux errno values a backstore completes with (negated); anything else is an I/O error. */
const EPERM: i32 = 1;
const EIO: i32 = 5;
const EACCES: i32 = 13;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;
const ENOSPC: i32 = 28;
const EROFS: i32 = 30;
const EPIPE: i32 = 32;
const EOPNOTSUPP: i32 = 95;
const ECONNRESET: i32 = 104;
const ENOTCONN: i32 = 107;
const ESHUTDOWN: i32 = 108;
const ETIMEDOUT: i32 = 110;

@inline function lun_sq(lun: ScsiLun): IoSubmitQueue {
  return changetype<IoSubmitQueue>(<usize>lun.sq);
}

/** Bytes of the chain's readable part before cursor `it` (where the data-out starts). */
function cursor_offset(it: IovIter): u32 {
  return <u32>it.iov.bytes(0, it.idx) + it.off;
}

/**
 * Takes a context for command c on lun and records what answering it needs (chain, head, tag,
 * sense format, buffer length). Sets the command's answer and returns null when it cannot:
 * TASK SET FULL with every context busy, VIRTIO_SCSI_S_FAILURE for a chain longer than a
 * context holds (more segments than seg_max promised).
 */
function ctx_begin(c: ScsiCmd, lun: ScsiLun, kind: u32): IoCtx | null {
  const t = c.table;
  const chain = chain_iov();
  if (changetype<usize>(t) == 0 || chain.count > CTX_IOV) {
    c.response = K.VIRTIO_SCSI_S_FAILURE;
    return null;
  }
  const x = ctx_alloc(t);
  if (x === null) {
    c.status = K.SAM_STAT_TASK_SET_FULL;
    return null;
  }
  memory.copy(changetype<usize>(x.chain()), changetype<usize>(chain), 8 + <usize>chain.count * 8);
  x.extents().count = 0;
  x.extents().out = 0;
  x.cq = t.cq;
  x.owner = changetype<u32>(lun);
  x.head = c.head;
  scsi_ctx(x).tag = c.tag;
  scsi_ctx(x).desc_sense = c.desc_sense;
  x.buf_len = c.buf_len;
  // Data-out bytes the command already consumed (a parameter list, a WRITE SAME block).
  x.done = c.done;
  scsi_ctx(x).kind = kind;
  scsi_ctx(x).step = 0;
  x.flags = 0;
  return x;
}

/**
 * Puts a context on its LUN's submission queue. The first post of a command counts it in
 * flight; a later step (continuing) is already counted. False when the queue is full.
 */
function ctx_post(t: IoCtxTable, x: IoCtx, first: bool): bool {
  const lun = changetype<ScsiLun>(<usize>x.owner);
  if (!ctx_submit(t, x, lun_sq(lun), first)) return false;
  if (first) atomic.add<u32>(changetype<usize>(lun) + offsetof<ScsiLun>("inflight"), 1);
  return true;
}

/** Posts a command's first step; on a full queue the context goes back and the answer is TASK SET FULL. */
function submit(c: ScsiCmd, x: IoCtx): void {
  const t = c.table;
  if (!ctx_post(t, x, true)) {
    ctx_release(t, x);
    c.status = K.SAM_STAT_TASK_SET_FULL;
    return;
  }
  c.pending = 1;
}

/**
 * One operation over [off, off + len) with the data at cursor `data` (READ, WRITE; twice len for
 * COMPARE_AND_WRITE) or none; BS_F_* flags.
 */
export function remote_op(c: ScsiCmd, lun: ScsiLun, op: u32, off: u64, len: u64, data: IovIter | null, flags: u32): void {
  const x = ctx_begin(c, lun, REMOTE_ONE);
  if (x === null) return;
  if (data !== null && !ctx_take_extents(x.extents(), data, op == BS_OP_COMPARE_AND_WRITE ? len * 2 : len)) {
    ctx_release(c.table, x);
    c.response = K.VIRTIO_SCSI_S_FAILURE;
    return;
  }
  x.op = op;
  x.flags = flags;
  x.offset = off;
  x.length = len;
  scsi_ctx(x).range_off = off;
  scsi_ctx(x).range_len = len;
  submit(c, x);
}

/** VERIFY with BYTCHK=1: compares [off, off + len) with the data-out, a bounce buffer at a time. */
export function remote_compare(c: ScsiCmd, lun: ScsiLun, off: u64, len: u64, data: IovIter): void {
  const t = c.table;
  if (changetype<usize>(t) != 0 && t.bounce_user != 0) {
    c.status = K.SAM_STAT_BUSY; // another compare on this queue holds the bounce buffer
    return;
  }
  const x = ctx_begin(c, lun, REMOTE_COMPARE);
  if (x === null) return;
  t.bounce_user = x.index + 1;
  scsi_ctx(x).range_off = off;
  scsi_ctx(x).range_len = len;
  // Progress in `done`; where the data-out starts in the chain's readable part in `step`.
  x.done = 0;
  scsi_ctx(x).step = cursor_offset(data);
  compare_step(t, x);
  submit(c, x);
}

/** WRITE SAME with a data block: the block at cursor `data` written over [off, off + len). */
export function remote_pattern(c: ScsiCmd, lun: ScsiLun, off: u64, len: u64, data: IovIter): void {
  const x = ctx_begin(c, lun, REMOTE_PATTERN);
  if (x === null) return;
  const block = <u64>lun.blockSize;
  // The extents: the block's pieces, repeated as often as the extents area holds.
  if (!ctx_take_extents(x.extents(), data, block)) {
    ctx_release(c.table, x);
    c.response = K.VIRTIO_SCSI_S_FAILURE;
    return;
  }
  const ext = x.extents();
  const per = ext.count;
  let reps: u32 = 1;
  while ((reps + 1) * per <= CTX_IOV && <u64>(reps + 1) * block <= len) {
    for (let k: u32 = 0; k < per; k++) ext.set(reps * per + k, ext.base(k), ext.len(k));
    reps++;
  }
  ext.count = reps * per;
  scsi_ctx(x).step = per; // extents per block, for the last, shorter step
  x.done = block;
  x.op = BS_OP_WRITE;
  scsi_ctx(x).range_off = off;
  scsi_ctx(x).range_len = len;
  x.offset = off;
  x.length = <u64>reps * block;
  submit(c, x);
}

/** UNMAP: `count` validated (lba, blocks) ranges at `ranges` (12 bytes each), one DISCARD each. */
export function remote_ranges(c: ScsiCmd, lun: ScsiLun, ranges: usize, count: u32): void {
  if (count == 0) return;
  const x = ctx_begin(c, lun, REMOTE_RANGES);
  if (x === null) return;
  memory.copy(changetype<usize>(x.extents()), ranges, <usize>count * 12);
  scsi_ctx(x).range_len = count; // here: how many ranges; `step` is the one being discarded
  x.op = BS_OP_DISCARD;
  range_step(x);
  submit(c, x);
}

/** Sets up the next compare chunk: a READ into the bounce buffer. */
function compare_step(t: IoCtxTable, x: IoCtx): void {
  const doneBytes = x.done;
  const left = scsi_ctx(x).range_len - doneBytes;
  const chunk = left < <u64>BOUNCE_SIZE ? left : <u64>BOUNCE_SIZE;
  const ext = x.extents();
  ext.count = 1;
  ext.set(0, t.bounce, <u32>chunk);
  x.op = BS_OP_READ;
  x.offset = scsi_ctx(x).range_off + doneBytes;
  x.length = chunk;
}

/** Compares the chunk just read with the matching data-out bytes; the offset of a difference, or -1. */
function compare_chunk(t: IoCtxTable, x: IoCtx): i64 {
  const it = verify_cursor();
  const chain = x.chain();
  it.init(chain, 0, chain.out);
  it.skip(<u64>scsi_ctx(x).step + x.done);
  const chunk = <u32>x.length;
  const a = <usize>t.bounce;
  let at: u32 = 0;
  // The guest's bytes, one contiguous piece at a time.
  while (at < chunk && it.idx < it.end) {
    const seg = chain.len(it.idx) - it.off;
    const n = seg < chunk - at ? seg : chunk - at;
    const g = <usize>chain.base(it.idx) + it.off;
    for (let k: u32 = 0; k < n; k++) if (load<u8>(g + k) != load<u8>(a + at + k)) return <i64>(x.done + at + k);
    it.skip(n);
    at += n;
  }
  return -1;
}

/** Sets up the next DISCARD of an UNMAP from range number scsi_ctx(x).step. */
function range_step(x: IoCtx): void {
  const lun = changetype<ScsiLun>(<usize>x.owner);
  const r = changetype<usize>(x.extents()) + <usize>scsi_ctx(x).step * 12;
  x.offset = load<u64>(r) << lun.block_shift;
  x.length = <u64>load<u32>(r, 8) << lun.block_shift;
}

/** Sets the SCSI answer for a backstore error (-errno) on operation op. */
function error_answer(c: ScsiCmd, op: u32, err: i32): void {
  const e = -err;
  if (e == EPERM || e == EACCES || e == EROFS) return cmd_check(c, K.DATA_PROTECT, K.ASC_WRITE_PROTECTED);
  // SBC-4 4.7.3.7: a thin-provisioned medium out of space (Linux's sd turns it into -ENOSPC).
  if (e == ENOSPC) return cmd_check(c, K.DATA_PROTECT, K.ASC_SPACE_ALLOCATION_FAILED);
  if (e == EINVAL) return cmd_check(c, K.ILLEGAL_REQUEST, K.ASC_INVALID_FIELD_IN_CDB);
  if (e == EOPNOTSUPP) return cmd_check(c, K.ILLEGAL_REQUEST, K.ASC_INVALID_COMMAND_OPERATION_CODE);
  // A COMPARE AND WRITE whose queue stayed busy (a consumer stuck mid-batch): the guest retries.
  if (e == EBUSY) {
    c.status = K.SAM_STAT_BUSY;
    return;
  }
  // The way to the storage broke (a dropped connection, a server that stopped answering): the
  // transport failed, not the medium; the guest's SCSI layer retries (DID_TRANSPORT_DISRUPTED).
  if (e == ENOTCONN || e == ECONNRESET || e == ESHUTDOWN || e == ETIMEDOUT || e == EPIPE) {
    c.response = K.VIRTIO_SCSI_S_TRANSPORT_FAILURE;
    return;
  }
  // EIO and anything else: the medium failed.
  cmd_check(c, K.MEDIUM_ERROR, op == BS_OP_READ ? K.ASC_UNRECOVERED_READ_ERROR : K.ASC_WRITE_ERROR);
}

/**
 * Handles one completion of context x with `result` (bytes done, or -errno). Returns true when
 * the command is answered (the used element added), false when a further step was posted.
 */
function complete(vq: VirtQueue, t: IoCtxTable, x: IoCtx, result: i32): bool {
  const c = cmd();
  cmd_reset(c);
  c.desc_sense = scsi_ctx(x).desc_sense;
  c.buf_len = x.buf_len;
  const aborted = atomic.load<u32>(changetype<usize>(x)) == CTX_ABORTED;
  const kind = scsi_ctx(x).kind;
  let more = false;
  if (aborted) {
    c.response = K.VIRTIO_SCSI_S_ABORTED;
  } else if (x.op == BS_OP_COMPARE_AND_WRITE && result <= -<i32>BS_MISCOMPARE) {
    cmd_check(c, K.MISCOMPARE, K.ASC_MISCOMPARE_DURING_VERIFY);
    c.info_valid = 1;
    c.info = <u64>(-result - <i32>BS_MISCOMPARE);
    c.done = x.length * 2; // the whole data-out was transferred before the compare (no residual)
  } else if (result < 0) {
    error_answer(c, x.op, result);
  } else if (<u64>result != x.length) {
    // Backstores finish a transfer or fail it; a short one means the medium could not.
    cmd_check(c, K.MEDIUM_ERROR, x.op == BS_OP_READ ? K.ASC_UNRECOVERED_READ_ERROR : K.ASC_WRITE_ERROR);
  } else if (kind == REMOTE_ONE) {
    c.done = x.op == BS_OP_READ || x.op == BS_OP_WRITE ? x.length : x.op == BS_OP_COMPARE_AND_WRITE ? x.length * 2 : x.done;
  } else if (kind == REMOTE_COMPARE) {
    const diff = compare_chunk(t, x);
    if (diff >= 0) {
      cmd_check(c, K.MISCOMPARE, K.ASC_MISCOMPARE_DURING_VERIFY);
      c.info_valid = 1;
      c.info = <u64>diff;
      c.done = scsi_ctx(x).range_len; // the whole data-out was transferred before the compare (no residual)
    } else {
      x.done += x.length;
      more = x.done < scsi_ctx(x).range_len;
      if (more) compare_step(t, x);
      else c.done = scsi_ctx(x).range_len;
    }
  } else if (kind == REMOTE_PATTERN) {
    const written = x.offset + x.length - scsi_ctx(x).range_off;
    more = written < scsi_ctx(x).range_len;
    if (more) {
      x.offset += x.length;
      const left = scsi_ctx(x).range_len - written;
      if (left < x.length) {
        // The last step: only as many repeats of the block as are left.
        x.extents().count = scsi_ctx(x).step * <u32>(left >> changetype<ScsiLun>(<usize>x.owner).block_shift);
        x.length = left;
      }
    } else {
      c.done = x.done;
    }
  } else {
    scsi_ctx(x).step++;
    more = <u64>scsi_ctx(x).step < scsi_ctx(x).range_len;
    if (more) range_step(x);
    else c.done = x.done;
  }
  if (more && !aborted) {
    if (ctx_post(t, x, false)) return false;
    c.status = K.SAM_STAT_BUSY; // the submission queue filled up mid-command: the guest retries it
  }
  // The answer: data-in bytes for READ, the residual from what the guest's buffers held.
  c.dir = x.op == BS_OP_READ && kind == REMOTE_ONE ? DIR_FROM_DEVICE : DIR_TO_DEVICE;
  const resp = reply_cursor();
  const chain = x.chain();
  resp.init(chain, chain.out, chain.count);
  ctx_answer(vq, t, x, <usize>x.owner + offsetof<ScsiLun>("inflight"), write_response(c, resp));
  return true;
}

/** The request layer's completion handler for vq_reap (drain.ts). */
@unmanaged export class ScsiCompletions {
  complete(vq: VirtQueue, t: IoCtxTable, x: IoCtx, result: i32): bool {
    return complete(vq, t, x, result);
  }
}
