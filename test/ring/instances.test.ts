import { describe, expect, it } from "vitest";
import { Worker } from "node:worker_threads";
import { RingTestbed } from "../../src/testing/ring-testbed.js";
import { GuestVirtqueue } from "../../src/guest/virtqueue.js";
import { dataplaneTestModule } from "../../src/wasm/dataplane.js";

const TOTAL = 20_000;
const SLOT = 256;

describe("one data plane instance per worker thread over one shared memory", () => {
  it("two workers drain two queues concurrently, each with its own scratch area, without mixing data", async () => {
    const tb = new RingTestbed({ regions: [{ gpa: 0, size: 4 << 20 }] });
    const queues = [0, 1].map(() => {
      const guest = new GuestVirtqueue<number>(tb.mem, { num: 64 });
      const device = tb.deviceQueue(guest);
      const bufs = tb.mem.alloc(64 * SLOT);
      return { guest, device, bufs, sent: 0, done: 0 };
    });
    const areaSize = tb.dp.instance_area_size();
    const workers = queues.map(
      (q) =>
        new Worker(new URL("../helpers/echo-worker.mjs", import.meta.url), {
          workerData: { module: dataplaneTestModule(), memory: tb.shm.memory, area: tb.shm.device.alloc(areaSize, 16), vq: q.device.ptr, total: TOTAL },
        }),
    );
    const finished = workers.map(
      (w) =>
        new Promise<{ drains: number; completed: number }>((res, rej) => {
          w.once("message", res);
          w.once("error", rej);
        }),
    );

    // The guest: keep both rings full; each request carries a 32-byte pattern unique to the
    // queue and sequence number, echoed into a 32-byte writable buffer.
    const pattern = (qi: number, seq: number, k: number) => (qi * 131 + seq * 7 + k) & 0xff;
    let mismatches = 0;
    while (queues.some((q) => q.done < TOTAL)) {
      queues.forEach((q, qi) => {
        while (q.sent < TOTAL && q.guest.canAdd(2)) {
          const slot = q.sent % 64;
          const out = q.bufs + slot * SLOT;
          const bytes = tb.mem.bytes(out, 64);
          for (let k = 0; k < 32; k++) bytes[k] = pattern(qi, q.sent, k);
          bytes.fill(0, 32, 64);
          q.guest.add([{ addr: out, len: 32 }], [{ addr: out + 32, len: 32 }], q.sent++);
        }
        q.guest.kick();
        for (let u = q.guest.getUsed(); u; u = q.guest.getUsed()) {
          const echoed = tb.mem.bytes(q.bufs + (u.token % 64) * SLOT + 32, 32);
          for (let k = 0; k < 32; k++) if (echoed[k] !== pattern(qi, u.token, k)) mismatches++;
          if (u.len !== 32) mismatches++;
          q.done++;
        }
      });
      await new Promise((r) => setImmediate(r));
    }
    const results = await Promise.all(finished);
    expect(mismatches).toBe(0);
    expect(results.map((r) => r.completed)).toEqual([TOTAL, TOTAL]);
    for (const q of queues) {
      expect(q.device.error).toBeUndefined();
      expect(q.device.stats.popped).toBe(TOTAL);
    }
    await Promise.all(workers.map((w) => w.terminate()));
  });
});
