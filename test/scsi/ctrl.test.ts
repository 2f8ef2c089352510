import { afterAll, afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import { cdb, read16, testUnitReady, write16, ScsiOp } from "../../src/guest/scsi-commands.js";
import { nodeFileOps, type FileOps } from "../../src/backstore/file.js";
import * as V from "../../src/virtio/virtio-scsi.js";
import { SenseKey } from "../../src/guest/sense.js";
import { clearUnitAttentions, cmd, expectGood, expectSense } from "../helpers/scsi.js";
import { type GatedBackstore, gatedFile, until } from "../helpers/backstores.js";

const dir = mkdtempSync(join(tmpdir(), "vhost-scsi-ctrl-"));
let bed: Testbed | undefined;
afterEach(async () => {
  await bed?.close();
  bed = undefined;
});

/** Resolves once the device holds a TMF (the control queue has a request in flight). */
const tmfHeld = (b: Testbed) => until(() => (b.device.vhost.vringStatus(0)?.inflight ?? 0) > 0);

async function fileBed(ops: GatedBackstore) {
  bed = await createTestbed({
    luns: [{ backstore: ops }, { backstore: "ram", size: 1 << 20 }],
  });
  ops.open();
  await clearUnitAttentions(bed, [0, 1]);
  ops.closed = true;
  return bed;
}

describe("task management functions (VIRTIO 1.2, 5.6.6.2)", () => {
  it("ABORT TASK waits for the aborted request, which completes with VIRTIO_SCSI_S_ABORTED first", async () => {
    const ops = gatedFile(join(dir, `a-${Math.random()}.img`), 1 << 20);
    const b = await fileBed(ops);
    const order: string[] = [];
    const read = cmd(b, { cdb: read16(0, 8), dataInLength: 4096, tag: 77n }).then((r) => (order.push("read"), r));
    await until(() => ops.held === 1);
    expect(await b.driver.tmf(V.VIRTIO_SCSI_T_TMF_QUERY_TASK, { lun: 0, tag: 77n })).toBe(V.VIRTIO_SCSI_S_FUNCTION_SUCCEEDED);
    expect(await b.driver.tmf(V.VIRTIO_SCSI_T_TMF_QUERY_TASK, { lun: 0, tag: 78n })).toBe(V.VIRTIO_SCSI_S_FUNCTION_COMPLETE);
    expect(await b.driver.tmf(V.VIRTIO_SCSI_T_TMF_QUERY_TASK_SET, { lun: 0 })).toBe(V.VIRTIO_SCSI_S_FUNCTION_SUCCEEDED);
    const abort = b.driver.tmf(V.VIRTIO_SCSI_T_TMF_ABORT_TASK, { lun: 0, tag: 77n }).then((r) => (order.push("tmf"), r));
    await tmfHeld(b);
    expect(order).toEqual([]); // the TMF is held while the aborted read is in flight
    ops.open();
    expect(await abort).toBe(V.VIRTIO_SCSI_S_FUNCTION_COMPLETE);
    const r = await read;
    expect(r.response).toBe(V.VIRTIO_SCSI_S_ABORTED);
    expect(order).toEqual(["read", "tmf"]);
    expect(b.tpg.lun(0)!.inflight).toBe(0);
  });

  it("ABORT TASK of a task that is not there completes at once", async () => {
    const ops = gatedFile(join(dir, `a-${Math.random()}.img`), 1 << 20);
    const b = await fileBed(ops);
    expect(await b.driver.tmf(V.VIRTIO_SCSI_T_TMF_ABORT_TASK, { lun: 0, tag: 5n })).toBe(V.VIRTIO_SCSI_S_FUNCTION_COMPLETE);
  });

  it("LOGICAL UNIT RESET aborts everything on the LUN and raises BUS DEVICE RESET FUNCTION OCCURRED", async () => {
    const ops = gatedFile(join(dir, `a-${Math.random()}.img`), 1 << 20);
    const b = await fileBed(ops);
    const reads = [1, 2, 3].map((k) => cmd(b, { cdb: read16(k, 1), dataInLength: 512, tag: BigInt(k) }));
    await until(() => ops.held === 3);
    const reset = b.driver.tmf(V.VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { lun: 0 });
    await tmfHeld(b);
    ops.open();
    expect(await reset).toBe(V.VIRTIO_SCSI_S_FUNCTION_COMPLETE);
    expect((await Promise.all(reads)).map((r) => r.response)).toEqual([2, 2, 2]);
    expectSense(await cmd(b, { cdb: testUnitReady() }), SenseKey.UNIT_ATTENTION, 0x2903);
    expectGood(await cmd(b, { cdb: testUnitReady() }));
    expectGood(await cmd(b, { lun: 1, cdb: testUnitReady() })); // other LUNs untouched
  });

  it("ABORT TASK SET and CLEAR TASK SET abort the LUN's tasks", async () => {
    for (const sub of [V.VIRTIO_SCSI_T_TMF_ABORT_TASK_SET, V.VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET]) {
      const ops = gatedFile(join(dir, `a-${Math.random()}.img`), 1 << 20);
      const b = await fileBed(ops);
      const read = cmd(b, { cdb: read16(0, 1), dataInLength: 512 });
      await until(() => ops.held === 1);
      const t = b.driver.tmf(sub, { lun: 0 });
      await tmfHeld(b);
      ops.open();
      expect(await t).toBe(V.VIRTIO_SCSI_S_FUNCTION_COMPLETE);
      expect((await read).response).toBe(V.VIRTIO_SCSI_S_ABORTED);
      await bed!.close();
      bed = undefined;
    }
  });

  it("I_T NEXUS RESET raises I_T NEXUS LOSS OCCURRED on every LUN", async () => {
    const ops = gatedFile(join(dir, `a-${Math.random()}.img`), 1 << 20);
    const b = await fileBed(ops);
    ops.open();
    expect(await b.driver.tmf(V.VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, { lun: 0 })).toBe(V.VIRTIO_SCSI_S_FUNCTION_COMPLETE);
    for (const lun of [0, 1]) expectSense(await cmd(b, { lun, cdb: testUnitReady() }), SenseKey.UNIT_ATTENTION, 0x2907);
  });

  it("I_T NEXUS RESET addressed to one LUN waits for the aborted requests of every LUN", async () => {
    const gates = [0, 1].map((k) => gatedFile(join(dir, `n${k}-${Math.random()}.img`), 1 << 20));
    bed = await createTestbed({ luns: gates.map((backstore) => ({ backstore })) });
    for (const g of gates) g.open();
    await clearUnitAttentions(bed, [0, 1]);
    for (const g of gates) g.closed = true;
    const b = bed;
    const order: string[] = [];
    const reads = [0, 1].map((lun) => cmd(b, { lun, cdb: read16(0, 1), dataInLength: 512 }).then((r) => (order.push(`read ${lun}`), r)));
    await until(() => gates.every((g) => g.held === 1));
    const reset = b.driver.tmf(V.VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, { lun: 0 }).then((r) => (order.push("tmf"), r));
    await tmfHeld(b);
    gates[0].open();
    expect((await reads[0]).response).toBe(V.VIRTIO_SCSI_S_ABORTED);
    // LUN 1's aborted read is still held: the reset is not answered before it.
    await new Promise((r) => setTimeout(r, 100));
    expect(order).toEqual(["read 0"]);
    gates[1].open();
    expect(await reset).toBe(V.VIRTIO_SCSI_S_FUNCTION_COMPLETE);
    expect((await reads[1]).response).toBe(V.VIRTIO_SCSI_S_ABORTED);
    expect(order).toEqual(["read 0", "read 1", "tmf"]);
  });

  it("rejects CLEAR ACA and unknown subtypes; INCORRECT_LUN and BAD_TARGET for bad addresses", async () => {
    bed = await createTestbed();
    const d = bed.driver;
    expect(await d.tmf(V.VIRTIO_SCSI_T_TMF_CLEAR_ACA, { lun: 0 })).toBe(V.VIRTIO_SCSI_S_FUNCTION_REJECTED);
    expect(await d.tmf(99, { lun: 0 })).toBe(V.VIRTIO_SCSI_S_FUNCTION_REJECTED);
    expect(await d.tmf(V.VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { lun: 5 })).toBe(V.VIRTIO_SCSI_S_INCORRECT_LUN);
    expect(await d.tmf(V.VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { lun: 0, target: 7 })).toBe(V.VIRTIO_SCSI_S_BAD_TARGET);
    expect(await d.tmf(V.VIRTIO_SCSI_T_TMF_QUERY_TASK_SET, { lun: 0 })).toBe(V.VIRTIO_SCSI_S_FUNCTION_COMPLETE);
  });
});

describe("asynchronous notification requests", () => {
  it("AN query and subscribe answer that no event classes are supported", async () => {
    bed = await createTestbed();
    for (const t of [V.VIRTIO_SCSI_T_AN_QUERY, V.VIRTIO_SCSI_T_AN_SUBSCRIBE]) {
      expect(await bed.driver.an(t, { lun: 0, events: 0x7e })).toEqual({ response: V.VIRTIO_SCSI_S_OK, eventActual: 0 });
    }
  });

  it("are answered for any target, configured or not, as vhost-scsi does (no target lookup for AN)", async () => {
    bed = await createTestbed();
    for (const t of [V.VIRTIO_SCSI_T_AN_QUERY, V.VIRTIO_SCSI_T_AN_SUBSCRIBE]) {
      expect(await bed.driver.an(t, { lun: 0, target: 3, events: 2 })).toEqual({ response: V.VIRTIO_SCSI_S_OK, eventActual: 0 });
    }
  });
});

describe("file backstore faults", () => {
  const failing = (what: "read" | "write" | "sync" | "short"): FileOps => ({
    readv: (fd, v, p) => {
      if (what === "read") throw Object.assign(new Error("EIO"), { code: "EIO" });
      return nodeFileOps.readv(fd, v, p);
    },
    writev: (fd, v, p) => {
      if (what === "write") return 0;
      // "short": at most 100 bytes per call; the backstore must carry on from there.
      if (what === "short") return nodeFileOps.writev(fd, [v[0].subarray(0, Math.min(100, v[0].length))], p);
      return nodeFileOps.writev(fd, v, p);
    },
    fdatasync: (fd) => {
      if (what === "sync") throw new Error("EIO");
      return nodeFileOps.fdatasync(fd);
    },
  });

  it.each([
    ["a failing read", "read", "read", SenseKey.MEDIUM_ERROR, 0x1100],
    ["a write making no progress", "write", "write", SenseKey.MEDIUM_ERROR, 0x0c00],
    ["a failing flush", "sync", "sync", SenseKey.MEDIUM_ERROR, 0x0c00],
  ] as const)("%s is MEDIUM ERROR with the right ASC, and the LUN goes on", async (_n, mode, op, key, asc) => {
    bed = await createTestbed({ luns: [{ backstore: "file", path: join(dir, `f-${Math.random()}.img`), size: 1 << 20, ops: failing(mode) }] });
    await clearUnitAttentions(bed);
    const c =
      op === "read"
        ? { cdb: read16(0, 1), dataInLength: 512 }
        : op === "write"
          ? { cdb: write16(0, 1), dataOut: new Uint8Array(512) }
          : { cdb: cdb(10, ScsiOp.SYNCHRONIZE_CACHE_10) };
    const r = await cmd(bed, c);
    expectSense(r, key, asc);
    expectGood(await cmd(bed, { cdb: testUnitReady() }));
  });

  it("short writes are continued until the whole transfer is written", async () => {
    bed = await createTestbed({ luns: [{ backstore: "file", path: join(dir, `s-${Math.random()}.img`), size: 1 << 20, ops: failing("short") }] });
    await clearUnitAttentions(bed);
    const data = new Uint8Array(4096).map((_, i) => i ^ 0x33);
    expectGood(await cmd(bed, { cdb: write16(10, 8), dataOut: data }));
    const r = await cmd(bed, { cdb: read16(10, 8), dataInLength: 4096 });
    expect(Buffer.from(r.dataIn).equals(Buffer.from(data))).toBe(true);
  });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));
