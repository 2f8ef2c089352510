// Block commands (SBC-4): capacity, reads and writes of every CDB size, verify, cache
// synchronization, UNMAP, WRITE SAME, START STOP UNIT and PREVENT ALLOW MEDIUM REMOVAL.
// Every LBA range is checked against the capacity with overflow-safe arithmetic and every
// transfer against the guest's buffers before any data moves.
import { fill_bytes } from "../bytes";
import {
  ScsiCmd, cmd_check, cmd_invalid_cdb, cmd_invalid_param, cmd_send, cmd_want_in, cmd_want_out, data_out, param_buf,
} from "./cmd";
import {
  ScsiLun, LUN_F_LBPRZ, LUN_F_PREVENT, LUN_F_READ_ONLY, LUN_F_STOPPED, LUN_F_UNMAP, LUN_F_WCE,
  lun_flags, lun_update_flags,
} from "./lun";
import { be16, be32, be64, put32, put64 } from "./be";
import { lun_holds } from "./lun";
import { rw_blocks, rw_lba, rw_len_byte, rw_protect } from "./cdb";
import { bs_compare, bs_discard_ranges, bs_flush, bs_pattern, bs_read, bs_write, bs_zero } from "./backstore";
import { IovIter } from "../iovec";
import {
  ASC_INVALID_COMMAND_OPERATION_CODE, ASC_LBA_OUT_OF_RANGE, ASC_MEDIUM_REMOVAL_PREVENTED,
  ASC_PARAMETER_LIST_LENGTH_ERROR, ASC_WRITE_PROTECTED, DATA_PROTECT, ILLEGAL_REQUEST, WRITE_6,
  WRITE_VERIFY_10, WRITE_VERIFY_16,
} from "./constants";

/** Most UNMAP block descriptors one command may carry (what fits the parameter buffer). */
export const MAX_UNMAP_DESCS: u32 = 128;

@inline function lun_of(c: ScsiCmd): ScsiLun {
  return changetype<ScsiLun>(c.lun);
}

/** Whether [lba, lba + n) lies within the medium; sets LBA OUT OF RANGE if not. */
function check_range(c: ScsiCmd, lba: u64, n: u64): bool {
  if (lun_holds(lun_of(c), lba, n)) return true;
  cmd_check(c, ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
  return false;
}

/** DATA PROTECT, WRITE PROTECTED for a read-only LUN. */
function check_writable(c: ScsiCmd): bool {
  if ((lun_of(c).flags & LUN_F_READ_ONLY) == 0) return true;
  cmd_check(c, DATA_PROTECT, ASC_WRITE_PROTECTED);
  return false;
}

/** READ CAPACITY(10) (SBC-4 5.20). */
export function sbc_read_capacity10(c: ScsiCmd): void {
  if (!cmd_want_in(c, 8)) return;
  const lun = lun_of(c);
  const buf = param_buf();
  const last = lun.nblocks - 1;
  put32(buf, last > 0xffffffff ? 0xffffffff : <u32>last);
  put32(buf + 4, lun.blockSize);
  cmd_send(c, buf, 8, 8);
}

/** READ CAPACITY(16) (SBC-4 5.21): with logical block provisioning bits. */
export function sbc_read_capacity16(c: ScsiCmd): void {
  const alloc = be32(c.cdb + 10);
  if (!cmd_want_in(c, alloc)) return;
  const lun = lun_of(c);
  const buf = param_buf();
  fill_bytes(buf, 0, 32);
  put64(buf, lun.nblocks - 1);
  put32(buf + 8, lun.blockSize);
  if ((lun.flags & LUN_F_UNMAP) != 0) store<u8>(buf, 0x80 | ((lun.flags & LUN_F_LBPRZ) != 0 ? 0x40 : 0), 14);
  cmd_send(c, buf, 32, alloc);
}

// The fields of READ, WRITE and VERIFY CDBs by CDB size, from the group code (bits 7:5 of the
// operation code): 0 is 6 bytes, 1 and 2 are 10, 5 is 12, the rest 16 (SBC-4 5.15-5.18).

/** Decodes the LBA and block count of a READ/WRITE/VERIFY CDB of any size into c. */
function decode_rw(c: ScsiCmd): void {
  const cdb = c.cdb;
  c.lba = rw_lba(cdb);
  c.blocks = rw_blocks(cdb);
  c.len_byte = rw_len_byte(cdb);
}

/**
 * The checks every media-access transfer shares: no protection information asked for, length
 * within the block limits, range within the medium. Returns false with the sense set.
 */
function check_transfer(c: ScsiCmd): bool {
  if (rw_protect(c.cdb)) {
    cmd_invalid_cdb(c, 1, 7);
    return false;
  }
  if (c.blocks > lun_of(c).max_xfer_blocks) {
    cmd_invalid_cdb(c, c.len_byte);
    return false;
  }
  return check_range(c, c.lba, c.blocks);
}

/** READ(6/10/12/16) (SBC-4 5.15-5.18). */
export function sbc_read(c: ScsiCmd): void {
  decode_rw(c);
  if (!check_transfer(c)) return;
  const lun = lun_of(c);
  const bytes = c.blocks << lun.block_shift;
  if (!cmd_want_in(c, bytes) || bytes == 0) return;
  bs_read(c, lun, c.lba << lun.block_shift, bytes);
}

/**
 * WRITE(6/10/12/16) and WRITE AND VERIFY(10/16) (SBC-4 5.41-5.46). FUA (byte 1 bit 3 of the
 * longer CDBs) asks for the data to be durable before the answer; a WRITE AND VERIFY is too.
 */
export function sbc_write(c: ScsiCmd): void {
  if (!check_writable(c)) return;
  decode_rw(c);
  if (!check_transfer(c)) return;
  const lun = lun_of(c);
  const bytes = c.blocks << lun.block_shift;
  if (!cmd_want_out(c, bytes) || bytes == 0) return;
  bs_write(c, lun, c.lba << lun.block_shift, bytes, write_fua(c, lun));
}

/**
 * Whether command c's write must be on the medium before GOOD: a WRITE AND VERIFY, FUA (byte 1
 * bit 3 of every write CDB but WRITE(6)), or the write cache off (caching page WCE 0, SBC-4 6.5.5).
 */
export function write_fua(c: ScsiCmd, lun: ScsiLun): bool {
  const op = load<u8>(c.cdb);
  if (op == WRITE_VERIFY_10 || op == WRITE_VERIFY_16) return true;
  return (op != WRITE_6 && (load<u8>(c.cdb, 1) & 0x08) != 0) || (lun_flags(lun) & LUN_F_WCE) == 0;
}

/**
 * VERIFY(10/16) (SBC-4 5.36, 5.37): BYTCHK 00b checks the range only; 01b compares the data-out
 * buffer with the medium and reports MISCOMPARE with the offset of the first difference.
 */
export function sbc_verify(c: ScsiCmd): void {
  const bytchk = (<u32>load<u8>(c.cdb, 1) >> 1) & 3;
  if (bytchk > 1) return cmd_invalid_cdb(c, 1, 2);
  decode_rw(c);
  if (!check_transfer(c)) return;
  if (bytchk == 0) return;
  const lun = lun_of(c);
  const bytes = c.blocks << lun.block_shift;
  if (!cmd_want_out(c, bytes) || bytes == 0) return;
  bs_compare(c, lun, c.lba << lun.block_shift, bytes, data_out());
}

/** SYNCHRONIZE CACHE(10/16) (SBC-4 5.28, 5.29): number of blocks 0 means to the end. */
export function sbc_synchronize_cache(c: ScsiCmd): void {
  const cdb = c.cdb;
  const ten = load<u8>(cdb) == 0x35;
  const lba = ten ? <u64>be32(cdb + 2) : be64(cdb + 2);
  const n = ten ? be16(cdb + 7) : be32(cdb + 10);
  const lun = lun_of(c);
  if (!check_range(c, lba, n == 0 ? 0 : <u64>n)) return;
  bs_flush(c, lun);
}

/** UNMAP (SBC-4 5.32): every descriptor is checked before any block is unmapped. */
export function sbc_unmap(c: ScsiCmd): void {
  const lun = lun_of(c);
  const cdb = c.cdb;
  if ((lun.flags & LUN_F_UNMAP) == 0) return cmd_check(c, ILLEGAL_REQUEST, ASC_INVALID_COMMAND_OPERATION_CODE);
  if (!check_writable(c)) return;
  if ((load<u8>(cdb, 1) & 0x01) != 0) return cmd_invalid_cdb(c, 1, 0); // ANCHOR
  const plen = be16(cdb + 7);
  if (plen == 0) return;
  if (plen < 8) return cmd_check(c, ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
  if (!cmd_want_out(c, plen)) return;
  const buf = param_buf();
  const take = plen < 8 + MAX_UNMAP_DESCS * 16 ? plen : 8 + MAX_UNMAP_DESCS * 16;
  const got = data_out().read(buf, take);
  c.done += got;
  const bdLen = be16(buf + 2);
  if (<u32>8 + bdLen > plen) return cmd_check(c, ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
  // SBC-4 5.32.2: an incomplete last block descriptor (length not a multiple of 16) is ignored.
  const count = bdLen / 16;
  if (count > lun.max_unmap_descs || count > MAX_UNMAP_DESCS) return cmd_invalid_param(c, 2);
  // The total LBA count of all descriptors is what MAXIMUM UNMAP LBA COUNT limits.
  let total: u64 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const d = buf + 8 + i * 16;
    const n = be32(d + 8);
    total += n;
    if (total > <u64>lun.max_unmap_blocks) return cmd_invalid_param(c, 8 + i * 16 + 8);
    if (!check_range(c, be64(d), n)) return;
  }
  // The non-empty ranges, packed as (lba u64, blocks u32) over the parameter buffer (each
  // record is read before the packed list reaches it).
  let ranges: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const d = buf + 8 + i * 16;
    const lba = be64(d);
    const blocks = be32(d + 8);
    if (blocks == 0) continue;
    store<u64>(buf + ranges * 12, lba);
    store<u32>(buf + ranges * 12, blocks, 8);
    ranges++;
  }
  bs_discard_ranges(c, lun, buf, ranges);
}

/** WRITE SAME(10/16) (SBC-4 5.47, 5.48): one block written over the range, or unmapped. */
export function sbc_write_same(c: ScsiCmd): void {
  const lun = lun_of(c);
  const cdb = c.cdb;
  const sixteen = load<u8>(cdb) == 0x93;
  const b1 = <u32>load<u8>(cdb, 1);
  const lba = sixteen ? be64(cdb + 2) : <u64>be32(cdb + 2);
  const n = sixteen ? be32(cdb + 10) : be16(cdb + 7);
  const unmap = (b1 & 0x08) != 0;
  const ndob = sixteen && (b1 & 0x01) != 0;
  if (!check_writable(c)) return;
  if ((b1 & 0xe0) != 0) return cmd_invalid_cdb(c, 1, 7);
  if ((b1 & 0x10) != 0) return cmd_invalid_cdb(c, 1, 4); // ANCHOR
  if (unmap && (lun.flags & LUN_F_UNMAP) == 0) return cmd_invalid_cdb(c, 1, 3);
  if (n == 0) return cmd_invalid_cdb(c, sixteen ? 10 : 7); // WSNZ=1 in the block limits page
  if (n > lun.max_ws_blocks) return cmd_invalid_cdb(c, sixteen ? 10 : 7);
  if (!check_range(c, lba, n)) return;
  if (!ndob && !cmd_want_out(c, lun.blockSize)) return;
  const off = lba << lun.block_shift;
  const total = <u64>n << lun.block_shift;
  // SBC-4 5.48: a block of zeroes may be written as zeroes, and unmapped where unmapped blocks read as zeroes.
  const src = data_out();
  if (!ndob && !is_zero(src, lun.blockSize)) return bs_pattern(c, lun, off, total, src);
  if (!ndob) c.done += src.skip(lun.blockSize);
  bs_zero(c, lun, off, total, unmap);
}

/** Whether the next len bytes at cursor `it` are all zero (the cursor does not move). */
function is_zero(it: IovIter, len: u32): bool {
  const iov = it.iov;
  let i = it.idx;
  let o = it.off;
  let left = len;
  while (left > 0 && i < it.end) {
    const seg = iov.len(i) - o;
    const n = seg < left ? seg : left;
    const p = <usize>iov.base(i) + o;
    for (let k: u32 = 0; k < n; k++) if (load<u8>(p + k) != 0) return false;
    left -= n;
    i++;
    o = 0;
  }
  return true;
}

/** START STOP UNIT (SBC-4 5.25): START/stop and eject (refused while removal is prevented). */
export function sbc_start_stop(c: ScsiCmd): void {
  const lun = lun_of(c);
  const b4 = <u32>load<u8>(c.cdb, 4);
  if ((b4 >> 4) != 0) return cmd_invalid_cdb(c, 4, 7); // POWER CONDITION: only START_VALID (0)
  const start = (b4 & 1) != 0;
  const loej = (b4 & 2) != 0;
  if (!start && loej && (lun_flags(lun) & LUN_F_PREVENT) != 0) {
    return cmd_check(c, ILLEGAL_REQUEST, ASC_MEDIUM_REMOVAL_PREVENTED);
  }
  if (start) lun_update_flags(lun, 0, LUN_F_STOPPED);
  else lun_update_flags(lun, LUN_F_STOPPED, 0);
}

/** PREVENT ALLOW MEDIUM REMOVAL (SBC-4 5.14): 00b allow, 01b prevent; other values invalid. */
export function sbc_prevent_allow(c: ScsiCmd): void {
  const lun = lun_of(c);
  const prevent = <u32>load<u8>(c.cdb, 4) & 3;
  if (prevent > 1) return cmd_invalid_cdb(c, 4, 1);
  if (prevent == 1) lun_update_flags(lun, LUN_F_PREVENT, 0);
  else lun_update_flags(lun, 0, LUN_F_PREVENT);
}
