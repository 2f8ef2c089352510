import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import { ScsiOp, cdb, read16 } from "../../src/guest/scsi-commands.js";
import { clearUnitAttentions } from "../helpers/scsi.js";
import { cmdReq, rawChain } from "../helpers/raw.js";

// READ and WRITE of a RAM LUN in the layout Linux's driver gives them (header alone, response
// alone, data after) are served in place (serve_rw_in_place); cut the header in two and the
// generic path serves the same command. Two LUNs alike get the same commands, one in each
// layout: every answer, every byte of the guest's buffers, and the media afterwards must match.

const BLOCKS = 128;
const MAX_XFER = 16;
const LUN_FIELD = (lun: number) => [1, 1, 0x40, lun];

/** A READ/WRITE CDB of the size the operation code has, with the protection bits of byte 1. */
function rwCdb(op: number, lba: number, blocks: number, protect: number): Uint8Array {
  const group = op >> 5;
  if (group === 0)
    return cdb(6, op, [
      [1, 3, lba & 0x1fffff],
      [4, 1, blocks & 0xff],
    ]);
  const fields: [number, number, number][] =
    group === 4
      ? [
          [2, 8, lba],
          [10, 4, blocks],
        ]
      : group === 5
        ? [
            [2, 4, lba],
            [6, 4, blocks],
          ]
        : [
            [2, 4, lba],
            [7, 2, blocks],
          ];
  const c = cdb(group === 4 ? 16 : group === 5 ? 12 : 10, op, fields);
  c[1] = protect << 5;
  return c;
}

const command = fc.record({
  op: fc.constantFrom(
    ScsiOp.READ_6,
    ScsiOp.READ_10,
    ScsiOp.READ_12,
    ScsiOp.READ_16,
    ScsiOp.WRITE_6,
    ScsiOp.WRITE_10,
    ScsiOp.WRITE_12,
    ScsiOp.WRITE_16,
    ScsiOp.WRITE_VERIFY_10,
    ScsiOp.WRITE_VERIFY_16,
  ),
  lba: fc.oneof(fc.integer({ min: 0, max: BLOCKS + 4 }), fc.constant(0xffffffff)),
  blocks: fc.integer({ min: 0, max: MAX_XFER + 2 }),
  protect: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) }),
  // The data buffers against the transfer: exact, short or long by some bytes.
  slack: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -600, max: 600 }) }),
  pieces: fc.integer({ min: 1, max: 3 }),
  fill: fc.integer({ min: 0, max: 255 }),
});

/** Cuts n bytes into `pieces` buffers (the last takes the rest). */
function cut(n: number, pieces: number): number[] {
  const each = Math.floor(n / pieces);
  return Array.from({ length: pieces }, (_, i) => (i === pieces - 1 ? n - each * (pieces - 1) : each)).filter((l) => l > 0);
}

describe("READ and WRITE served in place answer as the generic path does", () => {
  let bed: Testbed;
  const lun = { backstore: "ram" as const, size: BLOCKS * 512, maxTransferBlocks: MAX_XFER };
  beforeAll(async () => {
    bed = await createTestbed({ luns: [lun, lun] });
    await clearUnitAttentions(bed, [0, 1]);
  });
  afterAll(() => bed.close());

  it("gives the same used length, response, data and media for random commands", async () => {
    await fc.assert(
      fc.asyncProperty(command, async (c) => {
        const write = c.op !== ScsiOp.READ_6 && c.op !== ScsiOp.READ_10 && c.op !== ScsiOp.READ_12 && c.op !== ScsiOp.READ_16;
        const bytes = Math.max(0, c.blocks * 512 + c.slack);
        const data = cut(bytes, c.pieces);
        const cdbBytes = rwCdb(c.op, c.lba, c.blocks, c.protect);
        const run = (lunId: number, splitHeader: boolean) => {
          const hdr = cmdReq(LUN_FIELD(lunId), cdbBytes);
          const header = splitHeader ? [hdr.subarray(0, 10), hdr.subarray(10)] : [hdr];
          const payload = data.map((len, i) => new Uint8Array(len).fill((c.fill + i) & 0xff));
          return write ? rawChain(bed, 2, [...header, ...payload], [108]) : rawChain(bed, 2, header, [108, ...data]);
        };
        const inPlace = await run(0, false);
        const generic = await run(1, true);
        expect(inPlace.usedLen).toBe(generic.usedLen);
        expect(inPlace.ins).toEqual(generic.ins);
      }),
      { numRuns: 300 },
    );
    // The media took the same writes.
    const medium = async (l: number) => {
      const chunks: Uint8Array[] = [];
      for (let lba = 0; lba < BLOCKS; lba += MAX_XFER) {
        const r = await rawChain(bed, 2, [cmdReq(LUN_FIELD(l), read16(lba, MAX_XFER))], [108, MAX_XFER * 512]);
        expect(r.ins[0][10]).toBe(0);
        chunks.push(r.ins[1]);
      }
      return Buffer.concat(chunks);
    };
    const media = [await medium(0), await medium(1)];
    expect(media[0]).toEqual(media[1]);
    expect(media[0].some((b) => b !== 0)).toBe(true);
  });
});
