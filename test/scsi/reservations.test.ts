// Reservations with two initiators (SPC-4 5.13): two guests, each with its own vhost-scsi device
// bound to the same TPG, so that each device is one I_T nexus to the same LUNs. PERSISTENT
// RESERVE IN/OUT with all six types, the conflicts each type makes, the unit attentions other
// registrants get, and the older RESERVE(6)/RELEASE(6) as LIO answers them.
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { addInitiator, createTestbed, type Initiator, type Testbed } from "../../src/testbed.js";
import type { VirtioScsiDriver, ScsiResult } from "../../src/guest/scsi-driver.js";
import {
  SamStatus,
  cdb,
  inquiry,
  modeSelect10,
  modeSense10,
  persistentReserveIn,
  persistentReserveOut,
  prOutParameters,
  read10,
  release6,
  reserve6,
  testUnitReady,
  write10,
} from "../../src/guest/scsi-commands.js";
import { VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET } from "../../src/virtio/virtio-scsi.js";
import { expectGood, expectSense } from "../helpers/scsi.js";
import { sameTargetElsewhere } from "../helpers/destination.js";
import { DeviceStateError } from "../../src/device/device-state.js";
import { gatedFile, until } from "../helpers/backstores.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ILLEGAL = 0x05;
const UNIT_ATTENTION = 0x06;
const PRI = { READ_KEYS: 0, READ_RESERVATION: 1, REPORT_CAPABILITIES: 2, READ_FULL_STATUS: 3 };
const PRO = { REGISTER: 0, RESERVE: 1, RELEASE: 2, CLEAR: 3, PREEMPT: 4, PREEMPT_AND_ABORT: 5, REGISTER_IGNORE: 6, REGISTER_AND_MOVE: 7 };
const TYPE = { WE: 1, EA: 3, WE_RO: 5, EA_RO: 6, WE_AR: 7, EA_AR: 8 };
const B_NAME = "naa.5001405bbbbbbbb2";
const KEY_A = 0xaaaa_0001n;
const KEY_B = 0xbbbb_0002n;

const dir = mkdtempSync(join(tmpdir(), "vhost-pr-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let bed: Testbed;
let b: Initiator;
let A: VirtioScsiDriver;
let B: VirtioScsiDriver;

/** The first command of each nexus reports its own POWER ON; this takes them. */
async function settle(d: VirtioScsiDriver): Promise<void> {
  for (let i = 0; i < 4; i++) if ((await d.command({ lun: 0, cdb: testUnitReady() })).status === 0) return;
}

beforeEach(async () => {
  bed = await createTestbed({ hotplugMemory: 24 << 20, luns: [{ backstore: "ram", size: 1 << 20 }] });
  b = await addInitiator(bed, { initiator: B_NAME });
  A = bed.driver;
  B = b.driver;
});

afterEach(async () => {
  await b.close();
  await bed.close();
});

const out = (d: VirtioScsiDriver, sa: number, type: number, key: bigint, saKey = 0n) =>
  d.command({ lun: 0, cdb: persistentReserveOut(sa, type), dataOut: prOutParameters(key, saKey) });
const readIn = async (d: VirtioScsiDriver, sa: number) => {
  const r = await d.command({ lun: 0, cdb: persistentReserveIn(sa), dataInLength: 1024 });
  expectGood(r);
  return r.dataIn;
};
const keysOf = (d: Uint8Array) => {
  const v = new DataView(d.buffer, d.byteOffset);
  const n = v.getUint32(4) / 8;
  return { generation: v.getUint32(0), keys: Array.from({ length: n }, (_, i) => v.getBigUint64(8 + i * 8)) };
};
const reservationOf = (d: Uint8Array) => {
  const v = new DataView(d.buffer, d.byteOffset);
  return v.getUint32(4) === 0 ? undefined : { key: v.getBigUint64(8), type: d[21] & 0x0f };
};
const writeOne = (d: VirtioScsiDriver) => d.command({ lun: 0, cdb: write10(4, 1), dataOut: new Uint8Array(512).fill(1) });
const readOne = (d: VirtioScsiDriver) => d.command({ lun: 0, cdb: read10(4, 1), dataInLength: 512 });
const expectConflict = (r: ScsiResult) => expect({ response: r.response, status: r.status }).toEqual({ response: 0, status: SamStatus.RESERVATION_CONFLICT });

describe("two vhost-scsi devices on one TPG: two I_T nexuses to the same LUNs", () => {
  it("each nexus has its own unit attentions, and both reach the same blocks", async () => {
    // B never ran a command: its POWER ON is still there after A took its own.
    await settle(A);
    expectSense(await B.command({ lun: 0, cdb: testUnitReady() }), UNIT_ATTENTION, 0x2900);
    expectGood(await B.command({ lun: 0, cdb: testUnitReady() }));
    expectGood(await writeOne(A));
    const r = await readOne(B);
    expectGood(r);
    expect(r.dataIn[0]).toBe(1);
    expect(b.device.initiator).toBe(B_NAME);
  });

  it("a MODE SELECT that changes the write cache is reported to the other nexus (MODE PARAMETERS CHANGED), not to its sender", async () => {
    await settle(A);
    await settle(B);
    const page = (await A.command({ lun: 0, cdb: modeSense10(0x08, 255, { dbd: true }), dataInLength: 255 })).dataIn.slice(0, 28);
    page[0] = page[1] = page[3] = 0;
    page[8 + 2] ^= 0x04; // WCE
    expectGood(await A.command({ lun: 0, cdb: modeSelect10(page.length), dataOut: page }));
    expectGood(await A.command({ lun: 0, cdb: testUnitReady() }));
    expectSense(await B.command({ lun: 0, cdb: testUnitReady() }), UNIT_ATTENTION, 0x2a01);
    // The same values again change nothing: no unit attention.
    expectGood(await A.command({ lun: 0, cdb: modeSelect10(page.length), dataOut: page }));
    expectGood(await B.command({ lun: 0, cdb: testUnitReady() }));
  });

  it("a second device as the same initiator port is refused (EBUSY)", async () => {
    await expect(addInitiator(bed, { initiator: B_NAME, guestMemory: 4 << 20 })).rejects.toThrow(/EBUSY|bound/);
  });
});

describe("PERSISTENT RESERVE OUT and IN (SPC-4 6.15, 6.16) between two initiators", () => {
  beforeEach(async () => {
    await settle(A);
    await settle(B);
    expectGood(await out(A, PRO.REGISTER, 0, 0n, KEY_A));
    expectGood(await out(B, PRO.REGISTER, 0, 0n, KEY_B));
  });

  it("REGISTER: READ KEYS lists both keys, READ FULL STATUS both initiator ports; key changes and unregistration count in PRgeneration", async () => {
    expect(keysOf(await readIn(A, PRI.READ_KEYS))).toEqual({ generation: 2, keys: [KEY_A, KEY_B] });
    const full = await readIn(B, PRI.READ_FULL_STATUS);
    const v = new DataView(full.buffer, full.byteOffset);
    expect(v.getUint32(4)).toBe(2 * 48);
    const ports = [0, 1].map((i) => ({ key: v.getBigUint64(8 + i * 48), proto: full[8 + i * 48 + 24] & 0x0f, sas: v.getBigUint64(8 + i * 48 + 28) }));
    expect(ports).toEqual([
      { key: KEY_A, proto: 6, sas: BigInt(`0x${bed.device.initiator.slice(4)}`) },
      { key: KEY_B, proto: 6, sas: BigInt(`0x${B_NAME.slice(4)}`) },
    ]);
    // A registered nexus must give its key; an unregistered one must give 0.
    expectConflict(await out(A, PRO.REGISTER, 0, 0x1234n, 0x5678n));
    expectGood(await out(A, PRO.REGISTER, 0, KEY_A, 0x5678n));
    expectGood(await out(A, PRO.REGISTER_IGNORE, 0, 0n, KEY_A));
    expectGood(await out(A, PRO.REGISTER, 0, KEY_A, 0n));
    expect(keysOf(await readIn(A, PRI.READ_KEYS))).toEqual({ generation: 5, keys: [KEY_B] });
  });

  it("REPORT CAPABILITIES: CRH, the type mask with all six types; no SIP_C, ATP_C or PTPL_C", async () => {
    const c = await readIn(A, PRI.REPORT_CAPABILITIES);
    expect(Array.from(c.subarray(0, 8))).toEqual([0, 8, 0x10, 0x90, 0xea, 0x01, 0, 0]);
  });

  it("Write Exclusive: the other nexus reads but cannot write; the holder does both", async () => {
    expectGood(await out(A, PRO.RESERVE, TYPE.WE, KEY_A));
    expect(reservationOf(await readIn(B, PRI.READ_RESERVATION))).toEqual({ key: KEY_A, type: TYPE.WE });
    expectConflict(await writeOne(B));
    expectGood(await readOne(B));
    expectGood(await writeOne(A));
    // The holder reserving again with the same type is GOOD, another type or another nexus a conflict.
    expectGood(await out(A, PRO.RESERVE, TYPE.WE, KEY_A));
    expectConflict(await out(A, PRO.RESERVE, TYPE.EA, KEY_A));
    expectConflict(await out(B, PRO.RESERVE, TYPE.WE, KEY_B));
  });

  it("Exclusive Access: the other nexus can neither read nor write; INQUIRY, TEST UNIT READY and PR IN still answer, MODE SENSE for a registrant", async () => {
    expectGood(await out(A, PRO.RESERVE, TYPE.EA, KEY_A));
    expectConflict(await readOne(B));
    expectConflict(await writeOne(B));
    expectGood(await B.command({ lun: 0, cdb: inquiry(96), dataInLength: 96 }));
    expectGood(await B.command({ lun: 0, cdb: testUnitReady() }));
    expectGood(await B.command({ lun: 0, cdb: modeSense10(0x3f, 255), dataInLength: 255 }));
    expectGood(await readOne(A));
    // Unregistered, B may not even MODE SENSE.
    expectGood(await out(B, PRO.REGISTER, 0, KEY_B, 0n));
    expectConflict(await B.command({ lun: 0, cdb: modeSense10(0x3f, 255), dataInLength: 255 }));
  });

  it("Registrants Only: registered nexuses write, an unregistered one meets the conflict", async () => {
    expectGood(await out(A, PRO.RESERVE, TYPE.WE_RO, KEY_A));
    expectGood(await writeOne(B));
    expectGood(await out(B, PRO.REGISTER, 0, KEY_B, 0n));
    expectConflict(await writeOne(B));
    expectGood(await readOne(B));
    expectGood(await out(A, PRO.RELEASE, TYPE.WE_RO, KEY_A));
    expectGood(await out(B, PRO.REGISTER, 0, 0n, KEY_B));
    expectGood(await out(A, PRO.RESERVE, TYPE.EA_RO, KEY_A));
    expectGood(await readOne(B));
    expectGood(await out(B, PRO.REGISTER, 0, KEY_B, 0n));
    expectConflict(await readOne(B));
  });

  it("All Registrants: every registrant holds it (READ RESERVATION's key is 0) and it lasts while one is registered", async () => {
    expectGood(await out(A, PRO.RESERVE, TYPE.EA_AR, KEY_A));
    expect(reservationOf(await readIn(A, PRI.READ_RESERVATION))).toEqual({ key: 0n, type: TYPE.EA_AR });
    expectGood(await writeOne(B));
    expectGood(await out(A, PRO.REGISTER, 0, KEY_A, 0n));
    expect(reservationOf(await readIn(A, PRI.READ_RESERVATION))).toEqual({ key: 0n, type: TYPE.EA_AR });
    expectConflict(await readOne(A));
    expectGood(await out(B, PRO.REGISTER, 0, KEY_B, 0n));
    expect(reservationOf(await readIn(A, PRI.READ_RESERVATION))).toBeUndefined();
    expectGood(await readOne(A));
  });

  it("Write Exclusive All Registrants: an unregistered nexus reads but does not write", async () => {
    expectGood(await out(B, PRO.RESERVE, TYPE.WE_AR, KEY_B));
    expectGood(await writeOne(A));
    expectGood(await out(A, PRO.REGISTER, 0, KEY_A, 0n));
    expectGood(await readOne(A));
    expectConflict(await writeOne(A));
  });

  it("RELEASE: only the holder's ends it, with its type; a registrants-only release tells the other registrants", async () => {
    expectGood(await out(A, PRO.RESERVE, TYPE.WE_RO, KEY_A));
    expectGood(await out(B, PRO.RELEASE, TYPE.WE_RO, KEY_B)); // not the holder: GOOD, nothing happens
    expect(reservationOf(await readIn(A, PRI.READ_RESERVATION))).toEqual({ key: KEY_A, type: TYPE.WE_RO });
    expectSense(await out(A, PRO.RELEASE, TYPE.WE, KEY_A), ILLEGAL, 0x2604);
    expectGood(await out(A, PRO.RELEASE, TYPE.WE_RO, KEY_A));
    expect(reservationOf(await readIn(A, PRI.READ_RESERVATION))).toBeUndefined();
    expectSense(await readOne(B), UNIT_ATTENTION, 0x2a04); // RESERVATIONS RELEASED
    expectGood(await readOne(A));
    // Write Exclusive's release says nothing to the others.
    expectGood(await out(A, PRO.RESERVE, TYPE.WE, KEY_A));
    expectGood(await out(A, PRO.RELEASE, TYPE.WE, KEY_A));
    expectGood(await readOne(B));
  });

  it("PREEMPT: B takes A's reservation and registration; A learns REGISTRATIONS PREEMPTED and then meets the conflict", async () => {
    expectGood(await out(A, PRO.RESERVE, TYPE.EA, KEY_A));
    expectGood(await out(B, PRO.PREEMPT, TYPE.WE, KEY_B, KEY_A));
    expect(reservationOf(await readIn(B, PRI.READ_RESERVATION))).toEqual({ key: KEY_B, type: TYPE.WE });
    expect(keysOf(await readIn(B, PRI.READ_KEYS))).toEqual({ generation: 3, keys: [KEY_B] });
    expectSense(await writeOne(A), UNIT_ATTENTION, 0x2a05);
    expectConflict(await writeOne(A));
    expectGood(await readOne(A));
    // PREEMPT needs a key that is registered, and a nonzero one when nothing is all-registrants.
    expectConflict(await out(B, PRO.PREEMPT, TYPE.WE, KEY_B, 0x777n));
    expectSense(await out(B, PRO.PREEMPT, TYPE.WE, KEY_B, 0n), ILLEGAL, 0x2600);
    // An unregistered nexus cannot preempt at all.
    expectConflict(await out(A, PRO.PREEMPT_AND_ABORT, TYPE.WE, KEY_A, KEY_B));
  });

  it("PREEMPT AND ABORT of a registration without a reservation removes it; preempting key 0 of an all-registrants reservation takes it over", async () => {
    expectGood(await out(B, PRO.PREEMPT_AND_ABORT, TYPE.WE, KEY_B, KEY_A));
    expect(keysOf(await readIn(B, PRI.READ_KEYS)).keys).toEqual([KEY_B]);
    expect(reservationOf(await readIn(B, PRI.READ_RESERVATION))).toBeUndefined();
    expectSense(await readOne(A), UNIT_ATTENTION, 0x2a05);
    expectGood(await out(A, PRO.REGISTER, 0, 0n, KEY_A));
    expectGood(await out(A, PRO.RESERVE, TYPE.WE_AR, KEY_A));
    expectGood(await out(B, PRO.PREEMPT, TYPE.EA, KEY_B, 0n));
    expect(reservationOf(await readIn(B, PRI.READ_RESERVATION))).toEqual({ key: KEY_B, type: TYPE.EA });
    expectSense(await readOne(A), UNIT_ATTENTION, 0x2a05);
    expectConflict(await readOne(A));
  });

  it("CLEAR: every registration and the reservation go; the other registrants learn RESERVATIONS PREEMPTED", async () => {
    expectGood(await out(A, PRO.RESERVE, TYPE.EA, KEY_A));
    expectConflict(await out(B, PRO.CLEAR, 0, 0x999n)); // a registrant's key is needed
    expectGood(await out(B, PRO.CLEAR, 0, KEY_B));
    expect(keysOf(await readIn(B, PRI.READ_KEYS))).toEqual({ generation: 3, keys: [] });
    expect(reservationOf(await readIn(B, PRI.READ_RESERVATION))).toBeUndefined();
    expectSense(await readOne(A), UNIT_ATTENTION, 0x2a03);
    expectGood(await readOne(A));
    expectGood(await readOne(B));
  });

  it("refuses what it does not do as SPC-4 says: APTPL, ALL_TG_PT, SPEC_I_PT, REGISTER AND MOVE, a bad length, scope or type", async () => {
    const withFlags = (f: Parameters<typeof prOutParameters>[2]) =>
      A.command({ lun: 0, cdb: persistentReserveOut(PRO.REGISTER), dataOut: prOutParameters(KEY_A, 0x42n, f) });
    expectSense(await withFlags({ aptpl: true }), ILLEGAL, 0x2600, { byte: 20, bit: 0, inCdb: false });
    expectSense(await withFlags({ allTgPt: true }), ILLEGAL, 0x2600, { byte: 20, bit: 2, inCdb: false });
    expectSense(await withFlags({ specIPt: true }), ILLEGAL, 0x2600, { byte: 20, bit: 3, inCdb: false });
    expectSense(await A.command({ lun: 0, cdb: persistentReserveOut(PRO.REGISTER_AND_MOVE), dataOut: new Uint8Array(24) }), ILLEGAL, 0x2400, {
      byte: 1,
      bit: 4,
    });
    expectSense(await A.command({ lun: 0, cdb: persistentReserveOut(PRO.REGISTER, 0, 20), dataOut: new Uint8Array(20) }), ILLEGAL, 0x1a00);
    expectSense(await out(A, PRO.RESERVE, 0x10 | TYPE.WE, KEY_A), ILLEGAL, 0x2400, { byte: 2, bit: 7 });
    expectSense(await out(A, PRO.RESERVE, 2, KEY_A), ILLEGAL, 0x2400, { byte: 2, bit: 3 });
    expectSense(await A.command({ lun: 0, cdb: persistentReserveIn(4), dataInLength: 64 }), ILLEGAL, 0x2400, { byte: 1, bit: 4 });
    // Nothing of it changed a key.
    expect(keysOf(await readIn(A, PRI.READ_KEYS))).toEqual({ generation: 2, keys: [KEY_A, KEY_B] });
  });

  it("travels with a saved device: loaded elsewhere, the LUN has the same registrations and holder, named by initiator port", async () => {
    expectGood(await out(A, PRO.RESERVE, TYPE.EA, KEY_A));
    await bed.device.vmStop();
    const state = JSON.parse(JSON.stringify(bed.device.save()));
    const saved = state.type.tpgs[0].luns[0].reservations;
    expect(saved.registrations.map((g: { initiator: string }) => g.initiator)).toEqual([bed.device.initiator, B_NAME]);
    expect(saved.reservation).toEqual({ holder: bed.device.initiator, type: TYPE.EA });
    const dst = await sameTargetElsewhere(bed, [{ backstore: "ram", size: 1 << 20 }], {
      deviceBytes: 24 << 20,
      guestBytes: 64 << 20,
      copy: true,
      numQueues: 1,
    });
    try {
      // A malformed reservations part is refused before anything changes.
      const bad = (edit: (r: { registrations: { key: string; initiator: string }[]; reservation: { type: number } }) => void) => {
        const doc = JSON.parse(JSON.stringify(state));
        edit(doc.type.tpgs[0].luns[0].reservations);
        return doc;
      };
      for (const doc of [
        bad((r) => (r.registrations[0].key = "zz")),
        bad((r) => (r.registrations[1].initiator = r.registrations[0].initiator)),
        bad((r) => (r.reservation.type = 2)),
      ])
        expect(() => dst.device.load(doc)).toThrow(DeviceStateError);
      expect(dst.tpg.lun(0)!.reservations.registrations).toEqual([]);
      dst.device.load(state);
      const lun = dst.tpg.lun(0)!;
      expect(lun.reservations.registrations.map((g) => g.key)).toEqual([KEY_A, KEY_B]);
      A.moveTo(dst.mem, dst.device);
      await dst.device.vmContinue();
      expect(dst.device.initiator).toBe(bed.device.initiator);
      expect(keysOf(await readIn(A, PRI.READ_KEYS))).toEqual({ generation: 2, keys: [KEY_A, KEY_B] });
      expect(reservationOf(await readIn(A, PRI.READ_RESERVATION))).toEqual({ key: KEY_A, type: TYPE.EA });
      expectGood(await writeOne(A));
    } finally {
      await dst.close();
    }
  });

  it("PREEMPT AND ABORT aborts the preempted nexus's commands a backstore still holds; a LOGICAL UNIT RESET those of every nexus", async () => {
    const gated = gatedFile(join(dir, `held-${Math.random()}.img`), 1 << 20);
    bed.tpg.attachLun(1, gated);
    for (const d of [A, B]) for (let i = 0; i < 4 && (await d.command({ lun: 1, cdb: testUnitReady() })).status !== 0; i++);
    gated.open();
    const on1 = (d: VirtioScsiDriver, sa: number, type: number, key: bigint, saKey = 0n) =>
      d.command({ lun: 1, cdb: persistentReserveOut(sa, type), dataOut: prOutParameters(key, saKey) });
    expectGood(await on1(A, PRO.REGISTER, 0, 0n, KEY_A));
    expectGood(await on1(B, PRO.REGISTER, 0, 0n, KEY_B));
    /** A READ from d held at the backstore's gate (wrapped: an async function would wait for it). */
    const heldRead = async (d: VirtioScsiDriver) => {
      gated.closed = true;
      const read = d.command({ lun: 1, cdb: read10(0, 1), dataInLength: 512 });
      await until(() => gated.held === 1);
      return { read };
    };
    const { read: bRead } = await heldRead(B);
    expectGood(await on1(A, PRO.PREEMPT_AND_ABORT, TYPE.WE, KEY_A, KEY_B));
    gated.open();
    expect((await bRead).response).toBe(2); // VIRTIO_SCSI_S_ABORTED
    expectSense(await B.command({ lun: 1, cdb: testUnitReady() }), UNIT_ATTENTION, 0x2a05); // REGISTRATIONS PREEMPTED
    // A LUN reset from A: B's command held at the backstore is aborted too, and the reset waits for it.
    const { read: again } = await heldRead(B);
    let answered = false;
    const reset = A.tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { lun: 1 }).then((r) => ((answered = true), r));
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBe(false);
    gated.open();
    expect(await reset).toBe(0);
    expect((await again).response).toBe(2);
    await bed.tpg.removeLun(1);
  });

  it("a LOGICAL UNIT RESET leaves persistent reservations as they are", async () => {
    expectGood(await out(A, PRO.RESERVE, TYPE.EA, KEY_A));
    expect(await A.tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { lun: 0 })).toBe(0);
    await settle(A);
    await settle(B);
    expect(reservationOf(await readIn(B, PRI.READ_RESERVATION))).toEqual({ key: KEY_A, type: TYPE.EA });
    expectConflict(await readOne(B));
  });
});

describe("RESERVE(6) and RELEASE(6) (SPC-2), as LIO answers them", () => {
  beforeEach(async () => {
    await settle(A);
    await settle(B);
  });

  it("the holder has the unit to itself; the other nexus's RELEASE is GOOD and changes nothing; INQUIRY still answers", async () => {
    expectGood(await A.command({ lun: 0, cdb: reserve6() }));
    expectGood(await A.command({ lun: 0, cdb: reserve6() })); // again from the holder
    expectConflict(await readOne(B));
    expectConflict(await B.command({ lun: 0, cdb: reserve6() }));
    expectGood(await B.command({ lun: 0, cdb: inquiry(36), dataInLength: 36 }));
    expectGood(await B.command({ lun: 0, cdb: release6() }));
    expectConflict(await readOne(B));
    expectGood(await writeOne(A));
    expectGood(await A.command({ lun: 0, cdb: release6() }));
    expectGood(await readOne(B));
  });

  it("a LOGICAL UNIT RESET and the holder's I_T nexus loss end it", async () => {
    expectGood(await A.command({ lun: 0, cdb: reserve6() }));
    expect(await B.tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { lun: 0 })).toBe(0);
    await settle(B);
    expectGood(await readOne(B));
    expectGood(await B.command({ lun: 0, cdb: reserve6() }));
    await b.close();
    b = await addInitiator(bed, { initiator: B_NAME });
    B = b.driver;
    await settle(A);
    expectGood(await readOne(A));
  });

  it("with persistent registrations RESERVE is a conflict and RELEASE does nothing", async () => {
    expectGood(await out(B, PRO.REGISTER, 0, 0n, KEY_B));
    expectConflict(await A.command({ lun: 0, cdb: reserve6() }));
    expectGood(await A.command({ lun: 0, cdb: release6() }));
    expectGood(await writeOne(A));
    expectConflict(await A.command({ lun: 0, cdb: cdb(10, 0x56) })); // RESERVE(10) alike
  });
});
