// The virtio-blk request queue (VIRTIO 1.2, 5.2.6): struct virtio_blk_req is a 16-byte header
// (type, reserved, sector) at the start of the chain's readable part, data-out after it (OUT,
// and the segments of DISCARD and WRITE_ZEROES), data-in at the start of the writable part
// (IN, GET_ID) and the status byte at its very end. RAM and null backing are served in place;
// a queued backstore gets a request context (ioring.ts) and is answered when it completes.
import { IoVecArray, IovIter } from "../iovec";
import { data_in_cursor, request_cursor, scratch } from "../instance";
import { VirtQueue, vq_err } from "../queue";
import { VQ_ERR_BAD_REQUEST } from "../defs";
import { REQUEST_PENDING, ctx_answer } from "../drain";
import { copies_flush, copy_deferred } from "../copies";
import { fill_bytes } from "../bytes";
import {
  BS_F_FUA, BS_F_UNMAP, BS_OP_DISCARD, BS_OP_FLUSH, BS_OP_READ, BS_OP_WRITE, BS_OP_WRITE_ZEROES, BS_QUEUED, BS_RAM,
  CTX_IOV, IoCtx, IoCtxTable, IoSubmitQueue, ctx_alloc, ctx_release, ctx_submit, ctx_take_extents,
} from "../ioring";
import { BlkDevice, BLK_F_DISCARD, BLK_F_READ_ONLY, BLK_F_WRITEBACK, BLK_F_WRITE_ZEROES, blk_flags, blk_id } from "./device";
import * as K from "./constants";

/** Linux errno values a backstore completes with (negated) that are not an I/O error. */
const EOPNOTSUPP: i32 = 95;

/** The request's parts, read once: where data and status are, and their sizes. */
@unmanaged class BlkReq {
  type: u32;
  _pad0: u32;
  sector: u64;
  /** Readable bytes after the header, writable bytes before the status byte. */
  out_bytes: u64;
  in_bytes: u64;
}

/** This instance's request (in its scratch area). */
@inline function req(): BlkReq {
  return changetype<BlkReq>(scratch());
}

/** Writes the status byte at the end of the chain's writable part (which holds at least one byte). */
function put_status(iov: IoVecArray, status: u8): void {
  let i = iov.count;
  while (i > iov.out && iov.len(i - 1) == 0) i--;
  store<u8>(<usize>iov.base(i - 1) + iov.len(i - 1) - 1, status);
}

/** Answers with status alone: the used length is the one byte written. */
@inline function answer(iov: IoVecArray, status: u8): i64 {
  put_status(iov, status);
  return 1;
}

/**
 * Whether [sector, sector + bytes / 512) lies within the capacity and on logical block
 * boundaries (QEMU's virtio_blk_sect_range_ok); overflow-safe.
 */
function range_ok(d: BlkDevice, sector: u64, bytes: u64): bool {
  const blockMask: u64 = (<u64>1 << d.block_shift) - 1;
  if ((bytes & blockMask) != 0 || ((sector << K.VIRTIO_BLK_SECTOR_SHIFT) & blockMask) != 0) return false;
  if (sector > d.capacity) return false;
  return bytes >> K.VIRTIO_BLK_SECTOR_SHIFT <= d.capacity - sector;
}

/** Cursor over the data-out (after the header) or the data-in (before the status byte). */
function data_cursor(iov: IoVecArray, write: bool): IovIter {
  const it = write ? request_cursor() : data_in_cursor();
  if (write) {
    it.init(iov, 0, iov.out);
    it.skip(K.VIRTIO_BLK_OUTHDR_SIZE);
  } else {
    it.init(iov, iov.out, iov.count);
  }
  return it;
}

/** IN and OUT on RAM: the copies run with the batch's others, before the used ring is published. */
function ram_rw(d: BlkDevice, iov: IoVecArray, r: BlkReq, write: bool): void {
  const it = data_cursor(iov, write);
  let disk = <usize>d.ram + (<usize>r.sector << K.VIRTIO_BLK_SECTOR_SHIFT);
  let left = write ? r.out_bytes : r.in_bytes;
  while (left > 0 && it.idx < it.end) {
    const seg = <u64>(iov.len(it.idx) - it.off);
    const n = <u32>(seg < left ? seg : left);
    const at = <usize>iov.base(it.idx) + it.off;
    if (write) copy_deferred(disk, at, n);
    else copy_deferred(at, disk, n);
    it.skip(n);
    disk += n;
    left -= n;
  }
}

/** GET_ID: up to VIRTIO_BLK_ID_BYTES of the ID into the data-in; the bytes written. */
function get_id(d: BlkDevice, iov: IoVecArray, r: BlkReq): u32 {
  const n = r.in_bytes < <u64>K.VIRTIO_BLK_ID_BYTES ? <u32>r.in_bytes : K.VIRTIO_BLK_ID_BYTES;
  return data_cursor(iov, false).write(blk_id(d), n);
}

/**
 * DISCARD and WRITE_ZEROES: one segment (max_discard_seg and max_write_zeroes_seg are 1, as
 * QEMU's). Returns the status, with the range in the request for the caller to act on.
 */
function dwz_segment(d: BlkDevice, iov: IoVecArray, r: BlkReq, out: usize): u8 {
  const zeroes = r.type == K.VIRTIO_BLK_T_WRITE_ZEROES;
  if ((blk_flags(d) & (zeroes ? BLK_F_WRITE_ZEROES : BLK_F_DISCARD)) == 0) return K.VIRTIO_BLK_S_UNSUPP;
  if (r.out_bytes != <u64>K.VIRTIO_BLK_DWZ_SEG_SIZE) return K.VIRTIO_BLK_S_UNSUPP;
  if ((blk_flags(d) & BLK_F_READ_ONLY) != 0) return K.VIRTIO_BLK_S_IOERR;
  data_cursor(iov, true).read(out, K.VIRTIO_BLK_DWZ_SEG_SIZE);
  const sector = load<u64>(out);
  const sectors = load<u32>(out, 8);
  const flags = load<u32>(out, 12);
  // VIRTIO 1.2, 5.2.6.2: DISCARD takes no flags; WRITE_ZEROES only UNMAP.
  if (flags & ~(zeroes ? K.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0)) return K.VIRTIO_BLK_S_UNSUPP;
  if (sectors > (zeroes ? d.max_write_zeroes_sectors : d.max_discard_sectors)) return K.VIRTIO_BLK_S_IOERR;
  if (!range_ok(d, sector, <u64>sectors << K.VIRTIO_BLK_SECTOR_SHIFT)) return K.VIRTIO_BLK_S_IOERR;
  r.sector = sector;
  r.out_bytes = <u64>sectors << K.VIRTIO_BLK_SECTOR_SHIFT;
  store<u32>(out, flags, 12);
  return K.VIRTIO_BLK_S_OK;
}

/**
 * Hands the request to the queued backstore: op over [sector, + len) with the data at cursor
 * `data` (READ, WRITE) or none. REQUEST_PENDING, or the status when it cannot be handed over
 * (every context busy, a chain longer than a context holds, a full submission queue: IOERR,
 * since virtio-blk has no busy status; a driver within the queue size never meets them).
 */
function submit(vq: VirtQueue, d: BlkDevice, iov: IoVecArray, head: u32, op: u32, r: BlkReq, len: u64, data: IovIter | null, flags: u32): i64 {
  const t = changetype<IoCtxTable>(<usize>vq.private_data);
  if (changetype<usize>(t) == 0 || iov.count > CTX_IOV) return answer(iov, K.VIRTIO_BLK_S_IOERR);
  const x = ctx_alloc(t);
  if (x === null) return answer(iov, K.VIRTIO_BLK_S_IOERR);
  memory.copy(changetype<usize>(x.chain()), changetype<usize>(iov), 8 + <usize>iov.count * 8);
  x.extents().count = 0;
  x.extents().out = 0;
  if (data !== null && !ctx_take_extents(x.extents(), data, len)) {
    ctx_release(t, x);
    return answer(iov, K.VIRTIO_BLK_S_IOERR);
  }
  x.cq = t.cq;
  x.owner = changetype<u32>(d);
  x.head = head;
  x.op = op;
  x.flags = flags;
  x.offset = r.sector << K.VIRTIO_BLK_SECTOR_SHIFT;
  x.length = len;
  x.buf_len = 0;
  x.done = 0;
  if (!ctx_submit(t, x, changetype<IoSubmitQueue>(<usize>d.sq), true)) {
    ctx_release(t, x);
    return answer(iov, K.VIRTIO_BLK_S_IOERR);
  }
  atomic.add<u32>(changetype<usize>(d) + offsetof<BlkDevice>("inflight"), 1);
  return REQUEST_PENDING;
}

/** The request-queue device: BlkDevice seen through its request handler. */
@unmanaged export class BlkRequestQueue {
  handle(vq: VirtQueue, head: u32, iov: IoVecArray): i64 {
    const d = changetype<BlkDevice>(this);
    const outBytes = iov.bytes(0, iov.out);
    const inBytes = iov.bytes(iov.out, iov.count);
    // Without the header or a status byte nothing can be said: a queue error, the chain
    // returned empty (QEMU: "virtio-blk missing headers").
    if (outBytes < <u64>K.VIRTIO_BLK_OUTHDR_SIZE || inBytes < 1) {
      vq_err(vq, VQ_ERR_BAD_REQUEST, head);
      return 0;
    }
    const r = req();
    const hdr = scratch() + offsetof<BlkReq>();
    const rd = request_cursor();
    rd.init(iov, 0, iov.out);
    rd.read(hdr, K.VIRTIO_BLK_OUTHDR_SIZE);
    r.type = load<u32>(hdr);
    r.sector = load<u64>(hdr, 8);
    r.out_bytes = outBytes - K.VIRTIO_BLK_OUTHDR_SIZE;
    r.in_bytes = inBytes - 1;
    const type = r.type;
    const backing = d.backing;
    if (type == K.VIRTIO_BLK_T_IN || type == K.VIRTIO_BLK_T_OUT) {
      const write = type == K.VIRTIO_BLK_T_OUT;
      const len = write ? r.out_bytes : r.in_bytes;
      if (!range_ok(d, r.sector, len)) return answer(iov, K.VIRTIO_BLK_S_IOERR);
      const flags = blk_flags(d);
      if (write && (flags & BLK_F_READ_ONLY) != 0) return answer(iov, K.VIRTIO_BLK_S_IOERR);
      if (backing == BS_QUEUED) {
        // Write-through (the driver turned writeback off): every write durable before its status.
        const fua = write && (flags & BLK_F_WRITEBACK) == 0 ? BS_F_FUA : 0;
        return submit(vq, d, iov, head, write ? BS_OP_WRITE : BS_OP_READ, r, len, data_cursor(iov, write), fua);
      }
      if (backing == BS_RAM) ram_rw(d, iov, r, write);
      else if (!write) data_cursor(iov, false).fill(0, <u32>len);
      put_status(iov, K.VIRTIO_BLK_S_OK);
      return write ? 1 : <i64>len + 1;
    }
    // Everything else runs after the batch's RAM copies, as if each request had been done in turn.
    copies_flush();
    if (type == K.VIRTIO_BLK_T_FLUSH) {
      // The header's sector means nothing to a FLUSH (VIRTIO 1.2, 5.2.6.1: the driver sets it to 0).
      r.sector = 0;
      if (backing == BS_QUEUED) return submit(vq, d, iov, head, BS_OP_FLUSH, r, 0, null, 0);
      return answer(iov, K.VIRTIO_BLK_S_OK);
    }
    if (type == K.VIRTIO_BLK_T_GET_ID) {
      const n = get_id(d, iov, r);
      put_status(iov, K.VIRTIO_BLK_S_OK);
      return <i64>n + 1;
    }
    if (type == K.VIRTIO_BLK_T_DISCARD || type == K.VIRTIO_BLK_T_WRITE_ZEROES) {
      const seg = scratch() + offsetof<BlkReq>() + K.VIRTIO_BLK_OUTHDR_SIZE;
      const status = dwz_segment(d, iov, r, seg);
      if (status != K.VIRTIO_BLK_S_OK) return answer(iov, status);
      const len = r.out_bytes;
      if (backing == BS_QUEUED) {
        if (type == K.VIRTIO_BLK_T_DISCARD) return submit(vq, d, iov, head, BS_OP_DISCARD, r, len, null, 0);
        const unmap = (load<u32>(seg, 12) & K.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0 ? BS_F_UNMAP : 0;
        return submit(vq, d, iov, head, BS_OP_WRITE_ZEROES, r, len, null, unmap);
      }
      // RAM: a discarded range reads back as zeroes, as a written-zeroes one does.
      if (backing == BS_RAM && len != 0) fill_bytes(<usize>d.ram + (<usize>r.sector << K.VIRTIO_BLK_SECTOR_SHIFT), 0, <usize>len);
      return answer(iov, K.VIRTIO_BLK_S_OK);
    }
    // GET_LIFETIME, SECURE_ERASE (not offered) and anything unknown.
    return answer(iov, K.VIRTIO_BLK_S_UNSUPP);
  }
}

/** The request layer's completion handler for vq_reap (drain.ts): the status, then the used entry. */
@unmanaged export class BlkCompletions {
  complete(vq: VirtQueue, t: IoCtxTable, x: IoCtx, result: i32): bool {
    const d = changetype<BlkDevice>(<usize>x.owner);
    let status = K.VIRTIO_BLK_S_OK;
    // Backstores finish a transfer or fail it; a short one means the medium could not.
    if (result == -EOPNOTSUPP) status = K.VIRTIO_BLK_S_UNSUPP;
    else if (result < 0 || <u64>result != x.length) status = K.VIRTIO_BLK_S_IOERR;
    const chain = x.chain();
    put_status(chain, status);
    const len: u32 = x.op == BS_OP_READ && status == K.VIRTIO_BLK_S_OK ? <u32>x.length + 1 : 1;
    ctx_answer(vq, t, x, changetype<usize>(d) + offsetof<BlkDevice>("inflight"), len);
    return true;
  }
}
