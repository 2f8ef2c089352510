// What a SCSI command served by a backstore elsewhere keeps in its request context's device
// trailer between completions (IoCtx.device()): the sense format and tag it answers with, and
// which command the steps carry out and where they stand (remote.ts).
import { CTX_DEVICE_BYTES, IoCtx } from "../ioring";

@unmanaged export class ScsiCtx {
  desc_sense: u32;
  /** Which SCSI command the steps carry out (REMOTE_* in remote.ts) and where it stands. */
  kind: u32;
  step: u32;
  _pad0: u32;
  tag: u64;
  /** The command's whole range (multi-step commands): byte offset and length. */
  range_off: u64;
  range_len: u64;
}

// The trailer must hold it.
assert(offsetof<ScsiCtx>() <= CTX_DEVICE_BYTES);

/** The SCSI state of context x. */
@inline export function scsi_ctx(x: IoCtx): ScsiCtx {
  return changetype<ScsiCtx>(x.device());
}
