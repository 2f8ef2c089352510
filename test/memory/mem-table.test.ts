import { describe, expect, it } from "vitest";
import { RingTestbed } from "../../src/testing/ring-testbed.js";
import { VhostMemTable, type VhostMemoryRegion } from "../../src/vhost/mem-table.js";
import { VhostError } from "../../src/sys/errors.js";
import { MockSplitQueue } from "../../src/testing/mock-queue.js";
import { STATIC_AREA_END } from "../../src/memory/shared-memory.js";
import { pop } from "../helpers/ring.js";

const region = (gpa: bigint, size: bigint, ua: bigint): VhostMemoryRegion => ({
  guest_phys_addr: gpa,
  memory_size: size,
  userspace_addr: ua,
});

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof VhostError) return e.code;
    throw e;
  }
  return undefined;
}

describe("VhostMemTable (VHOST_SET_MEM_TABLE checks)", () => {
  const tb = new RingTestbed();
  const [ram] = tb.mem.regions;
  const ua = BigInt(ram.hva);
  const mt = new VhostMemTable(tb.shm, tb.dp);

  it("accepts guest RAM and rejects more than 64 regions with E2BIG", () => {
    expect(errnoOf(() => mt.set([region(0n, 4096n, ua)]))).toBeUndefined();
    const many = Array.from({ length: 65 }, (_, i) => region(BigInt(i) * 4096n, 4096n, ua + BigInt(i) * 4096n));
    expect(errnoOf(() => mt.set(many))).toBe("E2BIG");
  });

  it.each([
    ["an empty region", region(0n, 0n, ua)],
    ["a guest range wrapping 2^64", region((1n << 64n) - 4096n, 8192n, ua)],
    ["a userspace range in the device heap", region(0n, 4096n, BigInt(STATIC_AREA_END))],
    ["a userspace range in the static area", region(0n, 4096n, 0n)],
    ["a userspace range running past guest RAM", region(0n, BigInt(ram.size) + 4096n, ua)],
    ["a userspace range past the memory", region(0n, 4096n, 1n << 40n)],
  ])("rejects %s with EFAULT and keeps the old table", (_, r) => {
    mt.set([region(0n, 4096n, ua)]);
    const before = mt.address;
    expect(errnoOf(() => mt.set([r]))).toBe("EFAULT");
    expect(mt.address).toBe(before);
    expect(mt.regions).toEqual([region(0n, 4096n, ua)]);
  });

  it("a queue stops translating a range once its region is gone from the table", () => {
    const tb2 = new RingTestbed({
      regions: [
        { gpa: 0, size: 1 << 20 },
        { gpa: 1 << 20, size: 1 << 20 },
      ],
    });
    const mock = new MockSplitQueue(tb2.mem, 8); // rings in region 0
    const dq = tb2.deviceQueue(mock);
    mock.setDesc(0, { addr: (1 << 20) + 64, len: 8, flags: 0 });
    mock.publish(0);
    const [r0] = tb2.mem.regions;
    dq.setMemTable(tb2.memtable.set([region(0n, BigInt(r0.size), BigInt(r0.hva))]));
    expect(pop(tb2, dq)).toBe("error");
    expect(dq.error?.name).toBe("AddressNotMapped");
  });
});
