import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import { inquiry, read16, testUnitReady, write16 } from "../../src/guest/scsi-commands.js";
import { VIRTIO_SCSI_S_BAD_TARGET, VIRTIO_SCSI_S_OK } from "../../src/virtio/virtio-scsi.js";
import { clearUnitAttentions, cmd, expectGood, expectSense } from "../helpers/scsi.js";
import { SenseKey } from "../../src/guest/sense.js";
import { cmdReq, rawChain } from "../helpers/raw.js";

describe("virtio-scsi request queue (VIRTIO 1.2, 5.6.6.1)", () => {
  let bed: Testbed;
  beforeAll(async () => {
    bed = await createTestbed({ luns: [{ backstore: "ram", size: 1 << 20 }] });
    await clearUnitAttentions(bed);
  });
  afterAll(() => bed.close());
  const lun0 = [1, 1, 0x40, 0];

  it("answers a LUN field not starting with 1 with VIRTIO_SCSI_S_BAD_TARGET", async () => {
    const r = await rawChain(bed, 2, [cmdReq([2, 1, 0x40, 0], testUnitReady())], [108]);
    expect([r.usedLen, r.ins[0][11]]).toEqual([108, VIRTIO_SCSI_S_BAD_TARGET]);
  });

  it("answers an unknown target (TPG tag) with VIRTIO_SCSI_S_BAD_TARGET", async () => {
    const r = await cmd(bed, { target: 9, cdb: testUnitReady() });
    expect(r.response).toBe(VIRTIO_SCSI_S_BAD_TARGET);
  });

  it("answers a request header shorter than struct virtio_scsi_cmd_req with BAD_TARGET", async () => {
    const r = await rawChain(bed, 2, [cmdReq(lun0, testUnitReady()).subarray(0, 40)], [108]);
    expect(r.ins[0][11]).toBe(VIRTIO_SCSI_S_BAD_TARGET);
  });

  it("returns a chain whose writable part cannot hold the response empty, as a queue error", async () => {
    const before = bed.device.vhost.vringStatus(2)!.error?.count ?? 0;
    const r = await rawChain(bed, 2, [cmdReq(lun0, testUnitReady())], [100]);
    expect(r.usedLen).toBe(0);
    expect(r.ins[0].every((b) => b === 0xee)).toBe(true);
    expect(bed.device.vhost.vringStatus(2)!.error).toMatchObject({ name: "BadRequest", count: before + 1 });
    expectGood(await cmd(bed, { cdb: testUnitReady() })); // the queue goes on
  });

  it("accepts headers and response split across descriptors anywhere (VIRTIO_F_ANY_LAYOUT)", async () => {
    const req = cmdReq(lun0, inquiry(36));
    const r = await rawChain(bed, 2, [req.subarray(0, 3), req.subarray(3, 20), req.subarray(20)], [5, 50, 53, 10, 26]);
    expect(r.usedLen).toBe(108 + 36);
    const resp = Buffer.concat(r.ins.map((b) => Buffer.from(b)));
    expect([resp[10], resp[11]]).toEqual([0, VIRTIO_SCSI_S_OK]);
    expect(resp.subarray(108 + 8, 108 + 15).toString()).toBe("LIO-ORG");
  });

  it("serves commands whose every buffer is cut into 7-byte descriptors", async () => {
    const data = new Uint8Array(1024).map((_, i) => i * 3);
    expectGood(await cmd(bed, { cdb: write16(4, 2), dataOut: data, fragment: 7, indirect: true }));
    const r = await cmd(bed, { cdb: read16(4, 2), dataInLength: 1024, fragment: 7, indirect: true });
    expectGood(r);
    expect(Buffer.from(r.dataIn).equals(Buffer.from(data))).toBe(true);
  });

  it("leaves the buffer holding the whole response, whatever it held before", async () => {
    // The device stores only the words of the response that differ from what the buffer holds
    // (update_bytes): an older CHECK CONDITION with sense, the same GOOD response, or garbage,
    // in one buffer or cut into pieces, must all end up as this GOOD response (all zero).
    const stale = new Uint8Array(108);
    new DataView(stale.buffer).setUint32(0, 18, true);
    stale.set([0, 0, 2, 0], 8);
    stale.fill(0x70, 12, 30);
    stale[107] = 1;
    for (const held of [stale, new Uint8Array(108), new Uint8Array(108).fill(0xee)]) {
      for (const lens of [[108], [5, 50, 53]]) {
        const pieces = lens.map((_, i) => held.subarray(lens.slice(0, i).reduce((a, b) => a + b, 0)));
        const r = await rawChain(bed, 2, [cmdReq(lun0, testUnitReady())], lens, pieces);
        expect(r.usedLen).toBe(108);
        expect(Buffer.concat(r.ins)).toEqual(Buffer.alloc(108));
      }
    }
  });

  it("leaves the guest's bytes past the response untouched when there is no data", async () => {
    const r = await rawChain(bed, 2, [cmdReq(lun0, testUnitReady())], [108, 64]);
    // TEST UNIT READY moves no data: 64 writable bytes of data-in are reported as residual.
    expect(r.usedLen).toBe(108);
    expect(new DataView(r.ins[0].buffer).getUint32(4, true)).toBe(64);
    expect(r.ins[1].every((b) => b === 0xee)).toBe(true);
  });
});

describe("virtio-scsi with VIRTIO_SCSI_F_T10_PI", () => {
  it("parses struct virtio_scsi_cmd_req_pi and skips the PI bytes before the data", async () => {
    const bed = await createTestbed({ driver: { features: (1n << 32n) | (1n << 3n) } });
    expect(bed.driver.has(3)).toBe(true);
    await clearUnitAttentions(bed);
    const data = new Uint8Array(512).fill(0x5a);
    expectGood(await cmd(bed, { cdb: write16(1, 1), dataOut: data, piOut: 8 }));
    const r = await cmd(bed, { cdb: read16(1, 1), dataInLength: 512, piIn: 8 });
    expectGood(r);
    expect(r.dataIn.every((b) => b === 0x5a)).toBe(true);
    // More PI bytes than the data buffers hold: BAD_TARGET, as vhost-scsi answers.
    const hdr = new Uint8Array(59);
    hdr.set([1, 1, 0x40, 0]);
    new DataView(hdr.buffer).setUint32(23, 1000, true);
    hdr.set(read16(1, 1), 27);
    const r2 = await rawChain(bed, 2, [hdr], [108, 512]);
    expect(r2.ins[0][11]).toBe(VIRTIO_SCSI_S_BAD_TARGET);
    await bed.close();
  });

  /** A virtio_scsi_cmd_req_pi for LUN 0 of target 1. */
  const piReq = (cdb: Uint8Array, piOut: number, piIn: number) => {
    const hdr = new Uint8Array(59);
    hdr.set([1, 1, 0x40, 0]);
    new DataView(hdr.buffer).setUint32(19, piOut, true);
    new DataView(hdr.buffer).setUint32(23, piIn, true);
    hdr.set(cdb, 27);
    return hdr;
  };

  it("answers PI sizes that disagree with the data direction with BAD_TARGET and executes nothing", async () => {
    const bed = await createTestbed({ driver: { features: (1n << 32n) | (1n << 3n) } });
    await clearUnitAttentions(bed);
    const block = new Uint8Array(512).fill(0x77);
    expectGood(await cmd(bed, { cdb: write16(2, 1), dataOut: block }));
    // pi_bytesout with data-in buffers only: the READ must not run (its buffer stays untouched).
    const read = await rawChain(bed, 2, [piReq(read16(2, 1), 8, 0)], [108, 512]);
    expect([read.usedLen, read.ins[0][11]]).toEqual([108, VIRTIO_SCSI_S_BAD_TARGET]);
    expect(read.ins[1].every((b) => b === 0xee)).toBe(true);
    // pi_bytesin with data-out buffers only: the WRITE must not change the disk.
    const write = await rawChain(bed, 2, [piReq(write16(2, 1), 0, 8), new Uint8Array(512)], [108]);
    expect(write.ins[0][11]).toBe(VIRTIO_SCSI_S_BAD_TARGET);
    const after = await cmd(bed, { cdb: read16(2, 1), dataInLength: 512 });
    expect(after.dataIn.every((b) => b === 0x77)).toBe(true);
    // PI bytes either way with no data at all.
    for (const [o, i] of [
      [8, 0],
      [0, 8],
    ]) {
      const none = await rawChain(bed, 2, [piReq(testUnitReady(), o, i)], [108]);
      expect(none.ins[0][11]).toBe(VIRTIO_SCSI_S_BAD_TARGET);
    }
    await bed.close();
  });
});

describe("variable-length CDBs (SPC-5 4.2.3)", () => {
  it("answers one longer than the 32-byte CDB field with BAD_TARGET (vhost-scsi), a shorter one INVALID COMMAND OPERATION CODE", async () => {
    const bed = await createTestbed();
    await clearUnitAttentions(bed);
    const varlen = (additional: number) => {
      const c = new Uint8Array(32);
      c[0] = 0x7f;
      c[7] = additional;
      return c;
    };
    const long = await rawChain(bed, 2, [cmdReq([1, 1, 0x40, 0], varlen(0x20))], [108]);
    expect(long.ins[0][11]).toBe(VIRTIO_SCSI_S_BAD_TARGET);
    expectSense(await cmd(bed, { cdb: varlen(0x18) }), SenseKey.ILLEGAL_REQUEST, 0x2000);
    await bed.close();
  });
});
