import { SharedMemory } from "../memory/shared-memory.js";
import { GuestMemory } from "../guest/guest-memory.js";
import { GuestVirtqueue } from "../guest/virtqueue.js";
import type { MockSplitQueue } from "./mock-queue.js";
import { VhostMemTable, vhostRegionsOf } from "../vhost/mem-table.js";
import { DeviceQueue, VQ_FEAT_EVENT_IDX } from "../virtio/device-queue.js";
import { createDataplane, dataplaneTestModule, type DataplaneTestExports } from "../wasm/dataplane.js";

export interface RingTestbedOptions {
  /** Guest RAM regions (gpa, size); default one 8 MiB region at 0. */
  regions?: { gpa: number; size: number }[];
  /** Device heap bytes (default 1 MiB). */
  deviceBytes?: number;
}

/**
 * One shared memory with guest RAM, a data plane instance and a memory table covering the
 * guest's RAM: enough to put a guest-side queue and a device-side queue on the same ring.
 * The ring tests and the ring micro-benchmark use it; createTestbed() builds the whole device.
 */
export class RingTestbed {
  readonly shm: SharedMemory;
  readonly mem: GuestMemory;
  /** The test build of the data plane: production exports plus the test devices. */
  readonly dp: DataplaneTestExports;
  readonly memtable: VhostMemTable;

  constructor(opts: RingTestbedOptions = {}) {
    const regions = opts.regions ?? [{ gpa: 0, size: 8 << 20 }];
    this.shm = SharedMemory.create({
      deviceBytes: opts.deviceBytes ?? 1 << 20,
      guestBytes: regions.reduce((s, r) => s + r.size, 0),
    });
    this.dp = createDataplane<DataplaneTestExports>(this.shm, dataplaneTestModule()).dp;
    this.mem = new GuestMemory(this.shm);
    for (const r of regions) this.mem.addRegion(r.gpa, r.size);
    this.memtable = new VhostMemTable(this.shm, this.dp);
    this.memtable.set(vhostRegionsOf(this.mem.regions));
  }

  /** A device queue over the rings of a guest-side queue (real driver or mock). */
  deviceQueue(q: GuestVirtqueue | MockSplitQueue, features = 0): DeviceQueue {
    const dq = new DeviceQueue(this.shm, this.dp);
    const { num, desc, avail, used } = q.ring;
    dq.setup({ num, desc, avail, used }, features, this.memtable.address);
    return dq;
  }

  /** A guest driver queue and the device queue over it. */
  queuePair<T = unknown>(num: number, eventIdx = false): { guest: GuestVirtqueue<T>; device: DeviceQueue } {
    const guest = new GuestVirtqueue<T>(this.mem, { num, eventIdx });
    return { guest, device: this.deviceQueue(guest, eventIdx ? VQ_FEAT_EVENT_IDX : 0) };
  }
}
