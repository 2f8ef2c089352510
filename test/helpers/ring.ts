import type { RingTestbed } from "../../src/testing/ring-testbed.js";
import type { DeviceQueue } from "../../src/virtio/device-queue.js";
import { VQ_NO_HEAD } from "../../src/wasm/dataplane.js";

export interface PoppedChain {
  head: number;
  /** Device-readable iovecs as [hva, len]. */
  out: [number, number][];
  /** Device-writable iovecs as [hva, len]. */
  in: [number, number][];
}

/** Pops one chain through the data plane; returns it, "empty", or "error". */
export function pop(tb: RingTestbed, dq: DeviceQueue): PoppedChain | "empty" | "error" {
  const head = tb.dp.vq_pop(dq.ptr) >>> 0;
  if (head === VQ_NO_HEAD) return "error";
  if (head === dq.num) return "empty";
  const p = tb.dp.chain_iov_ptr();
  const dv = tb.shm.view;
  const count = dv.getUint32(p, true);
  const outCount = dv.getUint32(p + 4, true);
  const iov: [number, number][] = [];
  for (let i = 0; i < count; i++) iov.push([dv.getUint32(p + 8 + 8 * i, true), dv.getUint32(p + 12 + 8 * i, true)]);
  return { head, out: iov.slice(0, outCount), in: iov.slice(outCount) };
}
