import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import type { LunConfig } from "../../src/target/tpg.js";
import { cdb, read10, read16, write10, write16, readCapacity16, ScsiOp } from "../../src/guest/scsi-commands.js";
import { SenseKey } from "../../src/guest/sense.js";
import { clearUnitAttentions, cmd, expectGood, expectSense } from "../helpers/scsi.js";

const ILLEGAL = SenseKey.ILLEGAL_REQUEST;
const LBA_RANGE = 0x2100;
const INVALID_FIELD = 0x2400;
const dir = mkdtempSync(join(tmpdir(), "vhost-scsi-sbc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pattern = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * 31 + seed * 7 + (i >> 9)) & 0xff);

const read = (lba: number, n: number, op: number): Uint8Array => {
  if (op === ScsiOp.READ_6)
    return cdb(6, op, [
      [1, 3, lba],
      [4, 1, n & 0xff],
    ]);
  if (op === ScsiOp.READ_10) return read10(lba, n);
  if (op === ScsiOp.READ_12)
    return cdb(12, op, [
      [2, 4, lba],
      [6, 4, n],
    ]);
  return read16(lba, n);
};
const write = (lba: number, n: number, op: number): Uint8Array => {
  if (op === ScsiOp.WRITE_6)
    return cdb(6, op, [
      [1, 3, lba],
      [4, 1, n & 0xff],
    ]);
  if (op === ScsiOp.WRITE_10) return write10(lba, n);
  if (op === ScsiOp.WRITE_12)
    return cdb(12, op, [
      [2, 4, lba],
      [6, 4, n],
    ]);
  return write16(lba, n);
};

const backstores: [string, (bs: 512 | 4096) => LunConfig][] = [
  ["ram", (bs) => ({ backstore: "ram", size: 4 << 20, blockSize: bs })],
  ["file", (bs) => ({ backstore: "file", path: join(dir, `disk-${bs}-${Math.random()}.img`), size: 4 << 20, blockSize: bs })],
];

describe.each(backstores)("data integrity on the %s backstore", (_name, make) => {
  describe.each([512, 4096] as const)("with %i-byte blocks", (bs) => {
    let bed: Testbed;
    beforeAll(async () => {
      bed = await createTestbed({ luns: [make(bs)] });
      await clearUnitAttentions(bed);
    });
    afterAll(() => bed.close());

    it.each([
      ["(6)", ScsiOp.WRITE_6, ScsiOp.READ_6],
      ["(10)", ScsiOp.WRITE_10, ScsiOp.READ_10],
      ["(12)", ScsiOp.WRITE_12, ScsiOp.READ_12],
      ["(16)", ScsiOp.WRITE_16, ScsiOp.READ_16],
    ])("WRITE%s then READ returns the bytes written, bit-exact", async (_n, w, r) => {
      const blocks = 5;
      const lba = 3 + w;
      const data = pattern(blocks * bs, w);
      const wr = await cmd(bed, { cdb: write(lba, blocks, w), dataOut: data });
      expectGood(wr);
      expect(wr.residual).toBe(0);
      const rd = await cmd(bed, { cdb: read(lba, blocks, r), dataInLength: blocks * bs });
      expectGood(rd);
      expect(Buffer.from(rd.dataIn).equals(Buffer.from(data))).toBe(true);
      expect(rd.usedLen).toBe(108 + blocks * bs);
    });

    it("moves data across many small guest segments (scatter-gather)", async () => {
      const data = pattern(8 * bs, 99);
      expectGood(await cmd(bed, { cdb: write16(100, 8), dataOut: data, fragment: 1000 }));
      const rd = await cmd(bed, { cdb: read16(100, 8), dataInLength: 8 * bs, fragment: 777, indirect: true });
      expectGood(rd);
      expect(Buffer.from(rd.dataIn).equals(Buffer.from(data))).toBe(true);
    });

    it("reads and writes the last block, and refuses one past it", async () => {
      const last = (4 << 20) / bs - 1;
      const data = pattern(bs, 5);
      expectGood(await cmd(bed, { cdb: write16(last, 1), dataOut: data }));
      expect(Buffer.from((await cmd(bed, { cdb: read16(last, 1), dataInLength: bs })).dataIn).equals(Buffer.from(data))).toBe(true);
      expectSense(await cmd(bed, { cdb: read16(last, 2), dataInLength: 2 * bs }), ILLEGAL, LBA_RANGE);
      expectSense(await cmd(bed, { cdb: write16(last + 1, 1), dataOut: data }), ILLEGAL, LBA_RANGE);
    });

    it("reports capacity in READ CAPACITY(10) and (16)", async () => {
      const r10 = (await cmd(bed, { cdb: cdb(10, ScsiOp.READ_CAPACITY_10), dataInLength: 8 })).dataIn;
      const v10 = new DataView(r10.buffer, r10.byteOffset);
      expect([v10.getUint32(0), v10.getUint32(4)]).toEqual([(4 << 20) / bs - 1, bs]);
      const r16 = (await cmd(bed, { cdb: readCapacity16(32), dataInLength: 32 })).dataIn;
      const v16 = new DataView(r16.buffer, r16.byteOffset);
      expect([v16.getBigUint64(0), v16.getUint32(8)]).toEqual([BigInt((4 << 20) / bs - 1), bs]);
    });
  });
});

describe("SBC-4 block commands on a RAM LUN", () => {
  let bed: Testbed;
  const bs = 512;
  const blocks = (8 << 20) / bs;
  beforeAll(async () => {
    bed = await createTestbed({
      luns: [
        { backstore: "ram", size: 8 << 20 },
        { backstore: "ram", size: 1 << 20, readOnly: true },
      ],
    });
    await clearUnitAttentions(bed, [0, 1]);
  });
  afterAll(() => bed.close());

  it("a transfer length of 0 moves nothing and is GOOD; READ(6) length 0 means 256 blocks", async () => {
    expectGood(await cmd(bed, { cdb: read16(0, 0) }));
    const r6 = await cmd(bed, {
      cdb: cdb(6, ScsiOp.READ_6, [
        [1, 3, 0],
        [4, 1, 0],
      ]),
      dataInLength: 256 * bs,
    });
    expectGood(r6);
    expect(r6.dataIn.length).toBe(256 * bs);
  });

  it("refuses LBA + length wrapping around 2^64 as out of range", async () => {
    expectSense(await cmd(bed, { cdb: read16(0xffffffffffffffffn, 2), dataInLength: 1024 }), ILLEGAL, LBA_RANGE);
    // As LIO: a zero-length transfer may start right after the last block, not further.
    expectGood(await cmd(bed, { cdb: read16(BigInt(blocks), 0) }));
    expectSense(await cmd(bed, { cdb: read16(BigInt(blocks) + 1n, 0) }), ILLEGAL, LBA_RANGE);
  });

  it("refuses protection information (RDPROTECT) and transfers above the block limit", async () => {
    expectSense(
      await cmd(bed, {
        cdb: cdb(16, ScsiOp.READ_16, [
          [1, 1, 0x20],
          [10, 4, 1],
        ]),
        dataInLength: bs,
      }),
      ILLEGAL,
      INVALID_FIELD,
      { byte: 1, bit: 7 },
    );
    expectSense(await cmd(bed, { cdb: read16(0, 65537), dataInLength: 65537 * bs }), ILLEGAL, INVALID_FIELD, { byte: 10 });
  });

  it("answers VIRTIO_SCSI_S_OVERRUN, without touching memory, when the buffers are shorter than the transfer", async () => {
    const r = await cmd(bed, { cdb: read16(0, 8), dataInLength: 2048 });
    expect([r.response, r.status, r.residual]).toEqual([1, 0, 2048]);
    expect(r.dataIn.every((b) => b === 0)).toBe(true);
    const w = await cmd(bed, { cdb: write16(0, 8), dataOut: new Uint8Array(1024) });
    expect(w.response).toBe(1);
    // Data in the wrong direction is an overrun too (nothing to read into).
    expect((await cmd(bed, { cdb: read16(0, 1), dataOut: new Uint8Array(512) })).response).toBe(1);
  });

  it("reports the residual when the buffers are longer than the transfer", async () => {
    const r = await cmd(bed, { cdb: read16(0, 2), dataInLength: 4096 });
    expectGood(r);
    expect([r.residual, r.usedLen]).toEqual([3072, 108 + 1024]);
    const w = await cmd(bed, { cdb: write16(0, 1), dataOut: new Uint8Array(2048) });
    expectGood(w);
    expect(w.residual).toBe(1536);
  });

  it("writes to a read-only LUN fail with DATA PROTECT, WRITE PROTECTED; reads work", async () => {
    for (const c of [write16(0, 1), cdb(16, ScsiOp.WRITE_SAME_16, [[10, 4, 1]]), cdb(10, ScsiOp.UNMAP, [[7, 2, 24]])]) {
      expectSense(await cmd(bed, { lun: 1, cdb: c, dataOut: new Uint8Array(512) }), SenseKey.DATA_PROTECT, 0x2700);
    }
    expectGood(await cmd(bed, { lun: 1, cdb: read16(0, 1), dataInLength: 512 }));
  });

  it("WRITE AND VERIFY writes; VERIFY with BYTCHK compares and reports the first difference", async () => {
    const data = pattern(2 * bs, 3);
    expectGood(
      await cmd(bed, {
        cdb: cdb(16, ScsiOp.WRITE_VERIFY_16, [
          [1, 1, 0x02],
          [2, 8, 40],
          [10, 4, 2],
        ]),
        dataOut: data,
      }),
    );
    expectGood(
      await cmd(bed, {
        cdb: cdb(10, ScsiOp.VERIFY_10, [
          [2, 4, 40],
          [7, 2, 2],
        ]),
      }),
    );
    expectGood(
      await cmd(bed, {
        cdb: cdb(16, ScsiOp.VERIFY_16, [
          [1, 1, 0x02],
          [2, 8, 40],
          [10, 4, 2],
        ]),
        dataOut: data,
      }),
    );
    const bad = data.slice();
    bad[700] ^= 1;
    const r = await cmd(bed, {
      cdb: cdb(10, ScsiOp.VERIFY_10, [
        [1, 1, 0x02],
        [2, 4, 40],
        [7, 2, 2],
      ]),
      dataOut: bad,
    });
    expectSense(r, SenseKey.MISCOMPARE, 0x1d00);
    expect(r.senseInfo?.information).toBe(700n);
    expectSense(
      await cmd(bed, {
        cdb: cdb(10, ScsiOp.VERIFY_10, [
          [1, 1, 0x04],
          [2, 4, 40],
          [7, 2, 2],
        ]),
      }),
      ILLEGAL,
      INVALID_FIELD,
      { byte: 1, bit: 2 },
    );
  });

  it("SYNCHRONIZE CACHE checks its range (0 blocks = to the end)", async () => {
    expectGood(
      await cmd(bed, {
        cdb: cdb(10, ScsiOp.SYNCHRONIZE_CACHE_10, [
          [2, 4, 0],
          [7, 2, 0],
        ]),
      }),
    );
    expectGood(
      await cmd(bed, {
        cdb: cdb(16, ScsiOp.SYNCHRONIZE_CACHE_16, [
          [2, 8, blocks - 1],
          [10, 4, 1],
        ]),
      }),
    );
    expectSense(
      await cmd(bed, {
        cdb: cdb(16, ScsiOp.SYNCHRONIZE_CACHE_16, [
          [2, 8, blocks - 1],
          [10, 4, 2],
        ]),
      }),
      ILLEGAL,
      LBA_RANGE,
    );
  });

  const unmapParams = (descs: [number | bigint, number][], extra = 0) => {
    const b = new Uint8Array(8 + 16 * descs.length + extra);
    const dv = new DataView(b.buffer);
    dv.setUint16(0, 6 + 16 * descs.length);
    dv.setUint16(2, 16 * descs.length);
    descs.forEach(([lba, n], i) => {
      dv.setBigUint64(8 + 16 * i, BigInt(lba));
      dv.setUint32(16 + 16 * i, n);
    });
    return b;
  };
  const unmap = (p: Uint8Array) => cdb(10, ScsiOp.UNMAP, [[7, 2, p.length]]);

  it("UNMAP zeroes the ranges (LBPRZ) and checks every descriptor first", async () => {
    expectGood(await cmd(bed, { cdb: write16(200, 4), dataOut: pattern(4 * bs, 1) }));
    const p = unmapParams([[201, 2]]);
    expectGood(await cmd(bed, { cdb: unmap(p), dataOut: p }));
    const r = (await cmd(bed, { cdb: read16(200, 4), dataInLength: 4 * bs })).dataIn;
    expect(r.subarray(bs, 3 * bs).every((x) => x === 0)).toBe(true);
    expect(Buffer.from(r.subarray(0, bs)).equals(Buffer.from(pattern(4 * bs, 1).subarray(0, bs)))).toBe(true);
    // One bad descriptor: nothing is unmapped.
    expectGood(await cmd(bed, { cdb: write16(300, 1), dataOut: pattern(bs, 2) }));
    const q = unmapParams([
      [300, 1],
      [BigInt(blocks), 1],
    ]);
    expectSense(await cmd(bed, { cdb: unmap(q), dataOut: q }), ILLEGAL, LBA_RANGE);
    expect((await cmd(bed, { cdb: read16(300, 1), dataInLength: bs })).dataIn.some((x) => x !== 0)).toBe(true);
  });

  it("UNMAP ignores an incomplete last descriptor and limits the total LBA count (SBC-4 5.32.2)", async () => {
    const p = unmapParams([[600, 2]]);
    const withTail = new Uint8Array(p.length + 4);
    withTail.set(p);
    new DataView(withTail.buffer).setUint16(2, 16 + 4); // one descriptor and 4 stray bytes
    expectGood(await cmd(bed, { cdb: unmap(withTail), dataOut: withTail }));
    // Overlapping extents are allowed; 14 x 10000 blocks exceed the 131072-block limit together.
    const q = unmapParams(Array.from({ length: 14 }, () => [0, 10000] as [number, number]));
    expectSense(await cmd(bed, { cdb: unmap(q), dataOut: q }), ILLEGAL, 0x2600);
  });

  it("UNMAP refuses short parameter lists, too many descriptors and ANCHOR", async () => {
    expectSense(await cmd(bed, { cdb: cdb(10, ScsiOp.UNMAP, [[7, 2, 4]]), dataOut: new Uint8Array(4) }), ILLEGAL, 0x1a00);
    const many = unmapParams(Array.from({ length: 129 }, (_, i) => [i, 1] as [number, number]));
    expectSense(await cmd(bed, { cdb: unmap(many), dataOut: many }), ILLEGAL, 0x2600);
    const p = unmapParams([[0, 1]]);
    expectSense(
      await cmd(bed, {
        cdb: cdb(10, ScsiOp.UNMAP, [
          [1, 1, 1],
          [7, 2, p.length],
        ]),
        dataOut: p,
      }),
      ILLEGAL,
      INVALID_FIELD,
      { byte: 1, bit: 0 },
    );
    expectGood(await cmd(bed, { cdb: cdb(10, ScsiOp.UNMAP, [[7, 2, 0]]) }));
  });

  it("WRITE SAME writes one block over the range, unmaps with UNMAP, zeroes with NDOB", async () => {
    const block = pattern(bs, 8);
    expectGood(
      await cmd(bed, {
        cdb: cdb(16, ScsiOp.WRITE_SAME_16, [
          [2, 8, 500],
          [10, 4, 3],
        ]),
        dataOut: block,
      }),
    );
    const r = (await cmd(bed, { cdb: read16(500, 3), dataInLength: 3 * bs })).dataIn;
    for (let k = 0; k < 3; k++) expect(Buffer.from(r.subarray(k * bs, (k + 1) * bs)).equals(Buffer.from(block))).toBe(true);
    expectGood(
      await cmd(bed, {
        cdb: cdb(10, ScsiOp.WRITE_SAME_10, [
          [1, 1, 0x08],
          [2, 4, 500],
          [7, 2, 1],
        ]),
        dataOut: new Uint8Array(bs),
      }),
    );
    expectGood(
      await cmd(bed, {
        cdb: cdb(16, ScsiOp.WRITE_SAME_16, [
          [1, 1, 0x01],
          [2, 8, 501],
          [10, 4, 1],
        ]),
      }),
    );
    const z = (await cmd(bed, { cdb: read16(500, 3), dataInLength: 3 * bs })).dataIn;
    expect(z.subarray(0, 2 * bs).every((x) => x === 0)).toBe(true);
    expectSense(
      await cmd(bed, {
        cdb: cdb(16, ScsiOp.WRITE_SAME_16, [
          [2, 8, 500],
          [10, 4, 0],
        ]),
        dataOut: block,
      }),
      ILLEGAL,
      INVALID_FIELD,
      { byte: 10 },
    );
    expectSense(
      await cmd(bed, {
        cdb: cdb(16, ScsiOp.WRITE_SAME_16, [
          [2, 8, blocks - 1],
          [10, 4, 2],
        ]),
        dataOut: block,
      }),
      ILLEGAL,
      LBA_RANGE,
    );
  });

  it("START STOP UNIT stops the medium (NOT READY until started again)", async () => {
    expectGood(await cmd(bed, { cdb: cdb(6, ScsiOp.START_STOP_UNIT, [[4, 1, 0]]) }));
    expectSense(await cmd(bed, { cdb: read16(0, 1), dataInLength: bs }), SenseKey.NOT_READY, 0x0402);
    expectSense(await cmd(bed, { cdb: cdb(6, ScsiOp.TEST_UNIT_READY) }), SenseKey.NOT_READY, 0x0402);
    expectGood(await cmd(bed, { cdb: cdb(6, 0x12, [[3, 2, 36]]), dataInLength: 36 })); // INQUIRY still works
    expectGood(await cmd(bed, { cdb: cdb(6, ScsiOp.START_STOP_UNIT, [[4, 1, 1]]) }));
    expectGood(await cmd(bed, { cdb: read16(0, 1), dataInLength: bs }));
    expectSense(await cmd(bed, { cdb: cdb(6, ScsiOp.START_STOP_UNIT, [[4, 1, 0x11]]) }), ILLEGAL, INVALID_FIELD, { byte: 4, bit: 7 });
  });

  it("PREVENT ALLOW MEDIUM REMOVAL blocks an eject until allowed", async () => {
    expectGood(await cmd(bed, { cdb: cdb(6, ScsiOp.PREVENT_ALLOW_MEDIUM_REMOVAL, [[4, 1, 1]]) }));
    expectSense(await cmd(bed, { cdb: cdb(6, ScsiOp.START_STOP_UNIT, [[4, 1, 0x02]]) }), ILLEGAL, 0x5302);
    expectGood(await cmd(bed, { cdb: cdb(6, ScsiOp.PREVENT_ALLOW_MEDIUM_REMOVAL, [[4, 1, 0]]) }));
    expectGood(await cmd(bed, { cdb: cdb(6, ScsiOp.START_STOP_UNIT, [[4, 1, 0x03]]) }));
    expectSense(await cmd(bed, { cdb: cdb(6, ScsiOp.PREVENT_ALLOW_MEDIUM_REMOVAL, [[4, 1, 2]]) }), ILLEGAL, INVALID_FIELD, { byte: 4, bit: 1 });
  });
});

describe("null backstore", () => {
  it("reads zeroes and accepts writes", async () => {
    const bed = await createTestbed({ luns: [{ backstore: "null", size: 1 << 30, blockSize: 4096 }] });
    await clearUnitAttentions(bed);
    expectGood(await cmd(bed, { cdb: write16(7, 2), dataOut: pattern(8192, 1) }));
    const r = await cmd(bed, { cdb: read16(7, 2), dataInLength: 8192 });
    expectGood(r);
    expect(r.dataIn.every((b) => b === 0)).toBe(true);
    await bed.close();
  });
});
