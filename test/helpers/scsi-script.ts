// One script of SCSI commands covering every way a command reaches a backstore, for comparing
// backstores: each must answer it as the RAM disk does (where it offers the same features).
import { createHash } from "node:crypto";
import type { Testbed } from "../../src/testbed.js";
import { cdb, read16, ScsiOp, write16 } from "../../src/guest/scsi-commands.js";

export const block = (lba: number, n = 1) => new Uint8Array(512 * n).map((_, i) => (lba * 13 + i * 7 + 1) & 0xff);

/**
 * A script of commands covering every way a command reaches a backstore: reads and writes of
 * each CDB size, FUA, WRITE SAME with data, zeroes and NDOB, UNMAP, VERIFY matching and not,
 * SYNCHRONIZE CACHE, a read past the end. Returns each answer (response, status, sense, data).
 */
export async function script(t: Testbed): Promise<unknown[]> {
  const out: unknown[] = [];
  const run = async (c: { cdb: Uint8Array; dataOut?: Uint8Array; dataInLength?: number }) => {
    const r = await t.driver.command({ lun: 0, ...c });
    const data = createHash("sha1").update(r.dataIn).digest("hex").slice(0, 12);
    out.push({
      response: r.response,
      status: r.status,
      sense: r.senseInfo && [
        r.senseInfo.key,
        r.senseInfo.asc,
        r.senseInfo.ascq,
        r.senseInfo.information === undefined ? undefined : Number(r.senseInfo.information),
      ],
      residual: r.residual,
      data,
    });
  };
  const pattern = block(40);
  await run({ cdb: write16(0, 16), dataOut: block(0, 16) });
  await run({
    cdb: cdb(10, ScsiOp.WRITE_10, [
      [2, 4, 16],
      [7, 2, 4],
    ]),
    dataOut: block(16, 4),
  });
  await run({
    cdb: cdb(6, ScsiOp.WRITE_6, [
      [1, 3, 20],
      [4, 1, 2],
    ]),
    dataOut: block(20, 2),
  });
  const fua = write16(22, 2);
  fua[1] |= 0x08;
  await run({ cdb: fua, dataOut: block(22, 2) });
  await run({ cdb: read16(0, 24), dataInLength: 24 * 512 });
  await run({
    cdb: cdb(16, ScsiOp.WRITE_SAME_16, [
      [2, 8, 100],
      [10, 4, 600],
    ]),
    dataOut: pattern,
  });
  await run({ cdb: read16(100, 300), dataInLength: 300 * 512 });
  await run({
    cdb: cdb(16, ScsiOp.WRITE_SAME_16, [
      [2, 8, 150],
      [10, 4, 10],
    ]),
    dataOut: new Uint8Array(512),
  });
  await run({
    cdb: cdb(16, ScsiOp.WRITE_SAME_16, [
      [1, 1, 0x01],
      [2, 8, 170],
      [10, 4, 10],
    ]),
  });
  await run({
    cdb: cdb(16, ScsiOp.WRITE_SAME_16, [
      [1, 1, 0x08],
      [2, 8, 190],
      [10, 4, 10],
    ]),
    dataOut: new Uint8Array(512),
  });
  await run({ cdb: read16(140, 70), dataInLength: 70 * 512 });
  const unmap = new Uint8Array(8 + 3 * 16);
  const dv = new DataView(unmap.buffer);
  dv.setUint16(0, 6 + 3 * 16);
  dv.setUint16(2, 3 * 16);
  [
    [1, 2],
    [5, 0],
    [650, 8],
  ].forEach(([lba, n], i) => {
    dv.setBigUint64(8 + 16 * i, BigInt(lba));
    dv.setUint32(16 + 16 * i, n);
  });
  await run({ cdb: cdb(10, ScsiOp.UNMAP, [[7, 2, unmap.length]]), dataOut: unmap });
  await run({ cdb: read16(0, 4), dataInLength: 2048 });
  await run({ cdb: read16(650, 8), dataInLength: 4096 });
  await run({
    cdb: cdb(16, ScsiOp.VERIFY_16, [
      [1, 1, 0x02],
      [2, 8, 16],
      [10, 4, 4],
    ]),
    dataOut: block(16, 4),
  });
  const wrong = block(16, 4);
  wrong[1000] ^= 1;
  await run({
    cdb: cdb(16, ScsiOp.VERIFY_16, [
      [1, 1, 0x02],
      [2, 8, 16],
      [10, 4, 4],
    ]),
    dataOut: wrong,
  });
  // Longer than one bounce buffer (64 KiB): compared in steps; equal, then different in the second step.
  const repeated = (n: number) => Buffer.concat(Array.from({ length: n }, () => Buffer.from(pattern)));
  await run({
    cdb: cdb(16, ScsiOp.VERIFY_16, [
      [1, 1, 0x02],
      [2, 8, 400],
      [10, 4, 200],
    ]),
    dataOut: repeated(200),
  });
  await run({
    cdb: cdb(16, ScsiOp.VERIFY_16, [
      [1, 1, 0x02],
      [2, 8, 100],
      [10, 4, 160],
    ]),
    dataOut: repeated(160),
  });
  await run({ cdb: cdb(10, ScsiOp.SYNCHRONIZE_CACHE_10) });
  await run({ cdb: read16(2047, 2), dataInLength: 1024 });
  return out;
}

/** Indices of the script's commands that need logical block provisioning (DISCARD), and the reads after them. */
export const PROVISIONING = [9, 10, 11, 12, 13];
/** Indices of the two reads of blocks the script UNMAPped. */
export const UNMAP_READS = [12, 13];
