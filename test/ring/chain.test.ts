import { describe, expect, it } from "vitest";
import { RingTestbed } from "../../src/testing/ring-testbed.js";
import { MockSplitQueue } from "../../src/testing/mock-queue.js";
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "../../src/virtio/ring.js";
import { pop } from "../helpers/ring.js";

const NEXT = VRING_DESC_F_NEXT;
const WRITE = VRING_DESC_F_WRITE;
const INDIRECT = VRING_DESC_F_INDIRECT;

function setup(num = 16, regions?: { gpa: number; size: number }[]) {
  const tb = new RingTestbed({ regions });
  const mock = new MockSplitQueue(tb.mem, num);
  const dq = tb.deviceQueue(mock);
  const hva = (gpa: number) => tb.mem.hva(gpa);
  return { tb, mock, dq, hva };
}

describe("descriptor chain walk (VIRTIO 1.2, 2.7.5)", () => {
  it("pops an empty ring as empty and leaves last_avail_idx alone", () => {
    const { tb, dq } = setup();
    expect(pop(tb, dq)).toBe("empty");
    expect(dq.lastAvailIdx).toBe(0);
  });

  it.each([1, 2, 3, 8, 16])("translates a direct chain of %i descriptors, readable first", (n) => {
    const { tb, mock, dq, hva } = setup(16);
    const base = 0x10000;
    const outs = Math.ceil(n / 2);
    for (let i = 0; i < n; i++) {
      const flags = (i >= outs ? WRITE : 0) | (i + 1 < n ? NEXT : 0);
      // Scatter the chain over the table: head 3, then descending indices.
      mock.setDesc((3 + 5 * i) % 16, { addr: base + 0x1000 * i, len: 100 + i, flags, next: (3 + 5 * (i + 1)) % 16 });
    }
    mock.publish(3);
    const c = pop(tb, dq);
    expect(c).not.toBe("error");
    if (typeof c === "string") throw new Error(c);
    expect(c.head).toBe(3);
    const all = [...c.out, ...c.in];
    expect(c.out).toHaveLength(outs);
    expect(all).toEqual(Array.from({ length: n }, (_, i) => [hva(base + 0x1000 * i), 100 + i]));
    expect(dq.lastAvailIdx).toBe(1);
  });

  it("translates an indirect table, ignoring WRITE on the indirect descriptor itself", () => {
    const { tb, mock, dq, hva } = setup(8);
    const table = 0x20000;
    mock.writeTable(table, [
      { addr: 0x30000, len: 51, flags: NEXT, next: 1 },
      { addr: 0x31000, len: 4096, flags: NEXT, next: 2 },
      { addr: 0x32000, len: 108, flags: WRITE | NEXT, next: 3 },
      { addr: 0x33000, len: 512, flags: WRITE },
    ]);
    mock.setDesc(5, { addr: table, len: 64, flags: INDIRECT | WRITE });
    mock.publish(5);
    expect(pop(tb, dq)).toEqual({
      head: 5,
      out: [
        [hva(0x30000), 51],
        [hva(0x31000), 4096],
      ],
      in: [
        [hva(0x32000), 108],
        [hva(0x33000), 512],
      ],
    });
  });

  it("follows an indirect table's next links in any order", () => {
    const { tb, mock, dq, hva } = setup(8);
    mock.writeTable(0x20000, [
      { addr: 0x30000, len: 10, flags: NEXT, next: 2 },
      { addr: 0x31000, len: 30, flags: WRITE },
      { addr: 0x32000, len: 20, flags: NEXT, next: 1 },
    ]);
    mock.setDesc(0, { addr: 0x20000, len: 48, flags: INDIRECT });
    mock.publish(0);
    expect(pop(tb, dq)).toEqual({
      head: 0,
      out: [
        [hva(0x30000), 10],
        [hva(0x32000), 20],
      ],
      in: [[hva(0x31000), 30]],
    });
  });

  it("walks a mixed chain: direct descriptors, then an indirect table", () => {
    const { tb, mock, dq, hva } = setup(8);
    mock.writeTable(0x20000, [
      { addr: 0x31000, len: 8, flags: NEXT, next: 1 },
      { addr: 0x32000, len: 96, flags: WRITE },
    ]);
    mock.setDesc(1, { addr: 0x30000, len: 51, flags: NEXT, next: 6 });
    mock.setDesc(6, { addr: 0x20000, len: 32, flags: INDIRECT });
    mock.publish(1);
    expect(pop(tb, dq)).toEqual({
      head: 1,
      out: [
        [hva(0x30000), 51],
        [hva(0x31000), 8],
      ],
      in: [[hva(0x32000), 96]],
    });
  });

  it("splits a buffer that straddles two guest RAM regions into two iovecs", () => {
    const { tb, mock, dq } = setup(8, [
      // Allocated in this order, gpa 1 MiB sits below gpa 0 in the shared memory.
      { gpa: 1 << 20, size: 1 << 20 },
      { gpa: 0, size: 1 << 20 },
    ]);
    const [r0, r1] = tb.mem.regions;
    expect(r1.hva).not.toBe(r0.hva + r0.size); // not contiguous in the shared memory
    mock.setDesc(0, { addr: (1 << 20) - 100, len: 300, flags: WRITE });
    mock.publish(0);
    expect(pop(tb, dq)).toEqual({
      head: 0,
      out: [],
      in: [
        [r0.hva + r0.size - 100, 100],
        [r1.hva, 200],
      ],
    });
  });

  it("reads an indirect table that straddles two regions, including a descriptor cut in half", () => {
    const { tb, mock, dq, hva } = setup(8, [
      // Allocated in this order, gpa 1 MiB sits below gpa 0 in the shared memory.
      { gpa: 1 << 20, size: 1 << 20 },
      { gpa: 0, size: 1 << 20 },
    ]);
    const table = (1 << 20) - 24; // entry 1 spans the boundary: 8 bytes below, 8 above
    const descs = [
      { addr: 0x1000, len: 1, flags: NEXT, next: 1 },
      { addr: 0x2000, len: 2, flags: NEXT, next: 2 },
      { addr: 0x3000, len: 3, flags: WRITE },
    ];
    const bytes = new Uint8Array(48);
    const dv = new DataView(bytes.buffer);
    descs.forEach((d, k) => {
      dv.setBigUint64(16 * k, BigInt(d.addr), true);
      dv.setUint32(16 * k + 8, d.len, true);
      dv.setUint16(16 * k + 12, d.flags, true);
      dv.setUint16(16 * k + 14, d.next ?? 0, true);
    });
    tb.mem.bytes(table, 24).set(bytes.subarray(0, 24));
    tb.mem.bytes(1 << 20, 24).set(bytes.subarray(24));
    mock.setDesc(2, { addr: table, len: 48, flags: INDIRECT });
    mock.publish(2);
    expect(pop(tb, dq)).toEqual({
      head: 2,
      out: [
        [hva(0x1000), 1],
        [hva(0x2000), 2],
      ],
      in: [[hva(0x3000), 3]],
    });
  });

  it("accepts zero-length descriptors without producing iovecs", () => {
    const { tb, mock, dq, hva } = setup(8);
    mock.setDesc(0, { addr: 0x1000, len: 0, flags: NEXT, next: 1 });
    mock.setDesc(1, { addr: 0x2000, len: 4, flags: WRITE | NEXT, next: 2 });
    mock.setDesc(2, { addr: 0x3000, len: 0, flags: WRITE });
    mock.publish(0);
    expect(pop(tb, dq)).toEqual({ head: 0, out: [], in: [[hva(0x2000), 4]] });
  });

  it("accepts a chain exactly as long as the queue", () => {
    const { tb, mock, dq } = setup(4);
    for (let i = 0; i < 4; i++) mock.setDesc(i, { addr: 0x1000 * (i + 1), len: 1, flags: i < 3 ? NEXT : 0, next: i + 1 });
    mock.publish(0);
    const c = pop(tb, dq);
    expect(typeof c === "object" && c.out.length).toBe(4);
  });

  it("pops entries in avail order and consumes each once", () => {
    const { tb, mock, dq } = setup(8);
    for (let i = 0; i < 8; i++) mock.setDesc(i, { addr: 0x1000 * (i + 1), len: 1, flags: 0 });
    mock.publish(4, 2, 7);
    const heads = [pop(tb, dq), pop(tb, dq), pop(tb, dq), pop(tb, dq)].map((c) => (typeof c === "object" ? c.head : c));
    expect(heads).toEqual([4, 2, 7, "empty"]);
    expect(dq.lastAvailIdx).toBe(3);
  });
});
