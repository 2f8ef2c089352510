// The request queue (VIRTIO 1.2, 5.6.6.1): parses struct virtio_scsi_cmd_req(_pi) from the
// chain's readable part (the header may span descriptors), addresses the target and LUN, picks
// the data direction from the buffer sizes as vhost-scsi does, dispatches, and writes struct
// virtio_scsi_cmd_resp at the start of the writable part. Requests for backstores served
// elsewhere are answered later, when their completion is reaped (remote.ts). A RAM READ or
// WRITE in the usual layout that will succeed is served in place first, without the rest.
import { IoVecArray, IovIter } from "../iovec";
import { reply_cursor, scratch, zeroes } from "../instance";
import { VirtQueue, vq_err } from "../queue";
import { VQ_ERR_BAD_REQUEST } from "../defs";
import { REQUEST_PENDING } from "../drain";
import {
  ScsiCmd, cmd, cmd_reset, data_in, data_out, DIR_FROM_DEVICE, DIR_NONE, DIR_TO_DEVICE, SCRATCH_HDR,
} from "./cmd";
import { ScsiDevice, ScsiTpg, SCSI_DEV_F_T10_PI, dev_tpg, tpg_lun } from "./target";
import { BS_RAM, LUN_F_DSENSE, LUN_F_READ_ONLY, lun_holds } from "./lun";
import { copies_flush, copy_deferred } from "../copies";
import { lun_ready, scsi_dispatch } from "./dispatch";
import { is_read, is_read_write, rw_blocks, rw_lba, rw_protect } from "./cdb";
import { write_response } from "./response";
import { copy_bytes, update_bytes } from "../bytes";
import { IoCtxTable } from "../ioring";
import * as K from "./constants";

/** LUN number from the 8-byte virtio-scsi LUN field, as vhost-scsi decodes it. */
@inline export function lun_number(lun: usize): u32 {
  return ((<u32>load<u8>(lun, 2) << 8) | <u32>load<u8>(lun, 3)) & 0x3fff;
}

/**
 * The TPG the request header at hdr addresses. Linux guests address LUNs as lun[0] = 1,
 * lun[1] = target (the TPG tag), lun[2..3] = LUN; null for any other form or an unknown target.
 */
function header_tpg(dev: ScsiDevice, hdr: usize): ScsiTpg | null {
  if (load<u8>(hdr) != 1) return null;
  return dev_tpg(dev, <u32>load<u8>(hdr, 1));
}

/** serve_rw_in_place()'s answer for a request it leaves to the generic path. */
const NOT_SERVED: i64 = -2;

/**
 * The request nearly every guest sends, a READ or WRITE of a RAM LUN in the layout Linux's
 * virtio-scsi driver gives it, served without the generic parsing and command state: the header
 * alone in the first buffer, no protection information; for a READ the response alone in the
 * next buffer and the data after it; for a WRITE the data after the header and the response
 * after the data. The command must succeed and fill the data buffers exactly (so the response
 * is all zeroes): a LUN with no unit attention pending and started, writable for a WRITE, and
 * the transfer valid as check_transfer() checks it. Anything else returns NOT_SERVED having
 * changed nothing, and the generic path serves the request from the start, errors included.
 */
@inline function serve_rw_in_place(dev: ScsiDevice, iov: IoVecArray): i64 {
  const out = iov.out;
  const count = iov.count;
  if (dev.req_size != K.CMD_REQ_SIZE || out == 0 || iov.len(0) != K.CMD_REQ_SIZE) return NOT_SERVED;
  const hdr = scratch() + SCRATCH_HDR;
  copy_bytes(hdr, <usize>iov.base(0), K.CMD_REQ_SIZE);
  const cdb = hdr + K.CMD_REQ_CDB_OFF;
  const op = load<u8>(cdb);
  if (!is_read_write(op)) return NOT_SERVED;
  const write = !is_read(op);
  // Data-out after the header for a WRITE; for a READ none, the response, then data-in.
  let first: u32 = 1;
  let end = out;
  if (write) {
    if (out < 2 || count == out || iov.len(out) < K.CMD_RESP_SIZE) return NOT_SERVED;
  } else {
    if (out != 1 || count < 3 || iov.len(1) != K.CMD_RESP_SIZE) return NOT_SERVED;
    first = 2;
    end = count;
  }
  const tpg = header_tpg(dev, hdr);
  if (tpg === null) return NOT_SERVED;
  const lun = tpg_lun(tpg, lun_number(hdr));
  if (lun === null || lun.backstore != BS_RAM || !lun_ready(lun, dev.nexus)) return NOT_SERVED;
  if (write && (lun.flags & LUN_F_READ_ONLY) != 0) return NOT_SERVED;
  const lba = rw_lba(cdb);
  const blocks = rw_blocks(cdb);
  if (rw_protect(cdb) || blocks == 0 || blocks > lun.max_xfer_blocks || !lun_holds(lun, lba, blocks)) return NOT_SERVED;
  const shift = lun.block_shift;
  if (iov.bytes(first, end) != <u64>blocks << shift) return NOT_SERVED;
  let disk = <usize>lun.ram + (<usize>lba << shift);
  for (let i = first; i < end; i++) {
    const at = <usize>iov.base(i);
    const len = iov.len(i);
    if (write) copy_deferred(disk, at, len);
    else copy_deferred(at, disk, len);
    disk += len;
  }
  // GOOD, no residual, no sense: the whole struct virtio_scsi_cmd_resp is zeroes.
  update_bytes(<usize>iov.base(out), zeroes(), K.CMD_RESP_SIZE);
  return K.CMD_RESP_SIZE + (write ? 0 : blocks << shift);
}

/** Answers with a response code and nothing else (BAD_TARGET and the like). */
function respond_only(c: ScsiCmd, resp: IovIter, response: u8): u32 {
  c.response = response;
  c.buf_len = 0;
  c.done = 0;
  c.dir = DIR_NONE;
  return write_response(c, resp);
}

/** The request-queue device: ScsiDevice seen through its request handler. */
@unmanaged export class ScsiRequestQueue {
  handle(vq: VirtQueue, head: u32, iov: IoVecArray): i64 {
    const dev = changetype<ScsiDevice>(this);
    const served = serve_rw_in_place(dev, iov);
    if (served != NOT_SERVED) return served;
    const c = cmd();
    const outBytes = iov.bytes(0, iov.out);
    const inBytes = iov.bytes(iov.out, iov.count);
    // Without room for the response nothing can be said: a queue error, the chain returned empty.
    if (inBytes < <u64>K.CMD_RESP_SIZE) {
      vq_err(vq, VQ_ERR_BAD_REQUEST, head);
      return 0;
    }
    const resp = reply_cursor();
    resp.init(iov, iov.out, iov.count);
    cmd_reset(c);
    c.dev = dev;
    c.head = head;
    c.table = changetype<IoCtxTable>(<usize>vq.private_data);
    c.desc_sense = 0;
    const reqSize = dev.req_size;
    if (outBytes < <u64>reqSize) return respond_only(c, resp, K.VIRTIO_SCSI_S_BAD_TARGET);
    const hdr = scratch() + SCRATCH_HDR;
    const dout = data_out();
    dout.init(iov, 0, iov.out);
    dout.read(hdr, reqSize);
    const tpg = header_tpg(dev, hdr);
    if (tpg === null) return respond_only(c, resp, K.VIRTIO_SCSI_S_BAD_TARGET);
    c.tpg = tpg;
    c.lun_id = lun_number(hdr);
    const lun = tpg_lun(tpg, c.lun_id);
    c.lun = lun;
    c.tag = load<u64>(hdr, 8);
    const pi = (dev.features & SCSI_DEV_F_T10_PI) != 0;
    c.cdb = hdr + (pi ? K.CMD_REQ_PI_CDB_OFF : K.CMD_REQ_CDB_OFF);
    const din = data_in();
    din.init(iov, iov.out, iov.count);
    din.skip(K.CMD_RESP_SIZE);
    // vhost-scsi's rule: data-out if the readable part is longer than the header, else data-in
    // if the writable part is longer than the response, else no data.
    if (outBytes > <u64>reqSize) {
      c.dir = DIR_TO_DEVICE;
      c.buf_len = outBytes - reqSize;
    } else if (inBytes > <u64>K.CMD_RESP_SIZE) {
      c.dir = DIR_FROM_DEVICE;
      c.buf_len = inBytes - K.CMD_RESP_SIZE;
    } else {
      c.dir = DIR_NONE;
      c.buf_len = 0;
    }
    if (pi) {
      // Protection information precedes the data; this target keeps none, so it is skipped.
      // As vhost-scsi: pi_bytesout needs data-out, else pi_bytesin needs data-in, and the PI
      // bytes must fit the data part; any other combination is BAD_TARGET.
      const piOut = <u64>load<u32>(hdr, 19);
      const piIn = <u64>load<u32>(hdr, 23);
      const piBytes = piOut != 0 ? piOut : piIn;
      const piDir = piOut != 0 ? DIR_TO_DEVICE : DIR_FROM_DEVICE;
      if (piBytes != 0) {
        if (c.dir != piDir || piBytes > c.buf_len) return respond_only(c, resp, K.VIRTIO_SCSI_S_BAD_TARGET);
        if (c.dir == DIR_TO_DEVICE) dout.skip(piBytes);
        else din.skip(piBytes);
        c.buf_len -= piBytes;
      }
    }
    // A variable-length CDB (SPC-5 4.2.3) longer than the CDB field cannot have arrived whole:
    // vhost-scsi answers BAD_TARGET (docs/design-notes.md).
    if (load<u8>(c.cdb) == K.VARIABLE_LENGTH_CMD && <u32>load<u8>(c.cdb, 7) + 8 > K.VIRTIO_SCSI_CDB_SIZE) {
      return respond_only(c, resp, K.VIRTIO_SCSI_S_BAD_TARGET);
    }
    if (lun !== null && (lun.flags & LUN_F_DSENSE) != 0) c.desc_sense = 1;
    // RAM READs and WRITEs of a batch copy their blocks together, in order, before the used ring
    // is published (copies.ts); any other command runs after those copies, as if each had been
    // done in turn.
    if (lun === null || lun.backstore != BS_RAM || !is_read_write(load<u8>(c.cdb))) copies_flush();
    scsi_dispatch(c);
    if (c.pending != 0) return REQUEST_PENDING;
    return write_response(c, resp);
  }
}
