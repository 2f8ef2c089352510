// The dirty log (VHOST_F_LOG_ALL; drivers/vhost/vhost.c log_write/log_used): while logging, every
// guest page the device writes (data-in, responses, status bytes, the used ring) is marked before
// the guest can see it; syncing reads and clears the marks; the ioctls keep the kernel's rules.
import { afterEach, describe, expect, it } from "vitest";
import { createBlkTestbed, createTestbed, type BlkTestbed, type Testbed } from "../../src/testbed.js";
import { read16, write16 } from "../../src/guest/scsi-commands.js";
import { commandRetryingUA } from "../../src/guest/scan.js";
import { VIRTIO_BLK_T_IN } from "../../src/virtio/virtio-blk.js";
import { VHOST_F_LOG_ALL } from "../../src/vhost/uapi.js";
import { VhostError } from "../../src/sys/errors.js";
import { until } from "../helpers/backstores.js";

let bed: Testbed | BlkTestbed | undefined;
afterEach(async () => {
  await bed?.close();
  bed = undefined;
});

const LOG_ALL = 1n << BigInt(VHOST_F_LOG_ALL);
const pagesOf = (gpa: number, len: number) =>
  Array.from({ length: Math.floor((gpa + len - 1) / 4096) - Math.floor(gpa / 4096) + 1 }, (_, i) => Math.floor(gpa / 4096) + i);

/** The guest pages a driver's queue's used ring occupies. */
function usedRingPages(q: { usedAddr: number; num: number }): number[] {
  return pagesOf(q.usedAddr, 6 + 8 * q.num);
}

describe("dirty logging", () => {
  it("virtio-scsi: a READ marks the pages of its data-in buffer, its response and the used ring; a sync clears them", async () => {
    const tb = (bed = await createTestbed({ luns: [{ backstore: "ram", size: 1 << 20 }] }));
    await commandRetryingUA(tb.driver, { lun: 0, cdb: write16(0, 64), dataOut: new Uint8Array(32768).fill(7) });
    expect(tb.device.syncLog()).toEqual([]);
    await tb.device.startLogging();
    expect(tb.device.vhost.features & LOG_ALL).toBe(LOG_ALL);
    // Capture where the driver puts the command: the guest allocation made for it.
    const alloc = tb.mem.alloc.bind(tb.mem);
    const blocks: { gpa: number; len: number }[] = [];
    tb.mem.alloc = (len: number, align?: number) => {
      const gpa = alloc(len, align);
      blocks.push({ gpa, len });
      return gpa;
    };
    const r = await tb.driver.command({ lun: 0, cdb: read16(0, 64), dataInLength: 32768 });
    tb.mem.alloc = alloc;
    expect(r.status).toBe(0);
    const dirty = new Set(tb.device.syncLog());
    const want = [...pagesOf(blocks[0].gpa, blocks[0].len).slice(1), ...usedRingPages(tb.driver.requests[0])];
    for (const p of want) expect(dirty.has(p), `page ${p}`).toBe(true);
    // No new request: the marks were cleared by the sync; only the used ring may be written again
    // (the worker sets avail_event as it goes idle).
    const ring = usedRingPages(tb.driver.requests[0]);
    for (const p of tb.device.syncLog()) expect(ring).toContain(p);
    await tb.device.stopLogging();
    expect(tb.device.vhost.features & LOG_ALL).toBe(0n);
    expect(tb.device.syncLog()).toEqual([]);
  });

  it("VHOST_SET_LOG_FD: its eventfd is signalled once used entries are published and logged, and no more once unbound", async () => {
    const tb = (bed = await createTestbed({ luns: [{ backstore: "ram", size: 1 << 20 }] }));
    await commandRetryingUA(tb.driver, { lun: 0, cdb: write16(0, 8), dataOut: new Uint8Array(4096).fill(3) });
    const fd = tb.proc.eventfd();
    const efd = tb.proc.eventfdOf(fd);
    await tb.device.vhost.SET_LOG_FD(fd);
    // Not logging yet: nothing is logged, nothing signalled.
    expect((await tb.driver.command({ lun: 0, cdb: read16(0, 8), dataInLength: 4096 })).status).toBe(0);
    expect(efd.tryRead()).toBeUndefined();
    await tb.device.startLogging();
    expect((await tb.driver.command({ lun: 0, cdb: read16(0, 8), dataInLength: 4096 })).status).toBe(0);
    // The worker writes the log eventfd in the pass that published the entry (maybe after the guest reaped it).
    let signals = 0n;
    await until(() => (signals += efd.tryRead() ?? 0n) > 0n, 5000);
    await tb.device.vhost.SET_LOG_FD(-1);
    efd.tryRead();
    expect((await tb.driver.command({ lun: 0, cdb: read16(0, 8), dataInLength: 4096 })).status).toBe(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(efd.tryRead()).toBeUndefined();
    expect(tb.device.syncLog().length).toBeGreaterThan(0);
    await expect(tb.device.vhost.SET_LOG_FD(12345)).rejects.toThrow(VhostError);
  });

  it("virtio-blk: an IN marks its data and status pages and the used ring, also when logging started before the driver", async () => {
    const tb = (bed = await createBlkTestbed({ backstore: { backstore: "ram", size: 1 << 20 } }));
    await tb.device.startLogging();
    const before = tb.device.syncLog().length; // the probe's own writes, if any
    expect(before).toBeGreaterThanOrEqual(0);
    const r = await tb.driver.request({ type: VIRTIO_BLK_T_IN, sector: 0, dataInLength: 65536 });
    expect(r.status).toBe(0);
    const dirty = tb.device.syncLog();
    // 64 KiB of data-in: at least 16 pages, and the used ring's.
    expect(dirty.length).toBeGreaterThanOrEqual(16);
    for (const p of usedRingPages(tb.driver.requests[0])) expect(dirty).toContain(p);
    // Restarted (a driver reset): the backend comes back logging.
    await tb.device.setStatus(0);
    await tb.device.stopLogging();
    await tb.device.startLogging();
  });

  it("the ioctls: LOG_ALL needs a log base that holds the bitmap (EFAULT); running vrings let only LOG_ALL change (EBUSY)", async () => {
    const tb = (bed = await createTestbed({ luns: [{ backstore: "ram", size: 1 << 20 }] }));
    const d = tb.device.vhost;
    await expect(d.SET_LOG_BASE(BigInt(tb.shm.bytes.length))).rejects.toMatchObject({ code: "EFAULT" });
    await expect(d.SET_LOG_BASE(0n)).rejects.toBeInstanceOf(VhostError);
    await expect(d.SET_FEATURES(d.features & ~(1n << 29n))).rejects.toMatchObject({ code: "EBUSY" }); // EVENT_IDX off while running
    await tb.device.startLogging();
    await d.SET_FEATURES(d.features & ~LOG_ALL);
    await d.SET_FEATURES(d.features | LOG_ALL);
  });
});
