// The polling window of the vhost workers and the benchmark's guest jobs (src/worker/adaptive-poll.ts).
import { describe, expect, it } from "vitest";
import { AdaptivePoll } from "../../src/worker/adaptive-poll.js";

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
});
