import { afterEach, describe, expect, it, vi } from "vitest";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import { VhostScsi } from "../../src/vhost/vhost-scsi.js";
import { read16, testUnitReady, write16 } from "../../src/guest/scsi-commands.js";
import { cmdReq, rawChain } from "../helpers/raw.js";
import { until } from "../helpers/backstores.js";
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET } from "../../src/virtio/transport.js";
import { SharedMemory } from "../../src/memory/shared-memory.js";
import { GuestMemory } from "../../src/guest/guest-memory.js";
import { VhostProcess } from "../../src/vhost/process.js";
import { VhostScsiDevice, type QueueErrorEvent } from "../../src/device/vhost-scsi-device.js";
import { VirtioScsiDriver } from "../../src/guest/scsi-driver.js";
import { clearUnitAttentions, expectGood } from "../helpers/scsi.js";
import { EventFd } from "../../src/sys/eventfd.js";

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
    for (const m of [
      "SET_OWNER",
      "GET_FEATURES",
      "SCSI_GET_ABI_VERSION",
      "SET_VRING_CALL",
      "SET_VRING_ERR",
      "SET_FEATURES",
      "SET_MEM_TABLE",
      "SET_VRING_NUM",
      "SET_VRING_BASE",
      "SET_VRING_ADDR",
      "SET_VRING_KICK",
      "SCSI_SET_ENDPOINT",
      "SCSI_CLEAR_ENDPOINT",
      "GET_VRING_BASE",
    ] as const) {
      const orig = VhostScsi.prototype[m] as (...a: unknown[]) => unknown;
      vi.spyOn(VhostScsi.prototype, m).mockImplementation(function (this: VhostScsi, ...a: unknown[]) {
        const idx = typeof a[0] === "number" ? a[0] : (a[0] as { index?: number } | undefined)?.index;
        calls.push(idx === undefined ? m : `${m}(${idx})`);
        return orig.apply(this, a) as never;
      });
    }
    bed = await createTestbed({ queues: 1 });
    const realize = calls.splice(0, 9);
    expect(realize).toEqual([
      "SET_OWNER",
      "GET_FEATURES",
      "SCSI_GET_ABI_VERSION",
      ...[0, 1, 2].flatMap((i) => [`SET_VRING_CALL(${i})`, `SET_VRING_ERR(${i})`]),
    ]);
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

  it("stops reading a queue's call eventfd once its notifiers are handed over; the other queues' interrupts still arrive", async () => {
    bed = await createTestbed({ queues: 2 });
    await clearUnitAttentions(bed);
    const seen: number[] = [];
    bed.device.onInterrupt((i) => seen.push(i));
    const handed = EventFd.fromHandle(bed.device.handOverNotifiers(3).call);
    handed.write(1n);
    EventFd.fromHandle(bed.device.notifiers()[2].call).write(1n);
    await until(() => seen.includes(2));
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).not.toContain(3);
    expect(handed.tryRead()).toBe(1n); // left for the guest that took the queue over
    expect(() => bed!.device.handOverNotifiers(9)).toThrow(RangeError);
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

describe("queue errors reach the embedder (the vring err eventfd, as the kernel's vq_err signals it)", () => {
  it("reports every error with its queue, name and errno, also for requests that were consumed; the current error clears", async () => {
    bed = await createTestbed();
    await clearUnitAttentions(bed);
    const seen: QueueErrorEvent[] = [];
    bed.device.onQueueError((e) => seen.push(e));
    // A response buffer shorter than virtio_scsi_cmd_resp: the chain comes back empty (BadRequest).
    const r = await rawChain(bed, 2, [cmdReq([1, 1, 0x40, 0], testUnitReady())], [100]);
    expect(r.usedLen).toBe(0);
    await until(() => seen.length === 1);
    expect(seen[0]).toMatchObject({ queue: 2, name: "BadRequest", errno: "EINVAL", count: 1 });
    expect(bed.device.vhost.vringStatus(2)!.error?.name).toBe("BadRequest");
    // An unknown control-queue request type.
    const ctl = new Uint8Array(24);
    new DataView(ctl.buffer).setUint32(0, 77, true);
    await rawChain(bed, 0, [ctl], [8]);
    await until(() => seen.length === 2);
    expect(seen[1]).toMatchObject({ queue: 0, name: "BadRequest", errno: "EINVAL", count: 1 });
    // A good request ends the request queue's error; the last one stays readable.
    expectGood(await bed.driver.command({ lun: 0, cdb: testUnitReady() }));
    expect(bed.device.vhost.vringStatus(2)!.error).toBeUndefined();
    expect(bed.device.vhost.vringStatus(2)!.lastError).toMatchObject({ name: "BadRequest", count: 1 });
    expect(seen).toHaveLength(2);
  });
});

describe("memory helpers for embedders", () => {
  it("lists the device heap's allocations by owner", async () => {
    bed = await createTestbed({ luns: [{ backstore: "ram", size: 1 << 20 }] });
    const owners = bed.shm.device.allocations().map((a) => a.owner);
    for (const o of ["vhost-scsi device", "virtqueue", "ram backstore", "lun 0", "tpg 1", "memory table", "vring 2 request contexts"])
      expect(owners).toContain(o);
    const list = bed.shm.device.allocations();
    for (let i = 1; i < list.length; i++) expect(list[i].start).toBeGreaterThanOrEqual(list[i - 1].start + list[i - 1].size);
  });

  it("reads and writes guest ranges that span adjacent regions; a hole is a RangeError", async () => {
    const shm = SharedMemory.create({ deviceBytes: 1 << 20, guestBytes: 1 << 20 });
    const mem = new GuestMemory(shm);
    mem.addRegion(0, 8192);
    mem.addRegion(8192, 4096);
    mem.addRegion(32768, 4096);
    const data = new Uint8Array(6000).map((_, i) => i & 0xff);
    mem.write(5000, data);
    expect(Buffer.from(mem.read(5000, 6000)).equals(Buffer.from(data))).toBe(true);
    expect(mem.bytes(8192, 10)[0]).toBe((8192 - 5000) & 0xff);
    expect(() => mem.read(10000, 8000)).toThrow(RangeError);
    expect(() => mem.write(12000, new Uint8Array(1000))).toThrow(RangeError);
    expect(mem.read(12000, 100).length).toBe(100); // the last 288 bytes below the hole
  });
});
