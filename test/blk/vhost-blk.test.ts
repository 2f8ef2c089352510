// virtio-blk on the vhost core (VIRTIO 1.2, 5.2), driven by the guest driver and by hand-made
// chains: every request type on RAM, null and a queued backstore, the status bytes, the config
// space and the features, and the chains a hostile driver sends.
import { afterEach, describe, expect, it } from "vitest";
import { createBlkTestbed, type BlkTestbed } from "../../src/testbed.js";
import type { QueuedBackstore, IoDone } from "../../src/backstore/backstore.js";
import { BS_OP_DISCARD, BS_OP_FLUSH, BS_OP_READ, BS_OP_WRITE, BS_OP_WRITE_ZEROES, type BackstoreIo } from "../../src/backstore/ring.js";
import {
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_SECURE_ERASE,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
  VIRTIO_ID_BLOCK,
} from "../../src/virtio/virtio-blk.js";
import type { QueueErrorEvent } from "../../src/device/vhost-scsi-device.js";
import { VhostError } from "../../src/sys/errors.js";
import { VhostBlk } from "../../src/vhost/vhost-blk.js";
import { rawChain } from "../helpers/raw.js";
import { until } from "../helpers/backstores.js";

let bed: BlkTestbed | undefined;
afterEach(async () => {
  await bed?.close();
  bed = undefined;
});

/** Bytes where byte i is a function of the sector and the seed. */
function pattern(sector: number, bytes: number, seed: number): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (sector * 31 + i * 7 + seed) & 0xff;
  return b;
}

/** struct virtio_blk_discard_write_zeroes segments. */
function segments(...segs: [number, number, number][]): Uint8Array {
  const b = new Uint8Array(16 * segs.length);
  const dv = new DataView(b.buffer);
  segs.forEach(([sector, n, flags], i) => {
    dv.setBigUint64(16 * i, BigInt(sector), true);
    dv.setUint32(16 * i + 8, n, true);
    dv.setUint32(16 * i + 12, flags, true);
  });
  return b;
}

/** A RAM-like queued backstore that records every operation it is given (served on this thread). */
class RecordingBackstore implements QueuedBackstore {
  readonly kind = "queued";
  readonly name = "recording";
  readonly readOnly = false;
  readonly features = { flush: true, fua: true, discard: true, discardZeroes: true, writeZeroes: true };
  readonly data: Uint8Array;
  readonly ops: { op: number; offset: number; length: number; fua: boolean }[] = [];
  constructor(readonly size: number) {
    this.data = new Uint8Array(size);
  }
  submit(batch: readonly BackstoreIo[], done: IoDone): void {
    for (const io of batch) {
      this.ops.push({ op: io.op, offset: io.offset, length: io.length, fua: io.fua });
      let at = io.offset;
      if (io.op === BS_OP_READ || io.op === BS_OP_WRITE) {
        for (const b of io.buffers) {
          if (io.op === BS_OP_READ) b.set(this.data.subarray(at, at + b.length));
          else this.data.set(b, at);
          at += b.length;
        }
      } else if (io.op === BS_OP_DISCARD || io.op === BS_OP_WRITE_ZEROES) {
        this.data.fill(0, io.offset, io.offset + io.length);
      }
      done(io, io.length);
    }
  }
  close(): void {}
}

/** Writes and reads back patterns of several sizes and layouts on every queue; checks the status and used lengths. */
async function readWriteScript(b: BlkTestbed): Promise<void> {
  const d = b.driver;
  const cases = [
    { sector: 0, bytes: 512 },
    { sector: 8, bytes: 4096, fragment: 100 },
    { sector: 100, bytes: 65536, indirect: true },
    { sector: 1000, bytes: 128 << 10, fragment: 4096 },
  ];
  for (const [k, c] of cases.entries()) {
    const data = pattern(c.sector, c.bytes, k);
    const w = await d.request({
      type: VIRTIO_BLK_T_OUT,
      sector: c.sector,
      dataOut: data,
      fragment: c.fragment,
      indirect: c.indirect,
      queue: k % d.requests.length,
    });
    expect(w.status).toBe(VIRTIO_BLK_S_OK);
    expect(w.usedLen).toBe(1);
    const r = await d.request({ type: VIRTIO_BLK_T_IN, sector: c.sector, dataInLength: c.bytes, fragment: c.fragment, queue: (k + 1) % d.requests.length });
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.usedLen).toBe(c.bytes + 1);
    expect(Buffer.from(r.dataIn).equals(Buffer.from(data))).toBe(true);
  }
  // Many at once, spread over the queues, then each read back.
  const n = 64;
  await Promise.all(Array.from({ length: n }, (_, i) => d.request({ type: VIRTIO_BLK_T_OUT, sector: 2048 + i * 8, dataOut: pattern(i, 4096, 9) })));
  const reads = await Promise.all(Array.from({ length: n }, (_, i) => d.request({ type: VIRTIO_BLK_T_IN, sector: 2048 + i * 8, dataInLength: 4096 })));
  reads.forEach((r, i) => {
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(Buffer.from(r.dataIn).equals(Buffer.from(pattern(i, 4096, 9)))).toBe(true);
  });
}

/** The answers every backing gives alike: errors, IDs, FLUSH, DISCARD and WRITE_ZEROES. */
async function commandScript(b: BlkTestbed, serial: string): Promise<void> {
  const d = b.driver;
  const sectors = Number(d.capacity);
  // Out of range, straddling the end, misaligned (a partial sector): IOERR; a zero-length one at the end is fine.
  expect((await d.request({ type: VIRTIO_BLK_T_IN, sector: sectors, dataInLength: 512 })).status).toBe(VIRTIO_BLK_S_IOERR);
  expect((await d.request({ type: VIRTIO_BLK_T_IN, sector: sectors - 1, dataInLength: 1024 })).status).toBe(VIRTIO_BLK_S_IOERR);
  expect((await d.request({ type: VIRTIO_BLK_T_OUT, sector: 0, dataOut: new Uint8Array(100) })).status).toBe(VIRTIO_BLK_S_IOERR);
  expect((await d.request({ type: VIRTIO_BLK_T_IN, sector: 2n ** 63n, dataInLength: 512 })).status).toBe(VIRTIO_BLK_S_IOERR);
  expect((await d.request({ type: VIRTIO_BLK_T_IN, sector: sectors, dataInLength: 0 })).status).toBe(VIRTIO_BLK_S_OK);
  // GET_ID: the serial, zero padded to 20 bytes, cut to the buffer.
  const id = await d.request({ type: VIRTIO_BLK_T_GET_ID, dataInLength: 20 });
  expect(id.status).toBe(VIRTIO_BLK_S_OK);
  expect(id.usedLen).toBe(21);
  expect(Buffer.from(id.dataIn).toString("latin1").replace(/\0+$/, "")).toBe(serial);
  expect((await d.request({ type: VIRTIO_BLK_T_GET_ID, dataInLength: 4 })).dataIn).toEqual(id.dataIn.subarray(0, 4));
  expect((await d.request({ type: VIRTIO_BLK_T_FLUSH })).status).toBe(VIRTIO_BLK_S_OK);
  // Refused cleanly: what is not offered, and types nobody knows.
  for (const type of [VIRTIO_BLK_T_SECURE_ERASE, VIRTIO_BLK_T_GET_LIFETIME, 3, 99, 0xffffffff])
    expect((await d.request({ type, dataOut: segments([0, 1, 0]), dataInLength: 8 })).status).toBe(VIRTIO_BLK_S_UNSUPP);
  // WRITE_ZEROES and DISCARD leave zeroes behind (RAM; the recording backstore zeroes too).
  await d.request({ type: VIRTIO_BLK_T_OUT, sector: 64, dataOut: pattern(64, 8192, 3) });
  expect((await d.request({ type: VIRTIO_BLK_T_WRITE_ZEROES, dataOut: segments([64, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP]) })).status).toBe(VIRTIO_BLK_S_OK);
  expect((await d.request({ type: VIRTIO_BLK_T_DISCARD, dataOut: segments([72, 8, 0]) })).status).toBe(VIRTIO_BLK_S_OK);
  const z = await d.request({ type: VIRTIO_BLK_T_IN, sector: 64, dataInLength: 8192 });
  expect(z.dataIn.every((x) => x === 0)).toBe(true);
  // Their rules: DISCARD takes no flags, WRITE_ZEROES only UNMAP; one segment; the range and the limit.
  expect((await d.request({ type: VIRTIO_BLK_T_DISCARD, dataOut: segments([0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP]) })).status).toBe(VIRTIO_BLK_S_UNSUPP);
  expect((await d.request({ type: VIRTIO_BLK_T_WRITE_ZEROES, dataOut: segments([0, 8, 2]) })).status).toBe(VIRTIO_BLK_S_UNSUPP);
  expect((await d.request({ type: VIRTIO_BLK_T_WRITE_ZEROES, dataOut: segments([0, 8, 0], [16, 8, 0]) })).status).toBe(VIRTIO_BLK_S_UNSUPP);
  expect((await d.request({ type: VIRTIO_BLK_T_DISCARD, dataOut: segments([sectors - 4, 8, 0]) })).status).toBe(VIRTIO_BLK_S_IOERR);
  expect((await d.request({ type: VIRTIO_BLK_T_WRITE_ZEROES, dataOut: segments([0, 0x7fffffff, 0]) })).status).toBe(VIRTIO_BLK_S_IOERR);
}

describe("virtio-blk on a RAM disk", () => {
  it("offers the device and its config space as QEMU's virtio-blk does", async () => {
    bed = await createBlkTestbed({ queues: 2, disk: { serial: "ram-disk-0" } });
    expect(bed.device.deviceId).toBe(VIRTIO_ID_BLOCK);
    expect(bed.driver.capacity).toBe(BigInt((16 << 20) / 512));
    expect(bed.driver.blockSize).toBe(512);
    expect(bed.driver.writeback).toBe(true);
    expect(bed.driver.has(VIRTIO_BLK_F_MQ)).toBe(true);
    expect(bed.driver.has(VIRTIO_BLK_F_DISCARD)).toBe(true);
    expect(bed.driver.has(VIRTIO_BLK_F_RO)).toBe(false);
    expect(bed.driver.requests).toHaveLength(2);
  });

  it("reads back what it wrote, in every layout, on every queue", async () => {
    bed = await createBlkTestbed({ queues: 2 });
    await readWriteScript(bed);
  });

  it("answers errors, GET_ID, FLUSH, DISCARD and WRITE_ZEROES with the status the spec names", async () => {
    bed = await createBlkTestbed({ disk: { serial: "ram-disk-0" } });
    await commandScript(bed, "ram-disk-0");
  });

  it("a 4096-byte disk refuses requests that are not whole blocks", async () => {
    bed = await createBlkTestbed({ disk: { blockSize: 4096 } });
    expect(bed.driver.blockSize).toBe(4096);
    expect((await bed.driver.request({ type: VIRTIO_BLK_T_IN, sector: 1, dataInLength: 4096 })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await bed.driver.request({ type: VIRTIO_BLK_T_IN, sector: 8, dataInLength: 512 })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await bed.driver.request({ type: VIRTIO_BLK_T_IN, sector: 8, dataInLength: 8192 })).status).toBe(VIRTIO_BLK_S_OK);
  });

  it("a read-only disk offers VIRTIO_BLK_F_RO and fails writes with IOERR, leaving the data", async () => {
    bed = await createBlkTestbed({ disk: { readOnly: true } });
    expect(bed.driver.has(VIRTIO_BLK_F_RO)).toBe(true);
    expect((await bed.driver.request({ type: VIRTIO_BLK_T_OUT, sector: 0, dataOut: pattern(0, 512, 1) })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await bed.driver.request({ type: VIRTIO_BLK_T_WRITE_ZEROES, dataOut: segments([0, 8, 0]) })).status).toBe(VIRTIO_BLK_S_IOERR);
    const r = await bed.driver.request({ type: VIRTIO_BLK_T_IN, sector: 0, dataInLength: 512 });
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.dataIn.every((x) => x === 0)).toBe(true);
  });

  it("a null disk reads zeroes and takes writes", async () => {
    bed = await createBlkTestbed({ backstore: { backstore: "null", size: 1 << 30 } });
    expect((await bed.driver.request({ type: VIRTIO_BLK_T_OUT, sector: 0, dataOut: pattern(0, 4096, 1) })).status).toBe(VIRTIO_BLK_S_OK);
    const r = await bed.driver.request({ type: VIRTIO_BLK_T_IN, sector: 0, dataInLength: 4096 });
    expect(r.dataIn.every((x) => x === 0)).toBe(true);
    await commandScript(bed, "null");
  });

  it("runs on worker threads as on the calling thread", async () => {
    bed = await createBlkTestbed({ queues: 2, workers: 2, process: { workerThreads: true } });
    await readWriteScript(bed);
  });
});

describe("virtio-blk on a queued backstore", () => {
  it("serves every request type through the backstore operations, FUA while write-through", async () => {
    const store = new RecordingBackstore(8 << 20);
    bed = await createBlkTestbed({ backstore: { backstore: store }, queues: 2, disk: { serial: "rec" } });
    await readWriteScript(bed);
    await commandScript(bed, "rec");
    const kinds = new Set(store.ops.map((o) => o.op));
    for (const op of [BS_OP_READ, BS_OP_WRITE, BS_OP_FLUSH, BS_OP_DISCARD, BS_OP_WRITE_ZEROES]) expect(kinds).toContain(op);
    expect(store.ops.filter((o) => o.op === BS_OP_WRITE).every((o) => !o.fua)).toBe(true);
    // The driver turns the write cache off: every write is durable before its status (FUA).
    bed.driver.setWriteback(false);
    expect(bed.driver.writeback).toBe(false);
    const before = store.ops.length;
    await bed.driver.request({ type: VIRTIO_BLK_T_OUT, sector: 0, dataOut: pattern(0, 4096, 5) });
    expect(store.ops.slice(before)).toEqual([{ op: BS_OP_WRITE, offset: 0, length: 4096, fua: true }]);
  });

  it("a backstore error becomes IOERR; the disk goes on", async () => {
    const store = new RecordingBackstore(1 << 20);
    const submit = store.submit.bind(store);
    let fail = true;
    store.submit = (batch, done) => (fail ? batch.forEach((io) => done(io, -5)) : submit(batch, done));
    bed = await createBlkTestbed({ backstore: { backstore: store } });
    expect((await bed.driver.request({ type: VIRTIO_BLK_T_IN, sector: 0, dataInLength: 512 })).status).toBe(VIRTIO_BLK_S_IOERR);
    fail = false;
    expect((await bed.driver.request({ type: VIRTIO_BLK_T_IN, sector: 0, dataInLength: 512 })).status).toBe(VIRTIO_BLK_S_OK);
  });
});

describe("a hostile virtio-blk driver", () => {
  it("a chain without the header or without a status byte is a queue error, returned empty", async () => {
    bed = await createBlkTestbed();
    const seen: QueueErrorEvent[] = [];
    bed.device.onQueueError((e) => seen.push(e));
    const hdr = new Uint8Array(16);
    expect((await rawChain(bed, 0, [hdr.subarray(0, 15)], [1])).usedLen).toBe(0);
    expect((await rawChain(bed, 0, [hdr], [])).usedLen).toBe(0);
    // Two errors (the err eventfd may fold them into one signal: the event counts them).
    await until(() => seen.reduce((n, e) => n + e.count, 0) === 2);
    expect(seen.every((e) => e.name === "BadRequest" && e.queue === 0)).toBe(true);
    // The queue goes on.
    expect((await bed.driver.request({ type: VIRTIO_BLK_T_FLUSH })).status).toBe(VIRTIO_BLK_S_OK);
  });

  it("the header split over descriptors and the status sharing the data's buffer are read as one", async () => {
    bed = await createBlkTestbed();
    const out = new Uint8Array(16 + 512);
    new DataView(out.buffer).setUint32(0, VIRTIO_BLK_T_OUT, true);
    new DataView(out.buffer).setBigUint64(8, 4n, true);
    out.set(pattern(4, 512, 2), 16);
    // Header in three pieces, the data after it in the last one.
    const w = await rawChain(bed, 0, [out.subarray(0, 3), out.subarray(3, 10), out.subarray(10)], [1]);
    expect(w.usedLen).toBe(1);
    expect(w.ins[0][0]).toBe(VIRTIO_BLK_S_OK);
    const rd = new Uint8Array(16);
    new DataView(rd.buffer).setBigUint64(8, 4n, true);
    // Data and status in one writable buffer: the status is its last byte.
    const r = await rawChain(bed, 0, [rd], [513]);
    expect(r.usedLen).toBe(513);
    expect(r.ins[0][512]).toBe(VIRTIO_BLK_S_OK);
    expect(Buffer.from(r.ins[0].subarray(0, 512)).equals(Buffer.from(pattern(4, 512, 2)))).toBe(true);
  });
});

describe("/dev/vhost-blk's ioctls", () => {
  it("VHOST_BLK_SET_BACKEND: EINVAL for an fd that is no backend, EFAULT without ring addresses, EBUSY for a second backend; a backend in use cannot be closed", async () => {
    bed = await createBlkTestbed();
    const { proc } = bed;
    const fd = proc.open("/dev/vhost-blk");
    const d = proc.device(fd, VhostBlk);
    await d.SET_OWNER();
    const efd = proc.eventfd();
    await expect(d.BLK_SET_BACKEND({ index: 0, fd: efd })).rejects.toMatchObject({ code: "EINVAL" });
    await expect(d.BLK_SET_BACKEND({ index: 0, fd: bed.backend })).rejects.toMatchObject({ code: "EBUSY" }); // bed's device serves it
    await expect(d.BLK_SET_BACKEND({ index: 200, fd: bed.backend })).rejects.toMatchObject({ code: "ENOBUFS" });
    await expect(proc.close(bed.backend)).rejects.toBeInstanceOf(VhostError);
    const other = proc.openBlockBackend((await import("../../src/backstore/backstore.js")).openBackstoreSync({ backstore: "null", size: 1 << 20 }, bed.shm));
    await expect(d.BLK_SET_BACKEND({ index: 0, fd: other })).rejects.toMatchObject({ code: "EFAULT" });
    await proc.close(fd);
    await proc.close(other);
    await proc.close(efd);
  });
});
