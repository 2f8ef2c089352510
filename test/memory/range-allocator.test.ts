import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { RangeAllocator } from "../../src/memory/range-allocator.js";

describe("RangeAllocator", () => {
  it("aligns, fills up and reports exhaustion as RangeError", () => {
    const a = new RangeAllocator(100, 1124);
    expect(a.alloc(10, 64)).toBe(128);
    expect(a.alloc(16, 16)).toBe(112); // first fit: the gap left below the aligned block
    expect(() => a.alloc(2000)).toThrow(RangeError);
    expect(() => a.alloc(8, 3)).toThrow(/power of two/);
  });

  it("merges freed neighbours so the whole range is reusable", () => {
    const a = new RangeAllocator(0, 4096);
    const xs = [a.alloc(1024), a.alloc(1024), a.alloc(1024), a.alloc(1024)];
    expect(() => a.alloc(1)).toThrow(RangeError);
    for (const x of [xs[1], xs[3], xs[0], xs[2]]) a.release(x);
    expect(a.available).toBe(4096);
    expect(a.alloc(4096)).toBe(0);
  });

  it("rejects freeing what it did not hand out", () => {
    const a = new RangeAllocator(0, 4096);
    expect(() => a.release(16)).toThrow(RangeError);
  });

  it("never hands out overlapping or out-of-range blocks (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 600 }), fc.constantFrom(1, 2, 16, 64, 4096), fc.boolean()), { maxLength: 60 }), (ops) => {
        const a = new RangeAllocator(64, 64 + 16384);
        const live = new Map<number, number>();
        for (const [size, align, free] of ops) {
          if (free && live.size) {
            const [k] = live.keys();
            a.release(k);
            live.delete(k);
            continue;
          }
          let at: number;
          try {
            at = a.alloc(size, align);
          } catch {
            continue;
          }
          expect(at % align).toBe(0);
          expect(at >= 64 && at + size <= 64 + 16384).toBe(true);
          for (const [o, s] of live) expect(at + size <= o || o + s <= at).toBe(true);
          live.set(at, size);
        }
        for (const k of live.keys()) a.release(k);
        expect(a.available).toBe(16384);
      }),
    );
  });
});
