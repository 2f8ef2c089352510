import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { RingTestbed } from "../../src/testing/ring-testbed.js";
import { VQ_FEAT_EVENT_IDX } from "../../src/virtio/device-queue.js";
import { GuestVirtqueue, type GuestBuffer } from "../../src/guest/virtqueue.js";
import { DRAIN_ERROR, DRAIN_MORE } from "../../src/wasm/dataplane.js";

const MiB = 1 << 20;

const request = fc.record({
  outs: fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 4 }),
  ins: fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 0, maxLength: 4 }),
  indirect: fc.boolean(),
  seed: fc.integer({ min: 0, max: 255 }),
  jitter: fc.integer({ min: 0, max: 4095 }),
});

interface Pending {
  out: GuestBuffer[];
  in: GuestBuffer[];
}

describe("random valid chains round-trip exactly through the echo device", () => {
  // Two RAM regions adjacent in guest-physical space but not in the shared memory, so that
  // buffers placed around the 1 MiB boundary are split into two iovecs by the device.
  const tb = new RingTestbed({
    regions: [
      { gpa: MiB, size: MiB },
      { gpa: 0, size: MiB },
    ],
  });

  it("every chain comes back once, in order of completion, with the echoed bytes", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(2, 4, 8, 32, 256),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffff }),
        fc.array(request, { minLength: 1, maxLength: 24 }),
        fc.integer({ min: 1, max: 8 }),
        (num, eventIdx, base, reqs, weight) => {
          const guest = new GuestVirtqueue<number>(tb.mem, { num, eventIdx });
          const device = tb.deviceQueue(guest, eventIdx ? VQ_FEAT_EVENT_IDX : 0);
          guest.setBase(base);
          device.setBase(base);
          const pending = new Map<number, Pending>();
          const done: number[] = [];
          const arena = MiB - 20_000;
          const reap = () => {
            for (let u = guest.getUsed(); u; u = guest.getUsed()) {
              const p = pending.get(u.token)!;
              pending.delete(u.token);
              const outBytes = concat(p.out);
              const inBytes = concat(p.in);
              expect(u.len).toBe(Math.min(outBytes.length, inBytes.length));
              expect(Buffer.from(inBytes.subarray(0, u.len)).equals(Buffer.from(outBytes.subarray(0, u.len)))).toBe(true);
              done.push(u.token);
            }
          };
          const concat = (bufs: GuestBuffer[]) => Buffer.concat(bufs.map((b) => Buffer.from(read(b))));
          const read = (b: GuestBuffer) => {
            const out = new Uint8Array(b.len);
            for (let k = 0; k < b.len; k++) out[k] = tb.shm.bytes[tb.mem.hva(b.addr + k)];
            return out;
          };
          const run = () => {
            guest.kick();
            for (;;) {
              const f = tb.dp.echo_drain(device.ptr, weight) >>> 0;
              expect(f & DRAIN_ERROR).toBe(0);
              if (!(f & DRAIN_MORE)) break;
            }
            reap();
          };
          reqs.forEach((r, k) => {
            let at = arena + k * 30_000 + r.jitter;
            const place = (len: number): GuestBuffer => {
              const b = { addr: at, len };
              at += len;
              return b;
            };
            const out = r.outs.map(place);
            const inb = r.ins.map(place);
            out.forEach((b, j) => {
              for (let x = 0; x < b.len; x++) tb.shm.bytes[tb.mem.hva(b.addr + x)] = (r.seed + 7 * j + x) & 0xff;
            });
            inb.forEach((b) => {
              for (let x = 0; x < b.len; x++) tb.shm.bytes[tb.mem.hva(b.addr + x)] = 0xee;
            });
            const indirect = r.indirect || r.outs.length + r.ins.length > num;
            if (!guest.canAdd(r.outs.length + r.ins.length, indirect)) run();
            pending.set(k, { out, in: inb });
            guest.add(out, inb, k, indirect);
            if (k % 3 === 2) run();
          });
          run();
          expect(done.sort((a, b) => a - b)).toEqual(reqs.map((_, k) => k));
          expect(pending.size).toBe(0);
          expect(guest.numFree).toBe(num);
          expect(device.error).toBeUndefined();
          expect(device.lastAvailIdx).toBe((base + reqs.length) & 0xffff);
          device.dispose();
          guest.dispose();
        },
      ),
      { numRuns: 150 },
    );
  });
});
