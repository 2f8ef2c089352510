// Moving logical blocks between the guest's buffers and a LUN's backstore. Backstores served in
// place (RAM, null) complete inside the drain, one memory.copy per guest segment; every other
// backstore is served elsewhere, through a request context (remote.ts).
import { ScsiCmd, data_in, data_out } from "./cmd";
import { BS_NULL, BS_RAM, ScsiLun } from "./lun";
import { BS_F_FUA, BS_OP_READ, BS_OP_WRITE } from "../ioring";
import { remote_op } from "./remote";

/**
 * Reads `bytes` at byte offset `off` of the LUN into the data-in buffers. RAM reads and writes
 * are deferred until the used ring is published (copies.ts), in order; ScsiRequestQueue runs the
 * deferred copies before any other command, so everything else sees them done.
 */
export function bs_read(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u32): void {
  const kind = lun.backstore;
  if (kind == BS_RAM) c.done += data_in().writeDeferred(<usize>lun.ram + <usize>off, bytes);
  else if (kind == BS_NULL) c.done += data_in().fill(0, bytes);
  else remote_op(c, lun, BS_OP_READ, off, bytes, data_in(), 0);
}

/** Writes `bytes` of data-out at byte offset `off` of the LUN (`fua`: durable before the answer). */
export function bs_write(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u32, fua: bool): void {
  const kind = lun.backstore;
  if (kind == BS_RAM) c.done += data_out().readDeferred(<usize>lun.ram + <usize>off, bytes);
  else if (kind == BS_NULL) c.done += data_out().skip(bytes);
  else remote_op(c, lun, BS_OP_WRITE, off, bytes, data_out(), fua ? BS_F_FUA : 0);
}

/** Fills `bytes` at byte offset `off` of a RAM LUN with zeroes (UNMAP, WRITE SAME NDOB). */
export function bs_zero_ram(lun: ScsiLun, off: u64, bytes: u64): void {
  memory.fill(<usize>lun.ram + <usize>off, 0, <usize>bytes);
}
