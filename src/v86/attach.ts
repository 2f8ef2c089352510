// Attaching a virtio-scsi or virtio-blk disk served by this data plane to a v86 emulator, on either platform
// (the entry points, index.ts for Node and browser.ts for a page, only differ in how they load
// v86). The guest's RAM is v86's, inside the one shared memory; the vhost workers run on v86's
// thread, so that after each of their passes v86's JIT learns what they wrote before the guest
// runs again (docs/v86.md explains why not in other threads).
import { VhostProcess } from "../vhost/process.js";
import { LocalWorker } from "../worker/local-worker.js";
import { VhostScsiDevice } from "../device/vhost-scsi-device.js";
import { VhostBlkDevice } from "../device/vhost-blk-device.js";
import type { VhostVirtioDevice } from "../device/vhost-virtio-device.js";
import type { VhostDevice } from "../vhost/vhost-device.js";
import type { BlkBackendOptions } from "../blk/backend.js";
import { openBackstore, type BackstoreConfig } from "#backstores";
import { GuestMemory } from "../guest/guest-memory.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import type { LunConfig, Tpg } from "../target/tpg.js";
import type { ScsiTarget } from "../target/target.js";
import { V86VirtioPci, type V86VirtioPciState } from "./virtio-pci.js";
import type { DeviceState } from "../device/device-state.js";
import type { V86Cpu, V86Emulator } from "./emulator.js";

/** v86's video memory hole: guest-physical [0xA0000, 0xC0000) is not RAM. */
const VGA_HOLE_START = 0xa0000;
const VGA_HOLE_END = 0xc0000;

export interface AttachOptions {
  /** LUNs 0..n-1 of TPG 1 (target 1 for the guest). */
  luns: LunConfig[];
  /** Request queues. Default 1. */
  queues?: number;
  /** Virtqueue size offered. Default 128. */
  queueSize?: number;
  /** Vhost workers (all on v86's thread). Default 1. */
  workers?: number;
  /** PCI device number (bdf = device << 3). Default 13. */
  pciDevice?: number;
  /** I/O port of the BAR until the firmware moves it. Default 0xb400. */
  ioBase?: number;
  /** The target's WWPN (default a generated one); a snapshot restores only onto the same. */
  wwpn?: string;
}

/**
 * An attached disk's part of a v86 snapshot: the transport's registers, the device state, and
 * the blocks of its RAM disks (file and NBD disks are shared storage). Structured-cloneable.
 */
export interface V86DiskSnapshot {
  pci: V86VirtioPciState;
  device: DeviceState;
  disks: { name: string; bytes: Uint8Array }[];
}

/** What a disk attached to v86 does for snapshots (with the emulator stopped). */
interface Snapshots {
  /**
   * Stops the device (requests in flight answered) and returns its part of a snapshot; take
   * v86's own (`emulator.save_state()`) after it, then resume() or discard the emulator.
   */
  snapshot(): Promise<V86DiskSnapshot>;
  /** Starts the device again after snapshot(). */
  resume(): Promise<void>;
  /**
   * Restores a snapshot into this disk, attached alike to a fresh emulator whose own state was
   * restored (`emulator.restore_state()`) first; the device starts where the snapshot was taken.
   */
  restore(s: V86DiskSnapshot): Promise<void>;
}

/** A virtio-scsi disk attached to a v86 emulator. */
export interface V86VirtioScsi extends Snapshots {
  proc: VhostProcess;
  target: ScsiTarget;
  /** TPG 1: add and remove LUNs here while the guest runs (hot-plug). */
  tpg: Tpg;
  device: VhostScsiDevice;
  pci: V86VirtioPci;
  mem: GuestMemory;
  /** Time the vhost workers spent serving requests so far, ms (on v86's thread). */
  deviceBusyMs(): number;
  /** Stops the device and releases it (the emulator itself is the caller's). */
  close(): Promise<void>;
}

/** A vhost process whose workers run on v86's thread, and guest RAM mapped as v86 lays it out, around the VGA hole. */
function v86Side(shm: SharedMemory, cpu: V86Cpu, pci: () => V86VirtioPci | undefined): { proc: VhostProcess; mem: GuestMemory; deviceBusyMs: () => number } {
  const workers: LocalWorker[] = [];
  const proc = new VhostProcess(shm, {
    createWorker: (id, s) => {
      const w = new LocalWorker(id, s, { afterPoll: () => pci()?.invalidateUsed() });
      workers.push(w);
      return w;
    },
  });
  const mem = new GuestMemory(shm);
  const ram = cpu.mem8;
  const base = ram.byteOffset;
  mem.addExternalRegion(0, base, VGA_HOLE_START);
  mem.addExternalRegion(VGA_HOLE_END, base + VGA_HOLE_END, ram.byteLength - VGA_HOLE_END);
  return { proc, mem, deviceBusyMs: () => workers.reduce((t, w) => t + w.busyMs, 0) };
}

/** What an attachment's close() does: the transport settles, the device model stops and goes, then `release`. */
function closer<D extends VhostDevice>(pci: V86VirtioPci, device: VhostVirtioDevice<D>, release: () => Promise<void>): () => Promise<void> {
  return async () => {
    await pci.settled();
    await device.setStatus(0);
    await device.unrealize();
    await release();
  };
}

/** Snapshots of a device model behind a v86 transport. */
function snapshots<D extends VhostDevice>(pci: V86VirtioPci, device: VhostVirtioDevice<D>): Snapshots {
  return {
    async snapshot() {
      const regs = await pci.saveState();
      await device.vmStop();
      return { pci: regs, device: device.save(), disks: device.ramDisks().map((d) => ({ name: d.name, bytes: d.bytes.slice() })) };
    },
    resume: () => device.vmContinue(),
    async restore(s) {
      // Everything is checked before anything changes: the RAM disks, then the device state.
      const here = new Map(device.ramDisks().map((d) => [d.name, d.bytes]));
      const targets = s.disks.map((d) => {
        const to = here.get(d.name);
        if (!to || to.length !== d.bytes.length) throw new RangeError(`the snapshot's RAM disk "${d.name}" has no like here`);
        return to;
      });
      device.load(s.device);
      s.disks.forEach((d, i) => targets[i].set(d.bytes));
      pci.loadState(s.pci);
      await device.vmContinue();
    },
  };
}

/** Realizes a device model and puts it on v86's PCI bus. */
async function plugIn<D extends VhostDevice>(
  cpu: V86Cpu,
  device: VhostVirtioDevice<D>,
  opts: { pciDevice?: number; ioBase?: number },
  defaults: { pciDevice: number; ioBase: number; classCode: [number, number] },
): Promise<V86VirtioPci> {
  await device.realize();
  return new V86VirtioPci(cpu, device, {
    pciId: (opts.pciDevice ?? defaults.pciDevice) << 3,
    ioBase: opts.ioBase ?? defaults.ioBase,
    classCode: defaults.classCode,
  });
}

/**
 * Attaches a virtio-scsi PCI function to a loaded (not yet running) v86 emulator: a vhost-scsi
 * process over the shared memory, a target with TPG 1 and the LUNs, the QEMU-side device model,
 * and the PCI transport. Guest RAM is mapped as v86 lays it out, around the VGA hole.
 */
export async function attachVirtioScsi(setup: { emulator: V86Emulator; shm: SharedMemory; cpu: V86Cpu }, opts: AttachOptions): Promise<V86VirtioScsi> {
  const { shm, cpu } = setup;
  let pci: V86VirtioPci | undefined;
  const { proc, mem, deviceBusyMs } = v86Side(shm, cpu, () => pci);
  const target = proc.targets.create(opts.wwpn);
  const tpg = target.addTpg(1);
  for (const [i, l] of opts.luns.entries()) await tpg.addLun(i, l);
  const device = new VhostScsiDevice(proc, mem, {
    wwpn: target.wwpn,
    numQueues: opts.queues ?? 1,
    queueSize: opts.queueSize ?? 128,
    workers: opts.workers,
    bootTpgt: 1,
  });
  pci = await plugIn(cpu, device, opts, { pciDevice: 13, ioBase: 0xb400, classCode: [0x00, 0x01] });
  const transport = pci;
  return {
    proc,
    target,
    tpg,
    device,
    pci: transport,
    mem,
    deviceBusyMs,
    ...snapshots(transport, device),
    close: closer(transport, device, () => proc.targets.remove(target.wwpn)),
  };
}

export interface AttachBlkOptions {
  /** The disk's backstore. */
  backstore: BackstoreConfig;
  /** How the disk presents itself (block size, read-only, serial, write cache). */
  disk?: BlkBackendOptions;
  /** Request queues. Default 1. */
  queues?: number;
  /** Virtqueue size offered. Default 256. */
  queueSize?: number;
  /** PCI device number (bdf = device << 3). Default 14. */
  pciDevice?: number;
  /** I/O port of the BAR until the firmware moves it. Default 0xb600. */
  ioBase?: number;
}

/** A virtio-blk disk attached to a v86 emulator. */
export interface V86VirtioBlk extends Snapshots {
  proc: VhostProcess;
  device: VhostBlkDevice;
  pci: V86VirtioPci;
  mem: GuestMemory;
  /** Time the vhost workers spent serving requests so far, ms (on v86's thread). */
  deviceBusyMs(): number;
  /** Stops the device and releases it, the backstore too (the emulator itself is the caller's). */
  close(): Promise<void>;
}

/**
 * Attaches a virtio-blk PCI function (class 0x0180, as QEMU's virtio-blk-pci) to a loaded (not
 * yet running) v86 emulator: a process with /dev/vhost-blk over the shared memory, the backstore
 * opened as its block backend, the QEMU-side device model, and the PCI transport.
 */
export async function attachVirtioBlk(setup: { emulator: V86Emulator; shm: SharedMemory; cpu: V86Cpu }, opts: AttachBlkOptions): Promise<V86VirtioBlk> {
  const { shm, cpu } = setup;
  let pci: V86VirtioPci | undefined;
  const { proc, mem, deviceBusyMs } = v86Side(shm, cpu, () => pci);
  const store = await openBackstore(opts.backstore, shm, opts.disk?.readOnly);
  const backend = proc.openBlockBackend(store, opts.disk);
  const device = new VhostBlkDevice(proc, mem, { backend, numQueues: opts.queues ?? 1, queueSize: opts.queueSize ?? 256 });
  pci = await plugIn(cpu, device, opts, { pciDevice: 14, ioBase: 0xb600, classCode: [0x80, 0x01] });
  const transport = pci;
  return {
    proc,
    device,
    pci: transport,
    mem,
    deviceBusyMs,
    ...snapshots(transport, device),
    close: closer(transport, device, () => proc.close(backend)),
  };
}
