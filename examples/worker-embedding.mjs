// Embedding in worker threads: the vhost-scsi device and its vhost workers (each a worker
// thread) live here; the guest driver runs in another worker thread (guest-worker.mjs) and
// reaches the device only through shared memory, the kick and call eventfds, and a port
// carrying its register writes. Run: npm run build && node examples/worker-embedding.mjs
import { Worker, MessageChannel } from "node:worker_threads";
import { SharedMemory, VhostProcess, GuestMemory, VhostScsiDevice } from "vhost-scsi-wasm";
import { hostTransport } from "vhost-scsi-wasm/transport";

const shm = SharedMemory.create({ deviceBytes: 80 << 20, guestBytes: 32 << 20 });
const proc = new VhostProcess(shm); // vhost workers in worker threads
const target = proc.targets.create();
await target.addTpg(1).addLun(0, { backstore: "ram", size: 64 << 20 });
const mem = new GuestMemory(shm);
mem.addRegion(0, 32 << 20);
const device = new VhostScsiDevice(proc, mem, { wwpn: target.wwpn, numQueues: 2, workers: 2, bootTpgt: 1 });
await device.realize();

const { port1, port2 } = new MessageChannel();
const transport = hostTransport(device, port1);
const guest = new Worker(new URL("./guest-worker.mjs", import.meta.url), {
  workerData: { memory: shm.memory, deviceEnd: shm.deviceEnd, regions: mem.regions, transport, port: port2 },
  transferList: [port2],
});
const result = await new Promise((resolve, reject) => {
  guest.once("message", resolve);
  guest.once("error", reject);
});
console.log(`guest thread: ${result.requests} requests on ${result.queues} queues, ${result.mismatches} mismatches`);
console.log(`device: queue 2 served ${device.vhost.vringStatus(2).stats.completed}, queue 3 served ${device.vhost.vringStatus(3).stats.completed}`);
await guest.terminate();
port1.close();
await device.setStatus(0);
await device.unrealize();
