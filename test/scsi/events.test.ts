import { afterEach, describe, expect, it } from "vitest";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import { readCapacity16, reportLuns, testUnitReady } from "../../src/guest/scsi-commands.js";
import * as V from "../../src/virtio/virtio-scsi.js";
import { SenseKey } from "../../src/guest/sense.js";
import { clearUnitAttentions, cmd, expectGood, expectSense } from "../helpers/scsi.js";
import { until } from "../helpers/backstores.js";
import { LocalWorker } from "../../src/worker/local-worker.js";
import { RamBackstore } from "../../src/backstore/backstore.js";
import type { Lun } from "../../src/target/lun.js";

let bed: Testbed | undefined;
afterEach(async () => {
  await bed?.close();
  bed = undefined;
});

/** Where a RAM LUN's blocks are in the shared memory. */
const ramOf = (lun: Lun) => {
  if (!(lun.backstore instanceof RamBackstore)) throw new Error("not a RAM LUN");
  return lun.backstore.ram;
};
const lunOf = (e: { lun: Uint8Array }) => ({ target: e.lun[1], lun: ((e.lun[2] << 8) | e.lun[3]) & 0x3fff });

describe("event queue (VIRTIO 1.2, 5.6.6.3)", () => {
  it("reports a hot-added LUN with TRANSPORT_RESET / RESCAN and a removed one with REMOVED", async () => {
    bed = await createTestbed();
    await clearUnitAttentions(bed);
    await bed.tpg.addLun(3, { backstore: "ram", size: 1 << 20 });
    await until(() => bed!.driver.events.length === 1);
    expect(bed.driver.events[0]).toMatchObject({ event: V.VIRTIO_SCSI_T_TRANSPORT_RESET, reason: V.VIRTIO_SCSI_EVT_RESET_RESCAN });
    expect(lunOf(bed.driver.events[0])).toEqual({ target: 1, lun: 3 });
    // LUN 0 learns that the LUN inventory changed; REPORT LUNS clears it.
    expectSense(await cmd(bed, { cdb: testUnitReady() }), SenseKey.UNIT_ATTENTION, 0x3f0e);
    expectGood(await cmd(bed, { lun: 3, cdb: reportLuns(64), dataInLength: 64 }));
    await bed.tpg.removeLun(3);
    await until(() => bed!.driver.events.length === 2);
    expect(bed.driver.events[1]).toMatchObject({ event: V.VIRTIO_SCSI_T_TRANSPORT_RESET, reason: V.VIRTIO_SCSI_EVT_RESET_REMOVED });
    expectSense(await cmd(bed, { lun: 3, cdb: testUnitReady() }), SenseKey.ILLEGAL_REQUEST, 0x2500);
  });

  it("reports a capacity change with PARAM_CHANGE (ASC 2Ah/09h) and a unit attention", async () => {
    bed = await createTestbed({ luns: [{ backstore: "ram", size: 1 << 20 }] });
    await clearUnitAttentions(bed);
    const before = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
    bed.shm.bytes.set(before, ramOf(bed.tpg.lun(0)!));
    await bed.tpg.resizeLun(0, 2 << 20);
    await until(() => bed!.driver.events.length === 1);
    expect(bed.driver.events[0]).toMatchObject({ event: V.VIRTIO_SCSI_T_PARAM_CHANGE, reason: 0x2a | (0x09 << 8) });
    expectSense(await cmd(bed, { cdb: testUnitReady() }), SenseKey.UNIT_ATTENTION, 0x2a09);
    const cap = (await cmd(bed, { cdb: readCapacity16(32), dataInLength: 32 })).dataIn;
    expect(new DataView(cap.buffer, cap.byteOffset).getBigUint64(0)).toBe(BigInt((2 << 20) / 512 - 1));
    const ram = ramOf(bed.tpg.lun(0)!);
    expect(Buffer.from(bed.shm.bytes.subarray(ram, ram + (1 << 20))).equals(Buffer.from(before))).toBe(true);
  });

  it("sends no events to a driver that did not negotiate HOTPLUG or CHANGE", async () => {
    bed = await createTestbed({ driver: { features: 1n << 32n } });
    await bed.tpg.addLun(4, { backstore: "null", size: 1 << 20 });
    await bed.tpg.resizeLun(0, 2 << 20);
    await new Promise((r) => setTimeout(r, 20));
    expect(bed.driver.events).toEqual([]);
  });

  it("marks the next event EVENTS_MISSED after an event found no buffer", async () => {
    // A worker in this thread, run by hand, so that the order of delivery is fixed.
    let worker: LocalWorker | undefined;
    bed = await createTestbed({ driver: { eventBuffers: 2 }, process: { createWorker: (id, shm) => (worker = new LocalWorker(id, shm, { manual: true })) } });
    for (let l = 1; l <= 5; l++) await bed.tpg.addLun(l, { backstore: "null", size: 1 << 20 });
    worker!.poll(); // two buffers: two events delivered, three lost
    await until(() => bed!.driver.events.length === 2);
    expect(bed.driver.events.map((e) => e.event)).toEqual([V.VIRTIO_SCSI_T_TRANSPORT_RESET, V.VIRTIO_SCSI_T_TRANSPORT_RESET]);
    expect(await bed.device.vhost.SCSI_GET_EVENTS_MISSED()).toBe(1);
    // The driver re-posted its buffers and kicked: the device reports the loss.
    await new Promise((r) => setTimeout(r, 10));
    worker!.poll();
    await until(() => bed!.driver.events.length === 3);
    expect(bed.driver.events[2].event).toBe((V.VIRTIO_SCSI_T_NO_EVENT | V.VIRTIO_SCSI_T_EVENTS_MISSED) >>> 0);
    expect(await bed.device.vhost.SCSI_GET_EVENTS_MISSED()).toBe(0);
  });

  it("VHOST_SCSI_SET_EVENTS_MISSED makes the device report EVENTS_MISSED", async () => {
    bed = await createTestbed();
    await bed.device.vhost.SCSI_SET_EVENTS_MISSED(1);
    await until(() => bed!.driver.events.length === 1);
    expect(bed.driver.events[0].event).toBe((V.VIRTIO_SCSI_T_NO_EVENT | V.VIRTIO_SCSI_T_EVENTS_MISSED) >>> 0);
  });
});
