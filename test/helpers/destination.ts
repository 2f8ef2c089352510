// Where a saved device is loaded or a migration arrives: the testbed's target (WWPN, TPG, LUNs)
// set up again in a fresh vhost process over a fresh shared memory, the guest's RAM laid out as
// the testbed's, and a realized vhost-scsi device that the driver has not touched.
import { SharedMemory } from "../../src/memory/shared-memory.js";
import { VhostProcess } from "../../src/vhost/process.js";
import { VhostScsiDevice } from "../../src/device/vhost-scsi-device.js";
import type { LunConfig } from "../../src/target/tpg.js";
import type { Testbed } from "../../src/testbed.js";

export interface DestinationOptions {
  deviceBytes: number;
  guestBytes: number;
  numQueues: number;
  /** Copy the guest's RAM now (a restore); a migration sends it page by page. */
  copy: boolean;
  maskFeatures?: bigint;
}

/** The testbed's configuration elsewhere; close() takes it down. */
export async function sameTargetElsewhere(src: Testbed, luns: LunConfig[], opts: DestinationOptions) {
  const shm = SharedMemory.create({ deviceBytes: opts.deviceBytes, guestBytes: opts.guestBytes });
  const proc = new VhostProcess(shm);
  const target = proc.targets.create(src.target.wwpn);
  const tpg = target.addTpg(src.tpg.tag);
  for (const [i, l] of luns.entries()) await tpg.addLun(i, l);
  const mem = src.mem.cloneTo(shm, opts.copy);
  const device = new VhostScsiDevice(proc, mem, { wwpn: target.wwpn, numQueues: opts.numQueues, bootTpgt: tpg.tag, maskFeatures: opts.maskFeatures });
  await device.realize();
  return {
    shm,
    tpg,
    mem,
    device,
    async close() {
      await device.setStatus(0);
      await device.unrealize();
      await proc.targets.remove(target.wwpn);
    },
  };
}
