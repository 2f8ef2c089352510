import { describe, expect, it } from "vitest";
import { createTestbed } from "../../src/testbed.js";
import { LocalWorker } from "../../src/worker/local-worker.js";
import type { DataplaneExports } from "../../src/wasm/dataplane.js";
import { read16, write16 } from "../../src/guest/scsi-commands.js";

describe("batching: one WASM call serves a whole batch", () => {
  it("64 random 4 KiB reads on a RAM LUN take one scsi_req_drain call and no per-request crossing", async () => {
    const calls = new Map<string, number>();
    let worker: LocalWorker | undefined;
    // Every export wrapped in a counter (the exports object itself is frozen).
    const count = (dp: DataplaneExports): DataplaneExports =>
      Object.fromEntries(
        Object.entries(dp).map(([name, f]) => [
          name,
          typeof f !== "function" ? f : (...a: unknown[]) => (calls.set(name, (calls.get(name) ?? 0) + 1), f(...a)),
        ]),
      ) as unknown as DataplaneExports;
    const bed = await createTestbed({
      luns: [{ backstore: "ram", size: 64 << 20, blockSize: 4096 }],
      queueSize: 256,
      process: { createWorker: (id, shm) => (worker = new LocalWorker(id, shm, { manual: true, wrapDataplane: count })) },
    });
    const drive = async <T>(p: Promise<T>): Promise<T> => {
      for (;;) {
        await new Promise((r) => setImmediate(r));
        worker!.poll();
        const settled = await Promise.race([p.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 1))]);
        if (settled) return p;
      }
    };
    await drive(bed.driver.command({ lun: 0, cdb: write16(0, 1), dataOut: new Uint8Array(4096) })); // takes the unit attention
    const lbas = Array.from({ length: 64 }, () => Math.floor(Math.random() * 16384));
    const reads = lbas.map((lba) => bed.driver.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 4096 }));
    await new Promise((r) => setImmediate(r)); // the driver's batched kick
    calls.clear();
    worker!.poll();
    const during = new Map(calls);
    const results = await Promise.all(reads);
    expect(results.every((r) => r.response === 0 && r.status === 0 && r.dataIn.length === 4096)).toBe(true);
    expect(during.get("scsi_req_drain")).toBe(1);
    const total = [...during.values()].reduce((a, b) => a + b, 0);
    // Per poll: one drain per attached vring plus a few bookkeeping calls, whatever the batch size.
    expect(total).toBeLessThanOrEqual(8);
    expect(bed.device.vhost.vringStatus(2)!.stats.completed).toBeGreaterThanOrEqual(65);
    await bed.close();
  });
});
