// The backstore operations a SCSI command is written over (READ, WRITE, FLUSH, WRITE_ZEROES,
// DISCARD, and the multi-step COMPARE, PATTERN and RANGES): RAM and null are served in place,
// inside the drain; every other backstore elsewhere, through a request context (remote.ts). This
// is the one place that tells the backing kinds apart: sbc.ts writes each command once.
import { ScsiCmd, SCRATCH_DATA_SIZE, cmd_check, data_in, data_out, param_buf } from "./cmd";
import { BS_NULL, BS_RAM, LUN_F_LBPRZ, ScsiLun } from "./lun";
import { BS_F_FUA, BS_F_UNMAP, BS_OP_COMPARE_AND_WRITE, BS_OP_DISCARD, BS_OP_FLUSH, BS_OP_READ, BS_OP_WRITE, BS_OP_WRITE_ZEROES } from "../ioring";
import { remote_compare, remote_op, remote_pattern, remote_ranges } from "./remote";
import { copy_bytes } from "../bytes";
import { IovIter } from "../iovec";
import { ASC_MISCOMPARE_DURING_VERIFY, MISCOMPARE } from "./constants";

@inline function in_place(lun: ScsiLun): bool {
  return lun.backstore == BS_RAM || lun.backstore == BS_NULL;
}

/**
 * READ: `bytes` at byte offset `off` of the LUN into the data-in buffers. RAM reads and writes
 * are deferred until the used ring is published (copies.ts), in order; ScsiRequestQueue runs the
 * deferred copies before any other command, so everything else sees them done.
 */
export function bs_read(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u32): void {
  const kind = lun.backstore;
  if (kind == BS_RAM) c.done += data_in().writeDeferred(<usize>lun.ram + <usize>off, bytes);
  else if (kind == BS_NULL) c.done += data_in().fill(0, bytes);
  else remote_op(c, lun, BS_OP_READ, off, bytes, data_in(), 0);
}

/** WRITE: `bytes` of data-out at byte offset `off` of the LUN (`fua`: durable before the answer). */
export function bs_write(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u32, fua: bool): void {
  const kind = lun.backstore;
  if (kind == BS_RAM) c.done += data_out().readDeferred(<usize>lun.ram + <usize>off, bytes);
  else if (kind == BS_NULL) c.done += data_out().skip(bytes);
  else remote_op(c, lun, BS_OP_WRITE, off, bytes, data_out(), fua ? BS_F_FUA : 0);
}

/** FLUSH: what was written is durable (nothing is volatile in place). */
export function bs_flush(c: ScsiCmd, lun: ScsiLun): void {
  if (!in_place(lun)) remote_op(c, lun, BS_OP_FLUSH, 0, 0, null, 0);
}

/**
 * WRITE_ZEROES over [off, off + bytes); with `unmap` the blocks may be deallocated instead
 * (SBC-4 5.48: where unmapped blocks read as zeroes, a DISCARD).
 */
export function bs_zero(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u64, unmap: bool): void {
  const kind = lun.backstore;
  if (kind == BS_RAM) memory.fill(<usize>lun.ram + <usize>off, 0, <usize>bytes);
  else if (kind != BS_NULL) {
    const discard = unmap && (lun.flags & LUN_F_LBPRZ) != 0;
    remote_op(c, lun, discard ? BS_OP_DISCARD : BS_OP_WRITE_ZEROES, off, bytes, null, unmap ? BS_F_UNMAP : 0);
  }
}

/**
 * COMPARE: the `bytes` of data-out at cursor `data` against the medium at `off`; a difference
 * is MISCOMPARE with its offset in the sense's INFORMATION field.
 */
export function bs_compare(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u32, data: IovIter): void {
  if (!in_place(lun)) return remote_compare(c, lun, off, bytes, data);
  // Through the parameter buffer, a chunk at a time.
  const buf = param_buf();
  let at: u32 = 0;
  while (at < bytes) {
    const want = bytes - at < <u32>SCRATCH_DATA_SIZE ? bytes - at : <u32>SCRATCH_DATA_SIZE;
    const got = data.read(buf, want);
    c.done += got;
    for (let k: u32 = 0; k < got; k++) {
      const medium = lun.backstore == BS_RAM ? load<u8>(<usize>lun.ram + <usize>off + at + k) : <u8>0;
      if (load<u8>(buf + k) != medium) {
        cmd_check(c, MISCOMPARE, ASC_MISCOMPARE_DURING_VERIFY);
        c.info_valid = 1;
        c.info = <u64>(at + k);
        c.done = bytes; // the whole data-out was transferred before the compare (no residual)
        return;
      }
    }
    at += got;
    if (got < want) break;
  }
}

/**
 * COMPARE_AND_WRITE: the first `bytes` of data-out compared with the medium at `off`, and if
 * they match the next `bytes` written there. In place the caller holds the LUN (caw.ts); a queued
 * backstore's service makes it one operation of its queue.
 */
export function bs_compare_and_write(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u32, fua: bool): void {
  const data = data_out();
  if (!in_place(lun)) return remote_op(c, lun, BS_OP_COMPARE_AND_WRITE, off, bytes, data, fua ? BS_F_FUA : 0);
  bs_compare(c, lun, off, bytes, data);
  if (c.status != 0) c.done = <u64>bytes * 2; // all the data-out came before the compare
  else if (lun.backstore == BS_RAM) c.done += data.read(<usize>lun.ram + <usize>off, bytes);
  else c.done += data.skip(bytes);
}

/** PATTERN: the one block at cursor `data` written over [off, off + bytes) (WRITE SAME). */
export function bs_pattern(c: ScsiCmd, lun: ScsiLun, off: u64, bytes: u64, data: IovIter): void {
  const kind = lun.backstore;
  const bs = lun.blockSize;
  if (kind == BS_NULL) {
    c.done += data.skip(bs);
  } else if (kind == BS_RAM) {
    const first = <usize>lun.ram + <usize>off;
    c.done += data.read(first, bs);
    for (let at: u64 = bs; at < bytes; at += bs) copy_bytes(first + <usize>at, first, bs);
  } else {
    remote_pattern(c, lun, off, bytes, data);
  }
}

/**
 * RANGES: a DISCARD of each of `count` validated (lba u64, blocks u32) records at `ranges`
 * (UNMAP); in place the blocks read back as zeroes.
 */
export function bs_discard_ranges(c: ScsiCmd, lun: ScsiLun, ranges: usize, count: u32): void {
  const kind = lun.backstore;
  if (kind == BS_RAM) {
    for (let i: u32 = 0; i < count; i++) {
      const r = ranges + <usize>i * 12;
      memory.fill(<usize>lun.ram + (<usize>load<u64>(r) << lun.block_shift), 0, <usize>load<u32>(r, 8) << lun.block_shift);
    }
  } else if (kind != BS_NULL) {
    remote_ranges(c, lun, ranges, count);
  }
}
