// COMPARE AND WRITE (SBC-4 5.3): the command's answers on one initiator, and its atomicity with
// respect to other commands from other queues, workers and devices, checked by a property test:
// contenders on two vhost-scsi devices (two guests, each device's queues on their own worker
// threads) take a lock block with COMPARE AND WRITE (free -> their id) and give it back with a
// plain WRITE, as cluster filesystems use ATS; no two may ever hold it at once, and a counter
// block raised by COMPARE AND WRITE read-modify-writes loses no increment.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addInitiator, createTestbed, type Initiator, type Testbed } from "../../src/testbed.js";
import type { ScsiResult, VirtioScsiDriver } from "../../src/guest/scsi-driver.js";
import { cdb, inquiry, read16, write16 } from "../../src/guest/scsi-commands.js";
import { clearUnitAttentions, expectGood, expectSense } from "../helpers/scsi.js";
import { openFileLun } from "../helpers/backstores.js";
import { RecordingBackstore } from "../../src/testing/recording-backstore.js";

const BS = 512;
const ILLEGAL = 0x05;
const MISCOMPARE = 0x0e;

const caw = (lba: number, blocks = 1) =>
  cdb(16, 0x89, [
    [2, 8, lba],
    [13, 1, blocks],
  ]);
const block = (fill: (i: number) => number) => Uint8Array.from({ length: BS }, (_, i) => fill(i));
const both = (verify: Uint8Array, write: Uint8Array) => {
  const d = new Uint8Array(verify.length + write.length);
  d.set(verify);
  d.set(write, verify.length);
  return d;
};
const u64Block = (v: bigint) => {
  const b = new Uint8Array(BS);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
};

const dir = mkdtempSync(join(tmpdir(), "vhost-caw-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("COMPARE AND WRITE on one initiator", () => {
  let bed: Testbed;
  beforeAll(async () => {
    const f = join(dir, "file.img");
    writeFileSync(f, "");
    truncateSync(f, 1 << 20);
    bed = await createTestbed({
      luns: [
        { backstore: "ram", size: 1 << 20 },
        { backstore: "file", path: f, ioThreads: 0 },
      ],
    });
    await clearUnitAttentions(bed, [0, 1]);
  });
  afterAll(() => bed.close());
  const cmd = (c: Parameters<VirtioScsiDriver["command"]>[0]) => bed.driver.command(c);

  it.each([
    ["a RAM LUN, in place", 0],
    ["a file LUN, through its queue", 1],
  ])("writes the second half where the first half matches the medium, and only then: %s", async (_, lun) => {
    const old = block((i) => i & 0xff);
    const fresh = block((i) => 0xff - (i & 0xff));
    expectGood(await cmd({ lun, cdb: write16(7, 1), dataOut: old }));
    expectGood(await cmd({ lun, cdb: caw(7), dataOut: both(old, fresh) }));
    expect((await cmd({ lun, cdb: read16(7, 1), dataInLength: BS })).dataIn).toEqual(fresh);
    // The medium now holds `fresh`: a compare that differs only at byte 300 says 300 in the
    // INFORMATION field, and nothing is written.
    const near = fresh.slice();
    near[300] ^= 1;
    const r = await cmd({ lun, cdb: caw(7), dataOut: both(near, old) });
    expectSense(r, MISCOMPARE, 0x1d00);
    expect(r.senseInfo?.information).toBe(300n);
    expect(r.residual).toBe(0);
    expect((await cmd({ lun, cdb: read16(7, 1), dataInLength: BS })).dataIn).toEqual(fresh);
    const limits = (await cmd({ lun, cdb: inquiry(64, 0xb0), dataInLength: 64 })).dataIn;
    expect(limits[5]).toBe(1); // MAXIMUM COMPARE AND WRITE LENGTH
  });

  it("checks its CDB and buffer: zero blocks is GOOD, more than the Block Limits' 1 or past the end refused, a short data-out an overrun", async () => {
    expectGood(await cmd({ lun: 0, cdb: caw(0, 0) }));
    expectSense(await cmd({ lun: 0, cdb: caw(0, 2), dataOut: new Uint8Array(4 * BS) }), ILLEGAL, 0x2400, { byte: 13 });
    expectSense(await cmd({ lun: 0, cdb: caw(2048), dataOut: new Uint8Array(2 * BS) }), ILLEGAL, 0x2100);
    const c = caw(1);
    c[1] = 0x20; // WRPROTECT
    expectSense(await cmd({ lun: 0, cdb: c, dataOut: new Uint8Array(2 * BS) }), ILLEGAL, 0x2400, { byte: 1, bit: 7 });
    expect((await cmd({ lun: 0, cdb: caw(1), dataOut: new Uint8Array(BS) })).response).toBe(1); // VIRTIO_SCSI_S_OVERRUN
  });

  it("a file LUN with its write cache off writes through: the write, then a flush, before GOOD", async () => {
    const rec = new RecordingBackstore(await openFileLun(join(dir, "wt.img"), 1 << 20, bed.shm));
    bed.tpg.attachLun(2, rec, { writeCache: false });
    await clearUnitAttentions(bed, [2]);
    const zero = new Uint8Array(BS);
    const before = rec.log.length;
    expectGood(
      await cmd({
        lun: 2,
        cdb: caw(3),
        dataOut: both(
          zero,
          block(() => 9),
        ),
      }),
    );
    expect(rec.log.slice(before).map((o) => o.op)).toEqual(["write", "flush"]);
    await bed.tpg.removeLun(2);
  });

  it("is not offered where the backstore answers after submit() returns (an NBD server, here a shuffling recorder): Block Limits says 0, the opcode is refused", async () => {
    bed.tpg.attachLun(3, new RecordingBackstore(await openFileLun(join(dir, "async.img"), 1 << 20, bed.shm), Math.random));
    await clearUnitAttentions(bed, [3]);
    expect((await cmd({ lun: 3, cdb: inquiry(64, 0xb0), dataInLength: 64 })).dataIn[5]).toBe(0);
    expectSense(await cmd({ lun: 3, cdb: caw(0), dataOut: new Uint8Array(2 * BS) }), ILLEGAL, 0x2000);
    await bed.tpg.removeLun(3);
  });
});

describe.each([
  ["a RAM LUN (in place: the LUN's lock and the queues' grace period)", "ram"],
  ["a file LUN (queued: its submission queue's gate, the vhost workers serving it)", "file"],
])("COMPARE AND WRITE against commands of other queues, workers and devices, on %s", (_, kind) => {
  let bed: Testbed;
  let other: Initiator;
  beforeAll(async () => {
    const lun =
      kind === "ram"
        ? { backstore: "ram" as const, size: 1 << 20 }
        : { backstore: "file" as const, path: join(dir, "shared.img"), size: 1 << 20, ioThreads: 0 };
    bed = await createTestbed({ queues: 2, workers: 2, hotplugMemory: 16 << 20, luns: [lun] });
    other = await addInitiator(bed, { queues: 2 });
    await clearUnitAttentions(bed, [0]);
    for (let i = 0; i < 4 && (await other.driver.command({ lun: 0, cdb: inquiry(36), dataInLength: 36 })).status !== 0; i++);
    for (let i = 0; i < 4 && (await other.driver.command({ lun: 0, cdb: read16(0, 1), dataInLength: BS })).status !== 0; i++);
  });
  afterAll(async () => {
    await other.close();
    await bed.close();
  });

  /** The contenders' places: a driver and a request queue of it. */
  const places = () => [
    { d: bed.driver, queue: 0 },
    { d: bed.driver, queue: 1 },
    { d: other.driver, queue: 0 },
    { d: other.driver, queue: 1 },
  ];
  const good = (r: ScsiResult) => r.response === 0 && r.status === 0;

  it("a lock block taken with COMPARE AND WRITE and given back with WRITE is never held twice; a counter raised with it loses nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 2, maxLength: 6 }), fc.integer({ min: 2, max: 6 }), async (who, rounds) => {
        const LOCK = 100;
        const COUNTER = 101;
        const FREE = u64Block(0n);
        expectGood(await bed.driver.command({ lun: 0, cdb: write16(LOCK, 1), dataOut: FREE }));
        expectGood(await bed.driver.command({ lun: 0, cdb: write16(COUNTER, 1), dataOut: u64Block(0n) }));
        let holders = 0;
        let maxHolders = 0;
        let increments = 0;
        const contender = async (id: number, { d, queue }: { d: VirtioScsiDriver; queue: number }) => {
          const mine = u64Block(BigInt(id));
          for (let k = 0; k < rounds; k++) {
            // Take the lock: free -> mine, again on MISCOMPARE (someone holds it) or BUSY.
            while (!good(await d.command({ lun: 0, queue, cdb: caw(LOCK), dataOut: both(FREE, mine) })));
            holders++;
            maxHolders = Math.max(maxHolders, holders);
            const seen = await d.command({ lun: 0, queue, cdb: read16(LOCK, 1), dataInLength: BS });
            expect(seen.dataIn).toEqual(mine);
            await new Promise((r) => setImmediate(r));
            holders--;
            expectGood(await d.command({ lun: 0, queue, cdb: write16(LOCK, 1), dataOut: FREE }));
            // A lock-free increment: read, then COMPARE AND WRITE old -> old + 1, again if it changed.
            for (;;) {
              const cur = (await d.command({ lun: 0, queue, cdb: read16(COUNTER, 1), dataInLength: BS })).dataIn;
              const v = new DataView(cur.buffer, cur.byteOffset).getBigUint64(0);
              if (good(await d.command({ lun: 0, queue, cdb: caw(COUNTER), dataOut: both(cur, u64Block(v + 1n)) }))) break;
            }
            increments++;
          }
        };
        const at = places();
        await Promise.all(who.map((p, id) => contender(id + 1, at[p])));
        expect(maxHolders).toBe(1);
        const total = (await bed.driver.command({ lun: 0, cdb: read16(COUNTER, 1), dataInLength: BS })).dataIn;
        expect(new DataView(total.buffer, total.byteOffset).getBigUint64(0)).toBe(BigInt(increments));
        expect(increments).toBe(who.length * rounds);
      }),
      { numRuns: 12 },
    );
  });
});
