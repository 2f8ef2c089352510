// Library use in one thread: a guest, a vhost-scsi device and its worker, all in this thread.
// Run: npm run build && node examples/library.mjs
import { createTestbed, scanTarget } from "vhost-scsi-wasm";
import { write16, read16 } from "vhost-scsi-wasm/wire";

const bed = await createTestbed({
  luns: [
    { backstore: "ram", size: 64 << 20 },
    { backstore: "null", size: 1 << 30, blockSize: 4096 },
  ],
  process: { workerThreads: false },
});

for (const d of await scanTarget(bed.driver)) {
  console.log(`lun ${d.lun}: ${d.vendor} ${d.product} ${d.blocks} x ${d.blockSize} B, ${d.wwid}`);
}

const data = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
const w = await bed.driver.command({ lun: 0, cdb: write16(2048, 8), dataOut: data });
const r = await bed.driver.command({ lun: 0, cdb: read16(2048, 8), dataInLength: 4096 });
const same = Buffer.from(r.dataIn).equals(Buffer.from(data));
console.log(`write status ${w.status}, read status ${r.status}, data ${same ? "matches" : "DIFFERS"}`);
await bed.close();
