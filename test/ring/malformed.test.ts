import { describe, expect, it } from "vitest";
import { RingTestbed } from "../../src/testing/ring-testbed.js";
import { MockSplitQueue, type RawDesc } from "../../src/testing/mock-queue.js";
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "../../src/virtio/ring.js";
import { pop } from "../helpers/ring.js";

const NEXT = VRING_DESC_F_NEXT;
const WRITE = VRING_DESC_F_WRITE;
const INDIRECT = VRING_DESC_F_INDIRECT;
const RAM = 0x1_0000_0000; // guest RAM at 4 GiB: everything below is unmapped
const RAM_SIZE = 4 << 20;

function setup(num = 8) {
  const tb = new RingTestbed({ regions: [{ gpa: RAM, size: RAM_SIZE }] });
  const mock = new MockSplitQueue(tb.mem, num);
  const dq = tb.deviceQueue(mock);
  return { tb, mock, dq };
}

/** Expects the next pop to be the named error, leaving the entry on the ring. */
function expectError(s: ReturnType<typeof setup>, name: string, info?: number) {
  const before = s.dq.lastAvailIdx;
  expect(pop(s.tb, s.dq)).toBe("error");
  expect(s.dq.error?.name).toBe(name);
  if (info !== undefined) expect(s.dq.error?.info).toBe(info);
  expect(s.dq.lastAvailIdx).toBe(before);
}

type Case = { name: string; error: string; build: (m: MockSplitQueue) => void; num?: number };

/**
 * The errno drivers/vhost/vhost.c returns for each error: vhost_get_avail_idx (avail index
 * jump), vhost_get_vq_desc (head, next, loop, out after in), get_indirect (length, size, loop,
 * nesting) and translate_desc (unmapped or wrapping range, iovec array full).
 */
const KERNEL_ERRNO: Record<string, string> = {
  InvalidAvailRingIndex: "EINVAL",
  InvalidHeadIndex: "EINVAL",
  InvalidDescIndex: "EINVAL",
  ChainLoop: "EINVAL",
  AddressNotMapped: "EFAULT",
  AddressOverflow: "EFAULT",
  TooManyIovecs: "ENOBUFS",
  InvalidIndirectLength: "EINVAL",
  NestedIndirect: "EINVAL",
  IndirectWithNext: "EINVAL",
  IndirectLoop: "EINVAL",
  InvalidIndirectIndex: "EINVAL",
  ReadableAfterWritable: "EINVAL",
  IndirectTooBig: "E2BIG",
};

const cases: Case[] = [
  {
    name: "a descriptor that links to itself (VIRTIO 1.2, 2.7.5.2: chain longer than queue size)",
    error: "ChainLoop",
    build: (m) => {
      m.setDesc(0, { addr: RAM, len: 8, flags: NEXT, next: 0 });
      m.publish(0);
    },
  },
  {
    name: "a two-descriptor cycle",
    error: "ChainLoop",
    build: (m) => {
      m.setDesc(1, { addr: RAM, len: 8, flags: NEXT, next: 2 });
      m.setDesc(2, { addr: RAM, len: 8, flags: NEXT, next: 1 });
      m.publish(1);
    },
  },
  {
    name: "next pointing past the descriptor table",
    error: "InvalidDescIndex",
    build: (m) => {
      m.setDesc(0, { addr: RAM, len: 8, flags: NEXT, next: 8 });
      m.publish(0);
    },
  },
  {
    name: "an avail entry naming a head past the queue size",
    error: "InvalidHeadIndex",
    build: (m) => m.publish(8),
  },
  {
    name: "avail->idx jumping more than the queue size",
    error: "InvalidAvailRingIndex",
    build: (m) => m.setAvailIdx(9),
  },
  {
    name: "avail->idx moved backwards (seen as a huge jump)",
    error: "InvalidAvailRingIndex",
    build: (m) => m.setAvailIdx(0xffff),
  },
  {
    name: "a buffer in unmapped guest memory",
    error: "AddressNotMapped",
    build: (m) => {
      m.setDesc(0, { addr: 0x10000, len: 8, flags: 0 });
      m.publish(0);
    },
  },
  {
    name: "a buffer running past the end of guest RAM",
    error: "AddressNotMapped",
    build: (m) => {
      m.setDesc(0, { addr: RAM + RAM_SIZE - 4, len: 8, flags: WRITE });
      m.publish(0);
    },
  },
  {
    name: "a buffer just past the end of guest RAM",
    error: "AddressNotMapped",
    build: (m) => {
      m.setDesc(0, { addr: RAM + RAM_SIZE, len: 1, flags: 0 });
      m.publish(0);
    },
  },
  {
    name: "addr + len wrapping around 2^64",
    error: "AddressOverflow",
    build: (m) => {
      m.setDesc(0, { addr: (1n << 64n) - 16n, len: 32, flags: 0 });
      m.publish(0);
    },
  },
  {
    name: "a readable descriptor after a writable one (VIRTIO 1.2, 2.7.4.2)",
    error: "ReadableAfterWritable",
    build: (m) => {
      m.setDesc(0, { addr: RAM, len: 8, flags: WRITE | NEXT, next: 1 });
      m.setDesc(1, { addr: RAM + 8, len: 8, flags: 0 });
      m.publish(0);
    },
  },
  {
    name: "a readable descriptor after a zero-length writable one",
    error: "ReadableAfterWritable",
    build: (m) => {
      m.setDesc(0, { addr: RAM, len: 0, flags: WRITE | NEXT, next: 1 });
      m.setDesc(1, { addr: RAM + 8, len: 8, flags: 0 });
      m.publish(0);
    },
  },
  {
    name: "a readable indirect entry after a direct writable descriptor",
    error: "ReadableAfterWritable",
    build: (m) => {
      m.writeTable(RAM + 0x1000, [{ addr: RAM, len: 8, flags: 0 }]);
      m.setDesc(0, { addr: RAM + 0x2000, len: 8, flags: WRITE | NEXT, next: 1 });
      m.setDesc(1, { addr: RAM + 0x1000, len: 16, flags: INDIRECT });
      m.publish(0);
    },
  },
  {
    name: "INDIRECT together with NEXT (VIRTIO 1.2, 2.7.5.3.1)",
    error: "IndirectWithNext",
    build: (m) => {
      m.writeTable(RAM + 0x1000, [{ addr: RAM, len: 8, flags: 0 }]);
      m.setDesc(0, { addr: RAM + 0x1000, len: 16, flags: INDIRECT | NEXT, next: 1 });
      m.setDesc(1, { addr: RAM, len: 8, flags: WRITE });
      m.publish(0);
    },
  },
  {
    name: "an indirect descriptor inside an indirect table (VIRTIO 1.2, 2.7.5.3.1)",
    error: "NestedIndirect",
    build: (m) => {
      m.writeTable(RAM + 0x1000, [{ addr: RAM + 0x2000, len: 16, flags: INDIRECT }]);
      m.writeTable(RAM + 0x2000, [{ addr: RAM, len: 8, flags: 0 }]);
      m.setDesc(0, { addr: RAM + 0x1000, len: 16, flags: INDIRECT });
      m.publish(0);
    },
  },
  {
    name: "an indirect table length that is not a multiple of 16",
    error: "InvalidIndirectLength",
    build: (m) => {
      m.writeTable(RAM + 0x1000, [{ addr: RAM, len: 8, flags: 0 }]);
      m.setDesc(0, { addr: RAM + 0x1000, len: 24, flags: INDIRECT });
      m.publish(0);
    },
  },
  {
    name: "an empty indirect table",
    error: "InvalidIndirectLength",
    build: (m) => {
      m.setDesc(0, { addr: RAM + 0x1000, len: 0, flags: INDIRECT });
      m.publish(0);
    },
  },
  {
    name: "an indirect table of more than 65536 entries",
    error: "IndirectTooBig",
    build: (m) => {
      m.setDesc(0, { addr: RAM, len: 65537 * 16, flags: INDIRECT });
      m.publish(0);
    },
  },
  {
    name: "an indirect table in unmapped memory",
    error: "AddressNotMapped",
    build: (m) => {
      m.setDesc(0, { addr: 0x2000, len: 32, flags: INDIRECT });
      m.publish(0);
    },
  },
  {
    name: "a loop inside an indirect table",
    error: "IndirectLoop",
    build: (m) => {
      m.writeTable(RAM + 0x1000, [
        { addr: RAM, len: 8, flags: NEXT, next: 1 },
        { addr: RAM, len: 8, flags: NEXT, next: 0 },
      ]);
      m.setDesc(0, { addr: RAM + 0x1000, len: 32, flags: INDIRECT });
      m.publish(0);
    },
  },
  {
    name: "next pointing past an indirect table",
    error: "InvalidIndirectIndex",
    build: (m) => {
      m.writeTable(RAM + 0x1000, [
        { addr: RAM, len: 8, flags: NEXT, next: 2 },
        { addr: RAM, len: 8, flags: 0 },
      ]);
      m.setDesc(0, { addr: RAM + 0x1000, len: 32, flags: INDIRECT });
      m.publish(0);
    },
  },
  {
    name: "a chain needing more than UIO_MAXIOV iovecs",
    error: "TooManyIovecs",
    build: (m) => {
      const descs: RawDesc[] = Array.from({ length: 1025 }, (_, k) => ({
        addr: RAM + 2 * k,
        len: 1,
        flags: k < 1024 ? NEXT : 0,
        next: k + 1,
      }));
      m.writeTable(RAM + 0x10000, descs);
      m.setDesc(0, { addr: RAM + 0x10000, len: 1025 * 16, flags: INDIRECT });
      m.publish(0);
    },
  },
];

describe("malformed rings are queue errors, never traps (the kernel's vq_err)", () => {
  it.each(cases)("$name -> $error", (c) => {
    const s = setup(c.num);
    c.build(s.mock);
    expectError(s, c.error);
    // The entry stays; popping again reports the same error again (no hidden state).
    expectError(s, c.error);
    expect(s.dq.error?.count).toBe(2);
    expect(s.dq.error?.errno).toBe(KERNEL_ERRNO[c.error]);
  });

  it("accepts avail->idx moving by exactly the queue size", () => {
    const s = setup(4);
    for (let i = 0; i < 4; i++) s.mock.setDesc(i, { addr: RAM, len: 1, flags: 0 });
    s.mock.publish(0, 1, 2, 3);
    for (let i = 0; i < 4; i++) expect(pop(s.tb, s.dq)).toMatchObject({ head: i });
    expect(pop(s.tb, s.dq)).toBe("empty");
  });

  it("serves the chain once the driver repairs it", () => {
    const s = setup();
    s.mock.setDesc(0, { addr: RAM, len: 8, flags: NEXT, next: 0 });
    s.mock.publish(0);
    expectError(s, "ChainLoop", 0);
    s.mock.setDesc(0, { addr: RAM, len: 8, flags: 0 });
    expect(pop(s.tb, s.dq)).toMatchObject({ head: 0 });
    expect(s.dq.lastAvailIdx).toBe(1);
    // The queue's current error is over; the last one recorded stays readable.
    expect(s.dq.error).toBeUndefined();
    expect(s.dq.lastError).toMatchObject({ name: "ChainLoop", count: 1 });
  });

  it("names the offending index", () => {
    const s = setup();
    s.mock.setDesc(3, { addr: RAM, len: 8, flags: NEXT, next: 5 });
    s.mock.setDesc(5, { addr: 0x42, len: 8, flags: 0 });
    s.mock.publish(3);
    expectError(s, "AddressNotMapped", 5);
    expect(s.dq.error).toMatchObject({ errno: "EFAULT" });
  });
});
