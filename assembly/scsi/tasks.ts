// The task set as the target sees it across I_T nexuses: the request contexts of a device (the
// commands a backstore served elsewhere still holds), and of every device bound to the target.
// Task management (ctrl.ts) and PREEMPT AND ABORT (pr.ts) find, abort and wait for them here.
import { MAX_REQUEST_QUEUES, ScsiDevice, ScsiTpg, dev_ctx_table_slot, tpg_lun } from "./target";
import { ScsiLun } from "./lun";
import { SCSI_MAX_NEXUS } from "./pr-state";
import { CTX_ABORTED, CTX_SUBMITTED, IoCtxTable, ctx_abort, ctx_at } from "../ioring";
import { scsi_ctx } from "./ctx";

/** What a search over the request contexts does with the ones it matches. */
export const SCAN_COUNT: u32 = 0; // count submitted contexts
export const SCAN_ABORT: u32 = 1; // mark submitted contexts aborted, count them
export const SCAN_WAITING: u32 = 2; // count aborted contexts not yet answered

function lun_in_tpg(tpg: ScsiTpg, lun: usize): bool {
  return changetype<usize>(tpg_lun(tpg, changetype<ScsiLun>(lun).id)) == lun;
}

/**
 * Visits every request context of device dev that belongs to `lun` (or, with lun 0, to any LUN
 * of `tpg`) and, when tagged, has `tag`. Returns how many matched the mode's state.
 */
export function scan(dev: ScsiDevice, tpg: ScsiTpg, lun: usize, tagged: bool, tag: u64, mode: u32): u32 {
  let n: u32 = 0;
  for (let q: u32 = 0; q < MAX_REQUEST_QUEUES; q++) {
    const t = changetype<IoCtxTable>(<usize>atomic.load<u32>(dev_ctx_table_slot(dev, q)));
    if (changetype<usize>(t) == 0) continue;
    for (let i: u32 = 0; i < t.capacity; i++) {
      const x = ctx_at(t, i);
      const state = atomic.load<u32>(changetype<usize>(x));
      if (state != CTX_SUBMITTED && state != CTX_ABORTED) continue;
      if (lun != 0 ? <usize>x.owner != lun : !lun_in_tpg(tpg, <usize>x.owner)) continue;
      if (tagged && scsi_ctx(x).tag != tag) continue;
      if (mode == SCAN_COUNT) n += state == CTX_SUBMITTED ? 1 : 0;
      else if (mode == SCAN_ABORT) n += ctx_abort(x) ? 1 : 0;
      else n += state == CTX_ABORTED ? 1 : 0;
    }
  }
  return n;
}

/**
 * scan() over the commands on `lun` of the nexuses in `mask` (bit n: nexus n), each through its
 * device in the target's table; a device without the table sees only itself.
 */
export function scan_nexuses(dev: ScsiDevice, mask: u32, lun: usize, mode: u32): u32 {
  const peers = <usize>dev.peers;
  const none = changetype<ScsiTpg>(0);
  if (peers == 0) return ((mask >>> dev.nexus) & 1) != 0 ? scan(dev, none, lun, false, 0, mode) : 0;
  let n: u32 = 0;
  for (let i: u32 = 0; i < SCSI_MAX_NEXUS; i++) {
    if (((mask >>> i) & 1) == 0) continue;
    const d = <usize>atomic.load<u32>(peers + (<usize>i << 2));
    if (d != 0) n += scan(changetype<ScsiDevice>(d), none, lun, false, 0, mode);
  }
  return n;
}

/** Every nexus. */
export const ALL_NEXUSES: u32 = 0xffffffff;
