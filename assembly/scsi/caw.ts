// COMPARE AND WRITE (SBC-4 5.3), atomic with respect to every other command on the LUN from any
// queue, worker or device. A queued backstore's service serializes it on its queue (the SQ's
// gate, src/backstore/service.ts). In place, the LUN's LUN_F_CAW flag is the lock: while it is
// set no other command reaches the medium (the RAM fast path sees the LUN not ready, and the
// dispatcher waits here). Commands that passed before the flag was set may still have copies
// pending (RAM copies are deferred to the end of a drain): each request queue's gate word is
// odd while its drain runs, so the holder waits for every odd gate of every device bound to
// the target to move on, a grace period in RCU's manner. A worker waiting (for the lock or the
// grace) has run its own copies and made its gate even, so two never wait for each other.
import { ScsiCmd, cmd_check, cmd_invalid_cdb, cmd_want_out } from "./cmd";
import { BS_QUEUED, LUN_F_CAW, LUN_F_COMPARE_WRITE, LUN_F_READ_ONLY, ScsiLun, lun_flags, lun_holds } from "./lun";
import { write_fua } from "./sbc";
import { MAX_REQUEST_QUEUES, ScsiDevice, dev_gate } from "./target";
import { SCSI_MAX_NEXUS } from "./pr-state";
import { bs_compare_and_write } from "./backstore";
import { copies_flush } from "../copies";
import { be64 } from "./be";
import * as K from "./constants";

/** Spins a waiter makes before it gives up (a worker stuck in a drain): about a second. */
const GATE_SPINS: u32 = 1 << 28;

/** This instance's current request queue gate (set for the length of a drain), or 0. */
let gate: usize = 0;

/** Marks the current queue serving (odd: in-place accesses may be pending). */
function serving(): void {
  if (gate != 0) atomic.store<u32>(gate, atomic.load<u32>(gate) | 1);
}

/** Marks the current queue quiet (the next even value: nothing of it is pending any more). */
function settled(): void {
  if (gate != 0) atomic.store<u32>(gate, (atomic.load<u32>(gate) + 1) & ~1);
}

/** A drain of request queue q of dev begins: its in-place accesses count until gate_leave(). */
export function gate_enter(dev: ScsiDevice, q: u32): void {
  gate = dev_gate(dev, q);
  serving();
}

/** The drain ended: its copies are done (the used ring was published after them). */
export function gate_leave(): void {
  settled();
  gate = 0;
}

/** Runs this drain's pending copies and marks the queue quiet, before waiting on anyone. */
function quiet(): void {
  copies_flush();
  settled();
}

/** Whether gate g moved off an odd value it had (bounded spin); false if it never did. */
function waited(g: usize): bool {
  const v = atomic.load<u32>(g);
  if ((v & 1) == 0) return true;
  for (let i: u32 = 0; i < GATE_SPINS; i++) if (atomic.load<u32>(g) != v) return true;
  return false;
}

/** Waits for every drain of device d that may still access the medium in place. */
function quiesced(d: ScsiDevice): bool {
  for (let q: u32 = 0; q < MAX_REQUEST_QUEUES; q++) if (!waited(dev_gate(d, q))) return false;
  return true;
}

/**
 * Waits until no command of another drain can still be accessing the medium in place: those of
 * every device bound to the target (only dev itself when it has no peers table).
 */
function grace(dev: ScsiDevice): bool {
  const peers = <usize>dev.peers;
  if (peers == 0) return quiesced(dev);
  for (let n: u32 = 0; n < SCSI_MAX_NEXUS; n++) {
    const d = <usize>atomic.load<u32>(peers + (<usize>n << 2));
    if (d != 0 && !quiesced(changetype<ScsiDevice>(d))) return false;
  }
  return true;
}

/** Takes the LUN's lock (LUN_F_CAW); false if another holder kept it too long. */
function lock(lun: ScsiLun): bool {
  const at = changetype<usize>(lun) + offsetof<ScsiLun>("flags");
  for (let i: u32 = 0; i < GATE_SPINS; i++) {
    const f = atomic.load<u32>(at);
    if ((f & LUN_F_CAW) == 0 && atomic.cmpxchg<u32>(at, f, f | LUN_F_CAW) == f) return true;
  }
  return false;
}

function unlock(lun: ScsiLun): void {
  atomic.and<u32>(changetype<usize>(lun) + offsetof<ScsiLun>("flags"), ~LUN_F_CAW);
}

/**
 * A command that reaches the medium of a LUN some COMPARE AND WRITE holds waits for it to end;
 * BUSY if it does not (a holder stuck).
 */
export function caw_wait(c: ScsiCmd, lun: ScsiLun): bool {
  quiet();
  let spins: u32 = 0;
  while ((lun_flags(lun) & LUN_F_CAW) != 0 && ++spins < GATE_SPINS) {}
  serving();
  if ((lun_flags(lun) & LUN_F_CAW) == 0) return true;
  c.status = K.SAM_STAT_BUSY;
  return false;
}

/**
 * COMPARE AND WRITE (SBC-4 5.3): the first half of the data-out compared with the blocks at the
 * LBA, and only if they are equal the second half written there, as one operation. A difference
 * is MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION with the first differing byte's offset in
 * the INFORMATION field. In place this file holds the LUN for it; a queued backstore's service
 * makes it one operation of the queue. LUNs without LUN_F_COMPARE_WRITE do not offer it.
 */
export function sbc_compare_and_write(c: ScsiCmd): void {
  const lun = changetype<ScsiLun>(c.lun);
  const cdb = c.cdb;
  if ((lun.flags & LUN_F_COMPARE_WRITE) == 0) return cmd_check(c, K.ILLEGAL_REQUEST, K.ASC_INVALID_COMMAND_OPERATION_CODE);
  if ((load<u8>(cdb, 1) & 0xe0) != 0) return cmd_invalid_cdb(c, 1, 7); // WRPROTECT: no protection information
  const lba = be64(cdb + 2);
  const n = <u32>load<u8>(cdb, 13);
  if (n > K.CAW_MAX_BLOCKS) return cmd_invalid_cdb(c, 13);
  if (!lun_holds(lun, lba, n)) return cmd_check(c, K.ILLEGAL_REQUEST, K.ASC_LBA_OUT_OF_RANGE);
  if ((lun.flags & LUN_F_READ_ONLY) != 0) return cmd_check(c, K.DATA_PROTECT, K.ASC_WRITE_PROTECTED);
  if (n == 0) return;
  const bytes = n << lun.block_shift;
  if (!cmd_want_out(c, <u64>bytes * 2)) return;
  const off = lba << lun.block_shift;
  const fua = write_fua(c, lun);
  if (lun.backstore == BS_QUEUED) return bs_compare_and_write(c, lun, off, bytes, fua);
  quiet();
  const locked = lock(lun);
  if (locked && grace(c.dev)) bs_compare_and_write(c, lun, off, bytes, fua);
  else c.status = K.SAM_STAT_BUSY;
  if (locked) unlock(lun);
  serving();
}
