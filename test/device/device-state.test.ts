// Device state save/load (issue 28, item 2): a stopped device's document taken into a device of
// a fresh process over a copy of the guest's RAM, the guest driver moving with its RAM; what is
// carried over, what is refused.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBlkTestbed, createTestbed, type BlkTestbed, type Testbed } from "../../src/testbed.js";
import { SharedMemory } from "../../src/memory/shared-memory.js";
import { VhostProcess } from "../../src/vhost/process.js";
import { VhostBlkDevice } from "../../src/device/vhost-blk-device.js";
import { DeviceStateError, type DeviceState } from "../../src/device/device-state.js";
import type { GuestMemory } from "../../src/guest/guest-memory.js";
import type { LunConfig } from "../../src/target/tpg.js";
import type { Lun } from "../../src/target/lun.js";
import { ScsiOp, cdb, read16, testUnitReady, write16 } from "../../src/guest/scsi-commands.js";
import { SenseKey } from "../../src/guest/sense.js";
import { VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from "../../src/virtio/virtio-blk.js";
import { VIRTIO_CONFIG_S_DRIVER_OK } from "../../src/virtio/transport.js";
import { sameTargetElsewhere } from "../helpers/destination.js";
import { clearUnitAttentions, expectGood, expectSense } from "../helpers/scsi.js";
import { until } from "../helpers/backstores.js";
import { VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET } from "../../src/virtio/virtio-scsi.js";

const dir = mkdtempSync(join(tmpdir(), "vhost-state-"));
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => {});
});

const MiB = 1 << 20;
/** A 512-byte block that names its LBA and a round. */
const stamp = (lba: number, round: number) => {
  const b = new Uint8Array(512);
  new DataView(b.buffer).setUint32(0, lba, true);
  b.fill(round & 0xff, 4);
  return b;
};

function fileImage(bytes: number): string {
  const f = join(dir, `lun-${Math.random()}.img`);
  writeFileSync(f, "");
  truncateSync(f, bytes);
  return f;
}

/** The same target in a fresh process over a fresh memory, the guest's RAM cloned into it (test/helpers/destination.ts). */
async function scsiDestination(src: Testbed, luns: LunConfig[], opts: { numQueues: number; maskFeatures?: bigint }) {
  const d = await sameTargetElsewhere(src, luns, { deviceBytes: 64 * MiB, guestBytes: 64 * MiB, copy: true, ...opts });
  cleanup.push(() => d.close());
  return d;
}

/** A RAM LUN's blocks copied to another (RAM disks are not shared storage: they move with the guest). */
function copyRamLun(from: Lun, fromShm: SharedMemory, to: Lun, toShm: SharedMemory): void {
  const a = from.backstore;
  const b = to.backstore;
  if (a.kind !== "ram" || b.kind !== "ram") throw new Error("RAM LUNs expected");
  toShm.bytes.set(fromShm.bytes.subarray(a.ram, a.ram + a.size), b.ram);
}

describe("device state save/load (virtio-scsi)", () => {
  it("moves a guest with requests in flight on two queues to a fresh process: those answered are not served again, those waiting are served once, LUN state and unit attentions come along", async () => {
    const file = fileImage(4 * MiB);
    const luns: LunConfig[] = [
      { backstore: "file", path: file },
      { backstore: "ram", size: 4 * MiB },
      { backstore: "ram", size: MiB },
    ];
    const src = await createTestbed({ queues: 2, luns });
    cleanup.push(() => src.close());
    await clearUnitAttentions(src, [0, 1, 2]);
    const d = src.driver;
    // Round 1, answered before the stop.
    for (const lun of [0, 1]) for (let lba = 0; lba < 32; lba++) expectGood(await d.command({ lun, cdb: write16(lba, 1), dataOut: stamp(lba, 1) }));
    // The guest stops LUN 1 (START STOP UNIT) and resets LUN 2 (a unit attention it has not seen yet).
    expectGood(await d.command({ lun: 1, cdb: cdb(6, ScsiOp.START_STOP_UNIT) }));
    expect(await d.tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { lun: 2 })).toBe(0);
    // Round 2 in flight on both queues as the VM stops: vmStop answers them first.
    const inFlight = Array.from({ length: 48 }, (_, lba) => d.command({ lun: 0, cdb: write16(lba, 1), dataOut: stamp(lba, 2) }));
    await new Promise((r) => setImmediate(r));
    await src.device.vmStop();
    for (const r of await Promise.all(inFlight)) expectGood(r);
    // Round 3 put on the rings while the device is stopped: only the destination can take them.
    const waiting = Array.from({ length: 40 }, (_, lba) => d.command({ lun: 0, cdb: write16(64 + lba, 1), dataOut: stamp(64 + lba, 3) }));
    const state = JSON.parse(JSON.stringify(src.device.save())) as DeviceState;
    expect(state.vrings.filter(Boolean)).toHaveLength(4);

    // The guest's RAM is copied now that it is paused (round 3 on the rings included).
    const dst = await scsiDestination(src, luns, { numQueues: 2 });
    copyRamLun(src.tpg.lun(1)!, src.shm, dst.tpg.lun(1)!, dst.shm);
    dst.device.load(state);
    expect(dst.device.status() & VIRTIO_CONFIG_S_DRIVER_OK).toBeTruthy();
    // The source is gone for good; the guest continues on the destination.
    await src.device.unrealize();
    d.moveTo(dst.mem, dst.device);
    await dst.device.vmContinue();

    for (const r of await Promise.all(waiting)) expectGood(r);
    for (let lba = 0; lba < 48; lba++) expect((await d.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 512 })).dataIn).toEqual(stamp(lba, 2));
    for (let lba = 64; lba < 104; lba++) expect((await d.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 512 })).dataIn).toEqual(stamp(lba, 3));
    // LUN 1 stays stopped: NOT READY, INITIALIZING COMMAND REQUIRED, and no POWER ON unit attention first.
    expectSense(await d.command({ lun: 1, cdb: read16(0, 1), dataInLength: 512 }), SenseKey.NOT_READY, 0x0402);
    expectGood(await d.command({ lun: 1, cdb: cdb(6, ScsiOp.START_STOP_UNIT, [[4, 1, 1]]) }));
    for (let lba = 0; lba < 32; lba++) expect((await d.command({ lun: 1, cdb: read16(lba, 1), dataInLength: 512 })).dataIn).toEqual(stamp(lba, 1));
    // LUN 2 reports the reset the guest made before the move (BUS DEVICE RESET FUNCTION OCCURRED), not a power on.
    expectSense(await d.command({ lun: 2, cdb: testUnitReady() }), SenseKey.UNIT_ATTENTION, 0x2903);
    expectGood(await d.command({ lun: 2, cdb: testUnitReady() }));
    // Nothing replayed: each queue's used index is its avail index, every chain answered once.
    for (const q of d.requests) expect(q.usedIndex).toBe(q.availIndex);
  });

  it("carries a missed event: the destination reports VIRTIO_SCSI_T_EVENTS_MISSED as the source would have", async () => {
    const luns: LunConfig[] = [{ backstore: "ram", size: MiB }];
    const src = await createTestbed({ luns, driver: { eventBuffers: 0 } });
    cleanup.push(() => src.close());
    // A LUN hot-added while the guest has no event buffer: the event is lost, and that is remembered.
    await src.tpg.addLun(1, { backstore: "null", size: MiB });
    luns.push({ backstore: "null", size: MiB });
    await until(() => src.device.vhost.pendingEvents().missed, 5000);
    await src.device.vmStop();
    const state = src.device.save();
    expect((state.type as { events: unknown }).events).toEqual({ missed: true, events: [] });
    const dst = await scsiDestination(src, luns, { numQueues: 1 });
    dst.device.load(state);
    expect(await dst.device.vhost.SCSI_GET_EVENTS_MISSED()).toBe(1);
    // Events posted and not yet delivered come back in order.
    const pending = [
      { event: 1, target: 1, lun: 0, reason: 1 },
      { event: 2, target: 1, lun: 300, reason: 0x092a },
    ];
    dst.device.vhost.restoreEvents({ missed: false, events: pending });
    expect(dst.device.vhost.pendingEvents()).toEqual({ missed: true, events: pending });
  });

  it("refuses, with the reason, a document of another version or device, a target configured otherwise, features not offered, a device already set up, and a save while running; the device stays loadable", async () => {
    const luns: LunConfig[] = [{ backstore: "ram", size: 2 * MiB }];
    const src = await createTestbed({ queues: 1, luns });
    cleanup.push(() => src.close());
    expect(() => src.device.save()).toThrow(/needs the device stopped/);
    await src.device.vmStop();
    const state = src.device.save();
    const dst = await scsiDestination(src, luns, { numQueues: 1 });
    const refused = (doc: unknown, why: RegExp) => {
      expect(() => dst.device.load(doc)).toThrow(DeviceStateError);
      expect(() => dst.device.load(doc)).toThrow(why);
    };
    refused({ ...state, version: 2 }, /version 2, this build reads version 1/);
    refused({ ...state, format: "x" }, /not a device state document/);
    refused({ ...state, device: "vhost-blk" }, /a vhost-blk device's, this is vhost-scsi/);
    refused({ ...state, vrings: state.vrings.slice(1) }, /malformed/);
    refused(
      { ...state, driverFeatures: (BigInt(`0x${state.driverFeatures}`) | (1n << 50n)).toString(16) },
      /features 0x4000000000000 that this device does not offer/,
    );
    const t = state.type as { wwpn: string; tpgs: { luns: { blocks: number }[] }[] };
    refused({ ...state, type: { ...t, wwpn: "naa.5001405000000000" } }, /saved from target naa.5001405000000000/);
    refused({ ...state, type: { ...t, tpgs: [{ ...t.tpgs[0], luns: [{ ...t.tpgs[0].luns[0], blocks: 1 }] }] } }, /LUN 0: blocks 1 saved, 4096 here/);
    // A destination with two request queues has another config space and queue count.
    const other = await scsiDestination(src, luns, { numQueues: 2 });
    expect(() => other.device.load(state)).toThrow(/4 virtqueues, this device has 3|virtqueues/);
    // One that does not offer event-idx, which the driver accepted.
    const masked = await scsiDestination(src, luns, { numQueues: 1, maskFeatures: 1n << 29n });
    expect(() => masked.device.load(state)).toThrow(/features 0x20000000 that this device does not offer/);
    // After all that the right document loads, once.
    dst.device.load(state);
    expect(() => dst.device.load(state)).toThrow(/has not set up/);
  });
});

describe("device state save/load (virtio-blk)", () => {
  it("carries the driver's writeback choice and the queues to a fresh process; the disk's geometry must match", async () => {
    const file = fileImage(8 * MiB);
    const src: BlkTestbed = await createBlkTestbed({ backstore: { backstore: "file", path: file }, queues: 2 });
    cleanup.push(() => src.close());
    const d = src.driver;
    d.setWriteback(false);
    for (let s = 0; s < 16; s++) expect((await d.request({ type: VIRTIO_BLK_T_OUT, sector: s, dataOut: stamp(s, 7) })).status).toBe(VIRTIO_BLK_S_OK);
    await src.device.vmStop();
    const waiting = Array.from({ length: 16 }, (_, s) => d.request({ type: VIRTIO_BLK_T_OUT, sector: 100 + s, dataOut: stamp(100 + s, 8) }));
    const state = src.device.save();

    const destination = async (bytes: number, mem: GuestMemory) => {
      const shm = SharedMemory.create({ deviceBytes: 32 * MiB, guestBytes: 64 * MiB });
      const proc = new VhostProcess(shm);
      const { openBackstore } = await import("#backstores");
      const backend = proc.openBlockBackend(await openBackstore({ backstore: "file", path: bytes === 8 * MiB ? file : fileImage(bytes) }, shm));
      const m = mem.cloneTo(shm);
      const device = new VhostBlkDevice(proc, m, { backend, numQueues: 2 });
      await device.realize();
      cleanup.push(async () => {
        await device.setStatus(0);
        await device.unrealize();
        await proc.close(backend);
      });
      return { device, mem: m };
    };
    const small = await destination(4 * MiB, src.mem);
    expect(() => small.device.load(state)).toThrow(/config space differs at byte 1 \(another disk size/);
    const dst = await destination(8 * MiB, src.mem);
    dst.device.load(state);
    await src.device.unrealize();
    d.moveTo(dst.mem, dst.device);
    expect(d.writeback).toBe(false);
    await dst.device.vmContinue();
    for (const r of await Promise.all(waiting)) expect(r.status).toBe(VIRTIO_BLK_S_OK);
    for (const s of [0, 15, 100, 115]) {
      const r = await d.request({ type: VIRTIO_BLK_T_IN, sector: s, dataInLength: 512 });
      expect(r.dataIn).toEqual(stamp(s, s < 100 ? 7 : 8));
    }
    for (const q of d.requests) expect(q.usedIndex).toBe(q.availIndex);
  });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));
