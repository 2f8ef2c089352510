// The state of the SCSI command being served (one per data plane instance, in its device
// context area), with the helpers every command uses: CHECK CONDITION with sense, the data
// transfer checks against the guest's buffers, and building sense data (SPC-5 4.4).
import { IovIter } from "../iovec";
import { fill_bytes } from "../bytes";
import { data_in_cursor, device_ctx, request_cursor, scratch } from "../instance";
import { ScsiLun } from "./lun";
import { ScsiDevice, ScsiTpg } from "./target";
import { IoCtxTable } from "../ioring";
import {
  ASC_INVALID_FIELD_IN_CDB, ASC_INVALID_FIELD_IN_PARAMETER_LIST, ILLEGAL_REQUEST, SAM_STAT_CHECK_CONDITION,
  SAM_STAT_GOOD, VIRTIO_SCSI_S_OK, VIRTIO_SCSI_S_OVERRUN, VIRTIO_SCSI_SENSE_SIZE,
} from "./constants";
import { put16, put32, put64 } from "./be";

/** Data direction of a request, from the sizes of its buffers (as vhost-scsi decides it). */
export const DIR_NONE: u32 = 0;
export const DIR_TO_DEVICE: u32 = 1; // data-out
export const DIR_FROM_DEVICE: u32 = 2; // data-in

/** Scratch layout: the CDB copy, sense build area, then room for generated parameter data. */
export const SCRATCH_HDR: usize = 0; // request header copy (up to 59 bytes)
export const SCRATCH_RESP: usize = 160; // response header being built (108 bytes)
export const SCRATCH_DATA: usize = 512; // parameter data being built
export const SCRATCH_DATA_SIZE: usize = 3584;

@unmanaged export class ScsiCmd {
  dev: ScsiDevice;
  tpg: ScsiTpg;
  /** The addressed LUN, or null when no LUN has that number. */
  lun: ScsiLun | null;
  lun_id: u32;
  /** The CDB (VIRTIO_SCSI_CDB_SIZE bytes in scratch). */
  cdb: usize;
  dir: u32;
  /** Bytes of the guest's data buffers in direction dir (after PI bytes). */
  buf_len: u64;
  /** Data bytes transferred so far. */
  done: u64;
  tag: u64;
  status: u32;
  response: u32;
  sense_key: u32;
  /** Additional sense code and qualifier, (asc << 8) | ascq. */
  asc: u32;
  /** Sense-key-specific bytes 0..2 with SKSV set, or 0. */
  sks: u32;
  info_valid: u32;
  info: u64;
  /** Report descriptor-format sense (control mode page D_SENSE). */
  desc_sense: u32;
  /** The chain being served, and its request queue's contexts (for requests served elsewhere). */
  head: u32;
  table: IoCtxTable;
  /** Set when the command went to a backstore served elsewhere and completes later. */
  pending: u32;
  /** A media-access CDB decoded: LBA, blocks, and the CDB byte of the transfer length (field pointer). */
  lba: u64;
  blocks: u32;
  len_byte: u32;
}

/** This instance's command state. */
@inline export function cmd(): ScsiCmd {
  return changetype<ScsiCmd>(device_ctx());
}
/** The data-in cursor (after the response header and PI bytes). */
@inline export function data_in(): IovIter {
  return data_in_cursor();
}
/** The data-out cursor (after the request header and PI bytes). */
@inline export function data_out(): IovIter {
  return request_cursor();
}
/** Parameter data build area. */
@inline export function param_buf(): usize {
  return scratch() + SCRATCH_DATA;
}

/** Starts a command: GOOD, no sense, nothing transferred. */
export function cmd_reset(c: ScsiCmd): void {
  c.status = SAM_STAT_GOOD;
  c.response = VIRTIO_SCSI_S_OK;
  c.sense_key = 0;
  c.asc = 0;
  c.sks = 0;
  c.info_valid = 0;
  c.done = 0;
  c.pending = 0;
}

/** CHECK CONDITION with sense key and ASC/ASCQ. */
export function cmd_check(c: ScsiCmd, key: u32, asc: u32): void {
  c.status = SAM_STAT_CHECK_CONDITION;
  c.sense_key = key;
  c.asc = asc;
}

/** ILLEGAL REQUEST, INVALID FIELD IN CDB, pointing at byte (and bit, or -1) of the CDB. */
export function cmd_invalid_cdb(c: ScsiCmd, byte: u32, bit: i32 = -1): void {
  cmd_check(c, ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
  c.sks = field_pointer(true, byte, bit);
}

/** ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST, pointing at byte/bit of the parameter data. */
export function cmd_invalid_param(c: ScsiCmd, byte: u32, bit: i32 = -1): void {
  cmd_check(c, ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAMETER_LIST);
  c.sks = field_pointer(false, byte, bit);
}

/** SPC-5 4.4.2.3: SKSV, C/D, BPV and bit pointer, then the 16-bit field pointer. */
function field_pointer(inCdb: bool, byte: u32, bit: i32): u32 {
  let b0: u32 = 0x80 | (inCdb ? 0x40 : 0);
  if (bit >= 0) b0 |= 0x08 | (<u32>bit & 7);
  return (b0 << 16) | (byte & 0xffff);
}

/**
 * Checks that the guest gave at least n bytes of data-in buffer. VIRTIO 1.2, 5.6.6.1: when the
 * CDB requires more data than the buffers hold the response is VIRTIO_SCSI_S_OVERRUN and the
 * command is not executed (nor when the buffers go the other way).
 */
export function cmd_want_in(c: ScsiCmd, n: u64): bool {
  if (n == 0 || (c.dir == DIR_FROM_DEVICE && c.buf_len >= n)) return true;
  c.response = VIRTIO_SCSI_S_OVERRUN;
  return false;
}

/** As cmd_want_in(), for n bytes of data-out. */
export function cmd_want_out(c: ScsiCmd, n: u64): bool {
  if (n == 0 || (c.dir == DIR_TO_DEVICE && c.buf_len >= n)) return true;
  c.response = VIRTIO_SCSI_S_OVERRUN;
  return false;
}

/** Sends the first min(len, alloc) bytes at src as data-in (cmd_want_in(alloc) checked). */
export function cmd_send(c: ScsiCmd, src: usize, len: u32, alloc: u32): void {
  const n = len < alloc ? len : alloc;
  c.done += data_in().write(src, n);
}

/** Builds the command's sense data at dst (fixed or descriptor format); returns its length. */
export function build_sense(c: ScsiCmd, dst: usize, descriptor: bool): u32 {
  fill_bytes(dst, 0, VIRTIO_SCSI_SENSE_SIZE);
  const asc = c.asc >> 8;
  const ascq = c.asc & 0xff;
  if (!descriptor) {
    // SPC-5 4.4.3: fixed format, response code 70h (current error).
    store<u8>(dst, 0x70 | (c.info_valid != 0 ? 0x80 : 0));
    store<u8>(dst, <u8>c.sense_key, 2);
    if (c.info_valid != 0) put32(dst + 3, <u32>c.info);
    store<u8>(dst, 10, 7);
    store<u8>(dst, <u8>asc, 12);
    store<u8>(dst, <u8>ascq, 13);
    if (c.sks != 0) {
      store<u8>(dst, <u8>(c.sks >> 16), 15);
      put16(dst + 16, c.sks & 0xffff);
    }
    return 18;
  }
  // SPC-5 4.4.2: descriptor format, response code 72h.
  store<u8>(dst, 0x72);
  store<u8>(dst, <u8>c.sense_key, 1);
  store<u8>(dst, <u8>asc, 2);
  store<u8>(dst, <u8>ascq, 3);
  let len: u32 = 8;
  if (c.info_valid != 0) {
    store<u8>(dst + len, 0x00); // information descriptor
    store<u8>(dst + len, 0x0a, 1);
    store<u8>(dst + len, 0x80, 2);
    put64(dst + len + 4, c.info);
    len += 12;
  }
  if (c.sks != 0) {
    store<u8>(dst + len, 0x02); // sense key specific descriptor
    store<u8>(dst + len, 0x06, 1);
    store<u8>(dst + len, <u8>(c.sks >> 16), 4);
    put16(dst + len + 5, c.sks & 0xffff);
    len += 8;
  }
  store<u8>(dst, <u8>(len - 8), 7);
  return len;
}
