// Fault injection: a vhost worker thread killed under load, the control plane tearing things
// down with requests in flight, guest RAM unplugged while in use.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { QueueErrorEvent } from "../../src/device/vhost-scsi-device.js";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import { read16, write16, testUnitReady } from "../../src/guest/scsi-commands.js";
import * as V from "../../src/virtio/virtio-scsi.js";
import { SenseKey } from "../../src/guest/sense.js";
import { clearUnitAttentions, expectGood, expectSense } from "../helpers/scsi.js";
import { type GatedBackstore, gatedFile, until } from "../helpers/backstores.js";
import type { ThreadWorker } from "../../src/worker/thread-worker.js";

const dir = mkdtempSync(join(tmpdir(), "vhost-scsi-faults-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let bed: Testbed | undefined;
afterEach(async () => {
  await bed?.close().catch(() => {});
  bed = undefined;
});

const block = (lba: number) => new Uint8Array(512).map((_, i) => (lba * 31 + i * 7) & 0xff);
const workerOf = (b: Testbed, id: number) => (b.device.vhost as unknown as { workers: Map<number, ThreadWorker> }).workers.get(id)!;

describe("a vhost worker thread killed mid-batch", () => {
  it("is reported on the err eventfd; recovery through the control plane completes every request exactly once", async () => {
    bed = await createTestbed({ luns: [{ backstore: "ram", size: 4 << 20 }], queues: 2, workers: 2, queueSize: 64 });
    await clearUnitAttentions(bed);
    const v = bed.device.vhost;
    // The device model wires an err eventfd per vring (as QEMU) and reports what it signals.
    const reported: QueueErrorEvent[] = [];
    bed.device.onQueueError((e) => reported.push(e));
    const total = 3000;
    let done = 0;
    const writes = Array.from({ length: total }, (_, lba) =>
      bed!.driver.command({ lun: 0, queue: lba % 2, cdb: write16(lba, 1), dataOut: block(lba) }).then((r) => {
        expectGood(r);
        done++;
      }),
    );
    await until(() => done > 400);
    // Kill the thread serving queue 1 while it is busy (it is draining or busy-polling).
    const victim = (await v.GET_VRING_WORKER(3)).worker_id;
    await workerOf(bed, victim).platformThread.terminate();
    await until(() => v.failedWorkers().length === 1);
    await until(() => reported.length > 0, 2000);
    expect(reported).toEqual([expect.objectContaining({ queue: 3, name: "WorkerFailed", errno: "EIO", info: victim })]);
    expect(await bed.device.recoverWorkers()).toEqual([victim]);
    expect((await v.GET_VRING_WORKER(3)).worker_id).not.toBe(victim);
    await Promise.all(writes);
    expect(done).toBe(total);
    for (let lba = 0; lba < total; lba += 37) {
      const r = await bed.driver.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 512 });
      expect(Buffer.from(r.dataIn).equals(Buffer.from(block(lba)))).toBe(true);
    }
  });
});

describe("a vhost worker killed while its file I/O runs elsewhere (the fence)", () => {
  it("recovery waits until that I/O has ended before the requests are served again; each completes once", async () => {
    const gate = gatedFile(join(dir, `fence-${Math.random()}.img`), 1 << 20);
    bed = await createTestbed({ luns: [{ backstore: gate }], queues: 2, workers: 2, queueSize: 64 });
    gate.open();
    await clearUnitAttentions(bed);
    for (let lba = 0; lba < 8; lba++) expectGood(await bed.driver.command({ lun: 0, cdb: write16(lba, 1), dataOut: block(lba) }));
    gate.closed = true;
    const v = bed.device.vhost;
    // Reads on queue 1, held by the backstore: their data would land in guest buffers when let go.
    const reads = Array.from({ length: 8 }, (_, lba) => bed!.driver.command({ lun: 0, queue: 1, cdb: read16(lba, 1), dataInLength: 512 }));
    await until(() => gate.held === 8);
    const victim = (await v.GET_VRING_WORKER(3)).worker_id;
    await workerOf(bed, victim).platformThread.terminate();
    await until(() => v.failedWorkers().length === 1);
    let recovered = false;
    const recovery = bed.device.recoverWorkers().then(() => (recovered = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(recovered).toBe(false); // fenced: the held reads still own their guest buffers
    gate.open();
    await recovery;
    const results = await Promise.all(reads);
    results.forEach((r, lba) => {
      expectGood(r);
      expect(Buffer.from(r.dataIn).equals(Buffer.from(block(lba)))).toBe(true);
    });
    expect(bed.driver.requests[1].ring.usedIdx).toBe(bed.device.vhost.vringStatus(3)!.lastUsedIdx);
  });
});

describe("teardown with requests in flight (file backstore held at a gate)", () => {
  const fileBed = async (ops: GatedBackstore) => {
    bed = await createTestbed({ luns: [{ backstore: ops }, { backstore: "ram", size: 1 << 20 }] });
    ops.open();
    await clearUnitAttentions(bed, [0, 1]);
    ops.closed = true;
    return bed;
  };

  it("CLEAR_ENDPOINT waits for them; each completes once, GOOD", async () => {
    const ops = gatedFile(join(dir, `${Math.random()}.img`), 1 << 20);
    const b = await fileBed(ops);
    const reqs = [0, 1, 2, 3].map((k) => b.driver.command({ lun: 0, cdb: write16(k, 1), dataOut: block(k) }));
    await until(() => ops.held === 4);
    let cleared = false;
    const stop = b.device.vmStop().then(() => (cleared = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(cleared).toBe(false);
    ops.open();
    await stop;
    for (const r of await Promise.all(reqs)) expectGood(r);
    expect(b.device.savedBase(2)).toBe(b.driver.requests[0].ring.usedIdx);
    await b.device.vmContinue();
  });

  it("RESET_OWNER waits for them; each completes once, GOOD", async () => {
    const ops = gatedFile(join(dir, `${Math.random()}.img`), 1 << 20);
    const b = await fileBed(ops);
    const reqs = [0, 1, 2].map((k) => b.driver.command({ lun: 0, cdb: read16(k, 1), dataInLength: 512 }));
    await until(() => ops.held === 3);
    const reset = b.device.vhost.RESET_OWNER();
    await new Promise((r) => setTimeout(r, 20));
    ops.open();
    await reset;
    for (const r of await Promise.all(reqs)) expectGood(r);
    await expect(b.device.vhost.GET_VRING_BASE(2)).rejects.toThrow(/EPERM/);
  });

  it("LUN removal waits for them; they complete GOOD, later commands see LOGICAL UNIT NOT SUPPORTED", async () => {
    const ops = gatedFile(join(dir, `${Math.random()}.img`), 1 << 20);
    const b = await fileBed(ops);
    const reqs = [0, 1].map((k) => b.driver.command({ lun: 0, cdb: write16(k, 1), dataOut: block(k) }));
    await until(() => ops.held === 2);
    let removed = false;
    const removal = b.tpg.removeLun(0).then(() => (removed = true));
    expectSense(await b.driver.command({ lun: 0, cdb: testUnitReady() }), SenseKey.ILLEGAL_REQUEST, 0x2500);
    expect(removed).toBe(false);
    ops.open();
    await removal;
    for (const r of await Promise.all(reqs)) expectGood(r);
    await until(() => b.driver.events.some((e) => e.reason === V.VIRTIO_SCSI_EVT_RESET_REMOVED));
    // The other LUN learns that the inventory changed, then carries on.
    expectSense(await b.driver.command({ lun: 1, cdb: testUnitReady() }), SenseKey.UNIT_ATTENTION, 0x3f0e);
    expectGood(await b.driver.command({ lun: 1, cdb: testUnitReady() }));
  });
});

describe("guest RAM unplugged while in use", () => {
  it("the device stops translating into it; queued requests pointing there are queue errors; nothing touches it afterwards", async () => {
    bed = await createTestbed({ luns: [{ backstore: "ram", size: 1 << 20 }], guestMemory: 16 << 20, hotplugMemory: 1 << 20, workers: 1 });
    await clearUnitAttentions(bed);
    const extra = bed.mem.addRegion(2 ** 32, 1 << 20);
    await bed.mem.settled();
    const q = bed.driver.requests[0];
    const data = 2 ** 32 + 0x1000;
    // A request whose data buffer is in the region, put on the ring, not yet kicked.
    const hdr = bed.mem.alloc(256, 16);
    const h = bed.mem.bytes(hdr, 51);
    h.fill(0);
    h.set([1, 1, 0x40, 0]);
    h.set(read16(0, 1), 19);
    const pending = new Promise<{ usedLen: number }>((resolve) =>
      q.add(
        [{ addr: hdr, len: 51 }],
        [
          { addr: hdr + 64, len: 108 },
          { addr: data, len: 512 },
        ],
        { resolve } as never,
      ),
    );
    void pending;
    await bed.mem.removeRegion(2 ** 32);
    // The backing is back in the guest zone's free space: fill it with canaries and watch it.
    const hva = extra.hva;
    bed.shm.bytes.fill(0x5c, hva, hva + (1 << 20));
    q.kick();
    await until(() => bed!.device.vhost.vringStatus(2)?.error !== undefined);
    expect(bed.device.vhost.vringStatus(2)!.error).toMatchObject({ name: "AddressNotMapped" });
    await new Promise((r) => setTimeout(r, 20));
    expect(bed.shm.bytes.subarray(hva, hva + (1 << 20)).every((b) => b === 0x5c)).toBe(true);
  });
});
