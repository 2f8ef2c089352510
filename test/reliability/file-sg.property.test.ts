// The file backstore's scatter-gather path (the data plane copies the chain's data iovecs into an
// in-flight slot, Node readv/writev run on views of them): random fragmentation, indirect tables,
// block sizes, offsets and lengths, each write read back bit-exact.
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestbed } from "../../src/testbed.js";
import { read16, write16 } from "../../src/guest/scsi-commands.js";
import { clearUnitAttentions, expectGood } from "../helpers/scsi.js";

const dir = mkdtempSync(join(tmpdir(), "vhost-scsi-sg-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each([512, 4096] as const)("file backstore scatter-gather, %i-byte blocks", (bs) => {
  it("random fragmentation and chain shapes move exactly the bytes asked for", async () => {
    const bed = await createTestbed({
      luns: [{ backstore: "file", path: join(dir, `sg-${bs}.img`), size: 4 << 20, blockSize: bs }],
      process: { workerThreads: false },
    });
    await clearUnitAttentions(bed);
    const blocks = (4 << 20) / bs;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 24 }),
        fc.integer({ min: 0, max: blocks - 24 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 255 }),
        async (n, lba, fragW0, fragR0, indirect, seed) => {
          // Keep each chain within seg_max (126 data segments), as a driver must.
          const least = Math.ceil((n * bs + 160) / 120);
          const fragW = Math.max(fragW0, least);
          const fragR = Math.max(fragR0, least);
          const data = new Uint8Array(n * bs).map((_, i) => (i * 13 + seed) & 0xff);
          expectGood(await bed.driver.command({ lun: 0, cdb: write16(lba, n), dataOut: data, fragment: fragW, indirect }));
          const r = await bed.driver.command({ lun: 0, cdb: read16(lba, n), dataInLength: n * bs, fragment: fragR, indirect: !indirect });
          expectGood(r);
          expect(Buffer.from(r.dataIn).equals(Buffer.from(data))).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
    // Past seg_max (but within UIO_MAXIOV) the file backstore cannot hold the chain:
    // VIRTIO_SCSI_S_FAILURE, nothing moved.
    const over = await bed.driver.command({ lun: 0, cdb: write16(0, 1), dataOut: new Uint8Array(bs), fragment: bs === 512 ? 4 : 16 });
    expect(over.response).toBe(9);
    await bed.close();
  });
});
