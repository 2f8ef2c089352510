import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestbed } from "../../src/testbed.js";
import type { LunConfig } from "../../src/target/tpg.js";
import { read16, write16 } from "../../src/guest/scsi-commands.js";
import { clearUnitAttentions, expectGood } from "../helpers/scsi.js";
import { until } from "../helpers/backstores.js";

const dir = mkdtempSync(join(tmpdir(), "vhost-scsi-life-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const block = (lba: number) => new Uint8Array(512).map((_, i) => (lba * 13 + i) & 0xff);

describe.each<[string, () => LunConfig]>([
  ["ram", () => ({ backstore: "ram", size: 4 << 20 })],
  ["file", () => ({ backstore: "file", path: join(dir, `l-${Math.random()}.img`), size: 4 << 20 })],
])("start -> I/O -> stop mid-stream -> restart (%s backstore, worker threads)", (_n, lun) => {
  it("loses no request and repeats none", async () => {
    const bed = await createTestbed({ luns: [lun()], queues: 2, queueSize: 64 });
    await clearUnitAttentions(bed);
    const usedSum = () => bed.driver.requests.map((q) => q.ring.usedIdx).reduce((a, b) => a + b, 0);
    const before = usedSum();
    const total = 1500;
    let done = 0;
    const writes: Promise<void>[] = [];
    for (let lba = 0; lba < total; lba++) {
      writes.push(
        bed.driver.command({ lun: 0, cdb: write16(lba, 1), dataOut: block(lba) }).then((r) => {
          expectGood(r);
          done++;
        }),
      );
    }
    await until(() => done >= 300);
    await bed.device.vmStop();
    // Stopped: every popped request completed, so each queue's saved base equals its used index.
    const usedAtStop = [2, 3].map((qi) => bed.driver.requests[qi - 2].ring.usedIdx);
    expect([2, 3].map((qi) => bed.device.savedBase(qi))).toEqual(usedAtStop);
    await new Promise((r) => setTimeout(r, 30));
    // Nothing is served while stopped (the guest may still reap what completed before).
    expect([2, 3].map((qi) => bed.driver.requests[qi - 2].ring.usedIdx)).toEqual(usedAtStop);
    await bed.device.vmContinue();
    await Promise.all(writes);
    expect(done).toBe(total);
    for (let lba = 0; lba < total; lba += 97) {
      const r = await bed.driver.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 512 });
      expect(Buffer.from(r.dataIn).equals(Buffer.from(block(lba)))).toBe(true);
    }
    // Every command was served exactly once: the writes and the reads, nothing more.
    expect(usedSum() - before).toBe(total + Math.ceil(total / 97));
    await bed.close();
  });
});

describe("worker threads", () => {
  it("two workers serve two queues concurrently", async () => {
    const bed = await createTestbed({ queues: 2, workers: 2, luns: [{ backstore: "ram", size: 8 << 20 }] });
    await clearUnitAttentions(bed);
    const v = bed.device.vhost;
    expect([(await v.GET_VRING_WORKER(2)).worker_id, (await v.GET_VRING_WORKER(3)).worker_id]).toEqual([0, 1]);
    const jobs = Array.from({ length: 400 }, (_, i) => bed.driver.command({ lun: 0, queue: i % 2, cdb: read16(i, 8), dataInLength: 4096 }));
    const rs = await Promise.all(jobs);
    expect(rs.every((r) => r.status === 0 && r.response === 0)).toBe(true);
    expect(v.vringStatus(2)!.stats.completed).toBeGreaterThanOrEqual(200);
    expect(v.vringStatus(3)!.stats.completed).toBeGreaterThanOrEqual(200);
    await bed.close();
  });

  it("a worker thread that dies is reported on the vring's err eventfd; a new worker takes the queue over", async () => {
    const bed = await createTestbed({ queues: 1, workers: 2, luns: [{ backstore: "ram", size: 8 << 20 }] });
    await clearUnitAttentions(bed);
    const v = bed.device.vhost;
    const errFd = bed.proc.eventfd();
    await v.SET_VRING_ERR({ index: 2, fd: errFd });
    const serving = (await v.GET_VRING_WORKER(2)).worker_id;
    const w1 = (v as unknown as { workers: Map<number, { platformThread: { terminate(): Promise<void> }; failure?: Error }> }).workers.get(serving)!;
    await w1.platformThread.terminate();
    await until(() => w1.failure !== undefined);
    expect(await bed.proc.eventfdOf(errFd).readAsync(2000)).toBeGreaterThan(0n);
    // The control plane moves the queue to a fresh worker; I/O goes on.
    const { worker_id } = await v.NEW_WORKER();
    await v.ATTACH_VRING_WORKER({ index: 2, worker_id });
    expectGood(await bed.driver.command({ lun: 0, cdb: read16(0, 1), dataInLength: 512 }));
    await bed.close();
  });
});
