import { SharedMemory } from "./memory/shared-memory.js";
import { GuestMemory } from "./guest/guest-memory.js";
import { VirtioScsiDriver, type VirtioScsiDriverOptions } from "./guest/scsi-driver.js";
import { VhostProcess, type VhostProcessOptions } from "./vhost/process.js";
import { VhostScsiDevice } from "./device/vhost-scsi-device.js";
import type { LunConfig, Tpg } from "./target/tpg.js";
import { inPlaceSize, openBackstore, type BackstoreConfig } from "#backstores";
import { VhostBlkDevice } from "./device/vhost-blk-device.js";
import { VirtioBlkDriver, type VirtioBlkDriverOptions } from "./guest/blk-driver.js";
import type { BlkBackendOptions } from "./blk/backend.js";
import type { ScsiTarget } from "./target/target.js";

export interface TestbedOptions {
  /** Request queues. Default 1. */
  queues?: number;
  /** LUNs 0..n-1 of TPG 1. Default one 16 MiB RAM disk. */
  luns?: LunConfig[];
  /** Virtqueue size. Default 128. */
  queueSize?: number;
  /** Guest RAM bytes. Default 64 MiB. */
  guestMemory?: number;
  /** Guest-zone bytes kept free for RAM plugged in at run time (GuestMemory.addRegion). Default 0. */
  hotplugMemory?: number;
  /** Extra device-heap bytes beyond the RAM disks. Default 16 MiB. */
  deviceMemory?: number;
  /** Vhost workers for the request queues (queue i on worker i % workers). Default 1. */
  workers?: number;
  /** TPG tag, which is the guest's target number. Default 1. */
  tpgTag?: number;
  /** Driver options (features, event buffers, queue size). */
  driver?: VirtioScsiDriverOptions;
  /** Features hidden from the guest. */
  maskFeatures?: bigint;
  /** How workers run (default: in worker threads). */
  process?: VhostProcessOptions;
}

/** Everything createTestbed wired, for tests and embedding. */
export interface Testbed {
  shm: SharedMemory;
  proc: VhostProcess;
  target: ScsiTarget;
  tpg: Tpg;
  mem: GuestMemory;
  device: VhostScsiDevice;
  driver: VirtioScsiDriver;
  close(): Promise<void>;
}

/**
 * Builds a guest and a vhost-scsi device the way a user would by hand: shared memory, a
 * process with /dev/vhost-scsi, a target with one TPG and the LUNs, guest RAM, the QEMU-side
 * device realized over the vhost fd, and the guest driver probing it. If any step fails, what
 * the steps before made is taken down again (threads, connections, and the backstores of the
 * LUNs, those given opened included) and the error is thrown.
 */
export async function createTestbed(opts: TestbedOptions = {}): Promise<Testbed> {
  const luns = opts.luns ?? [{ backstore: "ram", size: 16 << 20 }];
  let lunsAdded = 0;
  let proc: VhostProcess | undefined;
  let target: ScsiTarget | undefined;
  let device: VhostScsiDevice | undefined;
  try {
    // The RAM disks' sizes are checked before the memory that holds them is made.
    const ramBytes = luns.reduce((s, l) => s + (l.backstore === "ram" ? inPlaceSize("ram", l) + 4096 : 0), 0);
    const guestBytes = opts.guestMemory ?? 64 << 20;
    const shm = SharedMemory.create({ deviceBytes: ramBytes + (opts.deviceMemory ?? 16 << 20), guestBytes: guestBytes + (opts.hotplugMemory ?? 0) });
    proc = new VhostProcess(shm, opts.process);
    target = proc.targets.create();
    const tag = opts.tpgTag ?? 1;
    const tpg = target.addTpg(tag);
    for (const [i, l] of luns.entries()) {
      lunsAdded = i + 1; // addLun closes what it was given when it fails
      await tpg.addLun(i, l);
    }
    const mem = new GuestMemory(shm);
    mem.addRegion(0, guestBytes);
    device = new VhostScsiDevice(proc, mem, {
      wwpn: target.wwpn,
      numQueues: opts.queues ?? 1,
      queueSize: opts.queueSize ?? 128,
      workers: opts.workers,
      maskFeatures: opts.maskFeatures,
      bootTpgt: tag,
    });
    await device.realize();
    const driver = await VirtioScsiDriver.probe(mem, device, { target: tag, ...opts.driver });
    return testbed(shm, proc, target, tpg, mem, device, driver);
  } catch (e) {
    await device?.setStatus(0).catch(() => {});
    await device?.unrealize().catch(() => {});
    if (proc && target) await proc.targets.remove(target.wwpn).catch(() => {});
    for (const l of luns.slice(lunsAdded)) if (typeof l.backstore !== "string") await Promise.resolve(l.backstore.close()).catch(() => {});
    throw e;
  }
}

/** The driver's reset, then the device taken out of the VM (QEMU's device_del). */
async function unplug(device: VhostScsiDevice): Promise<void> {
  await device.setStatus(0);
  await device.unrealize();
}

function testbed(
  shm: SharedMemory,
  proc: VhostProcess,
  target: ScsiTarget,
  tpg: Tpg,
  mem: GuestMemory,
  device: VhostScsiDevice,
  driver: VirtioScsiDriver,
): Testbed {
  return {
    shm,
    proc,
    target,
    tpg,
    mem,
    device,
    driver,
    async close() {
      await unplug(device);
      await proc.targets.remove(target.wwpn);
    },
  };
}

/** Another guest with its own vhost-scsi device on a testbed's target: a second I_T nexus to the same LUNs. */
export interface Initiator {
  mem: GuestMemory;
  device: VhostScsiDevice;
  driver: VirtioScsiDriver;
  /** Takes the device down and gives its RAM back (before the testbed's close). */
  close(): Promise<void>;
}

/**
 * Adds a guest to the testbed's process with its own RAM (in the same shared memory), its own
 * vhost-scsi device bound to the same target as initiator `initiator` (generated unless given),
 * and its driver: two VMs sharing the target's LUNs.
 */
export async function addInitiator(bed: Testbed, opts: { initiator?: string; queues?: number; guestMemory?: number } = {}): Promise<Initiator> {
  const mem = new GuestMemory(bed.shm);
  mem.addRegion(0, opts.guestMemory ?? 16 << 20);
  const device = new VhostScsiDevice(bed.proc, mem, { wwpn: bed.target.wwpn, numQueues: opts.queues ?? 1, bootTpgt: bed.tpg.tag, initiator: opts.initiator });
  try {
    await device.realize();
    const driver = await VirtioScsiDriver.probe(mem, device, { target: bed.tpg.tag });
    return {
      mem,
      device,
      driver,
      async close() {
        await unplug(device);
        await mem.removeRegion(0);
      },
    };
  } catch (e) {
    const cause = device.lastError;
    await device.unrealize().catch(() => {});
    await mem.removeRegion(0);
    throw cause ? new Error(`${(e as Error).message}: ${cause.message}`, { cause }) : e;
  }
}

export interface BlkTestbedOptions {
  /** The disk. Default a 16 MiB RAM backstore. */
  backstore?: BackstoreConfig;
  /** How the disk presents itself (block size, read-only, serial, write cache). */
  disk?: BlkBackendOptions;
  /** Request queues. Default 1. */
  queues?: number;
  /** Virtqueue size. Default 256 (QEMU's virtio-blk default). */
  queueSize?: number;
  /** Guest RAM bytes. Default 64 MiB. */
  guestMemory?: number;
  /** Extra device-heap bytes beyond a RAM disk. Default 16 MiB. */
  deviceMemory?: number;
  /** Vhost workers for the request queues. Default 1. */
  workers?: number;
  /** Driver options (features, queue size). */
  driver?: VirtioBlkDriverOptions;
  /** Features hidden from the guest. */
  maskFeatures?: bigint;
  /** How workers run (default: in worker threads). */
  process?: VhostProcessOptions;
}

/** Everything createBlkTestbed wired. */
export interface BlkTestbed {
  shm: SharedMemory;
  proc: VhostProcess;
  /** The block backend's fd in proc. */
  backend: number;
  mem: GuestMemory;
  device: VhostBlkDevice;
  driver: VirtioBlkDriver;
  close(): Promise<void>;
}

/**
 * As createTestbed, for a virtio-blk disk: shared memory, a process with /dev/vhost-blk, the
 * backstore opened as a block backend, guest RAM, the QEMU-side device realized over the vhost
 * fd and the guest driver probing it. A failed step takes down what the steps before made.
 */
export async function createBlkTestbed(opts: BlkTestbedOptions = {}): Promise<BlkTestbed> {
  const cfg = opts.backstore ?? { backstore: "ram", size: 16 << 20 };
  const ramBytes = cfg.backstore === "ram" ? inPlaceSize("ram", cfg) + 4096 : 0;
  const guestBytes = opts.guestMemory ?? 64 << 20;
  const shm = SharedMemory.create({ deviceBytes: ramBytes + (opts.deviceMemory ?? 16 << 20), guestBytes });
  const proc = new VhostProcess(shm, opts.process);
  let backend = -1;
  let device: VhostBlkDevice | undefined;
  try {
    const store = await openBackstore(cfg, shm, opts.disk?.readOnly);
    try {
      backend = proc.openBlockBackend(store, opts.disk);
    } catch (e) {
      await store.close();
      throw e;
    }
    const mem = new GuestMemory(shm);
    mem.addRegion(0, guestBytes);
    device = new VhostBlkDevice(proc, mem, {
      backend,
      numQueues: opts.queues ?? 1,
      queueSize: opts.queueSize,
      workers: opts.workers,
      maskFeatures: opts.maskFeatures,
    });
    await device.realize();
    const driver = await VirtioBlkDriver.probe(mem, device, opts.driver);
    const d = device;
    return {
      shm,
      proc,
      backend,
      mem,
      device: d,
      driver,
      async close() {
        await d.setStatus(0);
        await d.unrealize();
        await proc.close(backend);
      },
    };
  } catch (e) {
    await device?.setStatus(0).catch(() => {});
    await device?.unrealize().catch(() => {});
    if (backend >= 0) await proc.close(backend).catch(() => {});
    throw e;
  }
}
