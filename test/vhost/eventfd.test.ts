import { describe, expect, it } from "vitest";
import { Worker } from "node:worker_threads";
import { EventFd, EFD_NONBLOCK, EFD_SEMAPHORE, PollTable } from "../../src/sys/eventfd.js";
import type { VhostError } from "../../src/sys/errors.js";

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as VhostError).code;
  }
  return "ok";
};

describe("eventfd (eventfd(2) semantics over a SharedArrayBuffer)", () => {
  it("counter mode: writes add up, a read takes everything and resets to 0", () => {
    const e = EventFd.create(3);
    e.write(4n);
    e.write(5);
    expect(e.read()).toBe(12n);
    expect(e.value).toBe(0n);
  });

  it("semaphore mode: each read takes 1", () => {
    const e = EventFd.create(2, EFD_SEMAPHORE);
    e.write(1n);
    expect([e.read(), e.read(), e.read()]).toEqual([1n, 1n, 1n]);
    expect(e.value).toBe(0n);
  });

  it("nonblocking: reading 0 is EAGAIN; writing past 2^64-2 is EAGAIN; 2^64-1 is EINVAL", () => {
    const e = EventFd.create(0, EFD_NONBLOCK);
    expect(code(() => e.read())).toBe("EAGAIN");
    e.write(0xfffffffffffffffen);
    expect(code(() => e.write(1n))).toBe("EAGAIN");
    expect(e.value).toBe(0xfffffffffffffffen);
    expect(code(() => e.write(0xffffffffffffffffn))).toBe("EINVAL");
    expect(e.read()).toBe(0xfffffffffffffffen);
    e.write(1n);
    expect(e.read()).toBe(1n);
  });

  it("rejects bad flags and initial values with EINVAL, use after close with EBADF", () => {
    expect(code(() => EventFd.create(0, 0x10))).toBe("EINVAL");
    expect(code(() => EventFd.create(-1))).toBe("EINVAL");
    const e = EventFd.create();
    e.close();
    expect(code(() => e.write(1n))).toBe("EBADF");
  });

  it("a blocking read with a timeout gives up with EAGAIN", () => {
    expect(code(() => EventFd.create().read(5))).toBe("EAGAIN");
  });

  it("readAsync on this thread wakes when a worker thread writes", async () => {
    const e = EventFd.create();
    const w = new Worker(
      `const { workerData } = require("node:worker_threads");
       const c = new BigUint64Array(workerData.sab, 0, 1), w32 = new Int32Array(workerData.sab);
       setTimeout(() => { Atomics.add(c, 0, 7n); Atomics.add(w32, 2, 1); Atomics.notify(w32, 2); }, 20);`,
      { eval: true, workerData: e.handle },
    );
    expect(await e.readAsync(2000)).toBe(7n);
    await w.terminate();
  });

  it("a worker thread blocked in read() wakes when this thread writes; the handle crosses threads", async () => {
    const e = EventFd.create(0, EFD_SEMAPHORE);
    const script = new URL("../helpers/eventfd-reader.mjs", import.meta.url);
    const w = new Worker(script, { workerData: { handle: e.handle, reads: 3 } });
    const got = new Promise<bigint[]>((res, rej) => (w.once("message", res), w.once("error", rej)));
    await new Promise((r) => setTimeout(r, 30));
    e.write(3n);
    expect(await got).toEqual([1n, 1n, 1n]);
    await w.terminate();
  });

  it("watchers: a write rings every registered doorbell of the poll table", () => {
    const table = new PollTable();
    const a = EventFd.create(0, 0, table);
    const b = EventFd.create(0, 0, table);
    const bell = table.allocDoorbell();
    a.watch(bell);
    b.watch(bell);
    const v0 = table.value(bell);
    a.write(1n);
    b.write(1n);
    expect(table.value(bell)).toBe(v0 + 2);
    a.unwatch(bell);
    a.write(1n);
    expect(table.value(bell)).toBe(v0 + 2);
  });
});
