// The v86 virtio-pci transport driven at its ports the way SeaBIOS's virtio-scsi driver does:
// port I/O cannot wait for the device model, and SeaBIOS resets the device and sets it up again
// at once, then polls the used ring for its first request without ever kicking again. Also: what
// the device writes for a request still in flight when the driver resets reaches v86's JIT
// invalidation. A fake v86 CPU (port handlers, PCI bus, guest RAM in the shared memory, a record
// of jit_dirty_cache calls) stands in for the emulator.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SharedMemory } from "../../src/memory/shared-memory.js";
import { attachVirtioScsi, type V86Cpu, type V86Emulator, type V86VirtioScsi } from "../../src/v86/index.js";
import { inquiry, read16, testUnitReady } from "../../src/guest/scsi-commands.js";
import type { LunConfig } from "../../src/target/tpg.js";
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK } from "../../src/virtio/transport.js";
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "../../src/virtio/ring.js";
import { gatedFile, until } from "../helpers/backstores.js";

const IO_BASE = 0xb400;
const RAM_BYTES = 2 << 20;
/** Where the fake firmware keeps its ring and request (above the VGA hole, as SeaBIOS's). */
const RING = 0x100000;
const REQ = 0x104000;
const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
const VIRTIO_CONFIG_S_DRIVER = 2;

type Handlers = [(() => number)?, (() => number)?, (() => number)?];
type WriteHandlers = [((v: number) => void)?, ((v: number) => void)?, ((v: number) => void)?];

/** The parts of a v86 CPU the transport uses, with guest RAM in the guest zone of shm. */
function fakeCpu(shm: SharedMemory) {
  const reads = new Map<number, Handlers>();
  const writes = new Map<number, WriteHandlers>();
  const irq = { raised: 0 };
  /** The guest-physical ranges handed to cpu.jit_dirty_cache. */
  const dirtied: [number, number][] = [];
  const mem8 = new Uint8Array(shm.buffer, shm.guest.alloc(RAM_BYTES, 4096), RAM_BYTES);
  const cpu = {
    mem8,
    io: {
      register_read: (port: number, _d: unknown, ...h: Handlers) => reads.set(port, h),
      register_write: (port: number, _d: unknown, ...h: WriteHandlers) => writes.set(port, h),
    },
    devices: { pci: { register_device: () => new Int32Array(64), raise_irq: () => irq.raised++, lower_irq: () => {} } },
    jit_dirty_cache: (start: number, end: number) => dirtied.push([start, end]),
  } as unknown as V86Cpu;
  const at = (size: 1 | 2 | 4) => (size === 1 ? 0 : size === 2 ? 1 : 2);
  return {
    cpu,
    irq,
    dirtied,
    portRead: (off: number, size: 1 | 2 | 4) => reads.get(IO_BASE + off)![at(size)]!(),
    portWrite: (off: number, size: 1 | 2 | 4, v: number) => writes.get(IO_BASE + off)![at(size)]!(v),
  };
}

const dir = mkdtempSync(join(tmpdir(), "vhost-scsi-v86-pci-"));
let disk: V86VirtioScsi | undefined;
afterEach(async () => {
  await disk?.close();
  disk = undefined;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function setup(lun: LunConfig = { backstore: "ram", size: 1 << 20 }) {
  const shm = SharedMemory.create({ deviceBytes: 8 << 20, guestBytes: RAM_BYTES + (1 << 20) });
  const f = fakeCpu(shm);
  disk = await attachVirtioScsi({ emulator: {} as V86Emulator, shm, cpu: f.cpu }, { luns: [lun] });
  const dv = new DataView(f.cpu.mem8.buffer, f.cpu.mem8.byteOffset, RAM_BYTES);
  const num = 128;
  const desc = RING;
  const avail = RING + 16 * num;
  const used = RING + 0x1000;
  let requests = 0;

  /** SeaBIOS's init_virtio_scsi: reset, features, request queue 2, DRIVER_OK; nothing waited for. */
  const initialise = () => {
    f.portWrite(0x14, 1, 0);
    f.portWrite(0x14, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    f.portWrite(0x00, 4, 1);
    expect(f.portRead(0x04, 4) & 1).toBe(1); // VIRTIO_F_VERSION_1
    f.portWrite(0x08, 4, 1);
    f.portWrite(0x0c, 4, 1);
    f.portWrite(0x08, 4, 0);
    f.portWrite(0x0c, 4, 0);
    f.portWrite(0x14, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    expect(f.portRead(0x14, 1) & VIRTIO_CONFIG_S_FEATURES_OK).toBeTruthy();
    f.cpu.mem8.fill(0, RING, REQ);
    f.portWrite(0x16, 2, 2);
    expect(f.portRead(0x18, 2)).toBe(num);
    f.portWrite(0x20, 4, desc);
    f.portWrite(0x24, 4, 0);
    f.portWrite(0x28, 4, avail);
    f.portWrite(0x2c, 4, 0);
    f.portWrite(0x30, 4, used);
    f.portWrite(0x34, 4, 0);
    f.portWrite(0x1c, 2, 1);
    f.portWrite(0x14, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    requests = 0;
  };

  /** A command to LUN 0 of target 1 (header, response, `dataIn` bytes in), published and kicked. */
  const send = (cdb: Uint8Array, dataIn: number) => {
    const hdr = new Uint8Array(51);
    hdr.set([1, 1, 0x40, 0]);
    hdr.set(cdb, 19);
    f.cpu.mem8.set(hdr, REQ);
    f.cpu.mem8.fill(0xee, REQ + 64, REQ + 64 + 108 + dataIn);
    const put = (i: number, addr: number, len: number, flags: number) => {
      dv.setBigUint64(desc + 16 * i, BigInt(addr), true);
      dv.setUint32(desc + 16 * i + 8, len, true);
      dv.setUint16(desc + 16 * i + 12, flags, true);
      dv.setUint16(desc + 16 * i + 14, i + 1, true);
    };
    put(0, REQ, 51, VRING_DESC_F_NEXT);
    put(1, REQ + 64, 108, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT);
    put(2, REQ + 64 + 108, dataIn, VRING_DESC_F_WRITE);
    dv.setUint16(avail + 4 + 2 * (requests % num), 0, true);
    dv.setUint16(avail + 2, ++requests, true);
    f.portWrite(0x40 + 2 * f.portRead(0x1e, 2), 2, 2); // the queue's notify address (queue_notify_off 2)
  };
  const inquire = () => send(inquiry(36), 36);

  /** Waits, as SeaBIOS polls, for the used ring to catch up; returns the response and the vendor. */
  const answer = async () => {
    await until(() => dv.getUint16(used + 2, true) === requests, 5000);
    return { response: f.cpu.mem8[REQ + 64 + 11], vendor: Buffer.from(f.cpu.mem8.subarray(REQ + 172 + 8, REQ + 172 + 15)).toString() };
  };
  return { f, initialise, send, inquire, answer, used: () => dv.getUint16(used + 2, true) };
}

describe("v86 virtio-pci transport", () => {
  it("serves a request posted right after a reset and set-up that did not wait for the device model (SeaBIOS)", async () => {
    const { f, initialise, inquire, answer } = await setup();
    initialise();
    inquire();
    expect(await answer()).toEqual({ response: 0, vendor: "LIO-ORG" });
    // The used-buffer notification reaches the guest as INTx, and reading the ISR takes it.
    await until(() => f.irq.raised > 0, 5000);
    expect(f.portRead(0x38, 1)).toBe(1);
    expect(f.portRead(0x38, 1)).toBe(0);
  });

  it("serves it again after a reset of the running device followed at once by a new set-up", async () => {
    const { initialise, inquire, answer } = await setup();
    initialise();
    inquire();
    await answer();
    initialise();
    inquire();
    expect(await answer()).toEqual({ response: 0, vendor: "LIO-ORG" });
    inquire();
    expect(await answer()).toEqual({ response: 0, vendor: "LIO-ORG" });
  });

  it("makes what the device writes for a request in flight across a reset visible to v86's JIT", async () => {
    const gate = gatedFile(join(dir, "lun0.img"), 1 << 20);
    const { f, initialise, send, answer, used } = await setup({ backstore: gate });
    initialise();
    send(testUnitReady(), 0); // takes the unit attention
    await answer();
    send(read16(0, 1), 512);
    await until(() => gate.held === 1, 5000);
    f.portWrite(0x14, 1, 0); // the driver resets the device with the READ in flight
    f.dirtied.length = 0;
    gate.open();
    await until(() => used() === 2, 5000);
    await disk!.pci.settled();
    expect(f.cpu.mem8.subarray(REQ + 172, REQ + 172 + 512).every((b) => b === 0)).toBe(true); // the file's zeroes, over 0xee
    // The data-in buffer and the response were invalidated before the guest could run again.
    const covered = (a: number, b: number) => f.dirtied.some(([s, e]) => s <= a && b <= e);
    expect(covered(REQ + 172, REQ + 172 + 512)).toBe(true);
    expect(covered(REQ + 64, REQ + 64 + 108)).toBe(true);
  });

  it("keeps the offered queue size when the driver writes one the device does not offer", async () => {
    const { f } = await setup();
    f.portWrite(0x16, 2, 2);
    for (const bad of [0, 256, 0xffff]) {
      f.portWrite(0x18, 2, bad);
      expect(f.portRead(0x18, 2)).toBe(128);
    }
    f.portWrite(0x18, 2, 64);
    expect(f.portRead(0x18, 2)).toBe(64);
  });
});
