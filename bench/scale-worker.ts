// One device thread of the multi-queue scaling micro-benchmark: its own data plane instance
// draining its own request queue, whose avail->idx it moves itself by a batch each round (the
// chains were written once), for `ms` milliseconds after the start signal.
import { parentPort, workerData } from "node:worker_threads";
import { instantiateDataplane } from "../src/wasm/dataplane.js";
import { VIRTIO_SCSI_VQ_REQUEST } from "../src/virtio/virtio-scsi.js";

const { module, memory, area, vq, dev, availIdx, batch, ms, go } = workerData;
const dp = instantiateDataplane(memory, area, module);
const u16 = new Uint16Array(memory.buffer);
const start = new Int32Array(go as SharedArrayBuffer);
while (Atomics.load(start, 0) === 0) Atomics.wait(start, 0, 0);
let idx = Atomics.load(u16, availIdx >>> 1);
let served = 0;
const t0 = performance.now();
let t = t0;
while (t - t0 < ms) {
  for (let k = 0; k < 16; k++) {
    idx = (idx + batch) & 0xffff;
    Atomics.store(u16, availIdx >>> 1, idx);
    dp.scsi_req_drain(vq, dev, VIRTIO_SCSI_VQ_REQUEST, 1 << 16, true);
    served += batch;
  }
  t = performance.now();
}
parentPort!.postMessage({ served, seconds: (t - t0) / 1000, error: dp.vq_error(vq) });
