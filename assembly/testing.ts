// The data plane for tests and micro-benchmarks (dist/dataplane-testing.wasm): everything
// assembly/index.ts exports, plus two minimal devices over the generic queue core and the
// low-level ring entry points the ring tests drive one step at a time. The production builds
// carry none of this.
import { chain_iov } from "./instance";
import { VirtQueue, vq_disable_notify } from "./queue";
import { vq_pop_chain } from "./chain";
import { vq_drain } from "./drain";
import { EchoDevice, NullDevice } from "./testdev";
import { opcode_count, opcode_row } from "./scsi/opcodes";

export * from "./index";

/** Pops one chain into this instance's chain iovec array; see vq_pop_chain(). */
export function vq_pop(p: usize): u32 {
  return vq_pop_chain(changetype<VirtQueue>(p), chain_iov());
}

/** Address of this instance's chain iovec array: { count u32, out u32, [base u32, len u32] * n }. */
export function chain_iov_ptr(): usize {
  return changetype<usize>(chain_iov());
}

/** Asks the driver not to kick (VRING_USED_F_NO_NOTIFY, or no avail event with EVENT_IDX). */
export function vq_notify_disable(p: usize): void {
  vq_disable_notify(changetype<VirtQueue>(p));
}

/** Drains vq with the echo device; returns DRAIN_* bits. */
export function echo_drain(p: usize, weight: u32): u32 {
  return vq_drain<EchoDevice>(changetype<VirtQueue>(p), chain_iov(), changetype<EchoDevice>(0), weight);
}

/** Drains vq with a null device (struct at dev: { replyLen u32 }); returns DRAIN_* bits. */
export function null_drain(p: usize, dev: usize, weight: u32): u32 {
  return vq_drain<NullDevice>(changetype<VirtQueue>(p), chain_iov(), changetype<NullDevice>(dev), weight);
}

/** Supported command table: count and row i as (opcode << 16) | ((sa + 1) << 8) | cdb length. */
export function scsi_opcode_count(): u32 { return opcode_count(); }
export function scsi_opcode_row(i: u32): u32 { return opcode_row(i); }
