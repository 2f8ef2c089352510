// The guest side of worker-embedding.mjs: a virtio-scsi driver in its own thread.
import { parentPort, workerData } from "node:worker_threads";
import { SharedMemory, GuestMemory, VirtioScsiDriver, commandRetryingUA } from "vhost-scsi-wasm";
import { write16, read16 } from "vhost-scsi-wasm/wire";
import { RemoteTransport } from "vhost-scsi-wasm/transport";

const { memory, deviceEnd, regions, transport, port } = workerData;
const mem = GuestMemory.adopt(SharedMemory.attach(memory, deviceEnd), regions);
const t = new RemoteTransport(transport, port);
const driver = await VirtioScsiDriver.probe(mem, t, { target: 1 });

let mismatches = 0;
const block = (lba) => new Uint8Array(4096).map((_, i) => (lba + i * 3) & 0xff);
await commandRetryingUA(driver, { lun: 0, cdb: read16(0, 1), dataInLength: 512 });
const requests = 256;
await Promise.all(Array.from({ length: requests }, (_, i) => driver.command({ lun: 0, cdb: write16(i * 8, 8), dataOut: block(i) })));
const reads = await Promise.all(Array.from({ length: requests }, (_, i) => driver.command({ lun: 0, cdb: read16(i * 8, 8), dataInLength: 4096 })));
reads.forEach((r, i) => {
  if (r.status !== 0 || !Buffer.from(r.dataIn).equals(Buffer.from(block(i)))) mismatches++;
});
t.close();
parentPort.postMessage({ requests: requests * 2, queues: driver.requests.length, mismatches });
