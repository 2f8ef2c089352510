// Command dispatch for one LUN (the target core's part): LUN existence, unit attentions,
// readiness, then the command by operation code. Unknown opcodes and service actions are
// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
import { ScsiCmd, cmd_check, cmd_invalid_cdb } from "./cmd";
import { LUN_F_CAW, LUN_F_RESERVED, LUN_F_STOPPED, ScsiLun, lun_flags, lun_take_ua, lun_ua_pending } from "./lun";
import { pr_conflict, spc2_release, spc2_reserve, spc_pr_in, spc_pr_out } from "./pr";
import { caw_wait, sbc_compare_and_write } from "./caw";
import * as K from "./constants";
import { is_read_write } from "./cdb";
import {
  spc_inquiry, spc_mode_select, spc_mode_sense, spc_report_luns, spc_report_opcodes, spc_request_sense, spc_test_unit_ready,
} from "./spc";
import {
  sbc_prevent_allow, sbc_read, sbc_read_capacity10, sbc_read_capacity16, sbc_start_stop, sbc_synchronize_cache,
  sbc_unmap, sbc_verify, sbc_write, sbc_write_same,
} from "./sbc";

/** Commands served whether or not a LUN exists and without reporting unit attentions (SAM-5 5.14). */
@inline function is_ua_exempt(op: u8): bool {
  return op == K.INQUIRY || op == K.REPORT_LUNS || op == K.REQUEST_SENSE;
}

/**
 * Whether scsi_dispatch would pass a READ or WRITE from I_T nexus n for this LUN straight to the
 * command: no unit attention pending (SAM-5 5.14), no reservation to check, the unit started.
 */
export function lun_ready(lun: ScsiLun, n: u32): bool {
  return lun_ua_pending(lun, n) == 0 && (lun_flags(lun) & (LUN_F_STOPPED | LUN_F_RESERVED | LUN_F_CAW)) == 0;
}

/** Commands that access the medium and so need the unit started. */
function needs_medium(op: u8): bool {
  if (is_read_write(op)) return true;
  switch (op) {
    case K.VERIFY_10: case K.VERIFY_16:
    case K.SYNCHRONIZE_CACHE_10: case K.SYNCHRONIZE_CACHE_16: case K.WRITE_SAME_10: case K.WRITE_SAME_16:
    case K.UNMAP: case K.TEST_UNIT_READY: case K.COMPARE_AND_WRITE:
      return true;
  }
  return false;
}

export function scsi_dispatch(c: ScsiCmd): void {
  const op = load<u8>(c.cdb);
  const lun = c.lun;
  if (lun === null) {
    // SPC-5 6.7.2 / 6.33 / 6.39: these answer for any LUN number; anything else is refused.
    if (op == K.INQUIRY) return spc_inquiry(c);
    if (op == K.REPORT_LUNS) return spc_report_luns(c);
    if (op == K.REQUEST_SENSE) return spc_request_sense(c);
    return cmd_check(c, K.ILLEGAL_REQUEST, K.ASC_LOGICAL_UNIT_NOT_SUPPORTED);
  }
  if (!is_ua_exempt(op)) {
    const ua = lun_take_ua(lun, c.dev.nexus);
    if (ua != 0) return cmd_check(c, K.UNIT_ATTENTION, ua);
  }
  const flags = lun_flags(lun);
  if ((flags & LUN_F_RESERVED) != 0 && pr_conflict(lun, c.dev.nexus, c.cdb)) {
    c.status = K.SAM_STAT_RESERVATION_CONFLICT;
    return;
  }
  if (needs_medium(op) && (flags & LUN_F_STOPPED) != 0) {
    return cmd_check(c, K.NOT_READY, K.ASC_LUN_NOT_READY_INIT_REQUIRED);
  }
  // A COMPARE AND WRITE holding an in-place LUN (only those take LUN_F_CAW): the medium waits for it (caw.ts).
  if ((flags & LUN_F_CAW) != 0 && needs_medium(op) && op != K.COMPARE_AND_WRITE && !caw_wait(c, lun)) return;
  switch (op) {
    case K.TEST_UNIT_READY: return spc_test_unit_ready(c);
    case K.REQUEST_SENSE: return spc_request_sense(c);
    case K.INQUIRY: return spc_inquiry(c);
    case K.REPORT_LUNS: return spc_report_luns(c);
    case K.MODE_SENSE_6: return spc_mode_sense(c, false);
    case K.MODE_SENSE_10: return spc_mode_sense(c, true);
    case K.MODE_SELECT_6: return spc_mode_select(c, false);
    case K.MODE_SELECT_10: return spc_mode_select(c, true);
    case K.RESERVE_6: return spc2_reserve(c, false);
    case K.RESERVE_10: return spc2_reserve(c, true);
    case K.RELEASE_6: return spc2_release(c, false);
    case K.RELEASE_10: return spc2_release(c, true);
    case K.PERSISTENT_RESERVE_IN: return spc_pr_in(c);
    case K.PERSISTENT_RESERVE_OUT: return spc_pr_out(c);
    case K.START_STOP_UNIT: return sbc_start_stop(c);
    case K.PREVENT_ALLOW_MEDIUM_REMOVAL: return sbc_prevent_allow(c);
    case K.READ_CAPACITY_10: return sbc_read_capacity10(c);
    case K.READ_6: case K.READ_10: case K.READ_12: case K.READ_16:
      return sbc_read(c);
    case K.WRITE_6: case K.WRITE_10: case K.WRITE_12: case K.WRITE_16:
    case K.WRITE_VERIFY_10: case K.WRITE_VERIFY_16:
      return sbc_write(c);
    case K.VERIFY_10: case K.VERIFY_16: return sbc_verify(c);
    case K.COMPARE_AND_WRITE: return sbc_compare_and_write(c);
    case K.SYNCHRONIZE_CACHE_10: case K.SYNCHRONIZE_CACHE_16: return sbc_synchronize_cache(c);
    case K.UNMAP: return sbc_unmap(c);
    case K.WRITE_SAME_10: case K.WRITE_SAME_16: return sbc_write_same(c);
    case K.SERVICE_ACTION_IN_16:
      if ((load<u8>(c.cdb, 1) & 0x1f) == K.SAI_READ_CAPACITY_16) return sbc_read_capacity16(c);
      return cmd_invalid_cdb(c, 1, 4);
    case K.MAINTENANCE_IN:
      if ((load<u8>(c.cdb, 1) & 0x1f) == K.MI_REPORT_SUPPORTED_OPERATION_CODES) return spc_report_opcodes(c);
      return cmd_invalid_cdb(c, 1, 4);
  }
  cmd_check(c, K.ILLEGAL_REQUEST, K.ASC_INVALID_COMMAND_OPERATION_CODE);
}
