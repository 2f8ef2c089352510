import { describe, expect, it } from "vitest";
import { createTestbed } from "../../src/testbed.js";
import { scanTarget } from "../../src/guest/scan.js";

describe("Linux-like scan through the guest driver", () => {
  it("finds every LUN with its identity, geometry and properties", async () => {
    const bed = await createTestbed({
      luns: [
        { backstore: "ram", size: 16 << 20, serial: "RAM0" },
        { backstore: "null", size: 1 << 30, blockSize: 4096, writeCache: false, readOnly: true, product: "scratch" },
      ],
    });
    await bed.tpg.addLun(1000, { backstore: "ram", size: 1 << 20 });
    const disks = await scanTarget(bed.driver);
    expect(disks.map((d) => d.lun)).toEqual([0, 1, 1000]);
    expect(disks[0]).toMatchObject({
      target: 1,
      vendor: "LIO-ORG",
      product: "vhost-wasm-ram",
      revision: "4.0",
      serial: "RAM0",
      blocks: BigInt((16 << 20) / 512),
      blockSize: 512,
      thinProvisioned: true,
      rotational: false,
      writeCache: true,
      writeProtected: false,
      maxTransferBlocks: 65535,
    });
    expect(disks[0].wwid).toMatch(/^naa\.6[0-9a-f]{31}$/);
    expect(disks[1]).toMatchObject({
      product: "scratch",
      blocks: BigInt((1 << 30) / 4096),
      blockSize: 4096,
      thinProvisioned: false,
      writeCache: false,
      writeProtected: true,
    });
    expect(new Set(disks.map((d) => d.wwid)).size).toBe(3);
    await bed.close();
  });
});
