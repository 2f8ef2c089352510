import type { BlkTestbed, Testbed } from "../../src/testbed.js";
import type { GuestVirtqueue } from "../../src/guest/virtqueue.js";

/**
 * Puts a hand-made chain on a queue of the testbed's driver (any header bytes, any split) and
 * resolves with the used length and the writable buffers' contents. Writable buffers start out
 * as `inFill[i]` where given, else 0xee bytes.
 */
export async function rawChain(
  bed: Testbed | BlkTestbed,
  queueIndex: number,
  out: Uint8Array[],
  inLens: number[],
  inFill: Uint8Array[] = [],
): Promise<{ usedLen: number; ins: Uint8Array[] }> {
  const d = bed.driver;
  // virtio-scsi: 0 control, 2.. request queues; virtio-blk: request queues from 0.
  const q = ("control" in d ? (queueIndex === 0 ? d.control : d.requests[queueIndex - 2]) : d.requests[queueIndex]) as unknown as GuestVirtqueue<{
    resolve: (r: { usedLen: number }) => void;
  }>;
  const mem = bed.mem;
  const outBufs = out.map((b) => {
    const addr = mem.alloc(Math.max(b.length, 1), 16);
    mem.bytes(addr, b.length).set(b);
    return { addr, len: b.length };
  });
  const inBufs = inLens.map((len, i) => {
    const addr = mem.alloc(Math.max(len, 1), 16);
    if (inFill[i]) mem.bytes(addr, len).set(inFill[i].subarray(0, len));
    else mem.bytes(addr, len).fill(0xee);
    return { addr, len };
  });
  const { usedLen } = await new Promise<{ usedLen: number }>((resolve) => {
    q.add(outBufs, inBufs, { resolve });
    q.kick();
  });
  const ins = inBufs.map((b) => mem.bytes(b.addr, b.len).slice());
  for (const b of [...outBufs, ...inBufs]) mem.free(b.addr);
  return { usedLen, ins };
}

/** A virtio_scsi_cmd_req for target/lun with the CDB (51 bytes; lun bytes as given). */
export function cmdReq(lunBytes: number[], cdb: Uint8Array, tag = 7n): Uint8Array {
  const b = new Uint8Array(51);
  b.set(lunBytes, 0);
  new DataView(b.buffer).setBigUint64(8, tag, true);
  b.set(cdb, 19);
  return b;
}
