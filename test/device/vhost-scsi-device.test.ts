import { afterEach, describe, expect, it, vi } from "vitest";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import { VhostScsi } from "../../src/vhost/vhost-scsi.js";
import { read16, write16 } from "../../src/scsi/commands.js";
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET } from "../../src/virtio/transport.js";
import { SharedMemory } from "../../src/memory/shared-memory.js";
import { GuestMemory } from "../../src/guest/guest-memory.js";
import { VhostProcess } from "../../src/vhost/process.js";
import { VhostScsiDevice } from "../../src/device/vhost-scsi-device.js";
import { VirtioScsiDriver } from "../../src/guest/scsi-driver.js";
import { clearUnitAttentions, expectGood } from "../helpers/scsi.js";

let bed: Testbed | undefined;
afterEach(async () => {
  await bed?.close();
  bed = undefined;
  vi.restoreAllMocks();
});

describe("QEMU-side vhost-scsi device model", () => {
  it("shows struct virtio_scsi_config as QEMU's vhost-scsi does", async () => {
    bed = await createTestbed({ queues: 3, queueSize: 256 });
    const c = new DataView(bed.device.readConfig(0, 36).buffer);
    expect([0, 4, 8, 12, 16, 20, 24].map((o) => c.getUint32(o, true))).toEqual([3, 126, 0xffff, 128, 16, 96, 32]);
    expect([c.getUint16(28, true), c.getUint16(30, true), c.getUint32(32, true)]).toEqual([0, 255, 16383]);
    expect(bed.device.numQueues()).toBe(5);
  });

  it("refuses a change of sense_size or cdb_size (NEEDS_RESET), accepts rewriting the same", async () => {
    bed = await createTestbed();
    const same = bed.device.readConfig(20, 8);
    expect(() => bed!.device.writeConfig(20, same)).not.toThrow();
    expect(() => bed!.device.writeConfig(20, new Uint8Array([64, 0, 0, 0]))).toThrow(/sense data and CDB sizes/);
    expect(bed.device.status() & VIRTIO_CONFIG_S_NEEDS_RESET).toBeTruthy();
  });

  it("leaves FEATURES_OK clear when the driver accepts a feature not offered", async () => {
    bed = await createTestbed();
    const d = bed.device;
    await d.setStatus(0);
    await d.setStatus(3);
    d.setDriverFeatures(d.deviceFeatures() | (1n << 40n));
    await d.setStatus(3 | VIRTIO_CONFIG_S_FEATURES_OK);
    expect(d.status() & VIRTIO_CONFIG_S_FEATURES_OK).toBe(0);
  });

  it("realizes and starts with QEMU's ioctl sequence, and stops with CLEAR_ENDPOINT then GET_VRING_BASE", async () => {
    const calls: string[] = [];
    for (const m of ["SET_OWNER", "GET_FEATURES", "SCSI_GET_ABI_VERSION", "SET_VRING_CALL", "SET_FEATURES", "SET_MEM_TABLE", "SET_VRING_NUM", "SET_VRING_BASE", "SET_VRING_ADDR", "SET_VRING_KICK", "SCSI_SET_ENDPOINT", "SCSI_CLEAR_ENDPOINT", "GET_VRING_BASE"] as const) {
      const orig = VhostScsi.prototype[m] as (...a: unknown[]) => unknown;
      vi.spyOn(VhostScsi.prototype, m).mockImplementation(function (this: VhostScsi, ...a: unknown[]) {
        const idx = typeof a[0] === "number" ? a[0] : (a[0] as { index?: number } | undefined)?.index;
        calls.push(idx === undefined ? m : `${m}(${idx})`);
        return orig.apply(this, a) as never;
      });
    }
    bed = await createTestbed({ queues: 1 });
    const realize = calls.splice(0, 6);
    expect(realize).toEqual(["SET_OWNER", "GET_FEATURES", "SCSI_GET_ABI_VERSION", "SET_VRING_CALL(0)", "SET_VRING_CALL(1)", "SET_VRING_CALL(2)"]);
    const start = calls.splice(0);
    const perQueue = (i: number) => [`SET_VRING_NUM(${i})`, `SET_VRING_BASE(${i})`, `SET_VRING_ADDR(${i})`, `SET_VRING_KICK(${i})`, `SET_VRING_CALL(${i})`];
    expect(start).toEqual(["SET_FEATURES", "SET_MEM_TABLE", ...perQueue(0), ...perQueue(1), ...perQueue(2), "SCSI_SET_ENDPOINT"]);
    await bed.device.vmStop();
    expect(calls.splice(0)).toEqual(["SCSI_CLEAR_ENDPOINT", "GET_VRING_BASE(0)", "GET_VRING_BASE(1)", "GET_VRING_BASE(2)"]);
  });

  it("reports NEEDS_RESET when the backend cannot start (no such target)", async () => {
    const shm = SharedMemory.create({ deviceBytes: 4 << 20, guestBytes: 8 << 20 });
    const proc = new VhostProcess(shm, { workerThreads: false });
    const mem = new GuestMemory(shm);
    mem.addRegion(0, 8 << 20);
    const dev = new VhostScsiDevice(proc, mem, { wwpn: "naa.5001405000000001" });
    await dev.realize();
    await expect(VirtioScsiDriver.probe(mem, dev)).rejects.toThrow(/failed to start/);
    expect(dev.status() & VIRTIO_CONFIG_S_NEEDS_RESET).toBeTruthy();
    expect(dev.lastError?.message).toMatch(/EEXIST/);
    await dev.unrealize();
  });

  it("memory listener: RAM plugged in at run time is usable for I/O at once", async () => {
    bed = await createTestbed({ guestMemory: 16 << 20, hotplugMemory: 8 << 20 });
    await clearUnitAttentions(bed);
    const extra = bed.mem.addRegion(2 ** 32, 8 << 20);
    await bed.mem.settled(); // the listener's SET_MEM_TABLE
    // Put a command's buffers in the new region by exhausting the old one first.
    const hold: number[] = [];
    for (;;) {
      try {
        hold.push(bed.mem.alloc(1 << 20, 16, bed.mem.regions[0]));
      } catch {
        break;
      }
    }
    const data = new Uint8Array(4096).fill(0xa5);
    expectGood(await bed.driver.command({ lun: 0, cdb: write16(0, 8), dataOut: data }));
    const r = await bed.driver.command({ lun: 0, cdb: read16(0, 8), dataInLength: 4096 });
    expectGood(r);
    expect(r.dataIn.every((b) => b === 0xa5)).toBe(true);
    expect(extra.gpa).toBe(2 ** 32);
    for (const h of hold) bed.mem.free(h);
  });

  it("a device reset (status 0) stops the backend; probing again starts it from scratch", async () => {
    bed = await createTestbed();
    await clearUnitAttentions(bed);
    expect(bed.device.running).toBe(true);
    await bed.device.setStatus(0);
    expect(bed.device.running).toBe(false);
    const again = await VirtioScsiDriver.probe(bed.mem, bed.device, { target: 1 });
    expect(bed.device.status() & VIRTIO_CONFIG_S_DRIVER_OK).toBeTruthy();
    expectGood(await again.command({ lun: 0, cdb: read16(0, 1), dataInLength: 512 }));
  });
});
