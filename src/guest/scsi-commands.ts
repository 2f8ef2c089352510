// SCSI operation codes and status (SPC-5, SBC-4) and small CDB builders for the guest side.
import { SAI_READ_CAPACITY_16 } from "../wasm/abi.generated.js";
export { SAI_READ_CAPACITY_16, MI_REPORT_SUPPORTED_OPERATION_CODES } from "../wasm/abi.generated.js";

export const ScsiOp = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  READ_6: 0x08,
  WRITE_6: 0x0a,
  INQUIRY: 0x12,
  MODE_SELECT_6: 0x15,
  RESERVE_6: 0x16,
  RELEASE_6: 0x17,
  MODE_SENSE_6: 0x1a,
  START_STOP_UNIT: 0x1b,
  PREVENT_ALLOW_MEDIUM_REMOVAL: 0x1e,
  READ_CAPACITY_10: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  WRITE_VERIFY_10: 0x2e,
  VERIFY_10: 0x2f,
  SYNCHRONIZE_CACHE_10: 0x35,
  WRITE_SAME_10: 0x41,
  UNMAP: 0x42,
  MODE_SELECT_10: 0x55,
  RESERVE_10: 0x56,
  RELEASE_10: 0x57,
  MODE_SENSE_10: 0x5a,
  PERSISTENT_RESERVE_IN: 0x5e,
  PERSISTENT_RESERVE_OUT: 0x5f,
  READ_16: 0x88,
  WRITE_16: 0x8a,
  WRITE_VERIFY_16: 0x8e,
  VERIFY_16: 0x8f,
  SYNCHRONIZE_CACHE_16: 0x91,
  WRITE_SAME_16: 0x93,
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
  MAINTENANCE_IN: 0xa3,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
} as const;

export const SamStatus = {
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  BUSY: 0x08,
  RESERVATION_CONFLICT: 0x18,
  TASK_SET_FULL: 0x28,
} as const;

/** A CDB of n bytes with big-endian fields set at the given offsets. */
export function cdb(n: number, op: number, fields: [offset: number, bytes: number, value: number | bigint][] = []): Uint8Array {
  const b = new Uint8Array(n);
  b[0] = op;
  const dv = new DataView(b.buffer);
  for (const [at, bytes, v] of fields) {
    if (bytes === 1) b[at] = Number(v);
    else if (bytes === 2) dv.setUint16(at, Number(v));
    else if (bytes === 3) {
      dv.setUint8(at, Number(v) >> 16);
      dv.setUint16(at + 1, Number(v) & 0xffff);
    } else if (bytes === 4) dv.setUint32(at, Number(v));
    else dv.setBigUint64(at, BigInt(v));
  }
  return b;
}

/** READ(16)/WRITE(16) of n blocks at lba. */
export const read16 = (lba: number | bigint, n: number) =>
  cdb(16, ScsiOp.READ_16, [
    [2, 8, lba],
    [10, 4, n],
  ]);
export const write16 = (lba: number | bigint, n: number) =>
  cdb(16, ScsiOp.WRITE_16, [
    [2, 8, lba],
    [10, 4, n],
  ]);
/** READ(10)/WRITE(10) of n blocks at lba. */
export const read10 = (lba: number, n: number) =>
  cdb(10, ScsiOp.READ_10, [
    [2, 4, lba],
    [7, 2, n],
  ]);
export const write10 = (lba: number, n: number) =>
  cdb(10, ScsiOp.WRITE_10, [
    [2, 4, lba],
    [7, 2, n],
  ]);
export const inquiry = (alloc: number, page?: number) =>
  cdb(
    6,
    ScsiOp.INQUIRY,
    page === undefined
      ? [[3, 2, alloc]]
      : [
          [1, 1, 1],
          [2, 1, page],
          [3, 2, alloc],
        ],
  );
export const readCapacity16 = (alloc = 32) =>
  cdb(16, ScsiOp.SERVICE_ACTION_IN_16, [
    [1, 1, SAI_READ_CAPACITY_16],
    [10, 4, alloc],
  ]);
export const reportLuns = (alloc: number, select = 0) =>
  cdb(12, ScsiOp.REPORT_LUNS, [
    [2, 1, select],
    [6, 4, alloc],
  ]);
export const testUnitReady = () => cdb(6, ScsiOp.TEST_UNIT_READY);
export const requestSense = (alloc: number, desc = false) =>
  cdb(6, ScsiOp.REQUEST_SENSE, [
    [1, 1, desc ? 1 : 0],
    [4, 1, alloc],
  ]);
export const modeSense10 = (page: number, alloc: number, opts: { dbd?: boolean; llbaa?: boolean; pc?: number; subpage?: number } = {}) =>
  cdb(10, ScsiOp.MODE_SENSE_10, [
    [1, 1, (opts.dbd ? 0x08 : 0) | (opts.llbaa ? 0x10 : 0)],
    [2, 1, ((opts.pc ?? 0) << 6) | page],
    [3, 1, opts.subpage ?? 0],
    [7, 2, alloc],
  ]);
export const modeSense6 = (page: number, alloc: number, opts: { dbd?: boolean; pc?: number; subpage?: number } = {}) =>
  cdb(6, ScsiOp.MODE_SENSE_6, [
    [1, 1, opts.dbd ? 0x08 : 0],
    [2, 1, ((opts.pc ?? 0) << 6) | page],
    [3, 1, opts.subpage ?? 0],
    [4, 1, alloc],
  ]);
/** MODE SELECT(10) of `length` bytes of parameter data; page format (PF) unless told otherwise, SP to save. */
export const modeSelect10 = (length: number, opts: { pf?: boolean; sp?: boolean } = {}) =>
  cdb(10, ScsiOp.MODE_SELECT_10, [
    [1, 1, (opts.pf === false ? 0 : 0x10) | (opts.sp ? 0x01 : 0)],
    [7, 2, length],
  ]);
export const modeSelect6 = (length: number, opts: { pf?: boolean; sp?: boolean } = {}) =>
  cdb(6, ScsiOp.MODE_SELECT_6, [
    [1, 1, (opts.pf === false ? 0 : 0x10) | (opts.sp ? 0x01 : 0)],
    [4, 1, length],
  ]);

/** PERSISTENT RESERVE IN service action `sa` (PRI_*) with an allocation length. */
export const persistentReserveIn = (sa: number, alloc = 1024) =>
  cdb(10, ScsiOp.PERSISTENT_RESERVE_IN, [
    [1, 1, sa],
    [7, 2, alloc],
  ]);
/** PERSISTENT RESERVE OUT service action `sa` (PRO_*) of reservation type `type` (LU scope), with a 24-byte parameter list. */
export const persistentReserveOut = (sa: number, type = 0, length = 24) =>
  cdb(10, ScsiOp.PERSISTENT_RESERVE_OUT, [
    [1, 1, sa],
    [2, 1, type],
    [5, 4, length],
  ]);
/** PERSISTENT RESERVE OUT's basic parameter list (SPC-4 6.16.3): the nexus's key, the service action key, APTPL and the other flags. */
export function prOutParameters(key: bigint, serviceActionKey = 0n, flags: { aptpl?: boolean; allTgPt?: boolean; specIPt?: boolean } = {}): Uint8Array {
  const b = new Uint8Array(24);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, key);
  dv.setBigUint64(8, serviceActionKey);
  b[20] = (flags.specIPt ? 0x08 : 0) | (flags.allTgPt ? 0x04 : 0) | (flags.aptpl ? 0x01 : 0);
  return b;
}
export const reserve6 = () => cdb(6, ScsiOp.RESERVE_6);
export const release6 = () => cdb(6, ScsiOp.RELEASE_6);
