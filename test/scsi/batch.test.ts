import { describe, expect, it } from "vitest";
import { createTestbed } from "../../src/testbed.js";
import { LocalWorker } from "../../src/worker/local-worker.js";
import { POLL_MORE } from "../../src/worker/vring-server.js";
import type { DataplaneExports } from "../../src/wasm/dataplane.js";
import { cdb, read16, ScsiOp, write16 } from "../../src/guest/scsi-commands.js";
import { until } from "../helpers/backstores.js";
import { VIRTIO_SCSI_S_FUNCTION_COMPLETE, VIRTIO_SCSI_T_TMF_ABORT_TASK } from "../../src/virtio/virtio-scsi.js";

/** Lets the driver's batched kick out, then polls the manual worker until it has nothing more to do. */
async function serveAll<T>(worker: LocalWorker, ps: Promise<T>[]): Promise<T[]> {
  await new Promise((r) => setImmediate(r));
  while (worker.poll() === POLL_MORE);
  return Promise.all(ps);
}

/** A testbed with one RAM LUN whose vhost worker runs only when the test polls it. */
async function manualTestbed(lun: { size: number; blockSize: 512 | 4096 }, queueSize: number, wrapDataplane?: (dp: DataplaneExports) => DataplaneExports) {
  let worker: LocalWorker | undefined;
  const bed = await createTestbed({
    luns: [{ backstore: "ram", ...lun }],
    queueSize,
    process: { createWorker: (id, shm) => (worker = new LocalWorker(id, shm, { manual: true, wrapDataplane })) },
  });
  return { bed, worker: worker! };
}

/** Wraps every data plane export in a counter of its calls by name (the exports object itself is frozen). */
function counted(calls: Map<string, number>) {
  return (dp: DataplaneExports): DataplaneExports =>
    Object.fromEntries(
      Object.entries(dp).map(([name, f]) => [name, typeof f !== "function" ? f : (...a: unknown[]) => (calls.set(name, (calls.get(name) ?? 0) + 1), f(...a))]),
    ) as unknown as DataplaneExports;
}

describe("batching: a few WASM calls serve a whole batch", () => {
  it("64 random 4 KiB reads on a RAM LUN take two scsi_req_drain calls and no per-request crossing", async () => {
    const calls = new Map<string, number>();
    const { bed, worker } = await manualTestbed({ size: 64 << 20, blockSize: 4096 }, 256, counted(calls));
    const drive = async <T>(p: Promise<T>): Promise<T> => {
      for (;;) {
        await new Promise((r) => setImmediate(r));
        worker.poll();
        const settled = await Promise.race([p.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 1))]);
        if (settled) return p;
      }
    };
    await drive(bed.driver.command({ lun: 0, cdb: write16(0, 1), dataOut: new Uint8Array(4096) })); // takes the unit attention
    const lbas = Array.from({ length: 64 }, () => Math.floor(Math.random() * 16384));
    const reads = lbas.map((lba) => bed.driver.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 4096 }));
    await new Promise((r) => setImmediate(r)); // the driver's batched kick
    calls.clear();
    let polls = 0;
    while (worker.poll() === POLL_MORE) polls++;
    const during = new Map(calls);
    const results = await Promise.all(reads);
    expect(results.every((r) => r.response === 0 && r.status === 0 && r.dataIn.length === 4096)).toBe(true);
    // The driver waits for an interrupt (used_event at its next completion): the first drain
    // stops after the first 8 so that it goes out at once, the second serves the other 56.
    expect(polls).toBe(1);
    expect(during.get("scsi_req_drain")).toBe(2);
    const total = [...during.values()].reduce((a, b) => a + b, 0);
    // Per poll: one drain per attached vring plus a few bookkeeping calls, whatever the batch size.
    expect(total).toBeLessThanOrEqual(16);
    expect(bed.device.vhost.vringStatus(2)!.stats.completed).toBeGreaterThanOrEqual(65);
    await bed.close();
  });

  it("a pass serves the request queue alone; the control and event queues when kicked or when an event is posted", async () => {
    const calls = new Map<string, number>();
    const { bed, worker } = await manualTestbed({ size: 1 << 20, blockSize: 512 }, 64, counted(calls));
    await serveAll(worker, [bed.driver.command({ lun: 0, cdb: write16(0, 1), dataOut: new Uint8Array(512) })]); // takes the unit attention
    const served = (name: string) => calls.get(name) ?? 0;
    calls.clear();
    const reads = await serveAll(
      worker,
      Array.from({ length: 16 }, (_, i) => bed.driver.command({ lun: 0, cdb: read16(i, 1), dataInLength: 512 })),
    );
    expect(reads.every((r) => r.status === 0)).toBe(true);
    expect(served("scsi_req_drain")).toBeGreaterThan(0);
    expect([served("scsi_ctl_drain"), served("scsi_evt_drain")]).toEqual([0, 0]);
    // A TMF: the driver kicks the control queue, and the next pass serves it.
    const tmf = serveAll(worker, [bed.driver.tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK, { lun: 0, tag: 12345n })]);
    expect(await tmf).toEqual([VIRTIO_SCSI_S_FUNCTION_COMPLETE]);
    expect(served("scsi_ctl_drain")).toBe(1);
    // A hot-added LUN: the event posted wakes the event queue.
    await bed.tpg.addLun(1, { backstore: "ram", size: 1 << 20 });
    await until(() => (worker.poll(), bed.driver.events.length === 1));
    expect(served("scsi_evt_drain")).toBeGreaterThan(0);
    // Once the driver has its event buffer back (a kick), idle passes leave both queues alone.
    await new Promise((r) => setTimeout(r, 10));
    worker.poll();
    calls.clear();
    for (let i = 0; i < 10; i++) worker.poll();
    expect([served("scsi_req_drain"), served("scsi_ctl_drain"), served("scsi_evt_drain")]).toEqual([10, 0, 0]);
    await bed.close();
  });

  it("large reads: the used ring is published, and the waiting driver interrupted, once a MiB of data is copied", async () => {
    const { bed, worker } = await manualTestbed({ size: 16 << 20, blockSize: 512 }, 64);
    await serveAll(worker, [bed.driver.command({ lun: 0, cdb: write16(0, 1), dataOut: new Uint8Array(512) })]); // takes the unit attention
    const stats = () => bed.device.vhost.vringStatus(2)!.stats;
    /** Submits `n` reads of `blocks` blocks each; returns how many the first drain answered, and the results. */
    const firstDrain = async (n: number, blocks: number) => {
      const ps = Array.from({ length: n }, (_, i) => bed.driver.command({ lun: 0, cdb: read16(i * blocks, blocks), dataInLength: blocks * 512 }));
      await new Promise((r) => setImmediate(r));
      const before = stats().completed;
      expect(worker.poll()).toBe(POLL_MORE);
      const first = stats().completed - before;
      while (worker.poll() === POLL_MORE);
      const results = await Promise.all(ps);
      expect(results.every((r) => r.response === 0 && r.status === 0 && r.dataIn.length === blocks * 512)).toBe(true);
      return first;
    };
    expect(await firstDrain(4, 2048)).toBe(1); // 1 MiB each: after the first
    expect(await firstDrain(6, 1024)).toBe(2); // 512 KiB each: after the second
    expect(await firstDrain(12, 8)).toBe(8); // 4 KiB each: after 8 requests
    await bed.close();
  });

  it("a batch's RAM reads and writes are copied together before the used ring moves, yet each command sees the ones before it done", async () => {
    const { bed, worker } = await manualTestbed({ size: 1 << 20, blockSize: 512 }, 256);
    const block = (v: number) => new Uint8Array(512).fill(v);
    /** Submits the commands, then serves them all before the driver runs again. */
    const oneDrain = (cmds: Parameters<typeof bed.driver.command>[0][]) =>
      serveAll(
        worker,
        cmds.map((c) => bed.driver.command(c)),
      );
    await oneDrain([{ lun: 0, cdb: write16(0, 1), dataOut: block(0) }]); // takes the unit attention
    // 40 blocks with their own contents (more reads than a list holds and several publications).
    await oneDrain(Array.from({ length: 40 }, (_, i) => ({ lun: 0, cdb: write16(i, 1), dataOut: block(i + 1) })));
    // Reads and writes of the same blocks, WRITE SAME and VERIFY among them, within one group of
    // 8 (the device publishes every 8), then 40 reads.
    const r = await oneDrain([
      { lun: 0, cdb: read16(3, 1), dataInLength: 512 },
      { lun: 0, cdb: write16(3, 1), dataOut: block(0xaa) },
      { lun: 0, cdb: read16(3, 1), dataInLength: 512 },
      { lun: 0, cdb: read16(5, 2), dataInLength: 1024 },
      {
        lun: 0,
        cdb: cdb(16, ScsiOp.WRITE_SAME_16, [
          [2, 8, 5],
          [10, 4, 2],
        ]),
        dataOut: block(0x55),
      },
      { lun: 0, cdb: read16(5, 2), dataInLength: 1024 },
      { lun: 0, cdb: write16(7, 1), dataOut: block(0x77) },
      {
        lun: 0,
        cdb: cdb(16, ScsiOp.VERIFY_16, [
          [1, 1, 2],
          [2, 8, 7],
          [10, 4, 1],
        ]),
        dataOut: block(0x77),
      },
      ...Array.from({ length: 40 }, (_, i) => ({ lun: 0, cdb: read16(i, 1), dataInLength: 512 })),
    ]);
    expect(r.map((x) => x.status)).toEqual(r.map(() => 0));
    expect(r[0].dataIn).toEqual(block(4));
    expect(r[2].dataIn).toEqual(block(0xaa));
    expect(r[3].dataIn).toEqual(new Uint8Array(1024).map((_, k) => (k < 512 ? 6 : 7)));
    expect(r[5].dataIn).toEqual(new Uint8Array(1024).fill(0x55));
    const now = (i: number) => (i === 3 ? block(0xaa) : i === 5 || i === 6 ? block(0x55) : i === 7 ? block(0x77) : block(i + 1));
    for (let i = 0; i < 40; i++) expect(r[8 + i].dataIn).toEqual(now(i));
    await bed.close();
  });
});
