// A migration's destination in a worker thread of its own (test/migration/migration.test.ts): its
// own shared memory, vhost process, target with the same WWPN and LUNs, guest RAM laid out as the
// source's, and the device; it takes the migration's messages on `migration`, starts the device
// once the state is loaded, and then hands the guest its memory and serves its transport on
// `transport` (hostTransport).
import { parentPort, workerData } from "node:worker_threads";
import { GuestMemory, MigrationDestination, SharedMemory, VhostProcess, VhostScsiDevice } from "../../dist/src/index.js";
import { hostTransport } from "../../dist/src/transport.js";

const { wwpn, tag, luns, regions, deviceBytes, guestBytes, numQueues, migration, transport } = workerData;
const shm = SharedMemory.create({ deviceBytes, guestBytes });
const proc = new VhostProcess(shm);
const target = proc.targets.create(wwpn);
const tpg = target.addTpg(tag);
for (const [i, l] of luns.entries()) await tpg.addLun(i, l);
const mem = new GuestMemory(shm);
for (const r of regions) mem.addRegion(r.gpa, r.size);
const device = new VhostScsiDevice(proc, mem, { wwpn, numQueues, bootTpgt: tag });
await device.realize();
const dst = new MigrationDestination(mem, device);
migration.on("message", (m) => {
  try {
    dst.receive(m);
  } catch (e) {
    parentPort.postMessage({ error: e.message });
  }
});
const stats = await dst.finished;
await device.vmContinue();
parentPort.postMessage({
  memory: shm.memory,
  deviceEnd: shm.deviceEnd,
  regions: mem.regions.map((r) => ({ ...r })),
  transport: hostTransport(device, transport),
  stats,
});
parentPort.on("message", async (m) => {
  if (m !== "close") return;
  migration.close();
  await device.setStatus(0);
  await device.unrealize();
  await proc.targets.remove(wwpn);
  parentPort.postMessage("closed");
});
