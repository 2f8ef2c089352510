import type { ErrnoCode } from "../vhost/errors.js";

/**
 * Queue errors the data plane records (assembly/defs.ts VQ_ERR_*), the analogue of the
 * kernel's vq_err() messages, with the errno drivers/vhost/vhost.c returns for each
 * (vhost_get_avail_idx, vhost_get_vq_desc, get_indirect, translate_desc).
 */
export const QUEUE_ERRORS = [
  { code: 0, name: "None", errno: "EINVAL", text: "no error" },
  { code: 1, name: "InvalidAvailRingIndex", errno: "EINVAL", text: "avail->idx moved more than the queue size" },
  { code: 2, name: "InvalidHeadIndex", errno: "EINVAL", text: "avail ring names a head index past the queue size" },
  { code: 3, name: "InvalidDescIndex", errno: "EINVAL", text: "next points outside the descriptor table" },
  { code: 4, name: "ChainLoop", errno: "EINVAL", text: "chain longer than the queue size (loop)" },
  { code: 5, name: "AddressNotMapped", errno: "EFAULT", text: "buffer address not in the memory table" },
  { code: 6, name: "AddressOverflow", errno: "EFAULT", text: "addr + len overflows" },
  { code: 7, name: "TooManyIovecs", errno: "ENOBUFS", text: "chain needs more than UIO_MAXIOV iovecs" },
  { code: 8, name: "InvalidIndirectLength", errno: "EINVAL", text: "indirect table length zero or not a multiple of 16" },
  { code: 9, name: "NestedIndirect", errno: "EINVAL", text: "indirect descriptor inside an indirect table" },
  { code: 10, name: "IndirectWithNext", errno: "EINVAL", text: "descriptor has both INDIRECT and NEXT" },
  { code: 11, name: "IndirectLoop", errno: "EINVAL", text: "indirect chain longer than its table (loop)" },
  { code: 12, name: "InvalidIndirectIndex", errno: "EINVAL", text: "next points outside the indirect table" },
  { code: 13, name: "ReadableAfterWritable", errno: "EINVAL", text: "device-readable descriptor after a device-writable one" },
  { code: 14, name: "IndirectTooBig", errno: "E2BIG", text: "indirect table longer than 65536 entries" },
  { code: 15, name: "BadRequest", errno: "EINVAL", text: "request buffers too short for the device's header or response" },
] as const satisfies readonly { code: number; name: string; errno: ErrnoCode; text: string }[];

export type QueueErrorName = (typeof QUEUE_ERRORS)[number]["name"];

/** What a queue's recorded error means. */
export function queueError(code: number): (typeof QUEUE_ERRORS)[number] {
  const e = QUEUE_ERRORS[code];
  if (!e) throw new RangeError(`unknown queue error code ${code}`);
  return e;
}
