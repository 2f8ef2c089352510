import type { RingTestbed } from "../../src/testing/ring-testbed.js";
import type { DeviceQueue } from "../../src/virtio/device-queue.js";
import { VQ_NO_HEAD, readIovecs } from "../../src/wasm/dataplane.js";

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
  const { out, entries } = readIovecs(tb.shm.view, tb.dp.chain_iov_ptr());
  return { head, out: entries.slice(0, out), in: entries.slice(out) };
}
