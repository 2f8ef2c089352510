import { describe, expect, it } from "vitest";
import { RingTestbed } from "../../src/testing/ring-testbed.js";
import { VQ_FEAT_EVENT_IDX, VQ_FEAT_NOTIFY_ON_EMPTY } from "../../src/virtio/device-queue.js";
import { GuestVirtqueue } from "../../src/guest/virtqueue.js";
import { DRAIN_ERROR, DRAIN_MORE, DRAIN_SIGNAL, DRAIN_USED } from "../../src/wasm/dataplane.js";
import { VRING_USED_F_NO_NOTIFY } from "../../src/virtio/ring.js";

function pair(num: number, eventIdx: boolean, extraFeatures = 0) {
  const tb = new RingTestbed();
  const guest = new GuestVirtqueue<number>(tb.mem, { num, eventIdx });
  const device = tb.deviceQueue(guest, (eventIdx ? VQ_FEAT_EVENT_IDX : 0) | extraFeatures);
  const buf = tb.mem.alloc(4096 * num);
  const add = (token: number) => guest.add([{ addr: buf + 4096 * (token % num), len: 8 }], [{ addr: buf + 4096 * (token % num) + 64, len: 8 }], token);
  const drain = (weight = 256) => tb.dp.echo_drain(device.ptr, weight) >>> 0;
  return { tb, guest, device, add, drain };
}

describe("notification suppression without event-idx (VIRTIO 1.2, 2.7.10)", () => {
  it("kicks when the device has not set VRING_USED_F_NO_NOTIFY, and not while it has", () => {
    const { guest, add, tb, device } = pair(8, false);
    add(0);
    expect(guest.kick()).toBe(true);
    tb.dp.vq_notify_disable(device.ptr); // the device is draining
    expect(guest.ring.usedFlags & VRING_USED_F_NO_NOTIFY).toBe(VRING_USED_F_NO_NOTIFY);
    add(1);
    expect(guest.kick()).toBe(false);
  });

  it("a drain leaves notifications enabled once the ring is empty", () => {
    const { guest, add, drain } = pair(8, false);
    add(0);
    add(1);
    guest.kick();
    expect(drain()).toBe(DRAIN_USED | DRAIN_SIGNAL);
    expect(guest.ring.usedFlags).toBe(0);
    expect([guest.getUsed(), guest.getUsed(), guest.getUsed()]).toEqual([{ token: 0, len: 8 }, { token: 1, len: 8 }, undefined]);
  });

  it("does not interrupt a driver that set VRING_AVAIL_F_NO_INTERRUPT, and does once it clears it", () => {
    const { guest, add, drain } = pair(8, false);
    guest.disableCb();
    add(0);
    guest.kick();
    expect(drain()).toBe(DRAIN_USED);
    expect(guest.enableCb()).toBe(false); // a used buffer is already waiting
    guest.getUsed();
    add(1);
    guest.kick();
    expect(drain()).toBe(DRAIN_USED | DRAIN_SIGNAL);
  });

  it("with VIRTIO_F_NOTIFY_ON_EMPTY interrupts when the ring runs empty despite NO_INTERRUPT", () => {
    const { guest, add, drain } = pair(8, false, VQ_FEAT_NOTIFY_ON_EMPTY);
    guest.disableCb();
    add(0);
    guest.kick();
    expect(drain()).toBe(DRAIN_USED | DRAIN_SIGNAL);
  });

  it("interrupts once per batch: 40 completions, one drain, one signal (as the kernel's vhost)", () => {
    const { guest, add, drain, device } = pair(128, false);
    for (let i = 0; i < 40; i++) add(i);
    guest.kick();
    expect(drain()).toBe(DRAIN_USED | DRAIN_SIGNAL);
    expect(device.stats).toEqual({ popped: 40, completed: 40, signals: 1 });
    expect(guest.ring.usedIdx).toBe(40);
  });

  it("an empty drain publishes nothing and signals nothing", () => {
    const { drain, device } = pair(8, false);
    expect(drain()).toBe(0);
    expect(device.stats).toEqual({ popped: 0, completed: 0, signals: 0 });
  });
});

describe("VIRTIO_RING_F_EVENT_IDX (VIRTIO 1.2, 2.7.10)", () => {
  it("the first flush always signals; later ones only when used->idx passes used_event", () => {
    const { guest, add, drain, device } = pair(16, true);
    add(0);
    guest.kick();
    expect(drain() & DRAIN_SIGNAL).toBe(DRAIN_SIGNAL);
    // The driver does not reap: used_event stays 0, so used idx 1 -> 2 does not cross it.
    add(1);
    guest.kick();
    expect(drain()).toBe(DRAIN_USED);
    // Reaping writes used_event = last used index (2): the next entry crosses it.
    guest.getUsed();
    guest.getUsed();
    add(2);
    guest.kick();
    expect(drain()).toBe(DRAIN_USED | DRAIN_SIGNAL);
    expect(device.stats.signals).toBe(2);
  });

  it("a driver asking for an interrupt far ahead gets one only when that many are used", () => {
    const { guest, add, drain } = pair(16, true);
    add(0);
    guest.kick();
    drain();
    guest.getUsed(); // used_event = 1
    guest.ring.usedEvent = 4; // interrupt me once entry 4 is used
    const signals: number[] = [];
    for (let i = 1; i <= 6; i++) {
      add(i);
      guest.kick();
      signals.push(drain() & DRAIN_SIGNAL);
    }
    // used idx after each drain: 2,3,4,5,6,7; crossing 4 happens at idx 5 (entry 4 used).
    expect(signals).toEqual([0, 0, 0, DRAIN_SIGNAL, 0, 0]);
  });

  it("the device sets avail_event when it goes idle; the driver kicks only when passing it", () => {
    const { guest, add, drain } = pair(16, true);
    add(0);
    expect(guest.kick()).toBe(true); // avail_event 0, idx 0 -> 1 crosses it
    drain();
    expect(guest.ring.availEvent).toBe(1);
    add(1);
    expect(guest.kick()).toBe(true);
    add(2);
    expect(guest.kick()).toBe(false); // device has not caught up: avail_event still 1
    drain();
    expect(guest.ring.availEvent).toBe(3);
    add(3);
    expect(guest.kick()).toBe(true);
  });

  it("signals when used->idx passes used_event, not per request: 40 completions, one interrupt", () => {
    const { guest, add, drain, device } = pair(128, true);
    for (let i = 0; i < 40; i++) add(i);
    guest.kick();
    // The first publication always signals: it comes after the first 8, and the drain stops
    // there so that the interrupt goes out at once; the driver has not reaped since.
    expect(drain()).toBe(DRAIN_USED | DRAIN_SIGNAL | DRAIN_MORE);
    expect(guest.ring.usedIdx).toBe(8);
    expect(drain()).toBe(DRAIN_USED);
    expect(device.stats).toEqual({ popped: 40, completed: 40, signals: 1 });
    expect(guest.ring.usedIdx).toBe(40);
  });

  it("a driver waiting for an interrupt gets it after the first 8 completions, not after the whole batch", () => {
    const { guest, add, drain, device } = pair(128, true);
    add(0);
    guest.kick();
    drain();
    guest.getUsed(); // used_event = 1: interrupt me at the next completion
    for (let i = 1; i <= 40; i++) add(i);
    guest.kick();
    expect(drain()).toBe(DRAIN_USED | DRAIN_SIGNAL | DRAIN_MORE);
    expect(guest.ring.usedIdx).toBe(9);
    // A driver that polls (used_event left behind) is not interrupted, and the drain runs on.
    expect(drain()).toBe(DRAIN_USED);
    expect(guest.ring.usedIdx).toBe(41);
    expect(device.stats.signals).toBe(2);
  });
});

describe("batching and indices", () => {
  it("stops after `weight` requests with DRAIN_MORE and resumes where it stopped", () => {
    const { guest, add, drain } = pair(32, false);
    for (let i = 0; i < 10; i++) add(i);
    guest.kick();
    expect(drain(4)).toBe(DRAIN_USED | DRAIN_SIGNAL | DRAIN_MORE);
    expect(guest.ring.usedIdx).toBe(4);
    // Notifications stay off while the device still has work.
    expect(guest.ring.usedFlags & VRING_USED_F_NO_NOTIFY).toBe(VRING_USED_F_NO_NOTIFY);
    expect(drain(4) & DRAIN_MORE).toBe(DRAIN_MORE);
    expect(drain(4) & DRAIN_MORE).toBe(0);
    expect(guest.ring.usedIdx).toBe(10);
    const tokens = [];
    for (let u = guest.getUsed(); u; u = guest.getUsed()) tokens.push(u.token);
    expect(tokens).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it.each([false, true])("wraps avail and used indices past 65535 (event idx %s)", (eventIdx) => {
    const { guest, device, add, drain } = pair(8, eventIdx);
    guest.setBase(65530);
    device.setBase(65530);
    const seen: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 4; i++) add(round * 4 + i);
      guest.kick();
      expect(drain() & DRAIN_ERROR).toBe(0);
      for (let u = guest.getUsed(); u; u = guest.getUsed()) seen.push(u.token);
    }
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(device.lastAvailIdx).toBe((65530 + 20) & 0xffff);
    expect(guest.ring.usedIdx).toBe(14);
  });

  it.each([1, 2, 32768])("serves a queue of size %i through several wraps of the ring", (num) => {
    const tb = new RingTestbed({ regions: [{ gpa: 0, size: 16 << 20 }] });
    const guest = new GuestVirtqueue<number>(tb.mem, { num, eventIdx: true });
    const device = tb.deviceQueue(guest, VQ_FEAT_EVENT_IDX);
    const buf = tb.mem.alloc(64);
    const total = Math.max(3 * num, 10);
    let done = 0;
    for (let sent = 0; sent < total; ) {
      while (sent < total && guest.canAdd(1)) guest.add([], [{ addr: buf, len: 8 }], sent++);
      guest.kick();
      let flags: number;
      do {
        flags = tb.dp.echo_drain(device.ptr, 1 << 16);
        expect(flags & DRAIN_ERROR).toBe(0);
      } while (flags & DRAIN_MORE);
      for (let u = guest.getUsed(); u; u = guest.getUsed()) expect(u.token).toBe(done++);
    }
    expect(done).toBe(total);
    expect(device.lastAvailIdx).toBe(total & 0xffff);
  });

  it("an error mid-drain publishes what was completed before it and reports DRAIN_ERROR", () => {
    const { guest, add, drain, tb, device } = pair(8, false);
    add(0);
    add(1);
    guest.kick();
    // Corrupt the second chain's head descriptor to point outside guest RAM.
    const head1 = guest.ring.availRing(1);
    const d = guest.ring;
    d.setDesc(head1, 0, 0x100, 8, 0, 0); // 1 TiB: unmapped
    const flags = drain();
    expect(flags & (DRAIN_ERROR | DRAIN_USED)).toBe(DRAIN_ERROR | DRAIN_USED);
    expect(guest.ring.usedIdx).toBe(1);
    expect(device.error?.name).toBe("AddressNotMapped");
    expect(device.lastAvailIdx).toBe(1);
    void tb;
  });
});
