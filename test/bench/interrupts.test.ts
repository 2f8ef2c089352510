import { describe, expect, it } from "vitest";
import { Worker } from "node:worker_threads";
import { EventFd } from "../../src/sys/eventfd.js";

const sleeper = new URL("../helpers/interrupt-sleeper.mjs", import.meta.url);

/** Starts a sleeper on these eventfds; resolves with what it reports after waking. */
async function sleepIn(calls: EventFd[], ready: boolean, ms: number, whileAsleep: () => void) {
  const w = new Worker(sleeper, { workerData: { calls: calls.map((c) => c.handle), ready, ms } });
  // Both messages can arrive in one turn; a listener from the start misses neither.
  const messages: unknown[] = [];
  let arrived = () => {};
  w.on("message", (m) => {
    messages.push(m);
    arrived();
  });
  const nth = (n: number) =>
    new Promise<unknown>((resolve) => {
      arrived = () => messages.length > n && resolve(messages[n]);
      arrived();
    });
  expect(await nth(0)).toBe("sleeping");
  await new Promise((r) => setTimeout(r, 200));
  whileAsleep();
  const r = await nth(1);
  await w.terminate();
  return r as { ms: number; arm: number; disarm: number };
}

describe("a guest job's interrupt wait over all its queues", () => {
  it("wakes when any queue's call eventfd is signalled, not only the first's, and consumes the signal", async () => {
    const calls = [EventFd.create(0), EventFd.create(0)];
    const r = await sleepIn(calls, false, 10_000, () => calls[1].write(1n));
    expect(r.ms).toBeLessThan(5000);
    expect([r.arm, r.disarm]).toEqual([1, 1]);
    expect(calls[1].tryRead()).toBeUndefined();
  });

  it("does not sleep when arming finds a completion there already", async () => {
    const calls = [EventFd.create(0), EventFd.create(0)];
    const r = await sleepIn(calls, true, 10_000, () => {});
    expect(r.ms).toBeLessThan(1000);
    expect([r.arm, r.disarm]).toEqual([1, 1]);
  });
});
