// The commands this target supports, with their CDB usage maps (SPC-5 6.35.3), for REPORT
// SUPPORTED OPERATION CODES. Each row: opcode, service action + 1 (0: none), CDB length, then
// the usage map padded to 16 bytes. The dispatcher (dispatch.ts) must agree with this table;
// a test checks that every row is served.
const ROW: u32 = 19;
const TABLE: StaticArray<u8> = [
  0x00, 0, 6, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // TEST UNIT READY
  0x03, 0, 6, 0xff, 0x01, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // REQUEST SENSE
  0x08, 0, 6, 0xff, 0x1f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // READ(6)
  0x0a, 0, 6, 0xff, 0x1f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // WRITE(6)
  0x12, 0, 6, 0xff, 0x01, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // INQUIRY
  0x15, 0, 6, 0xff, 0x11, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // MODE SELECT(6)
  0x16, 0, 6, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // RESERVE(6)
  0x17, 0, 6, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // RELEASE(6)
  0x1a, 0, 6, 0xff, 0x08, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // MODE SENSE(6)
  0x1b, 0, 6, 0xff, 0x01, 0, 0, 0xf3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // START STOP UNIT
  0x1e, 0, 6, 0xff, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // PREVENT ALLOW MEDIUM REMOVAL
  0x25, 0, 10, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // READ CAPACITY(10)
  0x28, 0, 10, 0xff, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // READ(10)
  0x2a, 0, 10, 0xff, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // WRITE(10)
  0x2e, 0, 10, 0xff, 0xf6, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // WRITE AND VERIFY(10)
  0x2f, 0, 10, 0xff, 0xf6, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // VERIFY(10)
  0x35, 0, 10, 0xff, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // SYNCHRONIZE CACHE(10)
  0x41, 0, 10, 0xff, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // WRITE SAME(10)
  0x42, 0, 10, 0xff, 0x01, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // UNMAP
  0x55, 0, 10, 0xff, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // MODE SELECT(10)
  0x56, 0, 10, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // RESERVE(10)
  0x57, 0, 10, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // RELEASE(10)
  0x5a, 0, 10, 0xff, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // MODE SENSE(10)
  0x5e, 0x01, 10, 0xff, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE IN, READ KEYS
  0x5e, 0x02, 10, 0xff, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE IN, READ RESERVATION
  0x5e, 0x03, 10, 0xff, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE IN, REPORT CAPABILITIES
  0x5e, 0x04, 10, 0xff, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE IN, READ FULL STATUS
  0x5f, 0x01, 10, 0xff, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE OUT, REGISTER
  0x5f, 0x02, 10, 0xff, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE OUT, RESERVE
  0x5f, 0x03, 10, 0xff, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE OUT, RELEASE
  0x5f, 0x04, 10, 0xff, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE OUT, CLEAR
  0x5f, 0x05, 10, 0xff, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE OUT, PREEMPT
  0x5f, 0x06, 10, 0xff, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE OUT, PREEMPT AND ABORT
  0x5f, 0x07, 10, 0xff, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, // PERSISTENT RESERVE OUT, REGISTER AND IGNORE EXISTING KEY
  0x88, 0, 16, 0xff, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, // READ(16)
  0x89, 0, 16, 0xff, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0x1f, 0, // COMPARE AND WRITE
  0x8a, 0, 16, 0xff, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, // WRITE(16)
  0x8e, 0, 16, 0xff, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, // WRITE AND VERIFY(16)
  0x8f, 0, 16, 0xff, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, // VERIFY(16)
  0x91, 0, 16, 0xff, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, // SYNCHRONIZE CACHE(16)
  0x93, 0, 16, 0xff, 0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, // WRITE SAME(16)
  0x9e, 0x11, 16, 0xff, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, // READ CAPACITY(16)
  0xa0, 0, 12, 0xff, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, // REPORT LUNS
  0xa3, 0x0d, 12, 0xff, 0x1f, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, // REPORT SUPPORTED OPERATION CODES
  0xa8, 0, 12, 0xff, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, 0, 0, 0, 0, // READ(12)
  0xaa, 0, 12, 0xff, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, 0, 0, 0, 0, // WRITE(12)
];

/** Rows of the supported-commands table. */
export function opcode_count(): u32 {
  return <u32>TABLE.length / ROW;
}

/** Row i as (opcode << 16) | ((service action + 1) << 8) | CDB length. */
export function opcode_row(i: u32): u32 {
  const r = i * ROW;
  return (<u32>unchecked(TABLE[r]) << 16) | (<u32>unchecked(TABLE[r + 1]) << 8) | <u32>unchecked(TABLE[r + 2]);
}

/** Commands only some LUNs serve: UNMAP those with logical block provisioning, COMPARE AND WRITE in-place ones. */
export const OFFER_UNMAP: u32 = 1;
export const OFFER_CAW: u32 = 2;
const UNMAP_OP: u32 = 0x42;
const CAW_OP: u32 = 0x89;

/** Whether a LUN that offers `offers` (OFFER_*) serves opcode op. */
function offered(op: u32, offers: u32): bool {
  if (op == UNMAP_OP) return (offers & OFFER_UNMAP) != 0;
  if (op == CAW_OP) return (offers & OFFER_CAW) != 0;
  return true;
}

/** The row for opcode (and service action, or -1 for "any"), or -1. */
function find(op: u32, sa: i32, offers: u32): i32 {
  if (!offered(op, offers)) return -1;
  for (let i: u32 = 0; i < opcode_count(); i++) {
    const r = i * ROW;
    if (<u32>unchecked(TABLE[r]) != op) continue;
    const rowSa = <i32>unchecked(TABLE[r + 1]) - 1;
    if (sa < 0 || rowSa == sa) return <i32>i;
  }
  return -1;
}

function put_be16(p: usize, v: u32): void {
  store<u8>(p, <u8>(v >> 8));
  store<u8>(p, <u8>v, 1);
}

/** Command timeouts descriptor (SPC-5 6.35.4): no timeouts given. */
function put_timeouts(p: usize): u32 {
  memory.fill(p, 0, 12);
  put_be16(p, 0x0a);
  return 12;
}

/**
 * Builds REPORT SUPPORTED OPERATION CODES parameter data at buf for reporting options `options`
 * (0: all commands, 1: one opcode, 2: opcode + service action, 3: opcode with optional service
 * action) for a LUN that offers the optional commands in `offers` (OFFER_*). Returns its length,
 * or -(CDB byte of the invalid field).
 */
export function report_opcodes(options: u32, op: u32, sa: u32, rctd: bool, offers: u32, buf: usize): i32 {
  if (options == 0) {
    let p = buf + 4;
    for (let i: u32 = 0; i < opcode_count(); i++) {
      const r = i * ROW;
      if (!offered(<u32>unchecked(TABLE[r]), offers)) continue;
      const rowSa = <u32>unchecked(TABLE[r + 1]);
      memory.fill(p, 0, 8);
      store<u8>(p, unchecked(TABLE[r]));
      if (rowSa != 0) put_be16(p + 2, rowSa - 1);
      store<u8>(p, (rctd ? 0x02 : 0) | (rowSa != 0 ? 0x01 : 0), 5);
      put_be16(p + 6, <u32>unchecked(TABLE[r + 2]));
      p += 8;
      if (rctd) p += put_timeouts(p);
    }
    const len = <u32>(p - buf);
    store<u32>(buf, bswap<u32>(len - 4));
    return <i32>len;
  }
  if (options > 3) return -2;
  let row: i32;
  if (options == 1) {
    row = find(op, -1, offers);
    if (row >= 0 && unchecked(TABLE[<u32>row * ROW + 1]) != 0) return -3; // has service actions
  } else if (options == 2) {
    row = find(op, -1, offers);
    if (row >= 0 && unchecked(TABLE[<u32>row * ROW + 1]) == 0) return -3; // has none
    row = find(op, <i32>sa, offers);
  } else {
    row = find(op, <i32>sa, offers);
    if (row < 0) row = find(op, -1, offers);
    if (row >= 0 && unchecked(TABLE[<u32>row * ROW + 1]) != 0 && <u32>unchecked(TABLE[<u32>row * ROW + 1]) - 1 != sa) row = -1;
  }
  memory.fill(buf, 0, 4);
  if (row < 0) {
    store<u8>(buf, 0x01, 1); // SUPPORT 001b: not supported
    return 4;
  }
  const r = <u32>row * ROW;
  const cdbLen = <u32>unchecked(TABLE[r + 2]);
  store<u8>(buf, (rctd ? 0x80 : 0) | 0x03, 1); // SUPPORT 011b: supported as in the standard
  put_be16(buf + 2, cdbLen);
  for (let k: u32 = 0; k < cdbLen; k++) store<u8>(buf + 4 + k, unchecked(TABLE[r + 3 + k]));
  let len = 4 + cdbLen;
  if (rctd) len += put_timeouts(buf + len);
  return <i32>len;
}
