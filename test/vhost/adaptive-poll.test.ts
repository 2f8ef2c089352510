// The polling window of the vhost workers and the benchmark's guest jobs (src/worker/adaptive-poll.ts).
import { afterEach, describe, expect, it, vi } from "vitest";
import { platform } from "#platform";
import { AdaptivePoll } from "../../src/worker/adaptive-poll.js";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("AdaptivePoll", () => {
  it("grows from 10 µs, doubling, up to the limit while sleeps end within it", () => {
    const p = new AdaptivePoll(0);
    const seen: number[] = [];
    for (let i = 0; i < 7; i++) {
      p.waited(150, true, 200);
      seen.push(p.windowUs);
    }
    expect(seen).toEqual([10, 20, 40, 80, 160, 200, 200]);
  });

  it("halves on a wait longer than the limit and drops to 0 below 10 µs", () => {
    const p = new AdaptivePoll(200);
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      p.waited(5000, true, 200);
      seen.push(p.windowUs);
    }
    expect(seen).toEqual([100, 50, 25, 12.5, 0, 0]);
  });

  it("keeps the window when polling found the work, and follows a lowered limit", () => {
    const p = new AdaptivePoll(200);
    p.waited(30, false, 200);
    expect(p.windowUs).toBe(200);
    p.waited(30, false, 50);
    expect(p.windowUs).toBe(50);
    p.waited(30, true, 0);
    expect(p.windowUs).toBe(0);
  });

  it("does not poll while more threads are runnable than there are CPUs, and looks at the run queue at most once a millisecond", () => {
    const queue = { runnable: 3, cpus: 2 };
    const look = vi.spyOn(platform, "runQueue").mockImplementation(() => ({ ...queue }));
    const p = new AdaptivePoll(200);
    expect(p.windowAt(1000)).toBe(0);
    queue.runnable = 2; // as many as the CPUs: a poller keeps no one off a core
    expect(p.windowAt(1000.5)).toBe(0); // not looked at again yet
    expect(p.windowAt(1001)).toBe(200);
    expect(look).toHaveBeenCalledTimes(2);
    look.mockReturnValue(undefined); // a platform that cannot tell: the window stands
    expect(p.windowAt(1002)).toBe(200);
  });

  it("reads this machine's run queue: the caller among the runnable threads, the online CPUs", () => {
    const q = platform.runQueue();
    if (q === undefined) return expect(platform.name).toBe("browser");
    expect(q.runnable).toBeGreaterThanOrEqual(1);
    expect(q.cpus).toBeGreaterThanOrEqual(1);
  });
});
