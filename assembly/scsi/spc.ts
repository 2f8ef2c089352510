// Primary commands (SPC-5): INQUIRY with its VPD pages, REPORT LUNS, REQUEST SENSE, MODE SENSE,
// TEST UNIT READY, REPORT SUPPORTED OPERATION CODES. Each parses its CDB, checks the guest's
// buffer against the allocation length, builds its parameter data and sends what fits.
import { fill_bytes, copy_bytes } from "../bytes";
import { ScsiCmd, cmd_invalid_cdb, cmd_invalid_param, cmd_check, cmd_send, cmd_want_in, cmd_want_out, build_sense, param_buf, data_in, data_out } from "./cmd";
import {
  ScsiLun, LUN_F_COMPARE_WRITE, LUN_F_DSENSE, LUN_F_LBPRZ, LUN_F_READ_ONLY, LUN_F_UNMAP, LUN_F_WCE, UA_LUNS_CHANGED, IDENT_NAA, IDENT_PRODUCT,
  IDENT_REVISION, IDENT_SERIAL, IDENT_TARGET, IDENT_VENDOR, lun_clear_ua, lun_ident, lun_ident_strlen, lun_take_ua, lun_update_flags, lun_flags, lun_raise_ua_others, UA_MODE_PARAMETERS_CHANGED,
} from "./lun";
import { VHOST_SCSI_MAX_LUN, tpg_lun } from "./target";
import { be16, be32, put16, put32, put64 } from "./be";
import {
  ASC_LOGICAL_UNIT_NOT_SUPPORTED, ASC_PARAMETER_LIST_LENGTH_ERROR, CAW_MAX_BLOCKS, ASC_SAVING_PARAMETERS_NOT_SUPPORTED, ILLEGAL_REQUEST, NO_SENSE, PQ_NOT_CONNECTED_NO_DEVICE,
  TYPE_DISK, UNIT_ATTENTION,
} from "./constants";
import { OFFER_CAW, OFFER_UNMAP, report_opcodes } from "./opcodes";

/** TEST UNIT READY: GOOD (readiness and unit attentions are checked before dispatch). */
export function spc_test_unit_ready(c: ScsiCmd): void {}

/** INQUIRY (SPC-5 6.7): standard data or a VPD page; PQ 3 for an unused LUN number. */
export function spc_inquiry(c: ScsiCmd): void {
  const cdb = c.cdb;
  const evpd = load<u8>(cdb, 1) & 1;
  const page = <u32>load<u8>(cdb, 2);
  const alloc = be16(cdb + 3);
  if ((load<u8>(cdb, 1) & 0xfe) != 0) return cmd_invalid_cdb(c, 1);
  if (evpd == 0 && page != 0) return cmd_invalid_cdb(c, 2);
  if (!cmd_want_in(c, alloc)) return;
  const buf = param_buf();
  const lun = c.lun;
  if (lun === null) {
    // SPC-5 6.7.2: no logical unit here: qualifier 011b, type 1Fh, nothing else.
    fill_bytes(buf, 0, 36);
    store<u8>(buf, PQ_NOT_CONNECTED_NO_DEVICE);
    if (evpd == 0) {
      store<u8>(buf, 6, 2);
      store<u8>(buf, 2, 3);
      store<u8>(buf, 31, 4);
    }
    return cmd_send(c, buf, evpd == 0 ? 36 : 4, alloc);
  }
  let len: u32;
  if (evpd == 0) len = inquiry_standard(lun, buf);
  else if (page == 0x00) len = vpd_supported(buf);
  else if (page == 0x80) len = vpd_serial(lun, buf);
  else if (page == 0x83) len = vpd_devid(lun, buf);
  else if (page == 0xb0) len = vpd_block_limits(lun, buf);
  else if (page == 0xb1) len = vpd_block_characteristics(buf);
  else if (page == 0xb2) len = vpd_provisioning(lun, buf);
  else return cmd_invalid_cdb(c, 2);
  cmd_send(c, buf, len, alloc);
}

function inquiry_standard(lun: ScsiLun, buf: usize): u32 {
  fill_bytes(buf, 0, 36);
  store<u8>(buf, TYPE_DISK);
  store<u8>(buf, 0x07, 2); // VERSION: SPC-5
  store<u8>(buf, 0x12, 3); // HISUP, RESPONSE DATA FORMAT 2
  store<u8>(buf, 31, 4); // ADDITIONAL LENGTH
  store<u8>(buf, 0x02, 7); // CMDQUE
  copy_bytes(buf + 8, lun_ident(lun, IDENT_VENDOR), 8);
  copy_bytes(buf + 16, lun_ident(lun, IDENT_PRODUCT), 16);
  copy_bytes(buf + 32, lun_ident(lun, IDENT_REVISION), 4);
  return 36;
}

/** VPD page header: peripheral byte, page code, 16-bit page length. */
function vpd_header(buf: usize, page: u32, len: u32): u32 {
  store<u8>(buf, TYPE_DISK);
  store<u8>(buf, <u8>page, 1);
  put16(buf + 2, len);
  return len + 4;
}

/**
 * The VPD pages served. Module level, so that it is static data: a StaticArray literal inside a
 * function body is allocated on every call (found by the fuzzer: it grew the runtime's bump
 * heap past the static area into the device heap).
 */
const VPD_PAGES: StaticArray<u8> = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

function vpd_supported(buf: usize): u32 {
  for (let i = 0; i < VPD_PAGES.length; i++) store<u8>(buf + 4 + i, unchecked(VPD_PAGES[i]));
  return vpd_header(buf, 0x00, VPD_PAGES.length);
}

function vpd_serial(lun: ScsiLun, buf: usize): u32 {
  const n = lun_ident_strlen(lun, IDENT_SERIAL);
  copy_bytes(buf + 4, lun_ident(lun, IDENT_SERIAL), n);
  return vpd_header(buf, 0x80, n);
}

/** Device identification (SPC-5 7.7.6): NAA, T10 vendor ID, target port name, relative port. */
function vpd_devid(lun: ScsiLun, buf: usize): u32 {
  let p = buf + 4;
  // NAA IEEE Registered Extended (type 3), binary, associated with the logical unit.
  store<u8>(p, 0x01);
  store<u8>(p, 0x03, 1);
  store<u8>(p, 0, 2);
  store<u8>(p, 16, 3);
  copy_bytes(p + 4, lun_ident(lun, IDENT_NAA), 16);
  p += 20;
  // T10 vendor ID (type 1), ASCII: vendor identification followed by the unit serial number.
  const sn = lun_ident_strlen(lun, IDENT_SERIAL);
  store<u8>(p, 0x02);
  store<u8>(p, 0x01, 1);
  store<u8>(p, 0, 2);
  store<u8>(p, <u8>(8 + sn), 3);
  copy_bytes(p + 4, lun_ident(lun, IDENT_VENDOR), 8);
  copy_bytes(p + 12, lun_ident(lun, IDENT_SERIAL), sn);
  p += 12 + sn;
  // Relative target port (type 4), associated with the target port (PIV=1, association 01b).
  store<u8>(p, 0x61);
  store<u8>(p, 0x94, 1);
  store<u8>(p, 0, 2);
  store<u8>(p, 4, 3);
  put32(p + 4, lun.port & 0xffff);
  p += 8;
  // SCSI name string (type 8) of the target port, UTF-8, NUL-terminated and padded to 4 bytes.
  const tn = lun_ident_strlen(lun, IDENT_TARGET);
  if (tn > 0) {
    const padded = (tn + 4) & ~3;
    store<u8>(p, 0x63);
    store<u8>(p, 0x98, 1);
    store<u8>(p, 0, 2);
    store<u8>(p, <u8>padded, 3);
    fill_bytes(p + 4, 0, padded);
    copy_bytes(p + 4, lun_ident(lun, IDENT_TARGET), tn);
    p += 4 + padded;
  }
  return vpd_header(buf, 0x83, <u32>(p - buf - 4));
}

/** Block limits (SBC-4 6.6.4). */
function vpd_block_limits(lun: ScsiLun, buf: usize): u32 {
  fill_bytes(buf, 0, 64);
  store<u8>(buf, 0x01, 4); // WSNZ: WRITE SAME with zero blocks is not supported
  if ((lun.flags & LUN_F_COMPARE_WRITE) != 0) store<u8>(buf, <u8>CAW_MAX_BLOCKS, 5); // MAXIMUM COMPARE AND WRITE LENGTH
  put16(buf + 6, 1); // OPTIMAL TRANSFER LENGTH GRANULARITY
  // SBC-4 6.6.4: OPTIMAL TRANSFER LENGTH must not exceed MAXIMUM TRANSFER LENGTH; the largest
  // power of two within it (the control plane keeps the maximum within the HBA's max_sectors).
  const max = lun.max_xfer_blocks;
  put32(buf + 8, max);
  put32(buf + 12, max == 0 ? 0 : <u32>1 << (31 - clz(max)));
  if ((lun.flags & LUN_F_UNMAP) != 0) {
    put32(buf + 20, lun.max_unmap_blocks);
    put32(buf + 24, lun.max_unmap_descs);
    put32(buf + 28, 1); // OPTIMAL UNMAP GRANULARITY
  }
  put64(buf + 36, <u64>lun.max_ws_blocks);
  return vpd_header(buf, 0xb0, 0x3c);
}

/** Block device characteristics (SBC-4 6.6.2): a non-rotating medium. */
function vpd_block_characteristics(buf: usize): u32 {
  fill_bytes(buf, 0, 64);
  put16(buf + 4, 1); // MEDIUM ROTATION RATE: non-rotating
  return vpd_header(buf, 0xb1, 0x3c);
}

/** Logical block provisioning (SBC-4 6.6.6). */
function vpd_provisioning(lun: ScsiLun, buf: usize): u32 {
  fill_bytes(buf, 0, 8);
  if ((lun.flags & LUN_F_UNMAP) != 0) {
    // LBPU, LBPWS, LBPWS10, and LBPRZ when unmapped blocks read as zero.
    store<u8>(buf, 0xe0 | ((lun.flags & LUN_F_LBPRZ) != 0 ? 0x04 : 0), 5);
    store<u8>(buf, 0x02, 6); // PROVISIONING TYPE: thin
  }
  return vpd_header(buf, 0xb2, 4);
}

/** LUN number as a Linux guest encodes it: peripheral (< 256) or flat space addressing. */
export function put_lun(p: usize, id: u32): void {
  store<u64>(p, 0);
  if (id < 256) {
    store<u8>(p, <u8>id, 1);
  } else {
    store<u8>(p, <u8>(0x40 | (id >> 8)));
    store<u8>(p, <u8>id, 1);
  }
}

/** REPORT LUNS (SPC-5 6.33): the TPG's LUNs, streamed into the buffer up to the allocation length. */
export function spc_report_luns(c: ScsiCmd): void {
  const cdb = c.cdb;
  const select = <u32>load<u8>(cdb, 2);
  const alloc = be32(cdb + 6);
  if (select > 2) return cmd_invalid_cdb(c, 2);
  if (alloc < 16) return cmd_invalid_cdb(c, 6);
  if (!cmd_want_in(c, alloc)) return;
  const tpg = c.tpg;
  let count: u32 = 0;
  for (let id: u32 = 0; id < VHOST_SCSI_MAX_LUN; id++) if (tpg_lun(tpg, id) !== null) count++;
  const buf = param_buf();
  // No LUN at all: report LUN 0, as LIO does, so that the guest's scan finds the target.
  const listed = count == 0 ? 1 : count;
  put32(buf, listed * 8);
  put32(buf + 4, 0);
  let left = alloc;
  const dst = data_in();
  let n = dst.write(buf, 8);
  left -= n;
  c.done += n;
  if (count == 0) {
    put_lun(buf, 0);
    c.done += dst.write(buf, left < 8 ? left : 8);
  } else {
    for (let id: u32 = 0; id < VHOST_SCSI_MAX_LUN && left > 0; id++) {
      if (tpg_lun(tpg, id) === null) continue;
      put_lun(buf, id);
      n = dst.write(buf, left < 8 ? left : 8);
      left -= n;
      c.done += n;
    }
  }
  // SPC-5 6.33: REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED.
  const lun = c.lun;
  if (lun !== null) lun_clear_ua(lun, c.dev.nexus, UA_LUNS_CHANGED);
}

/** REQUEST SENSE (SPC-5 6.39): a pending unit attention, LOGICAL UNIT NOT SUPPORTED, or no sense. */
export function spc_request_sense(c: ScsiCmd): void {
  const cdb = c.cdb;
  const desc = (load<u8>(cdb, 1) & 1) != 0;
  const alloc = <u32>load<u8>(cdb, 4);
  if ((load<u8>(cdb, 1) & 0xfe) != 0) return cmd_invalid_cdb(c, 1);
  if (!cmd_want_in(c, alloc)) return;
  // The sense data is returned as parameter data with GOOD status: build it in a copy of the
  // command state so that the command itself stays GOOD.
  const lun = c.lun;
  const saveKey = c.sense_key;
  const saveAsc = c.asc;
  if (lun === null) {
    c.sense_key = ILLEGAL_REQUEST;
    c.asc = ASC_LOGICAL_UNIT_NOT_SUPPORTED;
  } else {
    const ua = lun_take_ua(lun, c.dev.nexus);
    c.sense_key = ua != 0 ? UNIT_ATTENTION : NO_SENSE;
    c.asc = ua;
  }
  const buf = param_buf();
  const len = build_sense(c, buf, desc);
  c.sense_key = saveKey;
  c.asc = saveAsc;
  cmd_send(c, buf, len, alloc);
}

// ---- MODE SENSE (SPC-5 6.13, 6.14) ----

const PC_CURRENT: u32 = 0;
const PC_CHANGEABLE: u32 = 1;

/** Caching mode page (SBC-4 6.5.5): WCE as set (by the configuration or MODE SELECT), its one changeable bit. */
function page_caching(lun: ScsiLun, pc: u32, p: usize): u32 {
  fill_bytes(p, 0, 20);
  store<u8>(p, 0x08);
  store<u8>(p, 0x12, 1);
  if (pc == PC_CHANGEABLE || (lun_flags(lun) & LUN_F_WCE) != 0) store<u8>(p, 0x04, 2);
  return 20;
}

/** Control mode page (SPC-5 7.5.8): D_SENSE as configured, TAS off, unrestricted reordering. */
function page_control(lun: ScsiLun, pc: u32, p: usize): u32 {
  fill_bytes(p, 0, 12);
  store<u8>(p, 0x0a);
  store<u8>(p, 0x0a, 1);
  if (pc != PC_CHANGEABLE && (lun.flags & LUN_F_DSENSE) != 0) store<u8>(p, 0x04, 2);
  if (pc != PC_CHANGEABLE) store<u8>(p, 0x10, 3); // QUEUE ALGORITHM MODIFIER 1: unrestricted
  if (pc != PC_CHANGEABLE) put16(p + 10, 0xffff); // BUSY TIMEOUT PERIOD: unlimited (not changeable)
  return 12;
}

export function spc_mode_sense(c: ScsiCmd, ten: bool): void {
  const cdb = c.cdb;
  const lun = changetype<ScsiLun>(c.lun);
  const dbd = (load<u8>(cdb, 1) & 0x08) != 0;
  const llbaa = ten && (load<u8>(cdb, 1) & 0x10) != 0;
  const pc = <u32>load<u8>(cdb, 2) >> 6;
  const page = <u32>load<u8>(cdb, 2) & 0x3f;
  const subpage = <u32>load<u8>(cdb, 3);
  const alloc = ten ? be16(cdb + 7) : <u32>load<u8>(cdb, 4);
  if (pc == 3) return cmd_check(c, ILLEGAL_REQUEST, ASC_SAVING_PARAMETERS_NOT_SUPPORTED);
  if (page != 0x08 && page != 0x0a && page != 0x3f) return cmd_invalid_cdb(c, 2, 5);
  if (subpage != 0 && !(page == 0x3f && subpage == 0xff)) return cmd_invalid_cdb(c, 3);
  if (!cmd_want_in(c, alloc)) return;
  const buf = param_buf();
  const hdr: u32 = ten ? 8 : 4;
  const bdl: u32 = dbd ? 0 : llbaa ? 16 : 8;
  fill_bytes(buf, 0, hdr);
  // Device-specific parameter (SBC-4 6.5.1): WP, DPOFUA.
  store<u8>(buf + (ten ? 3 : 2), 0x10 | ((lun.flags & LUN_F_READ_ONLY) != 0 ? 0x80 : 0));
  let p = buf + hdr;
  if (bdl == 8) {
    put32(p, lun.nblocks > 0xffffffff ? 0xffffffff : <u32>lun.nblocks);
    put32(p + 4, lun.blockSize & 0xffffff);
  } else if (bdl == 16) {
    put64(p, lun.nblocks);
    put32(p + 8, 0);
    put32(p + 12, lun.blockSize);
  }
  p += bdl;
  if (page == 0x08 || page == 0x3f) p += page_caching(lun, pc, p);
  if (page == 0x0a || page == 0x3f) p += page_control(lun, pc, p);
  const len = <u32>(p - buf);
  if (ten) {
    put16(buf, len - 2);
    if (llbaa && bdl == 16) store<u8>(buf, 0x01, 4);
    put16(buf + 6, bdl);
  } else {
    store<u8>(buf, <u8>(len - 1));
    store<u8>(buf, <u8>bdl, 3);
  }
  cmd_send(c, buf, len, alloc);
}

/** A mode page this target has (PAGE CODE), built into p for page control pc; 0 when it has none. */
function mode_page(lun: ScsiLun, code: u32, pc: u32, p: usize): u32 {
  if (code == 0x08) return page_caching(lun, pc, p);
  if (code == 0x0a) return page_control(lun, pc, p);
  return 0;
}

/**
 * MODE SELECT(6/10) (SPC-5 6.11, 6.12), as LIO takes it: page format only, no saving; block
 * descriptors must describe the LUN as it is; each page must equal its current values except
 * where MODE SENSE's changeable values allow (the caching page's WCE), else INVALID FIELD IN
 * PARAMETER LIST pointing at the first differing bit. Nothing changes unless every page is good.
 */
export function spc_mode_select(c: ScsiCmd, ten: bool): void {
  const cdb = c.cdb;
  const lun = changetype<ScsiLun>(c.lun);
  const b1 = <u32>load<u8>(cdb, 1);
  if ((b1 & 0x01) != 0) return cmd_invalid_cdb(c, 1, 0); // SP: saving is not supported
  if ((b1 & 0x10) == 0) return cmd_invalid_cdb(c, 1, 4); // PF: only the page format
  const plen = ten ? be16(cdb + 7) : <u32>load<u8>(cdb, 4);
  if (plen == 0) return;
  const hdr: u32 = ten ? 8 : 4;
  if (plen < hdr) return cmd_check(c, ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
  if (plen > 512) return cmd_invalid_cdb(c, ten ? 7 : 4);
  if (!cmd_want_out(c, plen)) return;
  const buf = param_buf();
  const got = data_out().read(buf, plen);
  c.done += got;
  if (got < plen) return cmd_check(c, ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
  const longlba = ten && (load<u8>(buf, 4) & 0x01) != 0;
  const bdl = ten ? be16(buf + 6) : <u32>load<u8>(buf, 3);
  if (bdl != 0 && bdl != (longlba ? 16 : 8)) return cmd_invalid_param(c, ten ? 6 : 3);
  if (hdr + bdl > plen) return cmd_check(c, ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
  if (bdl != 0) {
    // The block descriptor (SBC-4 6.5.2): NUMBER OF LOGICAL BLOCKS 0 or the capacity, the LUN's block length.
    const d = buf + hdr;
    const blocks: u64 = longlba ? (<u64>be32(d) << 32) | <u64>be32(d + 4) : <u64>be32(d);
    const cap: u64 = longlba || lun.nblocks < 0xffffffff ? lun.nblocks : 0xffffffff;
    if (blocks != 0 && blocks != cap) return cmd_invalid_param(c, hdr);
    const blen = longlba ? be32(d + 12) : be32(d + 4) & 0xffffff;
    if (blen != lun.blockSize) return cmd_invalid_param(c, hdr + (longlba ? 12 : 5));
  }
  // The current and changeable values of the page being checked, past the parameter list (at most 512 bytes).
  const cur = buf + 512;
  const chg = buf + 576;
  let wce: i32 = -1;
  for (let off = hdr + bdl; off < plen; ) {
    if (off + 2 > plen) return cmd_check(c, ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
    const b0 = <u32>load<u8>(buf + off);
    if ((b0 & 0x40) != 0) return cmd_invalid_param(c, off, 6); // SPF: no subpages here
    const n = mode_page(lun, b0 & 0x3f, PC_CURRENT, cur);
    if (n == 0) return cmd_invalid_param(c, off, 5);
    if (<u32>load<u8>(buf + off, 1) + 2 != n) return cmd_invalid_param(c, off + 1);
    if (off + n > plen) return cmd_check(c, ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR);
    mode_page(lun, b0 & 0x3f, PC_CHANGEABLE, chg);
    for (let i: u32 = 2; i < n; i++) {
      const diff = (<u32>load<u8>(buf + off + i) ^ <u32>load<u8>(cur + i)) & ~<u32>load<u8>(chg + i) & 0xff;
      if (diff != 0) return cmd_invalid_param(c, off + i, <i32>(31 - clz<u32>(diff)));
    }
    if ((b0 & 0x3f) == 0x08) wce = (load<u8>(buf + off, 2) & 0x04) != 0 ? 1 : 0;
    off += n;
  }
  if (wce < 0 || (wce == 1) == ((lun_flags(lun) & LUN_F_WCE) != 0)) return;
  lun_update_flags(lun, wce == 1 ? LUN_F_WCE : 0, wce == 1 ? 0 : LUN_F_WCE);
  // SPC-5 6.11: the other I_T nexuses learn that the parameters changed.
  lun_raise_ua_others(lun, c.dev.nexus, UA_MODE_PARAMETERS_CHANGED);
}

/** REPORT SUPPORTED OPERATION CODES (SPC-5 6.35). */
export function spc_report_opcodes(c: ScsiCmd): void {
  const cdb = c.cdb;
  const rctd = (load<u8>(cdb, 2) & 0x80) != 0;
  const options = <u32>load<u8>(cdb, 2) & 0x07;
  const alloc = be32(cdb + 6);
  if (!cmd_want_in(c, alloc)) return;
  const buf = param_buf();
  const lun = <ScsiLun>c.lun;
  const offers = ((lun.flags & LUN_F_UNMAP) != 0 ? OFFER_UNMAP : 0) | ((lun.flags & LUN_F_COMPARE_WRITE) != 0 ? OFFER_CAW : 0);
  const len = report_opcodes(options, <u32>load<u8>(cdb, 3), be16(cdb + 4), rctd, offers, buf);
  if (len < 0) return cmd_invalid_cdb(c, <u32>-len);
  cmd_send(c, buf, <u32>len, alloc);
}

