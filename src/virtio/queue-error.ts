import type { ErrnoCode } from "../sys/errors.js";
import {
  VQ_ERR_NONE,
  VQ_ERR_AVAIL_IDX,
  VQ_ERR_HEAD_RANGE,
  VQ_ERR_DESC_RANGE,
  VQ_ERR_LOOP,
  VQ_ERR_TRANSLATE,
  VQ_ERR_OVERFLOW,
  VQ_ERR_IOV_FULL,
  VQ_ERR_INDIRECT_LEN,
  VQ_ERR_INDIRECT_NESTED,
  VQ_ERR_INDIRECT_NEXT,
  VQ_ERR_INDIRECT_LOOP,
  VQ_ERR_INDIRECT_RANGE,
  VQ_ERR_OUT_AFTER_IN,
  VQ_ERR_INDIRECT_TOO_BIG,
  VQ_ERR_BAD_REQUEST,
} from "../wasm/abi.generated.js";

/**
 * Queue errors the data plane records (assembly/defs.ts VQ_ERR_*), the analogue of the
 * kernel's vq_err() messages, with the errno drivers/vhost/vhost.c returns for each
 * (vhost_get_avail_idx, vhost_get_vq_desc, get_indirect, translate_desc).
 */
export const QUEUE_ERRORS = [
  { code: VQ_ERR_NONE, name: "None", errno: "EINVAL", text: "no error" },
  { code: VQ_ERR_AVAIL_IDX, name: "InvalidAvailRingIndex", errno: "EINVAL", text: "avail->idx moved more than the queue size" },
  { code: VQ_ERR_HEAD_RANGE, name: "InvalidHeadIndex", errno: "EINVAL", text: "avail ring names a head index past the queue size" },
  { code: VQ_ERR_DESC_RANGE, name: "InvalidDescIndex", errno: "EINVAL", text: "next points outside the descriptor table" },
  { code: VQ_ERR_LOOP, name: "ChainLoop", errno: "EINVAL", text: "chain longer than the queue size (loop)" },
  { code: VQ_ERR_TRANSLATE, name: "AddressNotMapped", errno: "EFAULT", text: "buffer address not in the memory table" },
  { code: VQ_ERR_OVERFLOW, name: "AddressOverflow", errno: "EFAULT", text: "addr + len overflows" },
  { code: VQ_ERR_IOV_FULL, name: "TooManyIovecs", errno: "ENOBUFS", text: "chain needs more than UIO_MAXIOV iovecs" },
  { code: VQ_ERR_INDIRECT_LEN, name: "InvalidIndirectLength", errno: "EINVAL", text: "indirect table length zero or not a multiple of 16" },
  { code: VQ_ERR_INDIRECT_NESTED, name: "NestedIndirect", errno: "EINVAL", text: "indirect descriptor inside an indirect table" },
  { code: VQ_ERR_INDIRECT_NEXT, name: "IndirectWithNext", errno: "EINVAL", text: "descriptor has both INDIRECT and NEXT" },
  { code: VQ_ERR_INDIRECT_LOOP, name: "IndirectLoop", errno: "EINVAL", text: "indirect chain longer than its table (loop)" },
  { code: VQ_ERR_INDIRECT_RANGE, name: "InvalidIndirectIndex", errno: "EINVAL", text: "next points outside the indirect table" },
  { code: VQ_ERR_OUT_AFTER_IN, name: "ReadableAfterWritable", errno: "EINVAL", text: "device-readable descriptor after a device-writable one" },
  { code: VQ_ERR_INDIRECT_TOO_BIG, name: "IndirectTooBig", errno: "E2BIG", text: "indirect table longer than 65536 entries" },
  { code: VQ_ERR_BAD_REQUEST, name: "BadRequest", errno: "EINVAL", text: "request buffers too short for the device's header or response" },
] as const satisfies readonly { code: number; name: string; errno: ErrnoCode; text: string }[];

export type QueueErrorName = (typeof QUEUE_ERRORS)[number]["name"];

/** What a queue's recorded error means. */
export function queueError(code: number): (typeof QUEUE_ERRORS)[number] {
  const e = QUEUE_ERRORS.find((q) => q.code === code);
  if (!e) throw new RangeError(`unknown queue error code ${code}`);
  return e;
}
