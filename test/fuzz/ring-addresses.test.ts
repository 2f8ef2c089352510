// Random vring sizes and addresses through VHOST_SET_VRING_NUM/ADDR and SET_ENDPOINT: a ring is
// accepted only when it is aligned (VIRTIO 1.2, 2.7) and lies inside one memory-table region;
// otherwise the ioctl fails with the kernel's errno and nothing changes.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { SharedMemory } from "../../src/memory/shared-memory.js";
import { GuestMemory } from "../../src/guest/guest-memory.js";
import { VhostProcess } from "../../src/vhost/process.js";
import { VhostScsi } from "../../src/vhost/vhost-scsi.js";
import { vhostRegionsOf } from "../../src/vhost/mem-table.js";
import { VhostError } from "../../src/sys/errors.js";
import { vringAvailSize, vringDescSize, vringUsedSize } from "../../src/virtio/ring.js";

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 12);

describe("random ring addresses in SET_VRING_ADDR", () => {
  it("are accepted only aligned and inside guest RAM; refused with EINVAL/EFAULT otherwise", async () => {
    const shm = SharedMemory.create({ deviceBytes: 4 << 20, guestBytes: 2 << 20 });
    const proc = new VhostProcess(shm, { workerThreads: false });
    const mem = new GuestMemory(shm);
    const ram = mem.addRegion(0, 1 << 20);
    await proc.targets
      .create("naa.5001405000000abc")
      .addTpg(1)
      .addLun(0, { backstore: "null", size: 1 << 20 });
    const fd = proc.open("/dev/vhost-scsi");
    const d = proc.device(fd, VhostScsi);
    await d.SET_OWNER();
    await d.SET_MEM_TABLE(vhostRegionsOf(mem.regions));
    const inRam = (a: bigint, n: number) => a >= BigInt(ram.hva) && a + BigInt(n) <= BigInt(ram.hva + ram.size);
    const near = fc.oneof(
      fc.integer({ min: ram.hva - 4096, max: ram.hva + ram.size + 4096 }).map(BigInt),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      fc.constantFrom(0n, BigInt(shm.deviceEnd - 16), BigInt(shm.buffer.byteLength - 8)),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 15 }), near, near, near, async (log2, desc, avail, used) => {
        const num = 2 ** log2;
        await d.SET_VRING_NUM({ index: 2, num });
        const ok =
          !(desc & 15n) &&
          !(avail & 1n) &&
          !(used & 3n) &&
          inRam(desc, vringDescSize(num)) &&
          inRam(avail, vringAvailSize(num)) &&
          inRam(used, vringUsedSize(num));
        let err: string | undefined;
        try {
          await d.SET_VRING_ADDR({ index: 2, flags: 0, desc_user_addr: desc, avail_user_addr: avail, used_user_addr: used, log_guest_addr: 0n });
        } catch (e) {
          if (!(e instanceof VhostError)) throw e;
          err = e.code;
        }
        if (ok) expect(err).toBeUndefined();
        else expect(["EINVAL", "EFAULT"]).toContain(err);
        if (!ok) return;
        // An accepted ring runs: the endpoint comes up, serves nothing, and goes down again.
        await d.SCSI_SET_ENDPOINT({ abi_version: 1, vhost_wwpn: "naa.5001405000000abc", vhost_tpgt: 1 });
        await d.SCSI_CLEAR_ENDPOINT({ abi_version: 1, vhost_wwpn: "naa.5001405000000abc", vhost_tpgt: 1 });
      }),
      { numRuns: 1_000_000, interruptAfterTimeLimit: (SECONDS * 1000) / 4, markInterruptAsFailure: false },
    );
    await proc.close(fd);
  });
});
