import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import {
  cdb,
  inquiry,
  modeSelect10,
  modeSelect6,
  modeSense10,
  modeSense6,
  reportLuns,
  requestSense,
  testUnitReady,
  ScsiOp,
} from "../../src/guest/scsi-commands.js";
import { SenseKey } from "../../src/guest/sense.js";
import { clearUnitAttentions, cmd, expectGood, expectSense } from "../helpers/scsi.js";

const ILLEGAL = SenseKey.ILLEGAL_REQUEST;
const INVALID_FIELD = 0x2400;

describe("SPC-5 primary commands", () => {
  let bed: Testbed;
  beforeAll(async () => {
    bed = await createTestbed({
      luns: [
        { backstore: "ram", size: 8 << 20, serial: "SER0001" },
        { backstore: "null", size: 1 << 30, blockSize: 4096, writeCache: false },
      ],
    });
    await bed.tpg.addLun(300, { backstore: "ram", size: 1 << 20 });
    await clearUnitAttentions(bed, [0, 1, 300]);
  });
  afterAll(() => bed.close());

  describe("TEST UNIT READY", () => {
    it("is GOOD on a ready LUN", async () => expectGood(await cmd(bed, { cdb: testUnitReady() })));
  });

  describe("INQUIRY (SPC-5 6.7)", () => {
    it("returns standard data: disk, SPC-5, HISUP, CMDQUE, vendor/product/revision", async () => {
      const r = await cmd(bed, { cdb: inquiry(96), dataInLength: 96 });
      expectGood(r);
      const d = r.dataIn;
      expect([d[0], d[2], d[3] & 0x0f, d[3] & 0x10, d[4], d[7] & 0x02]).toEqual([0x00, 0x07, 0x02, 0x10, 31, 0x02]);
      expect(Buffer.from(d.subarray(8, 36)).toString()).toBe("LIO-ORG vhost-wasm-ram  4.0 ");
      expect(r.residual).toBe(96 - 36);
      expect(r.usedLen).toBe(108 + 36);
    });

    it("truncates to the allocation length", async () => {
      const r = await cmd(bed, { cdb: inquiry(5), dataInLength: 5 });
      expectGood(r);
      expect([...r.dataIn]).toEqual([0, 0, 7, 0x12, 31]);
      expect(r.residual).toBe(0);
    });

    it("lists the supported VPD pages", async () => {
      const r = await cmd(bed, { cdb: inquiry(255, 0x00), dataInLength: 255 });
      expectGood(r);
      expect([...r.dataIn.subarray(0, 10)]).toEqual([0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    });

    it("reports the unit serial number (80h)", async () => {
      const r = await cmd(bed, { cdb: inquiry(255, 0x80), dataInLength: 255 });
      expect(Buffer.from(r.dataIn.subarray(4, 4 + r.dataIn[3])).toString()).toBe("SER0001");
    });

    it("identifies the LUN with NAA, T10 vendor id, relative port and target name (83h)", async () => {
      const r = await cmd(bed, { cdb: inquiry(255, 0x83), dataInLength: 255 });
      expectGood(r);
      const p = r.dataIn;
      const end = 4 + ((p[2] << 8) | p[3]);
      const descs: { type: number; assoc: number; code: number; body: Buffer }[] = [];
      for (let at = 4; at < end; at += 4 + p[at + 3]) {
        descs.push({ code: p[at] & 0x0f, assoc: (p[at + 1] >> 4) & 3, type: p[at + 1] & 0x0f, body: Buffer.from(p.subarray(at + 4, at + 4 + p[at + 3])) });
      }
      expect(descs.map((d) => [d.type, d.assoc, d.code])).toEqual([
        [3, 0, 1],
        [1, 0, 2],
        [4, 1, 1],
        [8, 1, 3],
      ]);
      expect(descs[0].body[0] >> 4).toBe(6); // NAA IEEE Registered Extended
      expect(descs[0].body.length).toBe(16);
      expect(descs[1].body.toString()).toBe("LIO-ORG SER0001");
      expect(descs[2].body.readUInt16BE(2)).toBe(bed.tpg.tag + 1);
      expect(descs[3].body.toString().replace(/\0+$/, "")).toBe(`${bed.target.wwpn},t,0x0001`);
    });

    it("keeps OPTIMAL <= MAXIMUM TRANSFER LENGTH <= the HBA's max_sectors, so Linux's sd probes without a warning", async () => {
      for (const [lun, bs] of [
        [0, 512],
        [1, 4096],
      ]) {
        const v = new DataView((await cmd(bed, { lun, cdb: inquiry(64, 0xb0), dataInLength: 64 })).dataIn.buffer);
        const max = v.getUint32(8);
        const opt = v.getUint32(12);
        // sd's dev_max: 0xffff blocks for 10-byte CDBs, and max_sectors (0xffff * 512 bytes) from the config.
        expect(max * bs).toBeLessThanOrEqual(0xffff * 512);
        expect(max).toBeLessThanOrEqual(0xffff);
        expect(opt).toBeGreaterThan(0);
        expect(opt).toBeLessThanOrEqual(max);
        expect(opt & (opt - 1)).toBe(0);
      }
    });

    it("reports block limits, characteristics and provisioning (B0h, B1h, B2h)", async () => {
      const b0 = (await cmd(bed, { cdb: inquiry(64, 0xb0), dataInLength: 64 })).dataIn;
      const v = new DataView(b0.buffer, b0.byteOffset);
      expect([b0[1], v.getUint16(2), b0[4] & 1, v.getUint32(8), v.getUint32(20) > 0, v.getUint32(24)]).toEqual([0xb0, 0x3c, 1, 65535, true, 128]);
      const b1 = (await cmd(bed, { cdb: inquiry(64, 0xb1), dataInLength: 64 })).dataIn;
      expect([b1[1], (b1[4] << 8) | b1[5]]).toEqual([0xb1, 1]);
      const b2 = (await cmd(bed, { cdb: inquiry(8, 0xb2), dataInLength: 8 })).dataIn;
      expect([b2[1], b2[3], b2[5] & 0xe4, b2[6] & 7]).toEqual([0xb2, 4, 0xe4, 2]);
      const nb2 = (await cmd(bed, { lun: 1, cdb: inquiry(8, 0xb2), dataInLength: 8 })).dataIn;
      expect(nb2[5]).toBe(0); // null backstore: no unmap
    });

    it("refuses an unknown VPD page and a page code without EVPD (INVALID FIELD IN CDB, byte 2)", async () => {
      expectSense(await cmd(bed, { cdb: inquiry(64, 0x99), dataInLength: 64 }), ILLEGAL, INVALID_FIELD, { byte: 2 });
      expectSense(
        await cmd(bed, {
          cdb: cdb(6, ScsiOp.INQUIRY, [
            [2, 1, 0x80],
            [3, 2, 64],
          ]),
          dataInLength: 64,
        }),
        ILLEGAL,
        INVALID_FIELD,
        { byte: 2 },
      );
      expectSense(
        await cmd(bed, {
          cdb: cdb(6, ScsiOp.INQUIRY, [
            [1, 1, 0x02],
            [3, 2, 64],
          ]),
          dataInLength: 64,
        }),
        ILLEGAL,
        INVALID_FIELD,
        { byte: 1 },
      );
    });

    it("answers for an unused LUN number with peripheral qualifier 3, type 1Fh", async () => {
      const r = await cmd(bed, { lun: 7, cdb: inquiry(36), dataInLength: 36 });
      expectGood(r);
      expect(r.dataIn[0]).toBe(0x7f);
    });
  });

  describe("REPORT LUNS (SPC-5 6.33)", () => {
    it("lists every LUN, flat addressing above 255, from any LUN number", async () => {
      for (const lun of [0, 42]) {
        const r = await cmd(bed, { lun, cdb: reportLuns(64), dataInLength: 64 });
        expectGood(r);
        const d = r.dataIn;
        expect(new DataView(d.buffer, d.byteOffset).getUint32(0)).toBe(24);
        expect([...d.subarray(8, 32)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
      }
    });

    it("truncates to the allocation length but reports the full list length", async () => {
      const r = await cmd(bed, { cdb: reportLuns(16), dataInLength: 16 });
      expectGood(r);
      expect(new DataView(r.dataIn.buffer, r.dataIn.byteOffset).getUint32(0)).toBe(24);
      expect(r.dataIn.length).toBe(16);
    });

    it("refuses an allocation length below 16 and an unknown SELECT REPORT", async () => {
      expectSense(await cmd(bed, { cdb: reportLuns(8), dataInLength: 8 }), ILLEGAL, INVALID_FIELD, { byte: 6 });
      expectSense(await cmd(bed, { cdb: reportLuns(64, 3), dataInLength: 64 }), ILLEGAL, INVALID_FIELD, { byte: 2 });
    });
  });

  describe("REQUEST SENSE (SPC-5 6.39)", () => {
    it("reports NO SENSE when nothing is pending, fixed or descriptor format", async () => {
      const f = await cmd(bed, { cdb: requestSense(18), dataInLength: 18 });
      expectGood(f);
      expect([f.dataIn[0], f.dataIn[2] & 0xf, f.dataIn[7], f.dataIn[12]]).toEqual([0x70, 0, 10, 0]);
      const d = await cmd(bed, { cdb: requestSense(8, true), dataInLength: 8 });
      expect([d.dataIn[0], d.dataIn[1]]).toEqual([0x72, 0]);
    });

    it("returns and clears a pending unit attention", async () => {
      bed.tpg.lun(0)!.raiseUnitAttention(4); // UA_LUN_RESET
      const r = await cmd(bed, { cdb: requestSense(18), dataInLength: 18 });
      expectGood(r);
      expect([r.dataIn[2] & 0xf, r.dataIn[12], r.dataIn[13]]).toEqual([SenseKey.UNIT_ATTENTION, 0x29, 0x03]);
      expectGood(await cmd(bed, { cdb: testUnitReady() }));
    });

    it("reports LOGICAL UNIT NOT SUPPORTED as data for an unused LUN", async () => {
      const r = await cmd(bed, { lun: 9, cdb: requestSense(18), dataInLength: 18 });
      expectGood(r);
      expect([r.dataIn[2] & 0xf, r.dataIn[12]]).toEqual([ILLEGAL, 0x25]);
    });
  });

  describe("MODE SENSE(6/10) (SPC-5 6.13, 6.14)", () => {
    it("returns header, block descriptor and the caching page", async () => {
      const r = await cmd(bed, { cdb: modeSense6(0x08, 255), dataInLength: 255 });
      expectGood(r);
      const d = r.dataIn;
      expect([d[0], d[1], d[2] & 0x80, d[3]]).toEqual([4 + 8 + 20 - 1, 0, 0, 8]);
      const dv = new DataView(d.buffer, d.byteOffset);
      expect([dv.getUint32(4), dv.getUint32(8) & 0xffffff]).toEqual([(8 << 20) / 512, 512]);
      expect([d[12], d[13], d[14] & 0x04]).toEqual([0x08, 0x12, 0x04]);
    });

    it("returns the control page, all pages, no block descriptor with DBD, long LBA with LLBAA", async () => {
      const ctl = (await cmd(bed, { cdb: modeSense10(0x0a, 255, { dbd: true }), dataInLength: 255 })).dataIn;
      expect([ctl[6], ctl[7], ctl[8], ctl[9]]).toEqual([0, 0, 0x0a, 0x0a]);
      const all = (await cmd(bed, { cdb: modeSense10(0x3f, 255), dataInLength: 255 })).dataIn;
      expect(((all[0] << 8) | all[1]) + 2).toBe(8 + 8 + 20 + 12);
      const ll = (await cmd(bed, { cdb: modeSense10(0x08, 255, { llbaa: true }), dataInLength: 255 })).dataIn;
      expect([ll[4] & 1, (ll[6] << 8) | ll[7]]).toEqual([1, 16]);
    });

    it("shows no write cache on a LUN configured without it, and WCE as the one changeable bit", async () => {
      const r = (await cmd(bed, { lun: 1, cdb: modeSense10(0x08, 255, { dbd: true }), dataInLength: 255 })).dataIn;
      expect(r[8 + 2] & 0x04).toBe(0);
      const ch = (await cmd(bed, { cdb: modeSense10(0x3f, 255, { dbd: true, pc: 1 }), dataInLength: 255 })).dataIn;
      expect(ch[8 + 2]).toBe(0x04);
      expect([...ch.subarray(8 + 3, 8 + 20), ...ch.subarray(8 + 22, 8 + 32)].every((b) => b === 0)).toBe(true);
    });

    it("refuses saved values, unknown pages and subpages", async () => {
      expectSense(await cmd(bed, { cdb: modeSense10(0x08, 255, { pc: 3 }), dataInLength: 255 }), ILLEGAL, 0x3900);
      expectSense(await cmd(bed, { cdb: modeSense10(0x19, 255), dataInLength: 255 }), ILLEGAL, INVALID_FIELD, { byte: 2, bit: 5 });
      expectSense(await cmd(bed, { cdb: modeSense6(0x08, 255, { subpage: 1 }), dataInLength: 255 }), ILLEGAL, INVALID_FIELD, { byte: 3 });
    });

    it("sets WP in the device-specific parameter of a read-only LUN", async () => {
      bed.tpg.lun(0)!.setReadOnly(true);
      const r = (await cmd(bed, { cdb: modeSense6(0x08, 255), dataInLength: 255 })).dataIn;
      bed.tpg.lun(0)!.setReadOnly(false);
      expect(r[2] & 0x80).toBe(0x80);
    });
  });

  describe("MODE SELECT(6/10) (SPC-5 6.11, 6.12)", () => {
    const select10 = (data: Uint8Array, b1 = 0x10) => modeSelect10(data.length, { pf: (b1 & 0x10) !== 0, sp: (b1 & 1) !== 0 });
    const select6 = (data: Uint8Array) => modeSelect6(data.length);
    /** The current pages as MODE SENSE(10) gives them, made into MODE SELECT(10) parameter data. */
    const current = async (lun: number, page = 0x3f, dbd = false) => {
      const d = (await cmd(bed, { lun, cdb: modeSense10(page, 255, { dbd }), dataInLength: 255 })).dataIn;
      const out = d.slice(0, ((d[0] << 8) | d[1]) + 2);
      out[0] = out[1] = 0; // MODE DATA LENGTH is reserved in MODE SELECT
      out[3] = 0; // and so is the device-specific parameter here
      return out;
    };
    const wce = async (lun: number) => (await cmd(bed, { lun, cdb: modeSense6(0x08, 255, { dbd: true }), dataInLength: 255 })).dataIn[4 + 2] & 0x04;

    it("takes the current values back (pages and block descriptor), and turns the write cache off and on (Linux's cache_type)", async () => {
      expectGood(await cmd(bed, { cdb: select10(await current(0)), dataOut: await current(0) }));
      expect(await wce(0)).toBe(0x04);
      const off = await current(0, 0x08, true);
      off[8 + 2] &= ~0x04;
      expectGood(await cmd(bed, { cdb: select10(off), dataOut: off }));
      expect(await wce(0)).toBe(0);
      // MODE SELECT(6) as sd sends it: 4-byte header, no block descriptor, the caching page with WCE set.
      const six = new Uint8Array(4 + 20);
      six.set((await current(0, 0x08, true)).subarray(8, 28), 4);
      six[4 + 2] |= 0x04;
      expectGood(await cmd(bed, { cdb: select6(six), dataOut: six }));
      expect(await wce(0)).toBe(0x04);
      expectGood(await cmd(bed, { cdb: select6(new Uint8Array(0)) }));
    });

    it("refuses saving, the vendor format, a change that is not changeable, unknown pages, subpages, wrong lengths and another block size, naming the field; nothing changes", async () => {
      const cur = await current(0, 0x08, true);
      expectSense(await cmd(bed, { cdb: select10(cur, 0x11), dataOut: cur }), ILLEGAL, INVALID_FIELD, { byte: 1, bit: 0 });
      expectSense(await cmd(bed, { cdb: select10(cur, 0x00), dataOut: cur }), ILLEGAL, INVALID_FIELD, { byte: 1, bit: 4 });
      const both = cur.slice();
      both[8 + 2] &= ~0x04; // WCE off (changeable) ...
      both[8 + 12] = 0x20; // ... and a byte that is not
      expectSense(await cmd(bed, { cdb: select10(both), dataOut: both }), ILLEGAL, 0x2600, { byte: 8 + 12, bit: 5, inCdb: false });
      expect(await wce(0)).toBe(0x04);
      const unknown = cur.slice();
      unknown[8] = 0x19;
      expectSense(await cmd(bed, { cdb: select10(unknown), dataOut: unknown }), ILLEGAL, 0x2600, { byte: 8, bit: 5, inCdb: false });
      const sub = cur.slice();
      sub[8] |= 0x40;
      expectSense(await cmd(bed, { cdb: select10(sub), dataOut: sub }), ILLEGAL, 0x2600, { byte: 8, bit: 6, inCdb: false });
      const len = cur.slice();
      len[9] = 0x10;
      expectSense(await cmd(bed, { cdb: select10(len), dataOut: len }), ILLEGAL, 0x2600, { byte: 9, inCdb: false });
      expectSense(await cmd(bed, { cdb: select10(cur.subarray(0, 20)), dataOut: cur.subarray(0, 20) }), ILLEGAL, 0x1a00);
      expectSense(await cmd(bed, { cdb: select10(cur.subarray(0, 6)), dataOut: cur.subarray(0, 6) }), ILLEGAL, 0x1a00);
      const bd = await current(0, 0x08);
      bd[8 + 6] = 0x10; // block length 4096 on a 512-byte LUN
      expectSense(await cmd(bed, { cdb: select10(bd), dataOut: bd }), ILLEGAL, 0x2600, { byte: 8 + 5, inCdb: false });
      expect(await wce(0)).toBe(0x04);
    });
  });

  describe("REPORT SUPPORTED OPERATION CODES (SPC-5 6.35)", () => {
    const rsoc = (options: number, op = 0, sa = 0, rctd = false, alloc = 64) =>
      cdb(12, ScsiOp.MAINTENANCE_IN, [
        [1, 1, 0x0c],
        [2, 1, (rctd ? 0x80 : 0) | options],
        [3, 1, op],
        [4, 2, sa],
        [6, 4, alloc],
      ]);

    it("lists every command with its CDB length, and every listed command is served", async () => {
      const r = await cmd(bed, { cdb: rsoc(0, 0, 0, false, 4096), dataInLength: 4096 });
      expectGood(r);
      const d = r.dataIn;
      const len = new DataView(d.buffer, d.byteOffset).getUint32(0);
      const cmds: [number, number, number][] = [];
      for (let at = 4; at < 4 + len; at += 8) cmds.push([d[at], d[at + 5] & 1 ? (d[at + 2] << 8) | d[at + 3] : -1, (d[at + 6] << 8) | d[at + 7]]);
      expect(cmds.length).toBe(46);
      expect(cmds).toContainEqual([0x9e, 0x10, 16]);
      // Reservations (issue 30): RESERVE/RELEASE(6) and (10), PERSISTENT RESERVE IN's four and OUT's seven service actions.
      for (const op of [0x16, 0x17, 0x56, 0x57]) expect(cmds.map((c) => c[0])).toContain(op);
      expect(cmds).toContainEqual([0x89, -1, 16]); // COMPARE AND WRITE, on LUNs served in place
      for (const sa of [0, 1, 2, 3]) expect(cmds).toContainEqual([0x5e, sa, 10]);
      for (const sa of [0, 1, 2, 3, 4, 5, 6]) expect(cmds).toContainEqual([0x5f, sa, 10]);
      expect(cmds).toContainEqual([0x28, -1, 10]);
      for (const [op, sa, len2] of cmds) {
        const c = new Uint8Array(len2);
        c[0] = op;
        if (sa >= 0) c[1] = sa;
        const res = await cmd(bed, { cdb: c });
        const opcodeRefused = res.senseInfo?.asc === 0x20;
        expect({ op, opcodeRefused }).toEqual({ op, opcodeRefused: false });
      }
    });

    it("lists UNMAP only on LUNs with logical block provisioning, as they serve it (found by the fuzzer)", async () => {
      const all = (await cmd(bed, { lun: 1, cdb: rsoc(0, 0, 0, false, 4096), dataInLength: 4096 })).dataIn;
      const ops: number[] = [];
      for (let at = 4; at < 4 + new DataView(all.buffer, all.byteOffset).getUint32(0); at += 8) ops.push(all[at]);
      expect(ops).not.toContain(0x42);
      expect(ops.length).toBe(45);
      expect((await cmd(bed, { lun: 1, cdb: rsoc(1, 0x42), dataInLength: 64 })).dataIn[1] & 7).toBe(1);
      expectSense(await cmd(bed, { lun: 1, cdb: cdb(10, ScsiOp.UNMAP, [[7, 2, 24]]), dataOut: new Uint8Array(24) }), ILLEGAL, 0x2000);
    });

    it("describes one command with its usage map, and one with a service action", async () => {
      const one = (await cmd(bed, { cdb: rsoc(1, 0x28), dataInLength: 64 })).dataIn;
      expect([one[1] & 7, (one[2] << 8) | one[3], one[4]]).toEqual([3, 10, 0xff]);
      const sa = (await cmd(bed, { cdb: rsoc(2, 0x9e, 0x10), dataInLength: 64 })).dataIn;
      expect([sa[1] & 7, (sa[2] << 8) | sa[3]]).toEqual([3, 16]);
      const no = (await cmd(bed, { cdb: rsoc(1, 0x4c), dataInLength: 64 })).dataIn;
      expect(no[1] & 7).toBe(1);
      const withTimeouts = (await cmd(bed, { cdb: rsoc(1, 0x28, 0, true), dataInLength: 64 })).dataIn;
      expect([withTimeouts[1] & 0x80, (withTimeouts[14] << 8) | withTimeouts[15]]).toEqual([0x80, 0x0a]);
    });

    it("refuses a service action query for a command without them, and unknown options", async () => {
      expectSense(await cmd(bed, { cdb: rsoc(2, 0x28), dataInLength: 64 }), ILLEGAL, INVALID_FIELD, { byte: 3 });
      expectSense(await cmd(bed, { cdb: rsoc(1, 0x9e), dataInLength: 64 }), ILLEGAL, INVALID_FIELD, { byte: 3 });
      expectSense(await cmd(bed, { cdb: rsoc(5), dataInLength: 64 }), ILLEGAL, INVALID_FIELD, { byte: 2 });
    });
  });

  describe("unsupported and unaddressed commands", () => {
    it("an unknown operation code is INVALID COMMAND OPERATION CODE", async () => {
      expectSense(await cmd(bed, { cdb: cdb(10, 0x4c) }), ILLEGAL, 0x2000);
      expectSense(await cmd(bed, { cdb: cdb(16, ScsiOp.SERVICE_ACTION_IN_16, [[1, 1, 0x11]]) }), ILLEGAL, INVALID_FIELD, { byte: 1, bit: 4 });
    });

    it("an unused LUN number refuses media commands with LOGICAL UNIT NOT SUPPORTED", async () => {
      expectSense(await cmd(bed, { lun: 5, cdb: testUnitReady() }), ILLEGAL, 0x2500);
    });

    it("descriptor-format sense follows the control page's D_SENSE", async () => {
      await bed.tpg.addLun(2, { backstore: "null", size: 1 << 20, descriptorSense: true });
      await clearUnitAttentions(bed, [0, 1, 2, 300]);
      const r = await cmd(bed, { lun: 2, cdb: cdb(10, 0x4c) });
      expect(r.senseInfo).toMatchObject({ descriptor: true, key: ILLEGAL, asc: 0x20 });
      const f = await cmd(bed, { lun: 2, cdb: inquiry(64, 0x99), dataInLength: 64 });
      expect(f.senseInfo).toMatchObject({ descriptor: true, fieldPointer: { inCdb: true, byte: 2 } });
      await bed.tpg.removeLun(2);
      await clearUnitAttentions(bed, [0, 1, 300]);
    });
  });
});
