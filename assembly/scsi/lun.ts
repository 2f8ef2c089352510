// A logical unit as the data plane sees it: geometry, backstore, state bits, pending unit
// attentions and identification strings. The control plane fills it (src/target/) and
// publishes it in a TPG's LUN table; workers only read it, except for the atomic state words.
import {
  ASC_BUS_DEVICE_RESET_FUNCTION, ASC_CAPACITY_DATA_CHANGED, ASC_I_T_NEXUS_LOSS, ASC_POWER_ON_RESET, ASC_REGISTRATIONS_PREEMPTED,
  ASC_REPORTED_LUNS_DATA_CHANGED, ASC_RESERVATIONS_PREEMPTED, ASC_RESERVATIONS_RELEASED, ASC_MODE_PARAMETERS_CHANGED,
} from "./constants";
import { PrState, SCSI_MAX_NEXUS, pr_state_size } from "./pr-state";

export { BS_RAM, BS_NULL, BS_QUEUED } from "../ioring";

/** LUN flags. */
export const LUN_F_READ_ONLY: u32 = 1;
export const LUN_F_UNMAP: u32 = 2; // logical block provisioning: UNMAP and WRITE SAME with UNMAP
export const LUN_F_STOPPED: u32 = 4; // START STOP UNIT stopped it
export const LUN_F_PREVENT: u32 = 8; // PREVENT ALLOW MEDIUM REMOVAL prevents removal
export const LUN_F_DSENSE: u32 = 16; // control mode page D_SENSE: descriptor-format sense
export const LUN_F_WCE: u32 = 32; // caching mode page WCE: volatile write cache enabled
export const LUN_F_LBPRZ: u32 = 64; // unmapped blocks read as zeroes
export const LUN_F_RESERVED: u32 = 128; // a persistent or SPC-2 reservation exists (pr-state.ts)
export const LUN_F_CAW: u32 = 256; // a COMPARE AND WRITE holds the medium (caw.ts)
export const LUN_F_COMPARE_WRITE: u32 = 512; // COMPARE AND WRITE is offered: in place, or by a synchronous backstore

/** Unit attention conditions, each I_T nexus's own, reported lowest bit first (SAM-5 5.14). */
export const UA_POWER_ON: u32 = 1;
export const UA_NEXUS_LOSS: u32 = 2;
export const UA_LUN_RESET: u32 = 4;
export const UA_CAPACITY_CHANGED: u32 = 8;
export const UA_LUNS_CHANGED: u32 = 16;
export const UA_RESERVATIONS_PREEMPTED: u32 = 32;
export const UA_RESERVATIONS_RELEASED: u32 = 64;
export const UA_REGISTRATIONS_PREEMPTED: u32 = 128;
export const UA_MODE_PARAMETERS_CHANGED: u32 = 256;

/** The ASC/ASCQ each UA_* bit reports, by bit number. */
const UA_ASC: StaticArray<u32> = [
  ASC_POWER_ON_RESET, ASC_I_T_NEXUS_LOSS, ASC_BUS_DEVICE_RESET_FUNCTION, ASC_CAPACITY_DATA_CHANGED, ASC_REPORTED_LUNS_DATA_CHANGED,
  ASC_RESERVATIONS_PREEMPTED, ASC_RESERVATIONS_RELEASED, ASC_REGISTRATIONS_PREEMPTED, ASC_MODE_PARAMETERS_CHANGED,
];

/** Identification fields, each a fixed-size byte field after the struct. */
export const IDENT_VENDOR: u32 = 0; // T10 vendor identification, 8 bytes, space padded
export const IDENT_PRODUCT: u32 = 1; // product identification, 16 bytes
export const IDENT_REVISION: u32 = 2; // product revision level, 4 bytes
export const IDENT_SERIAL: u32 = 3; // unit serial number, up to 32 bytes, NUL padded
export const IDENT_NAA: u32 = 4; // NAA IEEE Registered Extended designator, 16 bytes
export const IDENT_TARGET: u32 = 5; // target port name (SCSI name string), up to 64 bytes
const IDENT_END: u32 = 140;
const IDENT_OFFSETS: StaticArray<u32> = [0, 8, 24, 28, 60, 76, IDENT_END];

@unmanaged export class ScsiLun {
  /** LUN number, 0..16383. */
  id: u32;
  flags: u32;
  backstore: u32;
  /** log2 of the logical block size: 9 or 12. */
  block_shift: u32;
  nblocks: u64;
  /** BS_RAM: offset of the blocks in the device heap. */
  ram: u32;
  /** BS_QUEUED: the backstore's submission queue (IoSubmitQueue). */
  sq: u32;
  /** Asynchronous requests in flight on this LUN (atomic). */
  inflight: u32;
  /** Relative target port identifier reported in VPD page 83h. */
  port: u32;
  /** Block limits (VPD page B0h). */
  max_xfer_blocks: u32;
  max_unmap_blocks: u32;
  max_unmap_descs: u32;
  max_ws_blocks: u32;

  @inline get blockSize(): u32 {
    return <u32>1 << this.block_shift;
  }
}

/** Address of identification field f of lun, and its size. */
export function lun_ident(lun: ScsiLun, f: u32): usize {
  return changetype<usize>(lun) + offsetof<ScsiLun>() + <usize>unchecked(IDENT_OFFSETS[f]);
}
export function lun_ident_len(f: u32): u32 {
  return unchecked(IDENT_OFFSETS[f + 1]) - unchecked(IDENT_OFFSETS[f]);
}

/** After the identification fields: each I_T nexus's pending UA_* bits, then the reservation state. */
const UA_OFF: usize = (offsetof<ScsiLun>() + <usize>IDENT_END + 7) & ~7;
const PR_OFF: usize = UA_OFF + (<usize>SCSI_MAX_NEXUS << 2);

/** Bytes a LUN struct with its identification fields, unit attentions and reservations occupies. */
export function lun_struct_size(): usize {
  return PR_OFF + pr_state_size();
}

/** The LUN's reservation state. */
@inline export function lun_pr(lun: ScsiLun): PrState {
  return changetype<PrState>(changetype<usize>(lun) + PR_OFF);
}

/** Length of a NUL-padded identification field (serial, target name). */
export function lun_ident_strlen(lun: ScsiLun, f: u32): u32 {
  const p = lun_ident(lun, f);
  const max = lun_ident_len(f);
  let n: u32 = 0;
  while (n < max && load<u8>(p + n) != 0) n++;
  return n;
}

/** The LUN's flags (atomic: START STOP UNIT and PREVENT ALLOW change them while the control plane may too). */
@inline export function lun_flags(lun: ScsiLun): u32 {
  return atomic.load<u32>(changetype<usize>(lun) + offsetof<ScsiLun>("flags"));
}

/** Clears then sets LUN flag bits, each atomically. */
export function lun_update_flags(lun: ScsiLun, set: u32, clear: u32): void {
  const at = changetype<usize>(lun) + offsetof<ScsiLun>("flags");
  if (clear != 0) atomic.and<u32>(at, ~clear);
  if (set != 0) atomic.or<u32>(at, set);
}

/** Address of I_T nexus n's UA_* word (atomic: the control plane and other nexuses set, workers clear). */
@inline function ua_word(lun: ScsiLun, n: u32): usize {
  return changetype<usize>(lun) + UA_OFF + (<usize>(n % SCSI_MAX_NEXUS) << 2);
}

/** The UA_* bits pending for I_T nexus n. */
@inline export function lun_ua_pending(lun: ScsiLun, n: u32): u32 {
  return atomic.load<u32>(ua_word(lun, n));
}

/** Takes I_T nexus n's highest-priority pending unit attention; returns its ASC/ASCQ or 0. */
export function lun_take_ua(lun: ScsiLun, n: u32): u32 {
  const p = ua_word(lun, n);
  while (true) {
    const ua = atomic.load<u32>(p);
    if (ua == 0) return 0;
    const bit = ua & (~ua + 1);
    if (atomic.cmpxchg<u32>(p, ua, ua & ~bit) != ua) continue;
    // A bit past the table (only a restored state could hold one) reports as the last one known.
    const i = ctz(bit);
    return unchecked(UA_ASC[i < <u32>UA_ASC.length ? i : UA_ASC.length - 1]);
  }
}

/** Clears I_T nexus n's pending unit attention bits (REPORT LUNS clears UA_LUNS_CHANGED). */
export function lun_clear_ua(lun: ScsiLun, n: u32, bits: u32): void {
  atomic.and<u32>(ua_word(lun, n), ~bits);
}

/** Sets pending unit attention bits for I_T nexus n. */
export function lun_raise_ua(lun: ScsiLun, n: u32, bits: u32): void {
  atomic.or<u32>(ua_word(lun, n), bits);
}

/** Sets pending unit attention bits for every I_T nexus (a condition of the logical unit). */
export function lun_raise_ua_all(lun: ScsiLun, bits: u32): void {
  for (let n: u32 = 0; n < SCSI_MAX_NEXUS; n++) lun_raise_ua(lun, n, bits);
}

/** Sets pending unit attention bits for every I_T nexus but n (what nexus n did, the others learn). */
export function lun_raise_ua_others(lun: ScsiLun, n: u32, bits: u32): void {
  for (let i: u32 = 0; i < SCSI_MAX_NEXUS; i++) if (i != n) lun_raise_ua(lun, i, bits);
}

/** Whether [lba, lba + n) lies within the LUN's medium (overflow-safe). */
@inline export function lun_holds(lun: ScsiLun, lba: u64, n: u64): bool {
  const cap = lun.nblocks;
  return lba <= cap && n <= cap - lba;
}
