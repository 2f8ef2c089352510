// The caching mode page's WCE (SBC-4 6.5.5) as the medium sees it: with the write cache on, a
// WRITE reaches a file backstore as a plain write; once MODE SELECT turns it off (as Linux's
// `echo "write through" > cache_type` does), every WRITE is durable before GOOD: the file gets
// the write and then a flush (it has no FUA of its own). Watched through a RecordingBackstore.
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestbed } from "../../src/testbed.js";
import { openFileLun } from "../helpers/backstores.js";
import { RecordingBackstore } from "../../src/testing/recording-backstore.js";
import { modeSelect10, modeSense10, write10 } from "../../src/guest/scsi-commands.js";
import { clearUnitAttentions, expectGood } from "../helpers/scsi.js";

const dir = mkdtempSync(join(tmpdir(), "vhost-wce-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the write cache switch (caching page WCE) on a file LUN", () => {
  it("writes are plain with the cache on, and each is followed by a flush before GOOD once MODE SELECT turns it off", async () => {
    const bed = await createTestbed({ luns: [] });
    try {
      const rec = new RecordingBackstore(await openFileLun(join(dir, "disk.img"), 4 << 20, bed.shm));
      bed.tpg.attachLun(0, rec);
      await clearUnitAttentions(bed, [0]);
      const write = async () => {
        const before = rec.log.length;
        expectGood(await bed.driver.command({ lun: 0, cdb: write10(8, 1), dataOut: new Uint8Array(512).fill(7) }));
        return rec.log.slice(before).map((o) => o.op);
      };
      expect(await write()).toEqual(["write"]);
      const page = (await bed.driver.command({ lun: 0, cdb: modeSense10(0x08, 255, { dbd: true }), dataInLength: 255 })).dataIn.slice(0, 28);
      page[0] = page[1] = page[3] = 0;
      const setWce = async (on: boolean) => {
        page[8 + 2] = on ? page[8 + 2] | 0x04 : page[8 + 2] & ~0x04;
        expectGood(await bed.driver.command({ lun: 0, cdb: modeSelect10(page.length), dataOut: page }));
      };
      await setWce(false);
      expect(await write()).toEqual(["write", "flush"]);
      await setWce(true);
      expect(await write()).toEqual(["write"]);
    } finally {
      await bed.close();
    }
  });
});
