import { afterEach, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { SharedMemory } from "../../src/memory/shared-memory.js";
import { GuestMemory } from "../../src/guest/guest-memory.js";
import { VhostProcess } from "../../src/vhost/process.js";
import { vhostRegionsOf } from "../../src/vhost/mem-table.js";
import * as U from "../../src/vhost/uapi.js";
import { VhostError } from "../../src/sys/errors.js";
import { GuestVirtqueue } from "../../src/guest/virtqueue.js";
import type { VhostScsi } from "../../src/vhost/vhost-scsi.js";
import { SCSI_MAX_NEXUS } from "../../src/target/target.js";

const fixture = JSON.parse(readFileSync(new URL("../fixtures/uapi.json", import.meta.url), "utf8")) as Record<string, number>;

async function errnoOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    if (e instanceof VhostError) return e.code;
    throw e;
  }
}

describe("uapi numbers and layouts match <linux/vhost.h> (test/fixtures/uapi.c)", () => {
  it.each(Object.entries(fixture).filter(([k]) => k.startsWith("VHOST_") && k !== "VHOST_SCSI_ABI_VERSION"))("%s", (name, value) => {
    expect((U as Record<string, unknown>)[name]).toBe(value);
  });
  it("struct sizes", () => {
    expect([
      U.SIZEOF_VHOST_MEMORY,
      U.SIZEOF_VHOST_MEMORY_REGION,
      U.SIZEOF_VHOST_VRING_STATE,
      U.SIZEOF_VHOST_VRING_ADDR,
      U.SIZEOF_VHOST_VRING_FILE,
      U.SIZEOF_VHOST_SCSI_TARGET,
      U.SIZEOF_VHOST_WORKER_STATE,
      U.SIZEOF_VHOST_VRING_WORKER,
    ]).toEqual(
      [
        "struct vhost_memory",
        "struct vhost_memory_region",
        "struct vhost_vring_state",
        "struct vhost_vring_addr",
        "struct vhost_vring_file",
        "struct vhost_scsi_target",
        "struct vhost_worker_state",
        "struct vhost_vring_worker",
      ].map((k) => fixture[k]),
    );
    expect(fixture["offsetof(vhost_scsi_target.vhost_tpgt)"]).toBe(228);
    expect(U.VHOST_SCSI_ABI_VERSION).toBe(fixture.VHOST_SCSI_ABI_VERSION);
  });
  it("round-trips the argument structs", () => {
    const a = { index: 3, flags: 1, desc_user_addr: 0x1000n, used_user_addr: 0x3000n, avail_user_addr: 0x2000n, log_guest_addr: 0x40n };
    expect(U.decodeVringAddr(U.encodeVringAddr(a))).toEqual(a);
    const t = { abi_version: 1, vhost_wwpn: "naa.5001405aabbccdde", vhost_tpgt: 1, reserved: 0 };
    expect(U.decodeScsiTarget(U.encodeScsiTarget(t))).toEqual(t);
    expect(U.decodeVringFile(U.encodeVringFile({ index: 2, fd: -1 }))).toEqual({ index: 2, fd: -1 });
  });
});

describe("vhost-scsi ioctls with kernel semantics", () => {
  let proc: VhostProcess;
  let mem: GuestMemory;
  let fd: number;
  const setup = async (owned = true) => {
    const shm = SharedMemory.create({ deviceBytes: 8 << 20, guestBytes: 8 << 20 });
    proc = new VhostProcess(shm, { workerThreads: false });
    mem = new GuestMemory(shm);
    mem.addRegion(0, 8 << 20);
    const t = proc.targets.create("naa.5001405aabbccdde");
    await t.addTpg(1).addLun(0, { backstore: "ram", size: 1 << 20 });
    fd = proc.open("/dev/vhost-scsi");
    if (owned) await proc.device(fd).SET_OWNER();
  };
  afterEach(async () => {
    await proc.close(fd).catch(() => {});
  });
  const ioctl = (req: number, arg?: Uint8Array) => proc.ioctl(fd, req, arg);
  const u64 = (v: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return b;
  };
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    return b;
  };
  const ring = (num = 8) => new GuestVirtqueue(mem, { num });
  const addrOf = (index: number, q: GuestVirtqueue) =>
    U.encodeVringAddr({
      index,
      flags: 0,
      desc_user_addr: BigInt(q.ring.desc),
      avail_user_addr: BigInt(q.ring.avail),
      used_user_addr: BigInt(q.ring.used),
      log_guest_addr: 0n,
    });
  const memTable = () => U.encodeMemory(vhostRegionsOf(mem.regions));
  const target = (wwpn = "naa.5001405aabbccdde") => U.encodeScsiTarget({ abi_version: 1, vhost_wwpn: wwpn, vhost_tpgt: 1 });

  it("open of anything but /dev/vhost-scsi is ENOENT; ioctl on a bad fd EBADF, on an eventfd ENOTTY", async () => {
    await setup();
    expect(() => proc.open("/dev/vhost-net")).toThrow(/ENOENT/);
    expect(await errnoOf(proc.ioctl(999, U.VHOST_SET_OWNER))).toBe("EBADF");
    expect(await errnoOf(proc.ioctl(proc.eventfd(), U.VHOST_SET_OWNER))).toBe("ENOTTY");
    expect(await errnoOf(ioctl(0xdeadbeef))).toBe("ENOTTY");
  });

  it("GET_FEATURES works before SET_OWNER; everything that needs an owner is EPERM", async () => {
    await setup(false);
    const f = new Uint8Array(8);
    await ioctl(U.VHOST_GET_FEATURES, f);
    expect(new DataView(f.buffer).getBigUint64(0, true)).toBe(U.VHOST_SCSI_FEATURES);
    const a = new Uint8Array(4);
    await ioctl(U.VHOST_SCSI_GET_ABI_VERSION, a);
    expect(new DataView(a.buffer).getInt32(0, true)).toBe(1);
    for (const [req, arg] of [
      [U.VHOST_SET_MEM_TABLE, memTable()],
      [U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 0, num: 8 })],
      [U.VHOST_SET_VRING_BASE, U.encodeVringState({ index: 0, num: 0 })],
      [U.VHOST_GET_VRING_BASE, U.encodeVringState({ index: 0, num: 0 })],
      [U.VHOST_SET_VRING_KICK, U.encodeVringFile({ index: 0, fd: -1 })],
      [U.VHOST_NEW_WORKER, new Uint8Array(4)],
      [U.VHOST_SCSI_SET_ENDPOINT, target()],
      [U.VHOST_RESET_OWNER, undefined],
    ] as const) {
      expect(await errnoOf(ioctl(req, arg as Uint8Array | undefined))).toBe("EPERM");
    }
  });

  it("SET_OWNER twice is EBUSY; RESET_OWNER gives the device back", async () => {
    await setup();
    expect(await errnoOf(ioctl(U.VHOST_SET_OWNER))).toBe("EBUSY");
    await ioctl(U.VHOST_RESET_OWNER);
    expect(await errnoOf(ioctl(U.VHOST_SET_OWNER))).toBe("ok");
  });

  it("SET_FEATURES refuses bits it does not offer (EOPNOTSUPP)", async () => {
    await setup();
    expect(await errnoOf(ioctl(U.VHOST_SET_FEATURES, u64(1n << 25n)))).toBe("EOPNOTSUPP");
    expect(await errnoOf(ioctl(U.VHOST_SET_FEATURES, u64(U.VHOST_SCSI_FEATURES)))).toBe("ok");
    expect(await errnoOf(ioctl(U.VHOST_SET_FEATURES, new Uint8Array(4)))).toBe("EFAULT");
  });

  it("SET_MEM_TABLE: E2BIG past 64 regions, EOPNOTSUPP for padding, EFAULT for ranges outside guest RAM", async () => {
    await setup();
    const many = U.encodeMemory(
      Array.from({ length: 65 }, (_, i) => ({ guest_phys_addr: BigInt(i) << 20n, memory_size: 4096n, userspace_addr: BigInt(mem.regions[0].hva) })),
    );
    expect(await errnoOf(ioctl(U.VHOST_SET_MEM_TABLE, many))).toBe("E2BIG");
    const padded = memTable();
    padded[4] = 1;
    expect(await errnoOf(ioctl(U.VHOST_SET_MEM_TABLE, padded))).toBe("EOPNOTSUPP");
    const outside = U.encodeMemory([{ guest_phys_addr: 0n, memory_size: 4096n, userspace_addr: 65536n }]);
    expect(await errnoOf(ioctl(U.VHOST_SET_MEM_TABLE, outside))).toBe("EFAULT");
    const truncated = memTable().subarray(0, 20);
    expect(await errnoOf(ioctl(U.VHOST_SET_MEM_TABLE, truncated))).toBe("EFAULT");
    expect(await errnoOf(ioctl(U.VHOST_SET_MEM_TABLE, memTable()))).toBe("ok");
    expect(await errnoOf(ioctl(U.VHOST_SET_LOG_BASE, u64(0x1000n)))).toBe("ok");
    const i32 = (v: number) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, v, true);
      return b;
    };
    expect(await errnoOf(ioctl(U.VHOST_SET_LOG_FD, i32(proc.eventfd())))).toBe("ok");
    expect(await errnoOf(ioctl(U.VHOST_SET_LOG_FD, i32(-1)))).toBe("ok");
    expect(await errnoOf(ioctl(U.VHOST_SET_LOG_FD, i32(4242)))).toBe("EBADF");
  });

  it("SET_VRING_NUM: EINVAL for 0, non-powers of two and sizes over 32768; ENOBUFS for a bad index", async () => {
    await setup();
    for (const num of [0, 3, 65536, 100]) {
      expect(await errnoOf(ioctl(U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 0, num })))).toBe("EINVAL");
    }
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 0, num: 32768 })))).toBe("ok");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 130, num: 8 })))).toBe("ENOBUFS");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_BASE, U.encodeVringState({ index: 0, num: 0x10000 })))).toBe("EINVAL");
  });

  it("SET_VRING_ADDR: EOPNOTSUPP for unknown flags, EINVAL misaligned, EFAULT outside the memory table", async () => {
    await setup();
    await ioctl(U.VHOST_SET_MEM_TABLE, memTable());
    await ioctl(U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 0, num: 8 }));
    const q = ring();
    const bad = (patch: Partial<U.VhostVringAddr>) => U.encodeVringAddr({ ...U.decodeVringAddr(addrOf(0, q)), ...patch });
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_ADDR, bad({ flags: 2 })))).toBe("EOPNOTSUPP");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_ADDR, bad({ avail_user_addr: BigInt(q.ring.avail + 1) })))).toBe("EINVAL");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_ADDR, bad({ used_user_addr: BigInt(q.ring.used + 2) })))).toBe("EINVAL");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_ADDR, bad({ desc_user_addr: BigInt(q.ring.desc + 8) })))).toBe("EINVAL");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_ADDR, bad({ desc_user_addr: 65536n })))).toBe("EFAULT");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_ADDR, addrOf(0, q)))).toBe("ok");
  });

  it("SET_VRING_KICK/CALL/ERR: EBADF for a closed fd, EINVAL for a non-eventfd, -1 unbinds", async () => {
    await setup();
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_KICK, U.encodeVringFile({ index: 0, fd: 77 })))).toBe("EBADF");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_CALL, U.encodeVringFile({ index: 0, fd })))).toBe("EINVAL");
    const e = proc.eventfd();
    for (const req of [U.VHOST_SET_VRING_KICK, U.VHOST_SET_VRING_CALL, U.VHOST_SET_VRING_ERR]) {
      expect(await errnoOf(ioctl(req, U.encodeVringFile({ index: 1, fd: e })))).toBe("ok");
      expect(await errnoOf(ioctl(req, U.encodeVringFile({ index: 1, fd: -1 })))).toBe("ok");
    }
  });

  it("busyloop timeout is kept per vring", async () => {
    await setup();
    await ioctl(U.VHOST_SET_VRING_BUSYLOOP_TIMEOUT, U.encodeVringState({ index: 2, num: 50 }));
    const s = U.encodeVringState({ index: 2, num: 0 });
    await ioctl(U.VHOST_GET_VRING_BUSYLOOP_TIMEOUT, s);
    expect(U.decodeVringState(s)).toEqual({ index: 2, num: 50 });
  });

  it("workers: NEW, ATTACH, GET, FREE with ENODEV and EBUSY", async () => {
    await setup();
    const st = new Uint8Array(4);
    await ioctl(U.VHOST_NEW_WORKER, st);
    const id = new DataView(st.buffer).getUint32(0, true);
    expect(id).toBe(1);
    await ioctl(U.VHOST_ATTACH_VRING_WORKER, U.encodeVringWorker({ index: 2, worker_id: id }));
    const g = U.encodeVringWorker({ index: 2, worker_id: 0 });
    await ioctl(U.VHOST_GET_VRING_WORKER, g);
    expect(U.decodeVringWorker(g)).toEqual({ index: 2, worker_id: 1 });
    expect(await errnoOf(ioctl(U.VHOST_ATTACH_VRING_WORKER, U.encodeVringWorker({ index: 2, worker_id: 9 })))).toBe("ENODEV");
    expect(await errnoOf(ioctl(U.VHOST_FREE_WORKER, u32(1)))).toBe("EBUSY");
    expect(await errnoOf(ioctl(U.VHOST_FREE_WORKER, u32(9)))).toBe("ENODEV");
    await ioctl(U.VHOST_ATTACH_VRING_WORKER, U.encodeVringWorker({ index: 2, worker_id: 0 }));
    expect(await errnoOf(ioctl(U.VHOST_FREE_WORKER, u32(1)))).toBe("ok");
  });

  it("SET_ENDPOINT: EEXIST for an unknown WWPN or a second time, EOPNOTSUPP for reserved, EFAULT for rings outside memory", async () => {
    await setup();
    await ioctl(U.VHOST_SET_MEM_TABLE, memTable());
    const q = ring();
    await ioctl(U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 2, num: 8 }));
    await ioctl(U.VHOST_SET_VRING_ADDR, addrOf(2, q));
    expect(await errnoOf(ioctl(U.VHOST_SCSI_SET_ENDPOINT, target("naa.5001405000000000")))).toBe("EEXIST");
    const reserved = target();
    reserved[230] = 1;
    expect(await errnoOf(ioctl(U.VHOST_SCSI_SET_ENDPOINT, reserved))).toBe("EOPNOTSUPP");
    // Shrink the memory table so the ring falls outside: SET_ENDPOINT checks access first.
    const [r] = mem.regions;
    await ioctl(U.VHOST_SET_MEM_TABLE, U.encodeMemory([{ guest_phys_addr: 1n << 30n, memory_size: 4096n, userspace_addr: BigInt(r.hva + r.size - 4096) }]));
    expect(await errnoOf(ioctl(U.VHOST_SCSI_SET_ENDPOINT, target()))).toBe("EFAULT");
    await ioctl(U.VHOST_SET_MEM_TABLE, memTable());
    expect(await errnoOf(ioctl(U.VHOST_SCSI_SET_ENDPOINT, target()))).toBe("ok");
    expect(await errnoOf(ioctl(U.VHOST_SCSI_SET_ENDPOINT, target()))).toBe("EEXIST");
  });

  it("while the endpoint is set, ring changes are EBUSY and the memory may not drop a ring (EFAULT)", async () => {
    await setup();
    await ioctl(U.VHOST_SET_MEM_TABLE, memTable());
    const q = ring();
    await ioctl(U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 2, num: 8 }));
    await ioctl(U.VHOST_SET_VRING_ADDR, addrOf(2, q));
    await ioctl(U.VHOST_SCSI_SET_ENDPOINT, target());
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 2, num: 16 })))).toBe("EBUSY");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_BASE, U.encodeVringState({ index: 2, num: 0 })))).toBe("EBUSY");
    // Moving a running ring is EBUSY; the same addresses with other logging flags are not (QEMU turns VHOST_VRING_F_LOG on so).
    const moved = addrOf(2, q);
    new DataView(moved.buffer).setBigUint64(8, new DataView(moved.buffer).getBigUint64(8, true) + 4096n, true);
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_ADDR, moved))).toBe("EBUSY");
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_ADDR, addrOf(2, q)))).toBe("ok");
    const [r] = mem.regions;
    const away = U.encodeMemory([{ guest_phys_addr: 1n << 30n, memory_size: 4096n, userspace_addr: BigInt(r.hva + r.size - 4096) }]);
    expect(await errnoOf(ioctl(U.VHOST_SET_MEM_TABLE, away))).toBe("EFAULT");
    // A mismatched WWPN cannot clear it; the right one can, and rings may change again.
    expect(await errnoOf(ioctl(U.VHOST_SCSI_CLEAR_ENDPOINT, target("naa.5001405000000000")))).toBe("EINVAL");
    await ioctl(U.VHOST_SCSI_CLEAR_ENDPOINT, target());
    expect(await errnoOf(ioctl(U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 2, num: 16 })))).toBe("ok");
    expect(await errnoOf(ioctl(U.VHOST_SCSI_CLEAR_ENDPOINT, target()))).toBe("ok"); // nothing set: fine
  });

  it("another device binds to the same endpoint as another initiator port (an I_T nexus of its own); as the same port, or past SCSI_MAX_NEXUS, EBUSY", async () => {
    await setup();
    await ioctl(U.VHOST_SCSI_SET_ENDPOINT, target());
    const first = proc.device(fd) as VhostScsi;
    const others: number[] = [];
    const another = async (initiator?: string) => {
      const f = proc.open("/dev/vhost-scsi");
      others.push(f);
      const d = proc.device(f) as VhostScsi;
      await d.SET_OWNER();
      if (initiator) d.setInitiator(initiator);
      return { f, d, result: await errnoOf(proc.ioctl(f, U.VHOST_SCSI_SET_ENDPOINT, target())) };
    };
    const second = await another();
    expect(second.result).toBe("ok");
    expect([first.nexus, second.d.nexus]).toEqual([0, 1]);
    expect((await another(first.initiator)).result).toBe("EBUSY");
    for (let i = 2; i < SCSI_MAX_NEXUS; i++) expect((await another()).result).toBe("ok");
    expect((await another()).result).toBe("EBUSY");
    expect(() => second.d.setInitiator("naa.5001405000000001")).toThrow(/EBUSY/);
    for (const f of others) await proc.close(f);
  });

  it("GET/SET_EVENTS_MISSED", async () => {
    await setup();
    await ioctl(U.VHOST_SCSI_SET_EVENTS_MISSED, u32(1));
    const b = new Uint8Array(4);
    await ioctl(U.VHOST_SCSI_GET_EVENTS_MISSED, b);
    expect(new DataView(b.buffer).getUint32(0, true)).toBe(1);
  });

  it("GET_VRING_BASE returns what SET_VRING_BASE set while stopped", async () => {
    await setup();
    await ioctl(U.VHOST_SET_VRING_BASE, U.encodeVringState({ index: 3, num: 1234 }));
    const s = U.encodeVringState({ index: 3, num: 0 });
    await ioctl(U.VHOST_GET_VRING_BASE, s);
    expect(U.decodeVringState(s).num).toBe(1234);
  });
});
