// Reservations (SPC-4 5.13): which I_T nexus may access a logical unit shared by several
// vhost-scsi devices. PERSISTENT RESERVE IN/OUT (SPC-4 6.15, 6.16), the older RESERVE and
// RELEASE (SPC-2 7.21, 7.16, as LIO answers them), and the RESERVATION CONFLICT check every
// other command passes through while a reservation exists. The state is the LUN's PrState,
// changed under its lock; LUN_F_RESERVED tells the dispatcher (and the RAM fast path) to look.
import { ScsiCmd, cmd_check, cmd_invalid_cdb, cmd_invalid_param, cmd_send, cmd_want_in, cmd_want_out, data_out, param_buf } from "./cmd";
import { LUN_F_RESERVED, ScsiLun, UA_REGISTRATIONS_PREEMPTED, UA_RESERVATIONS_PREEMPTED, UA_RESERVATIONS_RELEASED, lun_pr, lun_raise_ua, lun_update_flags } from "./lun";
import {
  PR_TYPE_EXCLUSIVE_ACCESS, PR_TYPE_EXCLUSIVE_ACCESS_ALL_REG, PR_TYPE_EXCLUSIVE_ACCESS_REG_ONLY, PR_TYPE_WRITE_EXCLUSIVE,
  PR_TYPE_WRITE_EXCLUSIVE_ALL_REG, PR_TYPE_WRITE_EXCLUSIVE_REG_ONLY, PrState, SCSI_MAX_NEXUS, pr_all_registrants, pr_key, pr_lock,
  pr_port, pr_unlock,
} from "./pr-state";
import { is_read, is_read_write } from "./cdb";
import { SCAN_ABORT, scan_nexuses } from "./tasks";
import { be16, be32, be64, put16, put32, put64 } from "./be";
import * as K from "./constants";

/** PERSISTENT RESERVE OUT's parameter list without SPEC_I_PT (SPC-4 6.16.3). */
const PRO_PARAM_SIZE: u32 = 24;

/** The I_T nexus a command came on: its device's place among the devices bound to the target. */
@inline function nexus_of(c: ScsiCmd): u32 {
  return c.dev.nexus;
}

@inline function registered(pr: PrState, n: u32): bool {
  return ((pr.registered >>> n) & 1) != 0;
}

/** Whether nexus n holds the persistent reservation (with an all-registrants type, every registrant does). */
function is_holder(pr: PrState, n: u32): bool {
  if (pr.holder == 0) return false;
  return pr_all_registrants(pr.type) ? registered(pr, n) : pr.holder == n + 1;
}

/** Publishes whether any reservation exists, for the dispatcher's one-flag test. */
function publish(lun: ScsiLun, pr: PrState): void {
  if (pr.holder != 0 || pr.spc2 != 0) lun_update_flags(lun, LUN_F_RESERVED, 0);
  else lun_update_flags(lun, 0, LUN_F_RESERVED);
}

/** Raises unit attention bits for every registrant in mask except nexus n. */
function raise_for(lun: ScsiLun, mask: u32, n: u32, bits: u32): void {
  for (let i: u32 = 0; i < SCSI_MAX_NEXUS; i++) if (i != n && ((mask >>> i) & 1) != 0) lun_raise_ua(lun, i, bits);
}

function unregister(pr: PrState, i: u32): void {
  pr.registered &= ~(<u32>1 << i);
  store<u64>(pr_key(pr, i), 0);
}

/** Commands that change the medium or the unit's state: what a write-exclusive reservation keeps to its holder. */
function modifies(op: u8): bool {
  if (is_read_write(op)) return !is_read(op);
  switch (op) {
    case K.WRITE_VERIFY_10: case K.WRITE_VERIFY_16: case K.WRITE_SAME_10: case K.WRITE_SAME_16: case K.UNMAP:
    case K.SYNCHRONIZE_CACHE_10: case K.SYNCHRONIZE_CACHE_16: case K.MODE_SELECT_6: case K.MODE_SELECT_10:
    case K.START_STOP_UNIT: case K.PREVENT_ALLOW_MEDIUM_REMOVAL: case K.COMPARE_AND_WRITE:
      return true;
  }
  return false;
}

/**
 * Whether the command at cdb from nexus n meets RESERVATION CONFLICT (SPC-4 5.13.1, Tables 45
 * and 46; SPC-2 5.5.1 for a RESERVE(6)/(10) holder). Only called while LUN_F_RESERVED is set.
 */
export function pr_conflict(lun: ScsiLun, n: u32, cdb: usize): bool {
  const op = load<u8>(cdb);
  const pr = lun_pr(lun);
  pr_lock(pr);
  const spc2 = pr.spc2;
  const holder = is_holder(pr, n);
  const reg = registered(pr, n);
  const type = pr.type;
  const reserved = pr.holder != 0;
  pr_unlock(pr);
  if (spc2 != 0) {
    if (spc2 == n + 1) return false;
    return !(op == K.INQUIRY || op == K.REPORT_LUNS || op == K.REQUEST_SENSE || op == K.RELEASE_6 || op == K.RELEASE_10);
  }
  if (!reserved || holder) return false;
  switch (op) {
    case K.INQUIRY: case K.REPORT_LUNS: case K.REQUEST_SENSE: case K.TEST_UNIT_READY: case K.PERSISTENT_RESERVE_IN:
    case K.RESERVE_6: case K.RESERVE_10: case K.RELEASE_6: case K.RELEASE_10:
      return false; // RESERVE and RELEASE answer for themselves (compatible reservation handling)
    case K.PERSISTENT_RESERVE_OUT: {
      const sa = <u32>load<u8>(cdb, 1) & 0x1f;
      if (sa == K.PRO_REGISTER || sa == K.PRO_REGISTER_AND_IGNORE_EXISTING_KEY) return false;
      if (sa == K.PRO_RESERVE || sa == K.PRO_REGISTER_AND_MOVE) return true;
      return !reg; // RELEASE, CLEAR, PREEMPT (AND ABORT): registrants only
    }
    case K.MODE_SENSE_6: case K.MODE_SENSE_10: case K.MAINTENANCE_IN:
      if (reg) return false;
  }
  if (reg && (type == PR_TYPE_WRITE_EXCLUSIVE_REG_ONLY || type == PR_TYPE_EXCLUSIVE_ACCESS_REG_ONLY)) return false;
  const writeExclusive = type == PR_TYPE_WRITE_EXCLUSIVE || type == PR_TYPE_WRITE_EXCLUSIVE_REG_ONLY || type == PR_TYPE_WRITE_EXCLUSIVE_ALL_REG;
  return !writeExclusive || modifies(op);
}

@inline function conflict(c: ScsiCmd): void {
  c.status = K.SAM_STAT_RESERVATION_CONFLICT;
}

// ---- PERSISTENT RESERVE IN (SPC-4 6.15) ----

/** PERSISTENT RESERVE IN: READ KEYS, READ RESERVATION, REPORT CAPABILITIES, READ FULL STATUS. */
export function spc_pr_in(c: ScsiCmd): void {
  const cdb = c.cdb;
  const sa = <u32>load<u8>(cdb, 1) & 0x1f;
  const alloc = be16(cdb + 7);
  if (sa > K.PRI_READ_FULL_STATUS) return cmd_invalid_cdb(c, 1, 4);
  if (!cmd_want_in(c, alloc)) return;
  const lun = changetype<ScsiLun>(c.lun);
  const pr = lun_pr(lun);
  const buf = param_buf();
  pr_lock(pr);
  let len: u32;
  if (sa == K.PRI_READ_KEYS) len = read_keys(pr, buf);
  else if (sa == K.PRI_READ_RESERVATION) len = read_reservation(pr, buf);
  else if (sa == K.PRI_REPORT_CAPABILITIES) len = report_capabilities(buf);
  else len = read_full_status(pr, lun, buf);
  pr_unlock(pr);
  cmd_send(c, buf, len, alloc);
}

function read_keys(pr: PrState, buf: usize): u32 {
  put32(buf, pr.generation);
  let p = buf + 8;
  for (let i: u32 = 0; i < SCSI_MAX_NEXUS; i++) {
    if (!registered(pr, i)) continue;
    put64(p, load<u64>(pr_key(pr, i)));
    p += 8;
  }
  const len = <u32>(p - buf);
  put32(buf + 4, len - 8);
  return len;
}

function read_reservation(pr: PrState, buf: usize): u32 {
  put32(buf, pr.generation);
  if (pr.holder == 0) {
    put32(buf + 4, 0);
    return 8;
  }
  put32(buf + 4, 16);
  memory.fill(buf + 8, 0, 16);
  // SPC-4 6.15.3.3: an all-registrants reservation reports key 0.
  if (!pr_all_registrants(pr.type)) put64(buf + 8, load<u64>(pr_key(pr, pr.holder - 1)));
  store<u8>(buf, <u8>pr.type, 21); // SCOPE 0 (LU_SCOPE), TYPE
  return 24;
}

function report_capabilities(buf: usize): u32 {
  memory.fill(buf, 0, 8);
  put16(buf, 8);
  store<u8>(buf, 0x10, 2); // CRH: RESERVE/RELEASE answer as compatible reservation handling says; no SIP_C, ATP_C, PTPL_C
  store<u8>(buf, 0x90, 3); // TMV: the type mask is valid; ALLOW COMMANDS 001b
  // The type mask: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; then EX_AC_AR.
  store<u8>(buf, 0x80 | 0x40 | 0x20 | 0x08 | 0x02, 4);
  store<u8>(buf, 0x01, 5);
  return 8;
}

/** SAS TransportID (SPC-4 7.6.4.6): protocol 6, then the initiator port's SAS address. */
const TRANSPORT_ID_SIZE: u32 = 24;

function read_full_status(pr: PrState, lun: ScsiLun, buf: usize): u32 {
  put32(buf, pr.generation);
  let p = buf + 8;
  for (let i: u32 = 0; i < SCSI_MAX_NEXUS; i++) {
    if (!registered(pr, i)) continue;
    memory.fill(p, 0, 24 + TRANSPORT_ID_SIZE);
    put64(p, load<u64>(pr_key(pr, i)));
    if (is_holder(pr, i)) {
      store<u8>(p, 0x01, 12); // R_HOLDER
      store<u8>(p, <u8>pr.type, 13);
    }
    put16(p + 18, lun.port); // RELATIVE TARGET PORT IDENTIFIER
    put32(p + 20, TRANSPORT_ID_SIZE);
    store<u8>(p, 0x06, 24); // FORMAT 00b, PROTOCOL IDENTIFIER 6 (SAS)
    put64(p + 28, load<u64>(pr_port(pr, i)));
    p += 24 + TRANSPORT_ID_SIZE;
  }
  const len = <u32>(p - buf);
  put32(buf + 4, len - 8);
  return len;
}

// ---- PERSISTENT RESERVE OUT (SPC-4 6.16, 5.13.5 to 5.13.11) ----

function valid_type(t: u32): bool {
  return t == PR_TYPE_WRITE_EXCLUSIVE || t == PR_TYPE_EXCLUSIVE_ACCESS || (t >= PR_TYPE_WRITE_EXCLUSIVE_REG_ONLY && t <= PR_TYPE_EXCLUSIVE_ACCESS_ALL_REG);
}

/**
 * PERSISTENT RESERVE OUT: REGISTER, REGISTER AND IGNORE EXISTING KEY, RESERVE, RELEASE, CLEAR,
 * PREEMPT, PREEMPT AND ABORT. Not supported, and refused as REPORT CAPABILITIES says: REGISTER
 * AND MOVE, SPEC_I_PT, ALL_TG_PT, APTPL (registrations do not outlive the target's process).
 */
export function spc_pr_out(c: ScsiCmd): void {
  const cdb = c.cdb;
  const sa = <u32>load<u8>(cdb, 1) & 0x1f;
  const scope = <u32>load<u8>(cdb, 2) >> 4;
  const type = <u32>load<u8>(cdb, 2) & 0x0f;
  const plen = be32(cdb + 5);
  if (sa >= K.PRO_REGISTER_AND_MOVE) return cmd_invalid_cdb(c, 1, 4);
  const typed = sa == K.PRO_RESERVE || sa == K.PRO_RELEASE || sa == K.PRO_PREEMPT || sa == K.PRO_PREEMPT_AND_ABORT;
  if (typed && scope != 0) return cmd_invalid_cdb(c, 2, 7);
  if (typed && !valid_type(type)) return cmd_invalid_cdb(c, 2, 3);
  if (plen != PRO_PARAM_SIZE) return cmd_check(c, K.ILLEGAL_REQUEST, K.ASC_PARAMETER_LIST_LENGTH_ERROR);
  if (!cmd_want_out(c, PRO_PARAM_SIZE)) return;
  const buf = param_buf();
  const got = data_out().read(buf, PRO_PARAM_SIZE);
  c.done += got;
  if (got < PRO_PARAM_SIZE) return cmd_check(c, K.ILLEGAL_REQUEST, K.ASC_PARAMETER_LIST_LENGTH_ERROR);
  const flags = <u32>load<u8>(buf, 20);
  if ((flags & 0x08) != 0) return cmd_invalid_param(c, 20, 3); // SPEC_I_PT
  if ((flags & 0x04) != 0) return cmd_invalid_param(c, 20, 2); // ALL_TG_PT
  if ((flags & 0x01) != 0) return cmd_invalid_param(c, 20, 0); // APTPL
  const key = be64(buf);
  const saKey = be64(buf + 8);
  const lun = changetype<ScsiLun>(c.lun);
  const pr = lun_pr(lun);
  const n = nexus_of(c);
  pr_lock(pr);
  if (sa == K.PRO_REGISTER || sa == K.PRO_REGISTER_AND_IGNORE_EXISTING_KEY) {
    pr_register(c, lun, pr, n, key, saKey, sa == K.PRO_REGISTER_AND_IGNORE_EXISTING_KEY);
  } else if (!registered(pr, n) || load<u64>(pr_key(pr, n)) != key) {
    conflict(c); // SPC-4 5.13.1: the reservation key must be this nexus's registered key
  } else if (sa == K.PRO_RESERVE) {
    pr_reserve(c, pr, n, type);
  } else if (sa == K.PRO_RELEASE) {
    pr_release(c, lun, pr, n, type);
  } else if (sa == K.PRO_CLEAR) {
    raise_for(lun, pr.registered, n, UA_RESERVATIONS_PREEMPTED);
    for (let i: u32 = 0; i < SCSI_MAX_NEXUS; i++) unregister(pr, i);
    pr.holder = 0;
    pr.type = 0;
    pr.generation++;
  } else {
    pr_preempt(c, lun, pr, n, type, saKey, sa == K.PRO_PREEMPT_AND_ABORT);
  }
  publish(lun, pr);
  pr_unlock(pr);
}

/** SPC-4 5.13.7: register, change or remove this nexus's key. */
function pr_register(c: ScsiCmd, lun: ScsiLun, pr: PrState, n: u32, key: u64, saKey: u64, ignore: bool): void {
  if (!registered(pr, n)) {
    if (!ignore && key != 0) return conflict(c);
    if (saKey == 0) return;
    pr.registered |= <u32>1 << n;
    store<u64>(pr_key(pr, n), saKey);
    store<u64>(pr_port(pr, n), c.dev.initiator);
    pr.generation++;
    return;
  }
  if (!ignore && key != load<u64>(pr_key(pr, n))) return conflict(c);
  if (saKey != 0) {
    store<u64>(pr_key(pr, n), saKey);
  } else {
    const wasHolder = is_holder(pr, n);
    unregister(pr, n);
    // SPC-4 5.13.11.2.3: the holder unregistering releases the reservation, except an
    // all-registrants one while others remain; registrants of a registrants-only type learn it.
    if (wasHolder && (!pr_all_registrants(pr.type) || pr.registered == 0)) {
      if (pr.type == PR_TYPE_WRITE_EXCLUSIVE_REG_ONLY || pr.type == PR_TYPE_EXCLUSIVE_ACCESS_REG_ONLY) {
        raise_for(lun, pr.registered, n, UA_RESERVATIONS_RELEASED);
      }
      pr.holder = 0;
      pr.type = 0;
    }
  }
  pr.generation++;
}

/** SPC-4 5.13.9: reserve, or GOOD again for the holder with the same type. */
function pr_reserve(c: ScsiCmd, pr: PrState, n: u32, type: u32): void {
  if (pr.holder != 0) {
    if (!is_holder(pr, n) || pr.type != type) conflict(c);
    return;
  }
  pr.holder = n + 1;
  pr.type = type;
}

/** SPC-4 5.13.11.2: the holder releases; anyone else gets GOOD and nothing changes. */
function pr_release(c: ScsiCmd, lun: ScsiLun, pr: PrState, n: u32, type: u32): void {
  if (pr.holder == 0 || !is_holder(pr, n)) return;
  if (pr.type != type) return cmd_check(c, K.ILLEGAL_REQUEST, K.ASC_INVALID_RELEASE_OF_PERSISTENT_RESERVATION);
  if (pr.type != PR_TYPE_WRITE_EXCLUSIVE && pr.type != PR_TYPE_EXCLUSIVE_ACCESS) {
    raise_for(lun, pr.registered, n, UA_RESERVATIONS_RELEASED);
  }
  pr.holder = 0;
  pr.type = 0;
}

/**
 * SPC-4 5.13.11.4: PREEMPT and PREEMPT AND ABORT. Registrations with the service action key go
 * (never this nexus's own); preempting the holder's key, or any key of an all-registrants
 * reservation with key 0, takes the reservation over with the CDB's type. PREEMPT AND ABORT also
 * aborts the preempted nexuses' commands on the LUN that backstores still hold (they answer
 * VIRTIO_SCSI_S_ABORTED when the backstore returns them).
 */
function pr_preempt(c: ScsiCmd, lun: ScsiLun, pr: PrState, n: u32, type: u32, saKey: u64, abort: bool): void {
  const allReg = pr.holder != 0 && pr_all_registrants(pr.type);
  if (saKey == 0 && !allReg) return cmd_invalid_param(c, 8);
  const takeOver = pr.holder != 0 && (allReg ? saKey == 0 : load<u64>(pr_key(pr, pr.holder - 1)) == saKey);
  let gone: u32 = 0;
  for (let i: u32 = 0; i < SCSI_MAX_NEXUS; i++) {
    if (i == n || !registered(pr, i)) continue;
    if (saKey == 0 || load<u64>(pr_key(pr, i)) == saKey) gone |= <u32>1 << i;
  }
  if (gone == 0 && !takeOver) return conflict(c);
  for (let i: u32 = 0; i < SCSI_MAX_NEXUS; i++) if (((gone >>> i) & 1) != 0) unregister(pr, i);
  raise_for(lun, gone, n, UA_REGISTRATIONS_PREEMPTED);
  if (abort) scan_nexuses(c.dev, gone, changetype<usize>(lun), SCAN_ABORT);
  if (takeOver) {
    // Registrants left whose reservation changed its type learn that it was released.
    if (pr.type != type) raise_for(lun, pr.registered, n, UA_RESERVATIONS_RELEASED);
    pr.holder = n + 1;
    pr.type = type;
  }
  pr.generation++;
}

// ---- RESERVE and RELEASE (SPC-2 7.21, 7.16) ----

/** RESERVE/RELEASE(6) without an extent, (10) without third party or long ID; else INVALID FIELD IN CDB. */
function spc2_cdb_valid(c: ScsiCmd, ten: bool): bool {
  const b1 = <u32>load<u8>(c.cdb, 1);
  if (ten ? (b1 & 0x12) == 0 : (b1 & 0x01) == 0) return true;
  cmd_invalid_cdb(c, 1, ten ? 4 : 0);
  return false;
}

/**
 * RESERVE(6)/(10): the whole logical unit for this nexus, as LIO does it: no extents, no third
 * party; RESERVATION CONFLICT while another nexus holds it or persistent registrations exist.
 */
export function spc2_reserve(c: ScsiCmd, ten: bool): void {
  if (!spc2_cdb_valid(c, ten)) return;
  const lun = changetype<ScsiLun>(c.lun);
  const pr = lun_pr(lun);
  const n = nexus_of(c);
  pr_lock(pr);
  if (pr.registered != 0 || pr.holder != 0 || (pr.spc2 != 0 && pr.spc2 != n + 1)) conflict(c);
  else pr.spc2 = n + 1;
  publish(lun, pr);
  pr_unlock(pr);
}

/** RELEASE(6)/(10): the holder's reservation ends; from anyone else GOOD and nothing changes. */
export function spc2_release(c: ScsiCmd, ten: bool): void {
  if (!spc2_cdb_valid(c, ten)) return;
  spc2_drop(changetype<ScsiLun>(c.lun), nexus_of(c));
}

/** Ends nexus n's SPC-2 reservation of lun, if it holds one (RELEASE, I_T nexus loss). */
export function spc2_drop(lun: ScsiLun, n: u32): void {
  const pr = lun_pr(lun);
  pr_lock(pr);
  if (pr.spc2 == n + 1) pr.spc2 = 0;
  publish(lun, pr);
  pr_unlock(pr);
}

/** A logical unit reset ends an SPC-2 reservation; persistent reservations stay (SPC-4 5.13.1). */
export function spc2_reset(lun: ScsiLun): void {
  const pr = lun_pr(lun);
  pr_lock(pr);
  pr.spc2 = 0;
  publish(lun, pr);
  pr_unlock(pr);
}

