import { describe, expect, it } from "vitest";
import { createTestbed } from "../../src/testbed.js";
import { inquiry, read16, write16 } from "../../src/guest/scsi-commands.js";

describe("smoke", () => {
  it("writes and reads back through the whole path", async () => {
    const bed = await createTestbed();
    const inq = await bed.driver.command({ lun: 0, cdb: inquiry(36), dataInLength: 36 });
    expect(inq.response).toBe(0);
    expect(inq.status).toBe(0);
    expect(new TextDecoder().decode(inq.dataIn.subarray(8, 16))).toBe("LIO-ORG ");
    const data = new Uint8Array(4096).map((_, i) => i & 0xff);
    const w = await bed.driver.command({ lun: 0, cdb: write16(8, 8), dataOut: data });
    expect([w.response, w.status]).toEqual([0, 2]); // POWER ON unit attention first
    const w2 = await bed.driver.command({ lun: 0, cdb: write16(8, 8), dataOut: data });
    expect([w2.response, w2.status, w2.residual]).toEqual([0, 0, 0]);
    const r = await bed.driver.command({ lun: 0, cdb: read16(8, 8), dataInLength: 4096 });
    expect(r.status).toBe(0);
    expect(Buffer.from(r.dataIn).equals(Buffer.from(data))).toBe(true);
    await bed.close();
  });
});
